"""pip install ./python: builds the cflow package with the repository's CMake build (nothing is
downloaded; build with the Debian packages of scripts/setup.sh):

    pip install --no-build-isolation --no-deps ./python   (as root on Debian 12: add --break-system-packages)

--no-deps: the run-time dependencies are Debian packages (python3-numpy, python3-h5py; python3-pandas
for Run.to_pandas) that pip does not recognize (Debian's h5py registers as h5py._debian_h5py_serial),
so without it pip would download h5py from PyPI.

CMake configures the repository one level up with the Python module on (CFLOW_PYTHON=ON, tests and
benchmarks off) for the Python running pip, builds cflow._core and the `cflow` binary, and puts both
into the package (the binary as cflow/bin/cflow, which cflow.run() uses). $CFLOW_CMAKE_ARGS adds
CMake arguments, e.g. "-DCFLOW_CUDA=OFF" for a CPU-only build or a compiler launcher.
"""
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        subprocess.run(["cmake", "-S", REPOSITORY, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DCFLOW_PYTHON=ON", "-DCFLOW_BUILD_TESTS=OFF", "-DCFLOW_BUILD_BENCH=OFF",
                        f"-DPython_EXECUTABLE={sys.executable}"]
                       + shlex.split(os.environ.get("CFLOW_CMAKE_ARGS", "")), check=True)
        subprocess.run(["cmake", "--build", build, "--target", "cflow_python", "cflow_cli"], check=True)
        built = os.path.join(build, "python", "cflow")
        module = os.path.join(built, os.path.basename(self.get_ext_filename(ext.name)))
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.join(os.path.dirname(target), "bin"), exist_ok=True)
        shutil.copyfile(module, target)
        shutil.copy2(os.path.join(build, "cflow"), os.path.join(os.path.dirname(target), "bin", "cflow"))


setup(
    name="cflow",
    version="0.1.0",
    description="Central flows of deep-learning optimizers: the cflow engine from Python",
    packages=["cflow"],
    python_requires=">=3.9",
    ext_modules=[Extension("cflow._core", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
