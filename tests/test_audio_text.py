"""The audio-text system end to end on the demo corpus with a tiny local wav2vec2 and the offline MiniLM:
main.py without DeepEmoCluster flags trains and prints the banner (test CCCs with their intervals);
evaluate_missing.py scores the fixed-condition protocol for two checkpoints in one set of files."""
import csv
import re


def test_train_test_banner_and_missing_data_table(at_setup, tmp_path, capsys, monkeypatch):
    import evaluate_missing
    import main
    corpus, d = at_setup
    monkeypatch.chdir(tmp_path)
    args = ["--root", str(corpus), "--audio-store", str(d / "audio"), "--text-store", str(d / "text"),
            "--normterm-audio", str(d / "NT_S"), "--normterm-text", str(d / "NT_T"), "-iter", "6", "-batch", "4",
            "--val-every", "3", "--out", str(tmp_path / "M"), "--no-progress"]
    assert main.main(args) == 0
    out = capsys.readouterr().out
    for line in ("Summary Performance on", "Iterations: 6", "Batch_Size: 4", "Act-CCC: ", "Dom-CCC: ", "Val-CCC: "):
        assert line in out
    # the original's lines (issue 19, item 30): per validation, then its banner text, CCCs at full precision
    lines = out.splitlines()
    assert lines.count("validation process") == 2
    assert re.search(r"^Iteration: 3 ,Training-loss: [-+.e\d]+ ,Validation-loss: [-+.e\d]+$", out, re.M)
    assert "=> Saving the initial best model (Iteration=3)" in lines
    assert "=> Saving a new best model (Iteration=6)" in lines or "=> Validation Loss did not improve (Iteration=6)" \
        in lines
    banner = lines.index("## Summary Performance on MSP-PODCAST v1.10 Test1 Set ##")
    assert lines[banner - 1] == lines[banner + 1] == "#" * 57
    assert lines[banner + 4] == "Model_Type: TransformerCoAtten-AudioText-ParymidPool-MultiRslChunk"
    import json
    for a in ("act", "dom", "val"):  # the original's line, full precision, then the 95 % interval (issue 20.7)
        (res,) = (tmp_path / "results").glob(f"*MultiRsl*_test1_{a}.json")
        res = json.loads(res.read_text())
        lo, hi = res["value_ci"]  # the result file carries the interval it prints
        assert f"{a.capitalize()}-CCC: {res['value']} [{lo:.2f}, {hi:.2f}]" in lines, out
        assert res["interval"]["resamples"] == 1000
    assert main.main([*args, "--chunking", "fixed"]) == 0
    runs = sorted((tmp_path / "M").iterdir())
    assert [r.name.split("_AudioText_")[1] for r in runs] == ["FixedChunkParymidPool_MTL", "MultiRslParymidPool_MTL"]
    base = ["--root", str(corpus), "--audio-store", str(d / "audio"), "--text-store", str(d / "text"),
            "--protocols", "fixed", "--sim-seeds", "1", "--bootstrap", "100"]
    assert evaluate_missing.main(["--checkpoints", *map(str, runs), *base, "--out", str(tmp_path / "miss")]) == 0
    # one set of files per protocol, one series per checkpoint: complete data, audio only, text only
    res = json.loads((tmp_path / "miss_fixed.json").read_text())
    series = list(dict.fromkeys(r["series"] for r in res["rows"]))
    assert len(series) == 2 and [(r["series"], r["condition"]) for r in res["rows"]] == [
        (n, c) for n in series for c in ("complete", "present:audio", "present:text")]
    table = list(csv.DictReader(open(tmp_path / "miss_fixed.csv")))
    assert table and (tmp_path / "miss_fixed.png").read_bytes()[:4] == b"\x89PNG"
    assert res["metric"] == "CCC" and res["split"] == "test1" and res["checkpoints"] == [str(r) for r in runs]
    assert res["code_version"] and res["machine"] and res["date"] and "python" in res["command"]
    assert all(len(r["Val_ci"]) == 2 and r["Val_ci"][0] <= r["Val_ci"][1] for r in res["rows"])  # intervals
    # the same seed gives the same scores
    assert evaluate_missing.main(["--checkpoints", str(runs[0]), *base, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again_fixed.json").read_text())["rows"]
    assert [(r["condition"], r["Val"]) for r in again] == [(r["condition"], r["Val"]) for r in res["rows"][:3]]
