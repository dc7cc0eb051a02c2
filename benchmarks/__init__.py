"""Benchmarks: side-by-side speed comparisons of keras_bert against keras-hub (and others when installed)."""
