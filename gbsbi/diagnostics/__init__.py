"""Checks of posteriors: calibration on simulations with known parameters (NumPy only)."""
