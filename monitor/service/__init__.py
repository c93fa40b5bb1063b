"""service: see the README's Layout section."""
