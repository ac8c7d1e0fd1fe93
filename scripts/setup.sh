#!/usr/bin/env bash
# Installs what cflow needs (Debian packages; the CUDA toolkit is expected under /usr/local/cuda),
# then configures and builds both backends into build/. Idempotent: re-running only rebuilds.
#   --test             also the packages only the test suite needs (slurm-wlm and munge: a one-node
#                      Slurm for tests/test_slurm.sh; `cflow run` and `cflow sweep` need neither)
#   CFLOW_BUILD_DIR    build directory (default: build)
#   CFLOW_CUDA_ARCHS   GPU architectures (default: 80;90; CI builds 90)
#   CI=true            warnings are errors
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev liblapacke-dev libhdf5-dev zlib1g-dev
  libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist python3-matplotlib python3-h5py python3-numpy
  python3-dev pybind11-dev python3-pybind11 python3-pytest   # the Python package (python/) and its tests
)
test_packages=(slurm-wlm munge)
for arg in "$@"; do
  case $arg in
    --test) packages+=("${test_packages[@]}") ;;
    *) echo "setup: unknown option $arg (expected --test)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${CFLOW_BUILD_DIR:-build}
archs=${CFLOW_CUDA_ARCHS:-$([[ "${CI:-}" == true ]] && echo 90 || echo "80;90")}
werror=$([[ "${CI:-}" == true ]] && echo ON || echo OFF)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCFLOW_CUDA_ARCHITECTURES="$archs" -DCFLOW_WERROR="$werror" >/dev/null
cmake --build "$build_dir"
echo "setup: built $build_dir/cflow ($("$build_dir"/cflow devices | tail -n 1))"
