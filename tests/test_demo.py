"""`gbsbi demo --quick`: the whole job end to end on a tiny scale."""

import pytest

pytest.importorskip("torch")
from gbsbi.cli import main  # noqa: E402


def test_quick_demo_runs_the_whole_job(in_tmp, capsys):
    assert main(["demo", "--quick", "--out", "demo"]) == 0
    out = capsys.readouterr().out
    for name in ("bank.h5", "pseudo_experiments.h5", "model/model.json", "posteriors.nc",
                 "posteriors.csv", "posteriors-plots/intervals.png", "quartile_maps.png"):
        assert (in_tmp / "demo" / name).exists(), name
    assert "90% intervals covering" in out and "RMSE of posterior mean" in out
    assert "each row the mean of 1 repeats" in out
    assert len(list((in_tmp / "demo" / "posteriors-plots").glob("corner_*.png"))) == 4


def test_demo_refuses_a_folder_that_holds_something(in_tmp, capsys):
    (in_tmp / "busy").mkdir()
    (in_tmp / "busy" / "notes.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", "busy"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (in_tmp / "busy" / "notes.txt").read_text() == "keep me"
