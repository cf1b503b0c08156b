"""Joint posteriors over a group of scans (one material at several temperatures, or the
windows of one long measurement): the group's law and prior (``law``), the product of the
scans' posteriors sampled with emcee (``sample``), and the files (``files``).
docs/inference.md#group-posteriors.

In a notebook::

    from gbsbi.inference import load_posterior
    from gbsbi.group import group_posterior
    posterior = load_posterior("model/")
    data = group_posterior(posterior, maps, temperatures, law="arrhenius", shared=("sigma", "c"))
    arviz.summary(data, var_names=["D_ref", "Ea", "sigma", "c"])
"""


def group_posterior(posterior, maps, temperature, law="none", shared=("sigma", "c"),  # noqa: ANN001, ANN201
                    prior=None, settings=None, q=None, age=None):
    """The joint posterior of one group of scans (:func:`gbsbi.group.files.group_posterior`)."""
    from gbsbi.group.files import group_posterior as joint

    return joint(posterior, maps, temperature, law, shared, prior, settings, q, age)
