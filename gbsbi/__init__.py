"""gbsbi: simulation-based inference of grain-boundary kinetics from XPCS two-time maps."""

__version__ = "0.1.0"
