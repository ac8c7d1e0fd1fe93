"""`cflow plot RUNDIR RUNDIR --out DIR`: two tiny runs that differ in --lr on the same axes, the legend
naming lr with both values."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
cflow_plot = pytest.importorskip("cflow_plot")  # needs matplotlib besides h5py and numpy

TINY = ["--data", "moons", "--n", "64", "--width", "8", "--steps", "5", "--device", "cpu", "--no-plots", "--quiet",
        "--runs", "discrete,central"]


@pytest.fixture(scope="module")
def two_runs(cflow_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    runs = []
    for lr in ("0.05", "0.1"):
        out = root / f"lr{lr}"
        subprocess.run([cflow_binary, "run", "--out", str(out), "--lr", lr] + TINY, check=True)
        runs.append(out)
    return root, runs


def test_labels_name_the_setting_that_differs(two_runs):
    _, runs = two_runs
    settings = [json.loads((run / "config.json").read_text())["settings"] for run in runs]
    assert cflow_plot.comparison_labels(settings) == ["lr=0.05", "lr=0.1"]


def test_labels_without_a_difference():
    assert cflow_plot.comparison_labels([{"lr": 0.1, "out": "a"}, {"lr": 0.1, "out": "b"}]) == ["run 1", "run 2"]


def test_cflow_plot_writes_the_comparison(cflow_binary, two_runs):
    root, runs = two_runs
    out = root / "figures"
    subprocess.run([cflow_binary, "plot", *map(str, runs), "--out", str(out)], check=True)
    for name, *_ in cflow_plot.COMPARED:
        png = out / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
