"""Data adapters: each returns plain arrays/tensors (``series`` for time series)."""
