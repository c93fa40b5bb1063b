"""world: see the README's Layout section."""
