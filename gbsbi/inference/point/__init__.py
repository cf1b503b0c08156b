"""The source paper's point estimator (the baseline): the map embedding f and an MLP head g
predicting u, trained by mean squared error, adapted to unlabelled maps and fine-tuned per
group (docs/inference.md#the-point-estimator).

``config`` (settings, no torch), ``network`` (the regressor and its head), ``train`` (its
losses through :func:`gbsbi.inference.loop.fit`, and the per-group fine-tuning), ``predict``
(estimates with each scan's head).
"""
