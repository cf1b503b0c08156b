"""What a new user saw on a fresh clone, each fixed and held here: centres inside their
intervals, bands that say something and agree with their tests, names printed as names, file
lines counted as the file counts them, one-line messages for empty and multitau-only files."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from gbsbi.cli import main
from gbsbi.errors import GbsbiError
from gbsbi.io.mapsfile import Maps
from gbsbi.io.posteriors import PosteriorDraws, format_table, summary_rows
from gbsbi.validation.calibration import binomial_band, ks_halfwidth, ks_pvalue, sbc_bins


def _skewed_draws() -> PosteriorDraws:
    """sigma with 96 % of its draws in [0.03, 0.06] J/m^2 and 4 % near 3 J/m^2: the 95 %
    quantile lies in the bulk, the mean far above it."""
    rng = np.random.default_rng(0)
    sigma = np.where(rng.random((4, 500)) < 0.96, rng.uniform(0.03, 0.06, (4, 500)),
                     rng.uniform(2.5, 3.0, (4, 500)))
    theta = np.stack([np.full((4, 500), 1e-4), sigma, np.full((4, 500), 0.2)], -1)[:, :, None]
    return PosteriorDraws(theta=theta, scan=np.array(["s"]), temperature=np.array([350.0]),
                          q=np.array([1.0]), phi=np.array([0.1]), phi_corrected=np.array([0.1]))


def test_tables_give_the_median_beside_the_mean_and_never_a_centre_outside_its_interval():
    row = summary_rows(_skewed_draws())[0]
    # the case the user met: the mean of sigma lies outside its own 5-95 % interval
    assert not row["sigma_q05"] <= row["sigma_mean"] <= row["sigma_q95"]
    assert row["sigma_q05"] <= row["sigma_median"] <= row["sigma_q95"]
    table = format_table([row])
    import re

    cells = re.findall(r"(\S+) \[\s*(\S+),\s*(\S+)\]", table.splitlines()[-1])
    centre, low, high = map(float, cells[1])  # sigma, as printed
    assert low <= centre <= high and centre == pytest.approx(row["sigma_median"], rel=1e-2)
    assert "median" in table


def test_rank_histograms_have_bands_that_say_something():
    for n in (60, 300, 1000):
        bins = sbc_bins(n)
        low, high = binomial_band(np.array([1 / bins]), n)[:, 0] * n
        assert low > 0 and high < 2.5 * n / bins  # not the whole axis


def test_the_ecdf_band_and_its_p_value_agree():
    """A curve just inside the simultaneous band has p >= 0.05, just outside p < 0.05."""
    n = 200
    d = ks_halfwidth(n)
    z = np.linspace(0, 1, 101)
    bump = np.exp(-0.5 * ((z - 0.5) / 0.1) ** 2)
    assert ks_pvalue(z + 0.97 * d * bump, z, n) >= 0.05
    assert ks_pvalue(z + 1.03 * d * bump, z, n) < 0.05


def test_messages_name_scans_as_plain_strings():
    from gbsbi.inference.data import conform
    from simulators.config import ExperimentConfig

    config = ExperimentConfig()
    maps = Maps(np.ones((1, 128, 128)), config.t, np.array([350.0]), np.array([2.0]),
                scan=np.array(["bnl_two_time_350"]))
    with pytest.raises(GbsbiError) as caught:
        conform(maps, config, "bnl.h5")
    assert "'bnl_two_time_350'" in str(caught.value) and "np.str_" not in str(caught.value)


def _err(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_bad_value_in_a_text_matrix_is_named_by_its_file_line(tmp_path: Path, capsys):
    lines = ["# a header line"] + [" ".join(["1.0"] * 4) for _ in range(160)]
    lines[150] = "1.0 1.0 oops 1.0"  # file line 151 (the header is line 1)
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    err = _err(capsys, ["import", str(path), "--out", str(tmp_path / "m.h5"),
                        "--temperature", "300", "--q", "1", "--frame-time", "1"])
    assert "line 151" in err and "row" not in err


def test_an_empty_text_file_is_one_line_without_numpys_warning(tmp_path: Path, capsys):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked NumPy warning fails the test
        err = _err(capsys, ["import", str(path), "--out", str(tmp_path / "m.h5"),
                            "--temperature", "300", "--q", "1", "--frame-time", "1"])
    assert "empty" in err


@pytest.mark.parametrize("fmt", [None, "aps"])
def test_a_multitau_only_aps_file_is_named_for_what_it_holds(tmp_path: Path, capsys, fmt):
    path = tmp_path / "A001_results.hdf"
    with h5py.File(path, "w") as f:
        f["/xpcs/multitau/normalized_g2"] = np.ones((20, 3))
        f["/xpcs/qmap/dynamic_v_list_dim0"] = np.array([0.01, 0.02, 0.03])
    argv = ["import", str(path), "--out", str(tmp_path / "m.h5")]
    err = _err(capsys, argv + ([] if fmt is None else ["--format", fmt]))
    assert "multitau g2 only" in err and "not this layout" not in err


def test_unique_names_are_python_strings_that_print_plainly():
    from gbsbi.io.posteriors import unique_names

    names = unique_names(np.array(["a", "a", "b"]))
    assert list(names) == ["a", "a#2", "b"]
    assert repr(names[1]) == "'a#2'"  # not np.str_('a#2') in messages
