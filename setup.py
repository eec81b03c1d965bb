"""Build of fastnn: the C/OpenMP kernels in csrc/ behind the Cython module fastnn._core.

Switches (environment variables):
  FASTNN_FORCE_EXT       unset: the extension is optional (a failed build prints a banner and installs pure
                         Python); 1: the extension is required (CI, wheels); 0: do not build it (pure Python).
  FASTNN_NO_OPENMP=1     compile the extension without OpenMP.
  FASTNN_REQUIRE_OPENMP=1  fail the build if OpenMP does not work.
  FASTNN_CYTHON_DEBUG=1  turn Cython's bounds and initialisation checks on.
"""
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FORCE_EXT = os.environ.get("FASTNN_FORCE_EXT", "")
C_SOURCES = ["csrc/activations.c", "csrc/dense.c", "csrc/conv.c", "csrc/pool.c", "csrc/dropout.c", "csrc/losses.c",
             "csrc/optimizers.c", "csrc/network.c", "csrc/sequence.c", "csrc/rnn.c",
             "csrc/blas.c", "csrc/gemm.c", "csrc/checks.c", "csrc/sparse.c", "csrc/metrics.c", "csrc/prune.c",
             "csrc/quant.c"]

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel num_threads(2) reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n == 2 ? 0 : 1;
}
"""


def banner(lines):
    width = max(len(line) for line in lines)
    print("\n" + "*" * (width + 4), file=sys.stderr)
    for line in lines:
        print(f"* {line.ljust(width)} *", file=sys.stderr)
    print("*" * (width + 4) + "\n", file=sys.stderr)


def openmp_flags(compiler):
    """(compile flags, link flags) for OpenMP with this compiler, or None when there is no working OpenMP."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = (["-Xpreprocessor", "-fopenmp"], ["-lomp"]) if sys.platform == "darwin" else (["-fopenmp"], ["-fopenmp"])
    # Compile, link and run a small program with the very compiler that builds the extension (scikit-learn's check).
    tmp = tempfile.mkdtemp(prefix="fastnn_omp_")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=flags[0])
        exe = os.path.join(tmp, "probe")
        compiler.link_executable(objects, exe, extra_postargs=flags[1])
        subprocess.run([exe], check=True, capture_output=True, timeout=60)
        return flags
    except Exception as exc:  # any failure means: no usable OpenMP
        print(f"fastnn: OpenMP probe failed: {exc}", file=sys.stderr)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        is_msvc = self.compiler.compiler_type == "msvc"
        omp = None if os.environ.get("FASTNN_NO_OPENMP") == "1" else openmp_flags(self.compiler)
        if omp is None:
            if os.environ.get("FASTNN_REQUIRE_OPENMP") == "1":
                raise RuntimeError("FASTNN_REQUIRE_OPENMP=1 but OpenMP does not work with this compiler")
            banner(["fastnn: building the C extension WITHOUT OpenMP (kernels run on one thread)."])
            omp = ([] if is_msvc else ["-Wno-unknown-pragmas"], [])
        else:
            print(f"fastnn: building the C extension with OpenMP ({' '.join(omp[0])})", file=sys.stderr)
        base = ["/O2"] if is_msvc else ["-O3", "-std=c99", "-ffp-contract=fast", "-fno-math-errno", "-fno-strict-aliasing"]
        for ext in self.extensions:
            ext.extra_compile_args = base + omp[0]
            ext.extra_link_args = omp[1]
        super().build_extensions()

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if FORCE_EXT == "1":
                raise
            banner([f"fastnn: the C extension failed to build ({type(exc).__name__}: {exc}).",
                    "Installing the pure-Python (NumPy) backend instead: same results, slower.",
                    "Set FASTNN_FORCE_EXT=1 to make this an error."])

    def run(self):
        try:
            super().run()
        except Exception as exc:  # e.g. no compiler at all
            if FORCE_EXT == "1":
                raise
            banner([f"fastnn: cannot build C extensions here ({type(exc).__name__}: {exc}).",
                    "Installing the pure-Python (NumPy) backend instead."])


def extensions():
    if FORCE_EXT == "0":
        banner(["fastnn: FASTNN_FORCE_EXT=0, installing the pure-Python (NumPy) backend only."])
        return []
    if platform.python_implementation() != "CPython" and FORCE_EXT != "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if FORCE_EXT == "1":
            raise
        banner(["fastnn: Cython is not installed, installing the pure-Python backend only."])
        return []
    debug = os.environ.get("FASTNN_CYTHON_DEBUG") == "1"
    ext = Extension("fastnn._core", sources=["fastnn/_core.pyx"] + C_SOURCES, include_dirs=["csrc"],
                    depends=[os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".h")])
    return cythonize([ext], compiler_directives={"language_level": 3, "boundscheck": debug,
                                                 "initializedcheck": debug, "wraparound": False,
                                                 "cdivision": True})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
