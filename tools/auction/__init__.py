"""tools/auction."""
