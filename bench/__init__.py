"""Speed and memory benchmarks of the extractors, the store, the training loop and each system."""
