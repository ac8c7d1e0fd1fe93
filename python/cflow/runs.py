"""A run directory of `cflow run` (docs/design.md §8) as numpy arrays: config.json, summary.json and
every dataset of data.h5, read generically (whatever series the run declared).

data.h5 is opened in SWMR read mode, so a run can be loaded while `cflow run` is still writing it;
rows not yet written are NaN. Run.refresh() reads it again.
"""
import json
import os

import numpy as np


class Run:
    """config: config.json as a dict; summary: summary.json as a dict (None while the run has not
    finished); steps: the `step` dataset; series: every other dataset, by its path in data.h5
    ("discrete/train_loss", "central/times/total", "distances/central-discrete", "deltas", ...);
    processes: the process names; run["central/predicted_loss"] or run.process("central")["predicted_loss"].
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.refresh()

    def refresh(self):
        self.config = _read_json(os.path.join(self.path, "config.json"), required=True)
        self.summary = _read_json(os.path.join(self.path, "summary.json"), required=False)
        self.steps, self.series = _read_data(os.path.join(self.path, "data.h5"))
        return self

    @property
    def processes(self):
        """The processes the run advanced (settings.runs of config.json), in its order."""
        runs = self.config.get("settings", {}).get("runs")
        if isinstance(runs, str):
            runs = runs.split(",")
        if runs:
            return [p for p in runs if any(k.startswith(p + "/") for k in self.series)]
        return sorted({k.split("/")[0] for k in self.series if "/" in k} - {"distances"})

    def process(self, name):
        """The series of one process, by their path below it ("train_loss", "times/total", ...)."""
        prefix = name + "/"
        found = {k[len(prefix):]: v for k, v in self.series.items() if k.startswith(prefix)}
        if not found:
            raise KeyError(f"{self.path}: no process {name!r} (the run has {', '.join(self.processes)})")
        return found

    def __getitem__(self, path):
        try:
            return self.series[path]
        except KeyError:
            raise KeyError(f"{self.path}/data.h5 has no dataset {path!r}") from None

    def __contains__(self, path):
        return path in self.series

    def keys(self):
        return self.series.keys()

    def to_pandas(self, process=None):
        """A pandas DataFrame indexed by step: one column per 1-D series and one per entry of a row of
        a longer series ("path[j]" of a 2-D one, "path[i,c]" of the 3-D outputs); with process given,
        that process's series under their short names."""
        import pandas as pd

        series = self.process(process) if process else self.series
        columns = {}
        for name, values in series.items():
            if values.ndim == 1:
                columns[name] = values
            else:
                for index in np.ndindex(values.shape[1:]):
                    columns[f"{name}[{','.join(map(str, index))}]"] = values[(slice(None),) + index]
        return pd.DataFrame(columns, index=pd.Index(self.steps, name="step"))

    def __repr__(self):
        status = (self.summary or {}).get("status", "running or stopped without summary.json")
        return f"cflow.Run({self.path!r}, {len(self.steps)} steps, processes {self.processes}, {status})"


def load_run(path):
    """The run in directory `path` (written by `cflow run --out path`)."""
    return Run(path)


def _read_json(file, required):
    if not os.path.exists(file):
        if required:
            raise FileNotFoundError(f"{file} does not exist: expected a run directory written by `cflow run`")
        return None
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def _read_data(file):
    import h5py

    if not os.path.exists(file):
        raise FileNotFoundError(f"{file} does not exist: the run has not started logging")
    try:
        handle = h5py.File(file, "r", libver="latest", swmr=True)
    except OSError:  # a file that was never switched to SWMR mode
        handle = h5py.File(file, "r")
    series = {}
    with handle as f:
        def visit(name, node):
            if isinstance(node, h5py.Dataset) and name != "step":
                series[name] = node[()]

        f.visititems(visit)
        steps = f["step"][()] if "step" in f else np.arange(len(next(iter(series.values()), [])))
    return steps, series
