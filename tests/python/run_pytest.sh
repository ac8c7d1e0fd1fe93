#!/usr/bin/env bash
# Runs one pytest file of tests/python against the Python package in the build tree. Exits 77
# (ctest: SKIP_RETURN_CODE) saying why when the module was not built or the Python lacks pytest,
# numpy or h5py.
#
#   tests/python/run_pytest.sh TEST_FILE PACKAGE_PARENT_DIR     (Python: $CFLOW_PYTHON, else /usr/bin/python3)
# The environment carries CFLOW_BINARY and CFLOW_ORACLE_REFERENCE (tests/CMakeLists.txt sets them).
set -euo pipefail
test_file=$1
package_parent=$2
python=${CFLOW_PYTHON:-/usr/bin/python3}

if [[ ! -f $package_parent/cflow/__init__.py ]]; then
  echo "SKIP: no Python package in $package_parent (built without the module: install pybind11-dev and python3-dev, configure with CFLOW_PYTHON=AUTO or ON)"
  exit 77
fi
if ! "$python" -c 'import pytest, numpy, h5py' 2>/dev/null; then
  echo "SKIP: $python cannot import pytest, numpy and h5py (Debian: python3-pytest python3-numpy python3-h5py)"
  exit 77
fi
cd "$(dirname "$test_file")"
PYTHONPATH=$package_parent${PYTHONPATH:+:$PYTHONPATH} PYTHONDONTWRITEBYTECODE=1 \
  exec "$python" -m pytest -q -p no:cacheprovider "$(basename "$test_file")"
