"""`cflow run --log-outputs K` then the plots: outputs.png shows the first examples' output trajectories
of GD against the central flow; a run without outputs draws none."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
cflow_plot = pytest.importorskip("cflow_plot")  # needs matplotlib besides h5py and numpy

TINY = ["--data", "moons", "--n", "32", "--n-test", "0", "--width", "8", "--steps", "4", "--device", "cpu",
        "--no-plots", "--quiet", "--runs", "discrete,central"]


def _run(cflow_binary, out, *extra):
    subprocess.run([cflow_binary, "run", "--out", str(out), *TINY, *extra], check=True)
    return cflow_plot.Run(out / "data.h5")


def test_outputs_are_plotted_when_logged(cflow_binary, tmp_path):
    run = _run(cflow_binary, tmp_path / "with", "--log-outputs", "4")
    assert run.series["discrete/outputs"].shape == (4, 4, 2)
    png = cflow_plot.plot_outputs(run, tmp_path)
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_outputs_no_figure(cflow_binary, tmp_path):
    run = _run(cflow_binary, tmp_path / "without")
    assert "discrete/outputs" not in run.series
    assert cflow_plot.plot_outputs(run, tmp_path) is None
