"""The same-run baselines of bench/bench_store.py, bench_mocap.py and bench_bootstrap.py compute what they claim:
the bootstrap baseline is the same statistic and interval as metrics.score, the mocap baseline is the reader's own
pandas call, and the store baseline reads the same bytes (a tiny run prints its line and ratio)."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_bootstrap  # noqa: E402
import metrics  # noqa: E402


@pytest.mark.parametrize("metric", ["CCC", "WA", "UA"])
@pytest.mark.parametrize("draws", [1, 3])
def test_plain_bootstrap_is_the_percentile_interval_of_the_same_statistic(metric, draws):
    rng = np.random.default_rng(3)
    n = 67
    if metric == "CCC":
        labels = rng.normal(size=n)
        preds = labels + rng.normal(size=(draws, n))
    else:
        labels = rng.integers(0, 4, n)
        preds = np.where(rng.random((draws, n)) < 0.6, labels, rng.integers(0, 4, (draws, n)))
    preds = preds[0] if draws == 1 else preds
    s = metrics.score(metric, labels, preds, n_classes=4, resamples=500, method="percentile")
    lo, hi = bench_bootstrap.plain_bootstrap(metric, labels, preds, 500)
    assert lo <= s.value <= hi
    # different code, same statistic: the intervals agree up to Monte Carlo error (exactly, while both draw
    # their resamples from the same default_rng(0) stream)
    assert lo == pytest.approx(s.lo, abs=0.15 * (s.hi - s.lo)) and hi == pytest.approx(s.hi, abs=0.15 * (s.hi - s.lo))


def _read_csv_calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "read_csv"]


def test_mocap_baseline_makes_the_readers_pandas_call():
    reader = _read_csv_calls(ROOT / "corpora" / "iemocap.py")
    bench = _read_csv_calls(ROOT / "bench" / "bench_mocap.py")
    assert len(reader) == 1 and len(bench) == 1

    def keywords(call: ast.Call) -> list[str]:
        return sorted(f"{k.arg}={ast.unparse(k.value)}" for k in call.keywords)
    assert keywords(bench[0]) == keywords(reader[0]) and len(bench[0].args) == len(reader[0].args) == 1


def test_store_bench_prints_its_baseline_and_ratio(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_store.py"), "--gb", "0.002", "--frames", "20",
                           "--dims", "8", "--dir", str(tmp_path / "store")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^baseline \(plain numpy.*ratio \d+\.\d\d \(store seconds / baseline seconds\)$",
                     done.stdout, re.M), done.stdout
