"""cli: see the README's Layout section."""
