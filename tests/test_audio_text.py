"""The audio-text system end to end on the demo corpus with a tiny local wav2vec2 and the offline MiniLM:
main.py without DeepEmoCluster flags trains and prints the banner; evaluate_missing.py tables the conditions."""
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
    for a in ("act", "dom", "val"):
        (res,) = (tmp_path / "results").glob(f"*MultiRsl*_test1_{a}.json")
        assert f"{a.capitalize()}-CCC: {json.loads(res.read_text())['value']}" in lines
    assert main.main([*args, "--chunking", "fixed"]) == 0
    runs = sorted((tmp_path / "M").iterdir())
    assert [r.name.split("_AudioText_")[1] for r in runs] == ["FixedChunkParymidPool_MTL", "MultiRslParymidPool_MTL"]
    assert evaluate_missing.main(["--checkpoints", *map(str, runs), "--root", str(corpus), "--audio-store",
                                  str(d / "audio"), "--text-store", str(d / "text"), "--rates", "0,0.5",
                                  "--out", str(tmp_path / "miss")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "miss.csv")))
    assert [(r["condition"], r["rate"]) for r in rows[:7]] == [
        ("complete", "0.0"), ("frames", "0.5"), ("bursts", "0.5"), ("words", "0.5"), ("words+audio", "0.5"),
        ("audio-absent", ""), ("text-absent", "")]
    assert len(rows) == 14 and (tmp_path / "miss.png").read_bytes()[:4] == b"\x89PNG"
    # the shared result file beside the CSV: the same numbers and the provenance that re-creates them
    import json
    res = json.loads((tmp_path / "miss.json").read_text())
    assert [(r["checkpoint"], r["condition"], r["Val"]) for r in res["rows"]] == [
        (r["checkpoint"], r["condition"], float(r["Val"])) for r in rows]
    assert res["metric"] == "CCC" and res["split"] == "test1" and res["checkpoints"] == [str(r) for r in runs]
    assert res["code_version"] and res["machine"] and res["date"] and "python" in res["command"]
    # the same seed gives the same table
    assert evaluate_missing.main(["--checkpoints", str(runs[0]), "--root", str(corpus), "--audio-store",
                                  str(d / "audio"), "--text-store", str(d / "text"), "--rates", "0,0.5",
                                  "--out", str(tmp_path / "again")]) == 0
    assert list(csv.DictReader(open(tmp_path / "again.csv"))) == rows[:7]
