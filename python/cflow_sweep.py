#!/usr/bin/env python3
"""Plots and report.html of a cflow sweep directory (written by `cflow sweep`; docs/design.md §8).

    python3 python/cflow_sweep.py SWEEPDIR

Reads SWEEPDIR/sweep.csv (one row per point) and SWEEPDIR/sweep.json (each point's settings), and
writes SWEEPDIR/plots/*.png and SWEEPDIR/report.html:
  error_vs_<axis>.png     the central flow's predicted-loss error against each swept axis
  distance_ratio_vs_<axis>.png   final ‖central − discrete‖ / ‖stable − discrete‖ against each axis
  eos_onset_vs_inverse_lr.png    the step at which GD reaches the edge of stability against 1/lr
  time_per_step_vs_width.png     seconds per step of each process against width, log–log, fitted slope
A plot whose numbers are missing in every row (e.g. no stable flow, no lr axis) is left out.
"""
import csv
import html
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value


def load(sweep_dir):
    with open(os.path.join(sweep_dir, "sweep.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(sweep_dir, "sweep.json")) as f:
        meta = json.load(f)
    settings = {p["id"]: p["settings"] for p in meta["points"]}
    for row in rows:
        row["_settings"] = settings.get(row["id"], {})
    return rows, meta


def setting(row, key):
    """A point's numeric setting: swept, else from the spec's [base], else NaN."""
    return number(row.get(key, row["_settings"].get(key)))


def column(rows, key):
    return np.array([number(r.get(key)) for r in rows])


def groups(rows, axes, axis):
    """Rows split by the values of the other axes, so each line varies only `axis`."""
    others = [a for a in axes if a != axis]
    split = {}
    for r in rows:
        split.setdefault(", ".join(f"{a}={r[a]}" for a in others), []).append(r)
    return split


def against_axes(rows, axes, values, ylabel, stem, out, log_y=False):
    written = []
    if not np.isfinite(values).any():
        return written
    by_id = {r["id"]: v for r, v in zip(rows, values)}
    for axis in axes:
        xs_all = np.array([setting(r, axis) for r in rows])
        numeric = np.isfinite(xs_all).all()
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for label, members in groups(rows, axes, axis).items():
            xs = [setting(r, axis) if numeric else r[axis] for r in members]
            ys = [by_id[r["id"]] for r in members]
            ax.plot(xs, ys, "o-", label=label or None)
        ax.set_xlabel(axis)
        ax.set_ylabel(ylabel)
        if numeric and (xs_all > 0).all() and xs_all.max() / xs_all.min() >= 8:
            ax.set_xscale("log", base=2)
        if log_y and (values[np.isfinite(values)] > 0).all():
            ax.set_yscale("log")
        if len(axes) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = f"{stem}_vs_{axis}.png"
        fig.savefig(os.path.join(out, name), dpi=90)
        plt.close(fig)
        written.append(name)
    return written


def onset_vs_inverse_lr(rows, out):
    lr = np.array([setting(r, "lr") for r in rows])
    onset = column(rows, "eos_onset_step")
    keep = np.isfinite(lr) & np.isfinite(onset)
    if not keep.any():
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(1 / lr[keep], onset[keep], "o")
    ax.set_xlabel("1 / lr")
    ax.set_ylabel("EoS onset step (S_eff ≥ 2)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "eos_onset_vs_inverse_lr.png"), dpi=90)
    plt.close(fig)
    return ["eos_onset_vs_inverse_lr.png"]


def time_vs_width(rows, out):
    width = np.array([setting(r, "width") for r in rows])
    processes = [k[len("mean_step_seconds."):] for k in rows[0] if k.startswith("mean_step_seconds.")]
    if not np.isfinite(width).any() or not processes or len(set(width[np.isfinite(width)])) < 2:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for process in processes:
        seconds = column(rows, "mean_step_seconds." + process)
        keep = np.isfinite(width) & np.isfinite(seconds) & (seconds > 0)
        if keep.sum() < 2:
            continue
        slope, intercept = np.polyfit(np.log(width[keep]), np.log(seconds[keep]), 1)
        line = ax.plot(width[keep], seconds[keep], "o", label=f"{process}: slope {slope:.2f}")[0]
        xs = np.array(sorted(set(width[keep])))
        ax.plot(xs, np.exp(intercept) * xs**slope, "-", color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel("seconds per step")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "time_per_step_vs_width.png"), dpi=90)
    plt.close(fig)
    return ["time_per_step_vs_width.png"]


def report(sweep_dir, meta, rows, images):
    shown = ["index", "id"] + meta["axes"] + ["status", "eos_onset_step", "predicted_loss_mean_relative_error",
                                               "final_distance_central_discrete", "final_distance_stable_discrete"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(r.get(c, ''))}</td>" for c in shown) + "</tr>" for r in rows)
    figures = "".join(f'<figure><img src="plots/{name}"><figcaption>{name}</figcaption></figure>' for name in images)
    page = f"""<!doctype html><meta charset="utf-8"><title>cflow sweep {html.escape(meta['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}
figure{{display:inline-block;margin:0.5em}}</style>
<h1>cflow sweep: {html.escape(meta['name'])}</h1>
<p>{len(rows)} points; every number is in <a href="sweep.csv">sweep.csv</a>.</p>
<table><tr>{head}</tr>{body}</table>{figures}
"""
    with open(os.path.join(sweep_dir, "report.html"), "w") as f:
        f.write(page)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    sweep_dir = argv[1]
    rows, meta = load(sweep_dir)
    out = os.path.join(sweep_dir, "plots")
    os.makedirs(out, exist_ok=True)
    axes = meta["axes"]
    error = column(rows, "predicted_loss_mean_relative_error")
    ratio = column(rows, "final_distance_central_discrete") / column(rows, "final_distance_stable_discrete")
    images = against_axes(rows, axes, error, "predicted-loss error (mean relative)", "error", out, log_y=True)
    images += against_axes(rows, axes, ratio, "‖central − GD‖ / ‖stable − GD‖ (final)", "distance_ratio", out)
    images += onset_vs_inverse_lr(rows, out)
    images += time_vs_width(rows, out)
    report(sweep_dir, meta, rows, images)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
