#!/usr/bin/env python3
"""Plots a cflow run: reads RUNDIR/data.h5 (and config.json, summary.json when present) and writes
PNG figures into RUNDIR/plots/ and an overview page RUNDIR/report.html.

    /usr/bin/python3 python/cflow_plot.py RUNDIR
    /usr/bin/python3 python/cflow_plot.py RUNDIR RUNDIR... --out DIR   (several runs on the same axes)

Works on a run that is still going (the file is opened in SWMR read mode) or that stopped early:
rows that were never written are NaN, and every figure shows only the processes and series that
exist. Needs numpy, h5py and matplotlib.

Smoothed curves are not computed here: `cflow run` writes them into data.h5's smoothed/ group when
it ends (host/run/metrics.h defines the smoothing and its edge rule, summary.json the numbers), so
the plots show exactly what the summary compared. A run still going has none yet.
"""

import argparse
import html
import json
import math
import sys
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

PROCESSES = ("discrete", "midpoint", "central", "stable", "stationary")
COLORS = {"discrete": "tab:blue", "midpoint": "tab:cyan", "central": "black", "stable": "tab:red",
          "stationary": "tab:green"}
LABELS = {"discrete": "discrete", "midpoint": "midpoints", "central": "central flow",
          "stable": "stable flow", "stationary": "stationary flow"}
# Settings that differ between runs without being a choice of the experiment.
NOT_COMPARED = ("out", "quiet", "verbose", "no-plots", "threads", "device", "chunk", "checkpoint-every")
EOS_THRESHOLD = 2.0  # effective sharpness at the edge of stability
MAX_VARIANCE_PANELS = 4
MAX_COLUMNS_PER_SERIES = 5  # of a 2-D opt.* series such as nu at selected coordinates


def smoothing_label(run):
    sigma = run.attributes.get("smoothing_sigma_steps")
    return f"Gaussian-smoothed (σ = {float(sigma):g} steps)" if sigma else "Gaussian-smoothed"


class Run:
    """The series of one run, cut after the last row that any series has written."""

    def __init__(self, data_file):
        self.series = {}
        with open_for_reading(data_file) as f:
            f.visititems(self._collect)
            self.attributes = {k: _text(v) for k, v in f.attrs.items()}
        all_steps = self.series.pop("step", None)
        self.total_rows = len(all_steps) if all_steps is not None else _longest(self.series)
        self.shapes = {path: values.shape for path, values in self.series.items()}
        self.rows_written = {path: int(_finite_rows(values).sum())
                             for path, values in self.series.items()}
        self.rows = _rows_written(self.series)
        if all_steps is None:
            all_steps = np.arange(self.total_rows)
        self.steps = np.asarray(all_steps[:self.rows], dtype=float)
        self.series = {path: values[:self.rows] for path, values in self.series.items()}

    def _collect(self, name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape and obj.dtype.kind in "fiu":
            self.series[name] = np.asarray(obj[()], dtype=float)

    def get(self, path):
        """The series at `path`, or None when it is missing or has no finite value."""
        values = self.series.get(path)
        if values is None or not np.isfinite(values).any():
            return None
        return values

    def processes(self):
        return [p for p in PROCESSES if any(path.startswith(p + "/") for path in self.series)]

    def top(self, path):
        """Column 0 of a 2-D series (the largest eigenvalue), or a 1-D series as it is."""
        values = self.get(path)
        if values is None:
            return None
        top = values[:, 0] if values.ndim == 2 else values
        return top if np.isfinite(top).any() else None


def open_for_reading(data_file):
    # SWMR read mode also opens a file whose writer still runs or was killed; files written
    # without the latest format (not by cflow) need the plain mode.
    try:
        return h5py.File(data_file, "r", libver="latest", swmr=True)
    except OSError:
        return h5py.File(data_file, "r")


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _longest(series):
    return max((len(v) for v in series.values()), default=0)


def _finite_rows(values):
    """Per row: whether it holds any finite value."""
    return np.isfinite(values).any(axis=tuple(range(1, values.ndim)))


def _rows_written(series):
    """One past the last row with a finite value in any series."""
    last = -1
    for values in series.values():
        finite_rows = np.flatnonzero(_finite_rows(values))
        if finite_rows.size:
            last = max(last, int(finite_rows[-1]))
    return last + 1


def _new_figure(title, ncols=1, nrows=1):
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 4.2 * nrows), squeeze=False)
    fig.suptitle(title)
    return fig, axes.ravel()


