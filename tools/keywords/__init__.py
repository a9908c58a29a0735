"""tools/keywords."""
