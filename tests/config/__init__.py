"""config: see the README's Layout section."""
