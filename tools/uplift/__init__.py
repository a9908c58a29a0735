"""tools/uplift."""
