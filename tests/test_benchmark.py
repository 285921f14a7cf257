"""benchmark.py end to end on tiny corpora: all five systems, missing data and cross-corpus in one config; the
report is complete (every configured system has its rows, every figure exists and is referenced, every number
has its provenance), a second run reuses every step, a lost result file re-runs its own job only, and a
failing system is reported while the others are kept."""
import json
import re
import shutil
from pathlib import Path

import pytest

TINY = """
name: tiny
data: {d}/data
report: {d}/report
deterministic: true
corpora:
  msp: {{kind: msp-podcast, root: {msp}}}
  iem: {{kind: iemocap, root: {d}/iemocap, synthetic: {{n: 120, seed: 5}}}}
systems:
  - system: chunk-lstm
    corpus: msp
    attributes: [Act, Val]
    variants: [{{atten: RnnAttenVec, iterations: 4, batch: 8, lr: 0.001, val_every: 2}}]
  - system: deep-emo-cluster
    corpus: msp
    attributes: [Act]
    variants: [{{mt: Temp-GRU, epochs: 1, batch: 8, clusters: 3, unlabelled: 8}}]
  - system: audio-text
    corpus: msp
    speech_model: tiny-random-wav2vec2
    text_model: minilm
    missing_rates: [0, 0.5]
    missing_conditions: [frames, words]
    variants: [{{chunking: multiscale, iterations: 3, batch: 8, val_every: 3}}]
  - system: mdre
    corpus: iem
    protocol: loso
    folds: [5]
    variants: [{{model: MDREA, iterations: 6, batch: 16, patience: 0, val_every: 3,
                 missing: [frames:0.5, text-absent]}},
               {{name: fast, model: MDREA, iterations: 6, batch: 16, patience: 0, val_every: 3, lr: 0.05,
                 extra: [--normalise]}}]
  - system: speech-text-mocap
    corpus: iem
    speech_model: tiny-random-wav2vec2
    text_model: tiny-random-bert
    variants:
      - {{name: tiny, configs: [text, speech+text+mocap], iterations: 6, batch: 8, val_every: 3, patience: 0,
          d_model: 8, heads: 2, layers: 1, ff: 16, fusion_hidden: 8, missing: [mocap-absent, frames:0.5]}}
cross_corpus:
  - {{system: chunk-lstm, variant: RnnAttenVec, corpus: iem}}
  - {{system: mdre, variant: MDREA, corpus: msp}}
  - {{system: speech-text-mocap, variant: tiny, corpus: msp}}
"""


