"""Shared fixtures of the Python tests (run by tests/python/run_pytest.sh, which ctest calls)."""
import json
import os
import subprocess

import pytest


def _tool(variable):
    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"${variable} is not set (run the tests through ctest or tests/python/run_pytest.sh)")
    return path


@pytest.fixture(scope="session")
def cflow_binary():
    """The built `cflow` binary."""
    return _tool("CFLOW_BINARY")


@pytest.fixture(scope="session")
def reference_problems():
    """Problems and the C++ API's answers on them, from tests/python/oracle_reference.cpp."""
    output = subprocess.run([_tool("CFLOW_ORACLE_REFERENCE")], check=True, capture_output=True, text=True).stdout
    return {p["name"]: p for p in json.loads(output)}
