"""tools: see the README's Layout section."""
