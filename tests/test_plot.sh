#!/usr/bin/env bash
# Runs python/cflow_plot.py on synthetic runs in the data.h5 layout and checks the PNGs and
# report.html it writes. Exits 77 (ctest: SKIP_RETURN_CODE) when the Python lacks h5py/matplotlib.
#
#   tests/test_plot.sh [path/to/cflow_plot.py]      (Python: $CFLOW_PYTHON, else /usr/bin/python3)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
plot=${1:-$script_dir/../python/cflow_plot.py}
python=${CFLOW_PYTHON:-/usr/bin/python3}

if ! "$python" -c 'import h5py, matplotlib, numpy' 2>/dev/null; then
  echo "SKIP: $python cannot import h5py, matplotlib and numpy"
  exit 77
fi

work=$(mktemp -d)
writer_pid=
cleanup() {
  if [[ -n $writer_pid ]]; then kill "$writer_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Writes a synthetic run: write_run.py RUNDIR KIND, KIND one of
#   full     all four processes, RMSProp opt.* series, stopped at step 240 of 300, json files
#   minimal  discrete only, GD, no json files
#   empty    declared series, nothing written
#   live     like minimal, but the writer keeps the file open in SWMR mode until RUNDIR/done exists
cat >"$work/write_run.py" <<'EOF'
import json, sys, time
from pathlib import Path
import h5py
import numpy as np

run_dir, kind = Path(sys.argv[1]), sys.argv[2]
run_dir.mkdir(parents=True)
steps, stopped_at, k_max = 300, 240, 3
rng = np.random.default_rng(0)
t = np.arange(steps, dtype=float)
f = h5py.File(run_dir / "data.h5", "w", libver="latest")
f.create_dataset("step", data=np.arange(steps, dtype=np.int64))

def series(path, cols=0):
    shape = (steps,) if cols == 0 else (steps, cols)
    return f.create_dataset(path, shape, dtype="f8", fillvalue=np.nan, chunks=True,
                            maxshape=(None,) + shape[1:])

written = {"full": stopped_at, "minimal": steps, "live": 120, "empty": 0}[kind]
n = written
loss = 1.0 / (1.0 + 0.02 * t[:n])
oscillation = 0.05 * np.abs(np.sin(1.3 * t[:n])) * (t[:n] > 50)
sharpness = np.minimum(0.5 + 0.02 * t[:n], 2.0) + 0.05 * np.sin(t[:n]) * (t[:n] > 75)
eigs = np.stack([sharpness, 0.8 * sharpness, np.full(n, np.nan)], axis=1)

series("discrete/train_loss")[:n] = loss + oscillation
series("discrete/effective_hessian_eigs", k_max)[:n] = eigs
series("discrete/grad_norm_sq")[:n] = 0.1 * loss + oscillation
if kind == "full":
    series("midpoint/train_loss")[:n] = loss + 0.01
    series("midpoint/effective_hessian_eigs", k_max)[:n] = eigs
    series("central/train_loss")[:n] = loss
    series("central/predicted_loss")[:n] = loss + 0.03 * (t[:n] > 50)
    series("central/predicted_grad_norm_sq")[:n] = 0.1 * loss + 0.03
    series("central/effective_hessian_eigs", k_max)[:n] = np.minimum(eigs, 2.0)
    variances = np.where(t[:n, None] > 50, [0.02, 0.01, np.nan], np.nan)
    series("central/predicted_variances", k_max)[:n] = variances
    series("deltas", k_max)[:n] = np.sqrt(variances) * rng.standard_normal((n, k_max))
    # what `cflow run` writes when it ends (the plot script does not smooth)
    series("smoothed/deltas_sq", k_max)[:n] = variances
    series("smoothed/discrete/train_loss")[:n] = loss + 0.03 * (t[:n] > 50)
    series("smoothed/discrete/grad_norm_sq")[:n] = 0.1 * loss + 0.03
    f.attrs["smoothing_sigma_steps"] = "10"
    series("stable/train_loss")[:n] = loss * 1.2
    series("stable/effective_hessian_eigs", k_max)[:n] = eigs * np.linspace(1, 60, n)[:, None]
    for a, b in [("central", "discrete"), ("central", "stable"), ("discrete", "stable"),
                 ("central", "midpoint"), ("discrete", "midpoint"), ("midpoint", "stable")]:
        series(f"distances/{a}-{b}")[:n] = (0.1 if "stable" in (a, b) else 0.01) * t[:n] + 1e-3
    for process in ("discrete", "central", "stable", "midpoint"):
        series(f"{process}/opt.t")[:n] = t[:n]
        series(f"{process}/opt.lr")[:n] = 0.01
        series(f"{process}/opt.nu_l1")[:n] = 1.0 + 0.01 * t[:n]
        series(f"{process}/opt.nu_selected_idx", 25)[:n] = np.outer(1 + 0.01 * t[:n], np.arange(1, 26))
        series(f"{process}/opt.ess_mean")[:n] = 0.01 / np.sqrt(1.0 + 0.01 * t[:n])
    (run_dir / "config.json").write_text(json.dumps({"opt": {"name": "rmsprop", "lr": 0.01}}))
    (run_dir / "summary.json").write_text(json.dumps(
        {"steps_done": n, "stable": {"stopped_at": 190}, "eos_onset": 75, "note": "<ok & fine>"}))
else:
    series("discrete/opt.t")[:n] = t[:n]
    series("discrete/opt.lr")[:n] = 0.02
    f.attrs["config"] = json.dumps({"opt": {"name": "gd", "lr": 0.02}})

if kind == "live":
    f.swmr_mode = True
    f.flush()
    (run_dir / "ready").touch()
    deadline = time.time() + 120
    while not (run_dir / "done").exists() and time.time() < deadline:
        time.sleep(0.05)
f.close()
EOF

# check_run RUNDIR PNG... : the plots that must exist (and no others) and report.html linking them
check_run() {
  local run_dir=$1
  shift
  "$python" "$plot" "$run_dir" >"$run_dir/plot.log" 2>&1 || fail "cflow_plot.py failed on $run_dir: $(cat "$run_dir/plot.log")"
  [[ -s $run_dir/report.html ]] || fail "$run_dir/report.html missing"
  local expected actual
  expected=$(printf '%s\n' "$@" | sort)
  actual=$(cd "$run_dir/plots" && ls -1 | sort)
  [[ $actual == "$expected" ]] || fail "$run_dir: plots [$(echo $actual)], expected [$(echo $expected)]"
  for png in "$@"; do
    [[ $(head -c 8 "$run_dir/plots/$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
      fail "$run_dir/plots/$png is not a PNG"
    grep -q "plots/$png" "$run_dir/report.html" || fail "report.html does not show $png"
  done
}

"$python" "$work/write_run.py" "$work/full" full
check_run "$work/full" train_loss.png central_flow_loss.png effective_sharpness.png grad_norm.png \
  distances.png variances.png optimizer_state.png
grep -q '240 of 300 steps written' "$work/full/report.html" || fail "full: stop not reported"
grep -q 'stable.stopped_at' "$work/full/report.html" || fail "full: summary table missing"
grep -q '&lt;ok &amp; fine&gt;' "$work/full/report.html" || fail "full: summary not escaped"
grep -q 'rmsprop' "$work/full/report.html" || fail "full: config.json missing"

"$python" "$work/write_run.py" "$work/minimal" minimal
check_run "$work/minimal" train_loss.png effective_sharpness.png grad_norm.png
grep -q '&quot;gd&quot;' "$work/minimal/report.html" || fail "minimal: config attribute missing"

"$python" "$work/write_run.py" "$work/empty" empty
check_run "$work/empty"
grep -q 'No step has been written yet' "$work/empty/report.html" || fail "empty: not reported"

# A run whose writer still holds the file in SWMR mode.
"$python" "$work/write_run.py" "$work/live" live &
writer_pid=$!
for _ in $(seq 600); do
  [[ -e $work/live/ready ]] && break
  kill -0 "$writer_pid" 2>/dev/null || fail "live writer died"
  sleep 0.1
done
[[ -e $work/live/ready ]] || fail "live writer did not get ready"
check_run "$work/live" train_loss.png effective_sharpness.png grad_norm.png
grep -q '120 of 300 steps written' "$work/live/report.html" || fail "live: rows not reported"
touch "$work/live/done"
wait "$writer_pid" || fail "live writer failed"
writer_pid=

echo "PASS: cflow_plot.py wrote the expected plots and reports"
