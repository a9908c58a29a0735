"""tools/optimize: ``budget.allocate_budget`` splits a total daily budget across campaigns."""
