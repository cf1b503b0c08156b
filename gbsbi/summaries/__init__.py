"""Summary statistics of two-time maps."""
