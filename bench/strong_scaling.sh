#!/usr/bin/env bash
# Strong scaling of `cflow run` over ranks (README "Scaling out"): the same experiment at n examples
# with R = 1, 2, ... ranks of one thread each (and R = 1 with as many threads, for reference); prints
# the median seconds per step (all processes, steps 2..) and the speed-up over R = 1.
#   bench/strong_scaling.sh [BUILD_DIR] [N] [STEPS]      RANKS="1 2" by default
# Needs mpirun (openmpi-bin) and /usr/bin/python3 with h5py. Extra `cflow run` flags: CFLOW_FLAGS.
set -euo pipefail
build=${1:-build}
n=${2:-4000}
steps=${3:-6}
ranks=${RANKS:-1 2}
cores=$(getconf _NPROCESSORS_ONLN)  # before OMP_NUM_THREADS=1, which nproc would report
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1
mpirun_flags=(--oversubscribe)
[[ $(id -u) -eq 0 ]] && mpirun_flags+=(--allow-run-as-root)

# Median over steps 2.. of the summed per-process step times in a run's data.h5.
seconds_per_step() {
  /usr/bin/python3 - "$1/data.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
total = sum(np.nan_to_num(f[p]["times/total"][()]) for p in f if isinstance(f[p], h5py.Group) and "times" in f[p])
print(f"{np.median(total[1:]):.3f}")
PY
}

run() {  # run NAME RANKS THREADS
  mpirun "${mpirun_flags[@]}" -x OMP_NUM_THREADS -np "$2" "$build/cflow" run --n "$n" --steps "$steps" \
    --threads "$3" --checkpoint-every 0 --no-plots --quiet --out "$out/$1" ${CFLOW_FLAGS:-}
  seconds_per_step "$out/$1"
}

echo "n = $n, $steps steps, $cores cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
base=$(run r1 1 1)
echo "R = 1, 1 thread:   $base s/step"
echo "R = 1, $cores threads:  $(run r1t 1 "$cores") s/step"
for r in $ranks; do
  [[ $r == 1 ]] && continue
  t=$(run "r$r" "$r" 1)
  echo "R = $r, 1 thread each: $t s/step, speed-up $(/usr/bin/python3 -c "print(f'{$base / $t:.2f}')") over R = 1"
done
