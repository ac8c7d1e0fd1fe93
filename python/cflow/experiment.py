"""cflow.run(**settings): an experiment of `cflow run`, returned as a loaded Run.

It runs the `cflow` binary in a subprocess (the one installed with this package, or of the build tree
it was built in; $CFLOW_BINARY overrides): the experiment loop is the binary's, so a run from Python
writes the same directory, bit for bit, as the same command in a shell.
"""
import os
import shutil
import subprocess
import sys
import time

from cflow.runs import load_run


class RunError(RuntimeError):
    """`cflow run` exited non-zero (1: error, 2: bad usage, 130: interrupted); .returncode, .output."""

    def __init__(self, returncode, command, output):
        self.returncode, self.command, self.output = returncode, command, output
        tail = "\n".join(output.splitlines()[-15:])
        super().__init__(f"`{' '.join(command)}` exited with status {returncode}:\n{tail}")


def binary():
    """The path of the `cflow` binary cflow.run() uses."""
    candidates = [os.environ.get("CFLOW_BINARY"), os.path.join(os.path.dirname(__file__), "bin", "cflow"),
                  shutil.which("cflow")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("no cflow binary: set CFLOW_BINARY to build/cflow, or install the package with pip")


def flags(settings):
    """--flag value pairs from keyword settings: lr=0.05 → --lr 0.05, no_plots=True → --no-plots,
    runs=["discrete", "central"] → --runs discrete,central; False and None leave a flag out."""
    out = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


def run(out=None, echo=True, **settings):
    """Runs `cflow run` with the settings as flags (see `cflow run --help`; underscores for dashes)
    into `out` (default runs/<time>-<pid>, like the binary's) and returns load_run(out). The binary's
    output is echoed line by line unless echo=False. Raises RunError when it exits non-zero."""
    if out is None:
        out = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-py{os.getpid()}")
    command = [binary(), "run", "--out", os.fspath(out)] + flags(settings)
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            lines.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
    if process.returncode != 0:
        raise RunError(process.returncode, command, "".join(lines))
    return load_run(out)
