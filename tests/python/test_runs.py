"""cflow.load_run on a run written by `cflow run`, and cflow.run() writing the same run."""
import json
import os
import subprocess

import h5py
import numpy as np
import pytest

import cflow

TINY = {"data": "moons", "n": 64, "width": 8, "steps": 5, "device": "cpu", "no_plots": True}


@pytest.fixture(scope="module")
def tiny_run(cflow_binary, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    subprocess.run([cflow_binary, "run", "--out", str(out), "--quiet"] + cflow.experiment.flags(TINY), check=True)
    return out


def test_load_run_reads_every_dataset(tiny_run):
    run = cflow.load_run(tiny_run)
    assert run.config["settings"]["width"] == 8 and run.config["settings"]["steps"] == 5
    with open(tiny_run / "summary.json") as f:
        assert run.summary == json.load(f)
    with h5py.File(tiny_run / "data.h5", "r", libver="latest", swmr=True) as f:
        datasets = []
        f.visititems(lambda name, node: datasets.append(name) if isinstance(node, h5py.Dataset) else None)
        assert sorted(run.keys()) == sorted(set(datasets) - {"step"})
        assert np.array_equal(run.steps, f["step"][()])
        for name in datasets:
            if name != "step":
                assert np.array_equal(run[name], f[name][()], equal_nan=True), name
    assert np.array_equal(run.steps, np.arange(5))  # --steps 5: rows 0..4
    assert run.processes == [p for p in ["discrete", "central", "stable", "midpoint"] if p in run.processes]
    assert "discrete" in run.processes
    loss = run.process("discrete")["train_loss"]
    assert loss is run["discrete/train_loss"] and np.isfinite(loss).all()
    with pytest.raises(KeyError, match="no dataset"):
        run["discrete/no_such_series"]


def test_to_pandas(tiny_run):
    pd = pytest.importorskip("pandas")
    run = cflow.load_run(tiny_run)
    frame = run.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == list(run.steps)
    assert np.array_equal(frame["discrete/train_loss"].to_numpy(), run["discrete/train_loss"])
    eigs = run["discrete/effective_hessian_eigs"]
    assert np.array_equal(frame["discrete/effective_hessian_eigs[0]"].to_numpy(), eigs[:, 0], equal_nan=True)
    assert "train_loss" in run.to_pandas("discrete").columns


def test_load_run_reads_the_logged_outputs(cflow_binary, tmp_path):
    """--log-outputs K: each process's outputs come back as the 3-D series steps × K × classes of
    data.h5, and to_pandas spreads a row over one column per example and class."""
    out, examples = tmp_path / "outputs", 3
    subprocess.run([cflow_binary, "run", "--out", str(out), "--quiet", "--log-outputs", str(examples)]
                   + cflow.experiment.flags(TINY), check=True)
    run = cflow.load_run(out)
    with h5py.File(out / "data.h5", "r", libver="latest", swmr=True) as f:
        for process in run.processes:
            outputs = run[f"{process}/outputs"]
            assert outputs.shape == (TINY["steps"], examples, 2)  # moons: 2 classes
            assert outputs.dtype == f[f"{process}/outputs"].dtype
            assert np.array_equal(outputs, f[f"{process}/outputs"][()])
    assert np.isfinite(run["discrete/outputs"]).all()
    # Every process starts from the same weights: the same outputs at step 0, different ones later.
    assert np.array_equal(run["central/outputs"][0], run["discrete/outputs"][0])
    assert not np.array_equal(run["central/outputs"][-1], run["discrete/outputs"][-1])
    pd = pytest.importorskip("pandas")
    frame = run.to_pandas("discrete")
    assert np.array_equal(frame["outputs[2,1]"].to_numpy(), run["discrete/outputs"][:, 2, 1])


def test_load_run_without_a_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        cflow.load_run(tmp_path)


def test_run_from_python_writes_the_same_run(tiny_run, tmp_path):
    run = cflow.run(out=tmp_path / "again", echo=False, **TINY)
    reference = cflow.load_run(tiny_run)
    assert sorted(run.keys()) == sorted(reference.keys())
    for name in reference.keys():
        if "/times/" not in name and not name.startswith("times"):  # wall-clock timings differ
            assert np.array_equal(run[name], reference[name], equal_nan=True), name
    with pytest.raises(cflow.RunError, match="--width"):
        cflow.run(out=tmp_path / "bad", echo=False, width=-1, **{k: v for k, v in TINY.items() if k != "width"})


def test_load_run_while_cflow_run_writes(cflow_binary, tmp_path):
    """SWMR: a run is readable while its writer holds data.h5 open (stopped mid-run by SIGSTOP)."""
    import signal
    import time

    out = tmp_path / "live"
    settings = dict(TINY, steps=2000)
    writer = subprocess.Popen([cflow_binary, "run", "--out", str(out), "--quiet"] + cflow.experiment.flags(settings))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and writer.poll() is None:
            if (out / "data.h5").exists() and (out / "config.json").exists():
                writer.send_signal(signal.SIGSTOP)
                rows = np.isfinite(cflow.load_run(out)["discrete/train_loss"]).sum()
                if rows >= 2:
                    break
                writer.send_signal(signal.SIGCONT)
            time.sleep(0.2)
        assert writer.poll() is None, "the run ended before it could be read mid-way"
        run = cflow.load_run(out)
        assert run.summary is None and len(run.steps) == 2000
        loss = run["discrete/train_loss"]
        assert 2 <= np.isfinite(loss).sum() < 2000 and np.isfinite(loss[:2]).all()
    finally:
        writer.send_signal(signal.SIGCONT)
        writer.send_signal(signal.SIGINT)  # cflow run flushes, checkpoints and exits 130
        assert writer.wait(timeout=120) == 130
    assert cflow.load_run(out).summary["interrupted_by"] == "SIGINT"
