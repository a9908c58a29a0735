"""tools/optimize."""
