"""The build and the backend selection: OpenMP really on in the C build, the switches do what they say."""
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn import _backend


def run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTNN_", "OMP_"))}
    full_env.update(env)
    result = subprocess.run([sys.executable, "-I", "-c", code], env=full_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_openmp_enabled_in_c_build():
    if not _backend.c_available():
        pytest.skip("the C extension is not built")
    if os.environ.get("FASTNN_SKIP_OPENMP_TEST"):
        pytest.skip("FASTNN_SKIP_OPENMP_TEST is set")
    assert _backend.get("c").openmp_enabled()


def test_default_backend_is_c_when_built():
    if os.environ.get("FASTNN_BACKEND"):
        pytest.skip("FASTNN_BACKEND is set")
    assert fastnn.BACKEND == ("c" if _backend.c_available() else "python")


def test_backend_env_forces_python():
    out = run_python("import fastnn; print(fastnn.BACKEND, fastnn.Network([2, 1]).backend)",
                     FASTNN_BACKEND="python")
    assert out.stdout.split() == ["python", "python"]


def test_missing_extension_warns_once_and_falls_back():
    code = ("import sys, warnings; sys.modules['fastnn._core'] = None\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastnn\n"
            "print(fastnn.BACKEND, len([x for x in w if 'using the NumPy backend' in str(x.message)]))")
    assert run_python(code).stdout.split() == ["python", "1"]


def test_backend_c_required_but_missing_is_an_import_error():
    code = ("import sys; sys.modules['fastnn._core'] = None\n"
            "try:\n    import fastnn\nexcept ImportError as e:\n    print('ImportError', 'FASTNN_BACKEND=c' in str(e))")
    assert run_python(code, FASTNN_BACKEND="c").stdout.split() == ["ImportError", "True"]


def test_threads_follow_omp_num_threads():
    if not _backend.c_available() or not _backend.get("c").openmp_enabled():
        pytest.skip("needs the OpenMP build")
    out = run_python("import fastnn; print(fastnn.get_num_threads())", OMP_NUM_THREADS="3")
    assert out.stdout.strip() == "3"


def test_set_num_threads_validates():
    old = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        with pytest.raises(ValueError):
            fastnn.set_num_threads(0)
        with pytest.raises(TypeError):
            fastnn.set_num_threads(1.5)
    finally:
        fastnn.set_num_threads(old)


def test_show_config(capsys):
    config = fastnn.show_config()
    printed = capsys.readouterr().out
    for key in ("backend", "openmp", "threads", "blas"):
        assert key in config and key in printed
    assert config["backend"] == fastnn.BACKEND


def test_scipy_blas_single_threaded_numpy_blas_untouched():
    pytest.importorskip("threadpoolctl")
    from fastnn import _blas, _threads
    if fastnn.BACKEND != "c" or _blas.SOURCE != "scipy" or not _blas.SPLIT:
        pytest.skip("needs the C backend with SciPy's BLAS split over fastnn's threads (not MKL's)")
    from threadpoolctl import threadpool_info
    assert _threads.blas_num_threads() == 1
    numpy_blas = [lib["num_threads"] for lib in threadpool_info() if "numpy" in lib["filepath"]]
    assert numpy_blas and all(n >= 1 for n in numpy_blas)
    out = run_python("import numpy, threadpoolctl; before = [l['num_threads'] for l in threadpoolctl."
                     "threadpool_info() if 'numpy' in l['filepath']]; import fastnn; after = [l['num_threads'] "
                     "for l in threadpoolctl.threadpool_info() if 'numpy' in l['filepath']]; print(before == after)")
    assert out.stdout.strip() == "True"