@pytest.fixture(scope="module")
def bench(msp_corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    msp = d / "MSP-PODCAST-Publish-1.10"
    shutil.copytree(msp_corpus, msp)  # the steps write stores and NormTerms into the corpus folder
    cfg = d / "tiny.yaml"
    cfg.write_text(TINY.format(d=d, msp=msp))
    return d, cfg


def run(cfg, capsys, *extra):
    import benchmark
    rc = benchmark.main(["--config", str(cfg), "--no-progress", *extra])
    return rc, capsys.readouterr().out


def test_first_run_writes_a_complete_report_and_a_second_run_reuses_everything(bench, capsys):
    d, cfg = bench
    rc, out = run(cfg, capsys)
    assert rc == 0, out[-3000:]
    md = (d / "report" / "report.md").read_text()
    page = (d / "report" / "report.html").read_text()
    # every configured system and variant has its rows; the published anchors are there and marked
    for row in ("| chunk LSTM | RnnAttenVec |", "| DeepEmoCluster | Temp-GRU |", "| audio-text | multiscale |",
                "| MDRE family | MDREA | fold 5 |", "| speech + text + mocap | text | Session 5 |",
                "| speech + text + mocap | speech+text+mocap | Session 5 |", "| chunk LSTM | RnnAttenVec | msp | iem (all) |",
                "| MDRE family | MDREA | fold 5 | iem | msp (test1) |",
                "| speech + text + mocap | speech+text+mocap | Session 5 | iem | msp (test1) |"):
        assert row in md, row
    # published anchors: on a synthetic corpus none is comparable, so they stand in their own table, marked
    assert "*original README*" in md and "class='reported'" in page and "### Published figures (not comparable" in md
    # a real CCC with its interval under the chunk LSTM's Act column, blank only where the config asked nothing (Dom)
    row = next(line for line in md.splitlines() if line.startswith("| chunk LSTM | RnnAttenVec |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    scored = r"-?\d\.\d{4} \[-?\d\.\d{2}, -?\d\.\d{2}\]"
    assert re.fullmatch(scored, cells[2]) and cells[3] == "" and re.fullmatch(scored, cells[4])
    # every figure exists, is referenced by the Markdown, and is inlined in the HTML (nothing external)
    figures = sorted((d / "report" / "figures").glob("*.png"))
    referenced = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {f"figures/{p.name}" for p in figures} <= set(referenced)
    for ref in referenced:
        assert (d / "report" / ref).is_file(), ref
    assert page.count("data:image/png;base64,") == len(referenced) and "src='http" not in page
    for name in ("ccc.png", "wa_ua.png"):
        assert (d / "report" / "figures" / name).is_file(), name
    # missing data (engine.robustness): a section per fusion system with its table and curves
    for head in ("### audio-text: Missing-data conditions", "### MDRE family MDREA: Missing-data conditions",
                 "### speech + text + mocap tiny speech+text+mocap Session 5: Missing-data conditions"):
        assert head in md, head
    assert len(list((d / "report" / "figures").glob("protocol_*_conditions*.png"))) == 3
    assert "| fold 5 | text-absent |" in md and "| speech+text+mocap | mocap-absent |" in md
    # every [R<k>] in a table links to its provenance entry in the page, with the command that re-creates it
    refs = set(re.findall(r"\[(R\d+)\]\(#R\d+\)", md))
    prov = md[md.index("## Provenance"):]
    for r in refs:
        entry = prov[prov.index(f"**{r}**"):].split("\n- ")[0]
        assert "command that re-creates it: `python " in entry and ".py" in entry
    assert "python testing.py" in prov and "python mdre.py" in prov and "--corpus iemocap" in prov
    assert "python cross_corpus.py --checkpoint" in prov
    # training cost per run, with parameters, throughput, peak memory and the inference RTF
    cost = md[md.index("## Training and inference cost"):]
    row = next(x for x in cost.splitlines() if x.startswith("| chunk LSTM | RnnAttenVec Act | test |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[3].replace(",", "")) > 1000 and float(cells[5].replace(",", "")) > 0 and float(cells[9]) > 0

    rc, out = run(cfg, capsys)
    assert rc == 0
    assert "\n== [" not in out and out.count("done earlier") == len(list((d / "report" / "steps").glob("*.json")))


def test_a_lost_result_reruns_its_own_job_only(bench, capsys):
    d, cfg = bench
    lost = d / "data" / "results" / "chunk_lstm_RnnAttenVec_Val_test1.json"
    lost.unlink()
    rc, out = run(cfg, capsys)
    assert rc == 0 and lost.is_file()
    ran = re.findall(r"\n== \[\d+/\d+\] ([^:]+: [^:]+):", out)
    assert ran and all(r.startswith("chunk LSTM RnnAttenVec") for r in ran), ran
    assert "nothing to do (already finished)" in out  # the training itself was not repeated


def test_parallel_lanes_recreate_lost_results_with_the_same_numbers(bench, capfd):
    """--jobs 2: the systems run in two worker processes (a lane each); the numbers are those of the sequential
    run, the console shows one line per step with its lane, and each lane's whole output is in its log."""
    import benchmark
    d, cfg = bench
    lost = [d / "data" / "results" / "chunk_lstm_RnnAttenVec_Val_test1.json",
            d / "data" / "results" / "MDREA_loso_iter6_batch16_val-every3_patience0_deterministic_fold5.json"]
    before = [json.loads(p.read_text()) for p in lost]
    for p in lost:
        p.unlink()
    capfd.readouterr()
    assert benchmark.main(["--config", str(cfg), "--no-progress", "--jobs", "2"]) == 0
    out = capfd.readouterr().out
    after = [json.loads(p.read_text()) for p in lost]
    assert after[0]["value"] == before[0]["value"] and after[0]["command"] == before[0]["command"]
    assert (after[1]["WA"], after[1]["UA"], after[1]["confusion"]) == (before[1]["WA"], before[1]["UA"],
                                                                         before[1]["confusion"])
    assert "[chunk-lstm] [" in out and "[mdre] [" in out and "test Val ..." in out
    assert "nothing to do (already finished)" in (d / "report" / "logs" / "chunk-lstm.log").read_text()
    assert "MDREA_loso_iter6_batch16_val-every3_patience0_deterministic fold 5: WA" in (
        d / "report" / "logs" / "mdre.log").read_text()
    # the others were reused, the cross-corpus scoring too (the weights it scores did not change)
    assert "[audio-text] [" in out and "done earlier, skipped" in out
    assert re.search(r"mdre MDREA \(iem\) scored on msp \(test1\): done earlier", out)


def mdre_results(cfg) -> dict:
    """variant -> its fold-5 result JSON, as the plan names it."""
    from report.config import load_config
    from report.recipes import plan
    return {r.variant: r.path for j in plan(load_config(cfg)) for r in j.results
            if r.section == "class" and r.system == "mdre"}


def mdre_row(md: str, variant: str) -> list[str]:
    row = next(x for x in md.splitlines() if x.startswith(f"| MDRE family | {variant} | fold 5 |"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_variants_differing_in_lr_or_extra_flags_keep_their_own_runs_and_rows(bench, capsys):
    """Issue 19 items 1-2: two MDREA variants (lr, --normalise) train two runs and show their own numbers."""
    d, cfg = bench
    run(cfg, capsys, "--report-only")
    paths = mdre_results(cfg)
    assert "_norm_" in paths["fast"].name and "_lr0.05_" in paths["fast"].name and "_lr" not in paths["MDREA"].name
    md = (d / "report" / "report.md").read_text()
    checkpoints = set()
    for variant, path in paths.items():
        doc = json.loads(path.read_text())
        assert (Path(doc["checkpoint"]) / "model.safetensors").is_file()  # neither model was deleted
        checkpoints.add(doc["checkpoint"])
        cells = mdre_row(md, variant)
        assert cells[3].startswith(f"{doc['WA']:.4f} [") and cells[4].startswith(f"{doc['UA']:.4f} [")
        assert path.name in md
    assert len(checkpoints) == 2 and json.loads(paths["fast"].read_text())["normalise"] is True
    marker = json.loads((d / "report" / "steps" / "mdre_fast.json").read_text())
    assert str(paths["fast"].resolve()) in marker["outputs"]  # the step's own record of what it wrote


def test_an_overwritten_result_is_refused_then_its_step_runs_again(bench, capsys):
    """Item 3: another run writing into the data folder: the report refuses the file, the step runs again."""
    d, cfg = bench
    paths = mdre_results(cfg)
    good = json.loads(paths["fast"].read_text())
    paths["fast"].write_bytes(paths["MDREA"].read_bytes())
    assert run(cfg, capsys, "--report-only")[0] == 0
    md = (d / "report" / "report.md").read_text()
    assert "changed since its step 'MDRE family fast" in md and mdre_row(md, "fast")[-1] == "missing"
    rc, out = run(cfg, capsys, "--only", "mdre")
    assert rc == 0 and re.search(r"== \[\d+/\d+\] MDRE family fast", out)  # not "done earlier" on another's file
    assert "MDRE family MDREA: MDREA, loso: done earlier" in out
    assert json.loads(paths["fast"].read_text())["WA"] == good["WA"]


def test_results_of_a_run_retrained_since_are_not_shown(bench, capsys):
    """Item 3: a result records the run it scored; a run retrained since (new weights) hides its rows, the
    missing-data rows included, instead of mixing two models in one table."""
    import os
    d, cfg = bench
    run_dir = Path(json.loads(mdre_results(cfg)["MDREA"].read_text())["checkpoint"])
    weights = run_dir / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # new weights under the same name
    try:
        assert run(cfg, capsys, "--report-only")[0] == 0
        md = (d / "report" / "report.md").read_text()
        assert mdre_row(md, "MDREA")[-1] == "missing" and "retrained or replaced since" in md
        assert "| fold 5 | text-absent |" not in md  # nor its missing-data rows
    finally:
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_failing_system_is_reported_and_the_others_kept(bench, capsys):
    d, cfg = bench
    bad = d / "bad.yaml"
    # a GloVe file that is not there: mdre.py fails when it gets to it (a bad flag would be refused at load)
    bad.write_text(cfg.read_text().replace("patience: 0, val_every: 3,\n",
                                           f"patience: 0, val_every: 3, extra: [--glove, {d}/no_glove.txt],\n", 1))
    rc, out = run(bad, capsys)
    assert rc == 1
    md = (d / "report" / "report.md").read_text()
    assert "## Incomplete" in md and "mdre MDREA" in md.split("## Corpora")[0]
    assert "| chunk LSTM | RnnAttenVec |" in md  # the other systems' results are still reported


def test_config_errors_name_the_file_and_the_key(tmp_path, capsys):
    import benchmark
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"corpora": {"m": {"kind": "msp-podcast", "root": "x"}},
                               "systems": [{"system": "chunk-lstm", "corpus": "m", "variants": [{"atten": "X", "itr": 3}]}]}))
    assert benchmark.main(["--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert str(cfg) in err and "itr" in err
    cfg.write_text(json.dumps({"corpora": {"i": {"kind": "iemocap", "root": "x"}},
                               "systems": [{"system": "chunk-lstm", "corpus": "i"}]}))
    assert benchmark.main(["--config", str(cfg)]) == 1
    assert "chunk-lstm learns dimensional labels, from a msp-podcast or manifest corpus" in capsys.readouterr().err
    assert benchmark.main(["--config", str(tmp_path / "none.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert benchmark.main(["--only", "nosuch"]) == 1 and "nosuch" in capsys.readouterr().err


def test_the_demo_config_names_every_system():
    from report.config import SYSTEMS, load_config
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    assert {s.system for s in cfg.systems} == set(SYSTEMS) and cfg.cross_corpus
