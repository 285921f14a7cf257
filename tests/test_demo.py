"""The demo's guard against stale README figures: its table is read back and compared with a run's."""
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


def test_the_shipped_readme_has_the_demo_table():
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
