"""Data sets and splits: benchmark loaders turn raw files into (graph, hardware, target) records."""
