"""tools/market."""
