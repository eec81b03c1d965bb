"""asv_bench/compare.py's report without running any workload: the product shapes it attributes to the dense
workloads, each library's own sgemm peak, and a table whose columns stay where they were (the new "% of own
sgemm peak" is the last one)."""
import argparse
import datetime
import importlib.util
from pathlib import Path

import pytest

COMPARE = Path(__file__).resolve().parents[1] / "asv_bench" / "compare.py"


@pytest.fixture(scope="module")
def compare():
    if not COMPARE.exists():
        pytest.skip("not run from the source tree (asv_bench/ is absent)")
    spec = importlib.util.spec_from_file_location("fastnn_compare", COMPARE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dense_products(compare):
    # forward for every layer, dW for every layer, dx for all but the first
    assert compare.dense_products("mnist_mlp") == [
        (False, False, 128, 256, 784), (True, False, 784, 256, 128),
        (False, False, 128, 128, 256), (True, False, 256, 128, 128), (False, True, 128, 256, 128),
        (False, False, 128, 10, 128), (True, False, 128, 10, 128), (False, True, 128, 128, 10)]
    # 10,000 rows predicted in chunks of 4,096: products of 4,096 and of the last 1,808 rows
    assert compare.dense_products("infer_batch")[:2] == [(False, False, 1808, 256, 784),
                                                        (False, False, 4096, 256, 784)]
    assert compare.dense_products("cnn_mnist") == []


def test_own_peak_of(compare):
    own = {"torch": [3e11, 1e11, 2e11], "fastnn-c": [4e11]}
    assert compare.own_peak_of("numpy", 5e11, own) == 5e11
    assert compare.own_peak_of("sklearn", 5e11, own) == 5e11  # its products are NumPy's
    assert compare.own_peak_of("torch", 5e11, own) == 2e11  # median over rounds
    assert compare.own_peak_of("fastnn-c-f32", 5e11, own) == 4e11
    assert compare.own_peak_of("fann", 5e11, own) is None


def test_render_columns(compare):
    args = argparse.Namespace(threads=2, repeats=2, quick=False)
    results = {"mnist_mlp": {"fastnn-c": [1000.0, 1200.0], "torch": [500.0, 700.0], "numpy": [400.0, 400.0]}}
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    table = compare.render(args, ["fastnn-c", "torch", "numpy"], ["mnist_mlp"], results, [1e11, 1e11], ["a note"],
                           {"fastnn-c": "0.1", "torch": "2", "numpy": "2"}, now, 60.0, ("0", "0"),
                           {"torch": [2e11], "fastnn-c": [1e11]}, {"torch": {"torch.mm": 1}})
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| workload"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "workload", "library", "median", "range (min–max)", "% of sgemm peak", "× (fastnn-C ÷ lib)",
        "% of own sgemm peak"]
    rows = [line for line in lines if line.startswith("| mnist_mlp")]
    assert len(rows) == 3 and all(len(row.strip("|").split("|")) == 7 for row in rows)
    pct = 100.0 * 6 * compare.macs_per_sample("mnist_mlp") * 1100.0 / 1e11
    torch_row = [c.strip() for c in rows[1].strip("|").split("|")]
    assert torch_row[4] == f"{pct * 600 / 1100:.1f}%" and torch_row[6] == f"{pct * 600 / 1100 / 2:.1f}%"
    assert any(line.startswith("- own sgemm peaks") and "torch 200.0 (torch.mm)" in line for line in lines)
