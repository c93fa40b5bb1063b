"""store: see the README's Layout section."""
