"""bench/gpu_check.py on the CPU (--device cpu --tiny): every system trained, tested and predicted, compared with
its CPU fp32 reference; and the clean skip without CUDA."""
import json
import math

import pytest
import torch

from bench import gpu_check


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(out)])
    report = json.loads(out.read_text())
    return rc, report


def test_every_system_checked_on_cpu(tiny_report):
    rc, r = tiny_report
    assert r["skipped"] is False and r["device"] == "cpu" and r["tiny"] is True
    assert set(r["systems"]) == set(gpu_check.SYSTEMS)
    failed = []
    for name, res in r["systems"].items():
        assert "error" not in res, (name, res)
        assert [row["precision"] for row in res["rows"]] == ["fp32", "bf16"]  # fp16 is CUDA-only
        assert res["test_audio_seconds"] > 0 and math.isfinite(res["reference"]["test_rtf"])
        for row in res["rows"]:
            if "error" in row:  # (a CPU without bf16 units: utils.autocast runs the LSTM without oneDNN)
                failed.append((name, row["precision"], row["error"]))
                continue
            for key in ("steps_per_s", "data_wait_share", "test_rtf", "predict_rtf", "predict_rel_diff",
                        "trained_rel_diff", "metric_diff"):
                assert math.isfinite(row[key]) and row[key] >= 0, (name, key, row[key])
            assert row["steps"] > 0
            if row["precision"] == "fp32":  # cpu vs cpu, deterministic: identical numbers
                assert row["predict_rel_diff"] == 0.0 and row["trained_rel_diff"] == 0.0, (name, row)
            else:  # bf16 on the CPU: within the stated tolerance of fp32, and not identical (it did run in bf16)
                assert 0.0 < row["predict_rel_diff"] <= row["tolerance"], (name, row)
                # a short bf16 training's test CCC (regressors) / UA (classifiers) near fp32's: the stated bound
                assert row["metric_diff"] <= gpu_check.METRIC_BOUND, (name, row)
            assert row["ok"] is True, (name, row)
    assert not failed, failed
    assert rc == (0 if r["ok"] else 1)
    w2v = {row["precision"]: row for row in r["wav2vec2"]}
    assert set(w2v) == {"fp32", "bf16"}
    for row in w2v.values():
        assert "error" not in row, row
        assert row["compute_x_realtime"] > 0 and row["with_store_x_realtime"] > 0 and row["parameters"] > 0
    assert "| chunk-lstm | cpu | fp32 |" in r["table"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip without CUDA")
def test_skips_cleanly_without_cuda(tmp_path):
    out = tmp_path / "check.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["skipped"] is True and "no CUDA device" in r["reason"] and "--device cpu" in r["reason"]
    assert "systems" not in r
