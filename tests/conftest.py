"""Shared fixtures: every test starts from fixed seeds and runs in its own folder."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)
    # The networks in tests are tiny: one thread is faster than two that wait on each other.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cache_outside_home(tmp_path_factory) -> None:
    """Reduced bank inputs go to a temporary cache, not the user's (``$GBSBI_CACHE``)."""
    import os

    os.environ["GBSBI_CACHE"] = str(tmp_path_factory.mktemp("gbsbi-cache"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside a fresh temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
