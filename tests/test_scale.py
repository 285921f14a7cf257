"""bench/bench_scale.py: the growth exponent, and a tiny end-to-end run that writes the table and the JSON."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_scale  # noqa: E402


def test_slope_is_the_log_log_exponent():
    assert bench_scale.slope([1, 4, 16], [2.0, 8.0, 32.0]) == pytest.approx(1.0)
    assert bench_scale.slope([1, 4, 16], [3.0, 48.0, 768.0]) == pytest.approx(2.0)
    assert bench_scale.slope([10, 20], [5.0, 5.0]) == pytest.approx(0.0, abs=1e-12)
    # missing or non-positive values are left out; fewer than two points: no slope
    assert bench_scale.slope([1, 4, 16], [None, 8.0, 32.0]) == pytest.approx(1.0)
    assert bench_scale.slope([1, 4], [None, 8.0]) is None


def test_tiny_run_writes_table_and_json(tmp_path):
    stages = ["store-write", "norm-para", "kmeans-torch", "stm-collate"]
    rc = bench_scale.main(["--scale", "0.03", "--factors", "1,2", "--stages", ",".join(stages),
                           "--out", str(tmp_path), "--in-process"])
    assert rc == 0
    result = json.loads((tmp_path / "bench_scale.json").read_text())
    assert result["factors"] == [1, 2] and [s["stage"] for s in result["stages"]] == stages
    assert result["isolated"] is False
    for s in result["stages"]:
        assert [r["factor"] for r in s["rows"]] == [1, 2]
        assert s["rows"][1]["n"] == 2 * s["rows"][0]["n"]
        assert all(r["seconds"] > 0 for r in s["rows"])
        assert isinstance(s["time_slope"], float) and s["nonlinear"] == (s["time_slope"] > bench_scale.NONLINEAR)
    table = (tmp_path / "bench_scale.md").read_text().splitlines()
    assert len(table) == 2 + len(stages)
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:2] == ["stage", "unit"] and header[-2:] == ["time slope", "memory slope"]
    assert all(len(line.strip("|").split("|")) == len(header) for line in table[2:])
    assert not (tmp_path / "work").exists()  # the synthetic stores are removed


def test_unknown_stage_is_refused(tmp_path, capsys):
    assert bench_scale.main(["--stages", "store-write,nope", "--out", str(tmp_path)]) == 1
    assert "nope" in capsys.readouterr().err


def test_each_size_measured_in_a_fresh_process(tmp_path):
    """The default: every size in its own interpreter (--child), its numbers read back from its JSON line."""
    assert bench_scale.main(["--scale", "0.03", "--factors", "1,2", "--stages", "kmeans-torch",
                             "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench_scale.json").read_text())
    (stage,) = result["stages"]
    assert result["isolated"] is True and [r["n"] for r in stage["rows"]] == [1732, 3464]
    assert all(r["seconds"] > 0 and r["peak_mib"] is not None for r in stage["rows"])