def _save(fig, plots_dir, name):
    fig.tight_layout()
    path = plots_dir / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _use_log_scale_if_nonnegative(ax, *arrays):
    """Log y-axis for quantities spanning decades; zeros (a distance at step 0) are left out."""
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays if a is not None] or [np.array([])])
    if (finite > 0).any() and (finite >= 0).all():
        ax.set_yscale("log")


def plot_train_loss(run, plots_dir):
    discrete = run.get("discrete/train_loss")
    predicted = run.get("central/predicted_loss")
    stable = run.get("stable/train_loss")
    midpoint = run.get("midpoint/train_loss")
    if discrete is None and predicted is None and stable is None and midpoint is None:
        return None
    fig, (ax,) = _new_figure("train loss")
    if discrete is not None:
        ax.plot(run.steps, discrete, color=COLORS["discrete"], alpha=0.3, lw=0.8, label="discrete")
        smoothed = run.get("smoothed/discrete/train_loss")
        if smoothed is not None:
            ax.plot(run.steps, smoothed, color=COLORS["discrete"], label=f"discrete, {smoothing_label(run)}")
    if midpoint is not None:
        ax.plot(run.steps, midpoint, color=COLORS["midpoint"], lw=1, label="midpoints")
    if predicted is not None:
        ax.plot(run.steps, predicted, color=COLORS["central"], ls="--",
                label="central flow: predicted loss")
    if stable is not None:
        ax.plot(run.steps, stable, color=COLORS["stable"], label="stable flow")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    ax.legend()
    return _save(fig, plots_dir, "train_loss.png")


def plot_central_flow_loss(run, plots_dir):
    loss = run.get("central/train_loss")
    if loss is None:
        return None
    finite = loss[np.isfinite(loss)]
    largest_rise = float(np.max(np.diff(finite), initial=0.0))
    fig, (ax,) = _new_figure("L(w(t)) along the central flow")
    ax.plot(run.steps, loss, color=COLORS["central"])
    ax.set_xlabel("step")
    ax.set_ylabel("train loss at w(t)")
    ax.text(0.98, 0.95, f"largest rise between steps: {largest_rise:.3g}", transform=ax.transAxes,
            ha="right", va="top")
    return _save(fig, plots_dir, "central_flow_loss.png")


