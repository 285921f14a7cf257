"""The demo's guard against stale documented figures (docs/results.md): its table is read back and compared
with a run's."""
from demo import readme_check, readme_mismatches

README = """# x
**Demo results** (`make demo`, ...):

| system | attribute | test CCC |
|---|---|---|
| chunk LSTM | Act | 0.7677 |
| chunk LSTM | Dom | 0.8097 |

Other text | with | pipes |
"""


def test_readme_figures_are_compared_with_the_run(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(README)
    assert readme_mismatches("Demo results", {"chunk LSTM | Act": "0.7677", "chunk LSTM | Dom": "0.8097"}, p) == []
    assert readme_mismatches("Demo results", {"chunk LSTM | Act": "0.7677", "chunk LSTM | Dom": "0.7160",
                                              "DeepEmoCluster | Act": "0.1"}, p) == \
        ["chunk LSTM | Dom: 0.8097 -> 0.7160", "DeepEmoCluster | Act: missing -> 0.1"]
    assert readme_mismatches("Other results", {"Act": "1"}, p) == ["no **Other results** table in README.md"]


def test_stale_readme_figures_fail_the_demo(tmp_path, capsys):
    """A figure that differs is an error (exit 3, every difference listed), not a note after exit 0."""
    p = tmp_path / "README.md"
    p.write_text(README)
    same = {"Demo results": {"chunk LSTM | Act": "0.7677", "chunk LSTM | Dom": "0.8097"}}
    assert readme_check(same, readme=p) == 0
    moved = {"Demo results": {"chunk LSTM | Act": "0.7677", "chunk LSTM | Dom": "0.8100"}}
    assert readme_check(moved, readme=p) == 3
    err = capsys.readouterr().err
    assert "ERROR" in err and "chunk LSTM | Dom: 0.8097 -> 0.8100" in err
    assert readme_check(moved, readme=p, allow_stale=True) == 0  # --no-readme-check: still listed, exit 0
    assert "chunk LSTM | Dom: 0.8097 -> 0.8100" in capsys.readouterr().err


def test_the_shipped_docs_have_the_demo_table():
    assert not any(m.startswith("no ") or "missing" in m
                   for m in readme_mismatches("Demo results", {f"chunk LSTM | {a}": "x" for a in ("Act", "Dom", "Val")}
                                              | {"DeepEmoCluster | Act": "x"}))


def test_a_demo_corpus_from_other_generator_code_is_written_anew(tmp_path, capsys):
    """`make demo` reuses its corpus only when the same code made it; otherwise the corpus and what was derived
    from it inside the folder (features, NormTerm) go, so no figure is measured on stale data."""
    import json

    import make_demo_corpus
    out = tmp_path / "c"
    args = ["--kind", "msp-podcast", "--out", str(out), "--n", "12", "--if-missing"]
    assert make_demo_corpus.main(args) == 0
    assert make_demo_corpus.main(args) == 0 and "already there" in capsys.readouterr().out
    stale = out / "Features" / "x" / "meta.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    summary = json.loads((out / "synth_summary.json").read_text())
    (out / "synth_summary.json").write_text(json.dumps({**summary, "generator": "older"}))
    assert make_demo_corpus.main(args) == 0
    assert "other generator; writing it anew" in capsys.readouterr().out
    assert not stale.exists() and json.loads((out / "synth_summary.json").read_text()) == summary


def test_demo_tables_show_intervals_where_the_result_files_carry_them(tmp_path):
    """Issue 20: the README's demo tables show '0.7677 [0.70, 0.82]' from result files that store an interval,
    the bare value from older ones; the audio-text missing-data table comes from the protocol files (fixed: fusion,
    audio only, text only; random-missing per rate), each series named by the variant that trained it."""
    import json

    from demo import audio_text_missing, shown
    from report.recipes import Job, Result
    assert shown({"WA": 0.76774, "WA_ci": [0.7012, 0.8231]}, "WA") == "0.7677 [0.70, 0.82]"
    assert shown({"value": 0.5, "value_ci": None}, "value") == "0.5000"
    runs = {str(tmp_path / "Models" / "RUN_multiscale"): "multiscale", str(tmp_path / "Models" / "RUN_fixed"): "fixed"}
    cell = {"Act": 0.3, "Act_ci": [0.1, 0.5], "Dom": 0.2, "Dom_ci": None, "Val": 0.9, "Val_ci": [0.85, 0.95]}
    fixed = [{"series": s, "condition": c, **cell} for s in ("multiscale", "fixed")
             for c in ("complete", "present:audio", "present:text")]
    random = [{"series": "fixed", "condition": c, **cell} for c in ("complete", "random-missing:0.3")]
    results = []
    for protocol, rows in (("fixed", fixed), ("random", random)):
        path = tmp_path / f"at_{protocol}.json"  # evaluate_missing.py's series: the checkpoints' distinct names
        path.write_text(json.dumps({"metric": "CCC", "protocol": protocol, "rows": rows,
                                    "series": {"multiscale": list(runs)[0], "fixed": list(runs)[1]}}))
        results.append(Result("protocol", "audio-text", "", path, {"protocol": protocol, "metric": "CCC",
                                                                   "variants": runs}, "audio-text/protocols"))
    random[1].update(Act_diff=-0.2, Act_p=0.01, Val_diff=-0.01, Val_p=0.6)  # only the first is resolved
    results[1].path.write_text(json.dumps({"metric": "CCC", "protocol": "random", "rows": random,
                                           "series": {"fixed": list(runs)[1]}}))
    from demo import resolved
    assert resolved(results, ("Act", "Dom", "Val")) == ["fixed random-missing:0.3 Act -0.20 (p 0.010)"]
    table = audio_text_missing([Job("audio-text", [], results)])
    assert table["multiscale | both (fusion)"] == "0.3000 [0.10, 0.50] | 0.2000 | 0.9000 [0.85, 0.95]"
    assert set(table) == {"multiscale | both (fusion)", "multiscale | audio only (text absent)",
                          "multiscale | text only (audio absent)", "fixed | both (fusion)",
                          "fixed | audio only (text absent)", "fixed | text only (audio absent)",
                          "fixed | random-missing 30%"}
