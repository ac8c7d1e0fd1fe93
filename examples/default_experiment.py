# %% [markdown]
# # The README's default experiment, from Python
#
# Runs `cflow run` with its defaults (Fashion-MNIST, 4 classes, 600 examples, MLP of width 128, GD
# at η = 0.05 for 150 steps, central and stable flows beside it; about 2.5 minutes on 2 CPU cores),
# then recomputes the README's numbers from the series with numpy and sets them beside the ones
# `cflow run` wrote into summary.json (host/run/summary.h defines them; docs/design.md §8).
#
#     PYTHONPATH=build/python /usr/bin/python3 examples/default_experiment.py [RUNDIR]
#
# (or without PYTHONPATH after `pip install ./python`). With RUNDIR, an existing run is loaded
# instead of running a new one. Cells are marked `# %%` for Jupyter/VS Code.

# %%
import os
import sys

import numpy as np

import cflow

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from cflow_plot import gaussian_smooth  # noqa: E402  (the smoothing of the plots and summary.json)

run = cflow.load_run(sys.argv[1]) if len(sys.argv) > 1 else cflow.run()
print(run)

# %% The edge of stability: the first step where GD's top effective eigenvalue reaches 2.
sharpness = run["discrete/effective_hessian_eigs"][:, 0]
onset_row = int(np.argmax(sharpness >= 2.0)) if np.any(sharpness >= 2.0) else None
onset = None if onset_row is None else int(run.steps[onset_row])

# %% The central flow's predicted loss against GD's Gaussian-smoothed loss (σ = 10 steps), after onset.
smoothed = gaussian_smooth(run["discrete/train_loss"], 10.0)
predicted = run["central/predicted_loss"]
after = slice(onset_row, None)
ok = np.isfinite(predicted[after]) & np.isfinite(smoothed[after]) & (smoothed[after] != 0)
relative_error = np.abs(predicted[after][ok] - smoothed[after][ok]) / np.abs(smoothed[after][ok])
mean_relative_error = float(relative_error.mean())

# %% Distances between the processes at the last step done (an interrupted run has NaN rows after it).
last = (run.summary or {}).get("steps_done", len(run.steps)) - 1
central_gd = float(run["distances/central-discrete"][last])
stable_gd = float(run["distances/discrete-stable"][last])

# %%
summary = run.summary or {}
rows = [("edge of stability at step", onset, summary.get("eos_onset_step")),
        ("predicted loss, mean relative error", mean_relative_error,
         summary.get("predicted_loss_mean_relative_error")),
        ("final ‖w_GD − w_central‖", central_gd, summary.get("final_distance_central_discrete")),
        ("final ‖w_GD − w_stable‖", stable_gd, summary.get("final_distance_stable_discrete"))]
print(f"{'':38s} {'from Python':>14s} {'summary.json':>14s}")
for name, ours, written in rows:
    print(f"{name:38s} {ours:>14.6g} {written:>14.6g}" if written is not None else f"{name:38s} {ours!s:>14s}")
