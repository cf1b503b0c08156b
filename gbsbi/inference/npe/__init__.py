"""The posterior estimator (neural posterior estimation): a flow q(u | x) over the unit cube
conditioned on the map embedding (docs/inference.md#the-posterior-estimator).

``config`` (settings, no torch), ``network`` (the flow with its embedding), ``train`` (its
losses, handed to :func:`gbsbi.inference.loop.fit`), ``predict`` (the posterior in physical
units and draws for many inputs).
"""