def plot_effective_sharpness(run, plots_dir):
    tops = {p: run.top(p + "/effective_hessian_eigs") for p in run.processes()}
    tops = {p: v for p, v in tops.items() if v is not None}
    if not tops:
        return None
    fig, (ax,) = _new_figure("effective sharpness (top eigenvalue of P⁻¹H)")
    for process, values in tops.items():
        ax.plot(run.steps, values, color=COLORS[process], label=LABELS[process])
    ax.axhline(EOS_THRESHOLD, color="gray", ls="--", lw=1, label="2 (edge of stability)")
    # The stable flow may climb far past 2 (up to its stop at 100); keep the interesting range.
    highest = max(np.nanmax(v) for v in tops.values())
    ceiling = 2 * EOS_THRESHOLD
    if highest > ceiling:
        ax.set_ylim(0, ceiling)
        ax.set_title(f"clipped at {ceiling:g} (highest value {highest:.3g})", fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("effective sharpness")
    ax.legend()
    return _save(fig, plots_dir, "effective_sharpness.png")


def plot_distances(run, plots_dir):
    distances = {path.split("/", 1)[1]: run.get(path) for path in sorted(run.series)
                 if path.startswith("distances/")}
    distances = {pair: v for pair, v in distances.items() if v is not None}
    if not distances:
        return None
    fig, (ax,) = _new_figure("distance between processes ‖w_a − w_b‖")
    for pair, values in distances.items():
        ax.plot(run.steps, values, label=pair)
    _use_log_scale_if_nonnegative(ax, *distances.values())
    ax.set_xlabel("step")
    ax.set_ylabel("distance")
    ax.legend()
    return _save(fig, plots_dir, "distances.png")


OUTPUT_EXAMPLES = 3  # trajectories shown by plot_outputs: the first examples, every class


def plot_outputs(run, plots_dir):
    """The network's outputs (logits) on the first examples (--log-outputs), one panel per example,
    every class of the discrete process (solid) against the central flow (dashed)."""
    outputs = {p: run.get(p + "/outputs") for p in ("discrete", "central")}
    outputs = {p: v for p, v in outputs.items() if v is not None and v.ndim == 3}
    if not outputs:
        return None
    examples = min(OUTPUT_EXAMPLES, min(v.shape[1] for v in outputs.values()))
    fig, axes = _new_figure("network outputs on the first training examples", ncols=examples)
    styles = {"discrete": "-", "central": "--"}
    for i, ax in enumerate(axes):
        for process, values in outputs.items():
            for c in range(values.shape[2]):
                ax.plot(run.steps, values[:, i, c], color=f"C{c}", ls=styles[process],
                        label=f"{LABELS[process]}, output {c}")
        ax.set_title(f"example {i}")
        ax.set_xlabel("step")
        ax.set_ylabel("output")
    axes[0].legend(fontsize=8)
    return _save(fig, plots_dir, "outputs.png")


def _as_columns(values):
    return values if values.ndim == 2 else values[:, None]


def _has_column(values, column):
    """Whether a [steps x cols] array has column `column` with a finite value in it."""
    return values is not None and column < values.shape[1] and np.isfinite(values[:, column]).any()


def plot_variances(run, plots_dir):
    predicted = run.get("central/predicted_variances")
    empirical = {"discrete": run.get("smoothed/deltas_sq")}
    empirical = {p: v for p, v in empirical.items() if v is not None}
    if predicted is None and not empirical:
        return None
    predicted = None if predicted is None else _as_columns(predicted)
    empirical = {p: _as_columns(v) for p, v in empirical.items()}
    width = max(a.shape[1] for a in [predicted, *empirical.values()] if a is not None)
    columns = [c for c in range(width)
               if _has_column(predicted, c) or any(_has_column(v, c) for v in empirical.values())]
    columns = columns[:MAX_VARIANCE_PANELS]
    if not columns:
        return None
    fig, axes = _new_figure("oscillation variance: predicted ξ vs smoothed δ²",
                            ncols=len(columns))
    for ax, c in zip(axes, columns):
        for process, deltas in empirical.items():
            if _has_column(deltas, c):
                ax.plot(run.steps, deltas[:, c], color=COLORS[process],
                        label=f"{LABELS[process]} δ², {smoothing_label(run)}")
        if _has_column(predicted, c):
            ax.plot(run.steps, predicted[:, c], color=COLORS["central"], ls="--",
                    label="central flow: predicted")
        ax.set_title(f"direction {c + 1}")
        ax.set_xlabel("step")
        ax.set_ylabel("variance")
        ax.legend(fontsize=8)
    return _save(fig, plots_dir, "variances.png")


def plot_grad_norm(run, plots_dir):
    discrete = run.get("discrete/grad_norm_sq")
    predicted = run.get("central/predicted_grad_norm_sq")
    stable = run.get("stable/grad_norm_sq")
    if discrete is None and predicted is None and stable is None:
        return None
    fig, (ax,) = _new_figure("squared gradient norm")
    smoothed = run.get("smoothed/discrete/grad_norm_sq")
    if discrete is not None:
        ax.plot(run.steps, discrete, color=COLORS["discrete"], alpha=0.3, lw=0.8, label="discrete")
    if smoothed is not None:
        ax.plot(run.steps, smoothed, color=COLORS["discrete"], label=f"discrete, {smoothing_label(run)}")
    if predicted is not None:
        ax.plot(run.steps, predicted, color=COLORS["central"], ls="--",
                label="central flow: predicted")
    if stable is not None:
        ax.plot(run.steps, stable, color=COLORS["stable"], label="stable flow")
    _use_log_scale_if_nonnegative(ax, discrete, smoothed, predicted, stable)
    ax.set_xlabel("step")
    ax.set_ylabel("‖∇L‖²")
    ax.legend()
    return _save(fig, plots_dir, "grad_norm.png")


def plot_optimizer_state(run, plots_dir):
    names = sorted({path.split("/", 1)[1] for path in run.series
                    if path.split("/", 1)[0] in PROCESSES and "/opt." in path})
    # GD logs only its step counter and learning rate; ν and step sizes come with RMSProp.
    if not set(names) - {"opt.t", "opt.lr"}:
        return None
    names = [n for n in names if n != "opt.t"]
    fig, axes = _new_figure("optimizer state", ncols=min(len(names), 3),
                            nrows=math.ceil(len(names) / 3))
    for ax, name in zip(axes, names):
        plotted = []
        for process in run.processes():
            values = run.get(f"{process}/{name}")
            if values is None:
                continue
            columns = _as_columns(values)
            for c in range(min(columns.shape[1], MAX_COLUMNS_PER_SERIES)):
                ax.plot(run.steps, columns[:, c], color=COLORS[process], lw=1,
                        label=LABELS[process] if c == 0 else None)
            plotted.append(columns)
        if name.startswith("opt.nu"):
            _use_log_scale_if_nonnegative(ax, *(p.ravel() for p in plotted))
        ax.set_title(name)
        ax.set_xlabel("step")
        if plotted:
            ax.legend(fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return _save(fig, plots_dir, "optimizer_state.png")


def _flatten(value, prefix=""):
    """Nested JSON as (dotted key, value) rows."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _format(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_report(run_dir, run, plots):
    summary = _read_json(run_dir / "summary.json")
    config = _read_json(run_dir / "config.json")
    if config is None and "config" in run.attributes:
        try:
            config = json.loads(run.attributes["config"])
        except ValueError:
            config = run.attributes["config"]
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>cflow run {e(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "img{max-width:100%;margin:1em 0}</style></head><body>",
        f"<h1>cflow run {e(run_dir.name)}</h1>",
    ]
    if run.rows:
        stopped = " (stopped early or still running)" if run.rows < run.total_rows else ""
        parts.append(f"<p>{run.rows} of {run.total_rows} steps written, steps "
                     f"{run.steps[0]:g} to {run.steps[-1]:g}{stopped}; processes: "
                     f"{e(', '.join(run.processes()) or 'none')}; {e(smoothing_label(run))} curves from "
                     "data.h5's smoothed/ group.</p>")
    else:
        parts.append(f"<p>No step has been written yet (of {run.total_rows}).</p>")
    if isinstance(summary, dict):
        parts.append("<h2>Summary</h2><table><tr><th>quantity</th><th>value</th></tr>")
        parts += [f"<tr><td>{e(k)}</td><td>{e(_format(v))}</td></tr>" for k, v in _flatten(summary)]
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    parts += [f"<div><img src='plots/{e(p.name)}' alt='{e(p.stem)}'></div>" for p in plots]
    if not plots:
        parts.append("<p>Nothing to plot yet.</p>")
    parts.append("<h2>Series</h2><table><tr><th>path</th><th>shape</th><th>rows written</th></tr>")
    for path in sorted(run.shapes):
        shape = "×".join(str(n) for n in run.shapes[path])
        parts.append(f"<tr><td>{e(path)}</td><td>{shape}</td>"
                     f"<td>{run.rows_written[path]}</td></tr>")
    parts.append("</table>")
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        parts.append(f"<h2>Configuration</h2><details open><pre>{e(text)}</pre></details>")
    parts.append("</body></html>")
    report = run_dir / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report


def find_data_file(run_dir):
    # data.hdf5 is the reference implementation's name; reading its runs costs nothing.
    for name in ("data.h5", "data.hdf5"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def comparison_labels(settings_list):
    """One legend label per run from the settings (config.json's "settings") that differ between
    the runs, e.g. ["lr=0.05", "lr=0.1"]; "run i" when none differ."""
    keys = sorted({k for s in settings_list for k in s} - set(NOT_COMPARED))
    differing = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings_list}) > 1]
    if not differing:
        return [f"run {i + 1}" for i in range(len(settings_list))]
    return [", ".join(f"{k}={_format(s.get(k))}" for k in differing) for s in settings_list]


# (file, title, series, y label): what the comparison overlays, one line per run and process.
COMPARED = (
    ("compare_train_loss.png", "train loss", "train_loss", "train loss"),
    ("compare_sharpness.png", "effective sharpness", "effective_hessian_eigs", "λ_max(P⁻¹H)"),
)


def plot_comparison(run_dirs, out_dir):
    """Overlays the runs on the same axes, labelled by the settings that differ; returns the PNGs."""
    runs, settings = [], []
    for run_dir in run_dirs:
        data_file = find_data_file(run_dir)
        if data_file is None:
            raise FileNotFoundError(f"no data.h5 in {run_dir}")
        runs.append(Run(data_file))
        settings.append((_read_json(run_dir / "config.json") or {}).get("settings", {}))
    labels = comparison_labels(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = ("-", "--", ":", "-.")
    written = []
    for name, title, series, ylabel in COMPARED:
        fig, (ax,) = _new_figure(title)
        for i, (run, label) in enumerate(zip(runs, labels)):
            for process in run.processes():
                values = run.top(f"{process}/{series}")
                if values is not None:
                    ax.plot(run.steps, values, color=f"C{i % 10}", ls=styles[PROCESSES.index(process) % len(styles)],
                            label=f"{label} ({LABELS[process]})")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        written.append(_save(fig, out_dir, name))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="+", help="run directory holding data.h5")
    parser.add_argument("--out", type=Path, help="comparison of several runs: the folder for its figures")
    args = parser.parse_args(argv)
    if len(args.run_dir) > 1 or args.out is not None:
        if args.out is None:
            print("cflow_plot: several runs are compared into --out DIR", file=sys.stderr)
            return 2
        try:
            for path in plot_comparison(args.run_dir, args.out):
                print(path)
        except FileNotFoundError as e:
            print(f"cflow_plot: {e}", file=sys.stderr)
            return 1
        return 0
    args.run_dir = args.run_dir[0]

    data_file = find_data_file(args.run_dir)
    if data_file is None:
        print(f"cflow_plot: no data.h5 in {args.run_dir}", file=sys.stderr)
        return 1
    run = Run(data_file)
    plots_dir = args.run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    figures = [
        plot_train_loss(run, plots_dir),
        plot_central_flow_loss(run, plots_dir),
        plot_effective_sharpness(run, plots_dir),
        plot_grad_norm(run, plots_dir),
        plot_distances(run, plots_dir),
        plot_variances(run, plots_dir),
        plot_optimizer_state(run, plots_dir),
        plot_outputs(run, plots_dir),
    ] if run.rows else []
    plots = [p for p in figures if p is not None]
    report = write_report(args.run_dir, run, plots)
    for path in [*plots, report]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
