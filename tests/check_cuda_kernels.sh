#!/usr/bin/env bash
# The CUDA backend really holds GPU code: the static library carries a fatbinary with device code
# (a .text section) for every kernel compiled from kernels/*.cu, and host launchers in cflow::cuda.
set -euo pipefail
lib=$1
sections=$(readelf -S -W "$lib")
grep -q nv_fatbin <<<"$sections" || { echo "no .nv_fatbin section in $lib"; exit 1; }
device_kernels=$(strings "$lib" | grep -c '^\.text\._ZN5cflow4cuda' || true)
launchers=$(nm -C "$lib" | grep -c -E ' [TW] (void |float |double )?cflow::cuda::' || true)
echo "$lib: $device_kernels device kernel sections, $launchers cflow::cuda launchers"
((device_kernels > 0 && launchers > 0))
