"""evals/benchmarks."""
