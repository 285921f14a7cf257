"""benchmark.py on a corpus in the manifest format (issue 24): configs/demo_manifest.yaml, pointed at a temporary
folder, runs end to end (the synthetic manifest corpus made, a dimensional and a categorical system trained and
tested on its splits) and the report names the corpus and shows macro-F1 beside WA and UA."""
import re
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo_manifest.yaml"
SCORED = r"-?\d\.\d{4} \[-?\d\.\d{2}, -?\d\.\d{2}\]"  # a number with its 95 % interval


def cells(md: str, start: str) -> list[str]:
    (line,) = [x for x in md.splitlines() if x.startswith(start)]
    return [c.strip() for c in line.strip("|").split("|")]


def test_the_manifest_demo_config_runs_and_reports_both_systems_on_the_manifest_corpus(tmp_path, capsys):
    import benchmark
    text = CONFIG.read_text()
    assert text.count("demo_data/") == 3  # the corpus, the data folder and the report: all moved below
    cfg = tmp_path / "demo_manifest.yaml"
    cfg.write_text(text.replace("demo_data/", f"{tmp_path}/"))
    rc = benchmark.main(["--config", str(cfg), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert (tmp_path / "manifest" / "corpus.csv").is_file()  # the demo corpus, made by the corpus step
    md = (tmp_path / "manifest_benchmark" / "report" / "report.md").read_text()
    # the corpus table names the manifest corpus by its sidecar's name, with its splits and classes
    corpus = cells(md, "| synth-manifest | manifest |")
    assert corpus[3].startswith("synthetic demo corpus") and "SynthManifest" in corpus[3], corpus
    assert "splits train 30, dev 30, test 30, test2 30" in corpus[3] and "classes angry, sad, happy, neutral" in corpus[3]
    # the dimensional system: CCC of Act on the manifest's test split
    lstm = cells(md, "| chunk LSTM | RnnAttenVec |")
    assert re.fullmatch(SCORED, lstm[2]) and lstm[6:8] == ["synth-manifest", "test"], lstm
    # the categorical system: WA, UA and macro-F1 with intervals, on the manifest's test split
    tre = cells(md, "| MDRE family | TRE | test split |")
    assert all(re.fullmatch(SCORED, c) for c in tre[3:6]) and "synth-manifest" in tre, tre
    assert "| system | model / configuration | fold | WA | UA | macro-F1 |" in md
    # every command read the corpus through the manifest
    prov = md[md.index("## Provenance"):]
    assert "python mdre.py --corpus manifest --root" in prov and "python testing.py" in prov
    assert "(SynthManifest, test)" in prov  # each result file's entry names the corpus it was scored on
    # a second run finds the corpus there (make_demo_corpus.py --if-missing) and every step done
    assert benchmark.main(["--config", str(cfg), "--no-progress"]) == 0
    assert "\n== [" not in capsys.readouterr().out
