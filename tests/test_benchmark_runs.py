"""benchmark.py plans one run and one result file per variant (issue 19, items 1-3) and checks every value of a
config when it is loaded, before anything runs (item 28). The real runs (two MDREA variants, a result
overwritten, a run retrained) are in test_benchmark.py, on its tiny benchmark."""
from pathlib import Path

import pytest

MDRE = """
name: runs
data: {d}/data
report: {d}/report
deterministic: true
fresh_on_conflict: true
corpora:
  iem: {{kind: iemocap, root: {d}/iemocap, synthetic: {{n: 60, seed: 5}}}}
systems:
  - system: mdre
    corpus: iem
    protocol: loso
    folds: [5]
    variants:
      - {{name: slow, model: MDREA, iterations: 3, batch: 16, patience: 0, val_every: 3, lr: 0.001}}
      - {{name: fast, model: MDREA, iterations: 3, batch: 16, patience: 0, val_every: 3, lr: 0.05,
          missing: [frames:0.5], extra: [--normalise]}}
"""


STM = """
corpora:
  iem: {{kind: iemocap, root: {d}/iemocap, synthetic: {{n: 60, seed: 5}}}}
systems:
  - system: speech-text-mocap
    corpus: iem
    speech_model: tiny-random-wav2vec2
    text_model: tiny-random-bert
    variants:
      - {{name: a, configs: [text, speech+text+mocap], iterations: 4, lr: 0.001, missing: [frames:0.5]}}
      - {{name: b, configs: [text, speech+text+mocap], iterations: 4, lr: 0.0005, missing: [frames:0.5]}}
cross_corpus:
  - {{system: speech-text-mocap, variant: a, corpus: iem}}
"""


def test_speech_text_mocap_variants_get_their_own_run_and_result_names(tmp_path):
    from report.config import load_config
    from report.recipes import plan
    cfg = tmp_path / "stm.yaml"
    cfg.write_text(STM.format(d=tmp_path).replace("cross_corpus:\n  - {system: speech-text-mocap, variant: a, "
                                                  "corpus: iem}\n", ""))
    jobs = plan(load_config(cfg))
    by = {j.name: j for j in jobs}
    a, b = by["speech-text-mocap a"], by["speech-text-mocap b"]
    assert not {r.path for r in a.results} & {r.path for r in b.results}
    assert not set(a.steps[-1].runs) & set(b.steps[-1].runs)
    assert {r.section for r in a.results} == {"class", "ablation", "missing-class"}
    assert all("_lr0.0005" in r.path.name for r in b.results)
    # two variants that would write the same files are refused before anything runs
    cfg.write_text(cfg.read_text().replace("lr: 0.0005", "lr: 0.001"))
    from report.config import ConfigError
    with pytest.raises(ConfigError, match="would both write"):
        plan(load_config(cfg))


@pytest.mark.parametrize("change, names", [
    (("root: {d}/iemocap, synthetic: {{n: 60, seed: 5}}", "root: {d}/nowhere"), ["corpus 'iem'", "root"]),
    (("synthetic: {{n: 60, seed: 5}}", "synthetic: {{n: 60, sed: 11}}"), ["sed"]),
    (("model: MDREA, iterations: 3, batch: 16, patience: 0, val_every: 3, lr: 0.001",
      "model: TER, iterations: 3, batch: 16, patience: 0, val_every: 3, lr: 0.001"), ["variants[0]", "model", "TER"]),
    (("folds: [5]", "folds: [6]"), ["systems[0]", "folds"]),
    (("iterations: 3, batch: 16, patience: 0, val_every: 3, lr: 0.001",
      "iterations: thirty, batch: 16, patience: 0, val_every: 3, lr: 0.001"), ["slow", "iterations", "thirty"]),
    (("missing: [frames:0.5]", "missing: [frame:0.5]"), ["fast", "missing", "frame"]),
    (("name: fast, model: MDREA", "name: fast, model: TRE"), ["fast", "missing", "TRE reads no audio"]),
    (("missing: [frames:0.5]", "missing: [mocap-absent]"), ["fast", "missing", "no motion capture"]),
    (("name: fast", "name: slow"), ["two variants", "slow"]),
    (("extra: [--normalise]", "extra: [--loss, bogus]"), ["mdre.py", "--loss", "bogus"]),
    (("deterministic: true", "deterministic: yes please"), ["deterministic"]),
])
def test_each_bad_value_is_refused_at_load_naming_the_file_and_the_key(tmp_path, capsys, change, names):
    import benchmark
    old, new = (x.format(d=tmp_path) for x in change)
    text = MDRE.format(d=tmp_path)
    assert old in text
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text.replace(old, new, 1))
    assert benchmark.main(["--config", str(cfg), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(cfg) in err, err
    for name in names:
        assert name in err, (name, err)
    assert not (tmp_path / "report").exists() and not (tmp_path / "iemocap").exists()  # nothing ran


def test_cross_corpus_entries_must_name_a_configured_variant(tmp_path, capsys):
    import benchmark
    cfg = tmp_path / "c.yaml"
    cfg.write_text(STM.format(d=tmp_path).replace("variant: a", "variant: zz"))
    assert benchmark.main(["--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert str(cfg) in err and "cross_corpus[0]" in err and "zz" in err


def test_the_demo_config_plans_one_run_per_model_and_one_file_per_result():
    from report.config import load_config
    from report.recipes import plan
    jobs = plan(load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"))
    assert [j.name for j in jobs][:3] == ["chunk-lstm RnnAttenVec", "deep-emo-cluster Temp-Trans", "audio-text"]
    assert len(jobs) == 11 and len({s.key for j in jobs for s in j.steps}) == 34
    paths = [r.path for j in jobs for r in j.results]
    assert len(paths) == len(set(paths)) and all(r.step for j in jobs for r in j.results)


def test_a_step_that_writes_other_files_than_expected_fails_naming_both(tmp_path, monkeypatch):
    """Item 2: exit 0 is not enough; the result files the report expects must be among those the step wrote."""
    from report.config import load_config
    from report.recipes import Job, Result, Step
    from report.runner import Runner
    (tmp_path / "writes_elsewhere.py").write_text(
        "from pathlib import Path\nfrom systems.common import write_result\n\n\n"
        "def main(argv):\n    write_result(Path(argv[0]), {'metric': 'WA/UA', 'WA': 0.5})\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(MDRE.format(d=tmp_path))
    cfg = load_config(cfg_path)
    step = Step("x/y", "a step", "writes_elsewhere", [tmp_path / "other.json"], "iem")
    expected = tmp_path / "expected.json"
    runner = Runner(cfg)
    assert not runner.run([Job("j", [step], [Result("class", "mdre", "v", expected, {"fold": 5}, step.key)])])
    why = runner.status["x/y"]
    assert why.startswith("failed") and str(expected) in why and "other.json" in why
