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
    assert {r.section for r in a.results} == {"class", "ablation", "protocol"}
    # the --missing list is scored as the "conditions" protocol, per held-out session (speech_text_mocap.py's names):
    # the report shows it once, from that file
    assert {r.info["protocol"] for r in a.results if r.section == "protocol"} == {"conditions"}
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
    # issue 20: the protocols, their rates and the training seeds, checked before any work
    (("lr: 0.001}}", "lr: 0.001, protocols: [fixed, everything]}}"), ["slow", "protocols", "everything"]),
    (("lr: 0.001}}", "lr: 0.001, protocols: [random], rates: [0, 1.5]}}"), ["slow", "rates", "1.5"]),
    (("lr: 0.001}}", "lr: 0.001, rates: [0, 0.5]}}"), ["slow", "rates", "no protocol uses it"]),
    (("lr: 0.001}}", "lr: 0.001, seeds: [0, one]}}"), ["slow", "seeds", "'one'"]),
    (("folds: [5]", "folds: [5]\n    seeds: [1, 1]"), ["systems[0]", "seeds", "distinct"]),
    (("folds: [5]", "folds: [5]\n    seed: 2\n    seeds: [1, 2]"), ["systems[0]", "seed and seeds"]),
    (("name: slow, model: MDREA", "name: slow, model: ARE, protocols: [random]"), ["slow", "protocols", "random"]),
    (("lr: 0.001}}", "lr: 0.001, protocols: [sweep], sweep_kinds: [word-rows]}}"),
     ["slow", "sweep_kinds", "word-rows"]),
    (("protocol: loso", "protocol: fixed"), ["systems[0]", "protocol", "protocols: [...]"]),
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
    # issue 20: the fixed-condition and random-missing protocols on every fusion system
    protocols = {}
    for r in (r for j in jobs for r in j.results if r.section == "protocol"):
        protocols.setdefault(r.system, set()).add(r.info["protocol"])
    assert {s: {"fixed", "random"} <= p for s, p in protocols.items()} == {
        "audio-text": True, "mdre": True, "speech-text-mocap": True}


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


SEEDS = """
corpora:
  msp: {{kind: msp-podcast, root: {d}/msp, synthetic: {{n: 60, seed: 5}}}}
  iem: {{kind: iemocap, root: {d}/iemocap, synthetic: {{n: 60, seed: 5}}}}
systems:
  - system: chunk-lstm
    corpus: msp
    attributes: [Act]
    seeds: [0, 1, 2]
    variants: [{{atten: RnnAttenVec, iterations: 4}}]
  - system: audio-text
    corpus: msp
    speech_model: tiny-random-wav2vec2
    text_model: minilm
    protocols: [fixed, random]
    rates: [0.6, 0, 0.3]
    sim_seeds: 2
    bootstrap: 200
    variants: [{{chunking: multiscale, iterations: 3, seeds: [0, 1]}}, {{chunking: fixed, iterations: 3, seeds: [0, 1]}}]
  - system: speech-text-mocap
    corpus: iem
    speech_model: tiny-random-wav2vec2
    text_model: tiny-random-bert
    variants:
      - {{name: a, configs: [text, speech+text+mocap], iterations: 4, seeds: [0, 3], protocols: [fixed, sweep],
          sweep_kinds: [frames], ci_method: percentile}}
  - system: mdre
    corpus: iem
    protocol: loso
    folds: [5]
    variants: [{{model: MDREA, iterations: 3, missing: [frames:0.5], protocols: [fixed, random], rates: [0, 0.5],
                 sim_seeds: 2}}]
cross_corpus:
  - {{system: chunk-lstm, variant: RnnAttenVec, corpus: iem}}
"""


def _plan(tmp_path, text):
    from report.config import load_config
    from report.recipes import plan
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.format(d=tmp_path))
    return plan(load_config(cfg))


def test_training_seeds_plan_one_run_per_seed_with_the_seed_in_every_name(tmp_path):
    """Issue 20, item 9: `seeds: [0, 1, 2]` runs a variant once per training seed, each with its own steps, run
    folders and result files (the seed in their names or folders), each result saying its seed."""
    jobs = _plan(tmp_path, SEEDS)
    steps = [s for j in jobs for s in j.steps]
    results = [r for j in jobs for r in j.results]
    trains = [s for s in steps if s.script in ("training", "main", "speech_text_mocap", "mdre")]
    seeds = [s.argv[s.argv.index("--seed") + 1] for s in trains]
    assert sorted(seeds) == [0, 0, 0, 0, 0, 1, 1, 1, 2, 3]  # chunk-lstm 0,1,2; audio-text 2 x 0,1; stm 0,3; mdre 0
    own = [s.key for s in steps if not s.key.startswith(("corpus/", "features/", "normterm/"))]
    assert len(own) == len(set(own))
    runs = [p for s in trains for p in s.runs]
    assert len(runs) == len(set(runs))
    assert len({r.path for r in results}) == len(results)
    for s in trains:  # a non-default seed is part of the name of each run it trains
        seed = s.argv[s.argv.index("--seed") + 1]
        assert all((f"seed{seed}" in str(p)) == (seed != 0) for p in s.runs), s.runs
    for r in results:
        if r.system != "mdre":  # (configured without seeds: its one seed, no seed in the info)
            assert isinstance(r.info.get("seed"), int), r
            assert (f"seed{r.info['seed']}" in str(r.path)) == (r.info["seed"] != 0), r.path
    lstm = [r for r in results if r.system == "chunk-lstm" and r.section == "ccc"]
    assert sorted(r.info["seed"] for r in lstm) == [0, 1, 2]
    cross = [r for r in results if r.section == "cross"]
    assert sorted(r.info["seed"] for r in cross) == [0, 1, 2]  # each seed's model scored on the other corpus
    # a test step reads the models its own seed's training wrote
    for j in (j for j in jobs if j.name.startswith("chunk-lstm")):
        train, test = [s for s in j.steps if s.script == "training"][0], [s for s in j.steps if s.script == "testing"][0]
        assert train.argv[train.argv.index("--out") + 1] == test.argv[test.argv.index("--models-dir") + 1]


def test_protocol_flags_reach_the_evaluation_commands_and_their_files_are_the_results(tmp_path):
    """Issue 20, items 4-6: a fusion system's `protocols` (with rates, sweep kinds, simulation seeds, bootstrap and
    interval method) become the evaluation script's flags, and every protocol's <name>_<protocol>.json is a result
    of section "protocol" of the step that writes it."""
    jobs = _plan(tmp_path, SEEDS)
    steps = {s.key: s for j in jobs for s in j.steps}
    results = [r for j in jobs for r in j.results if r.section == "protocol"]
    at = [s for s in steps.values() if s.script == "evaluate_missing"]
    assert [s.key for s in at] == ["audio-text/missing/seed0", "audio-text/missing/seed1"]
    command = at[1].command()
    assert "--protocols fixed,random --rates 0,0.3,0.6 --sim-seeds 2 --bootstrap 200" in command
    assert command.count("seed1/TransformerCoAtten") == 2  # both variants' seed-1 checkpoints side by side
    at_results = [r for r in results if r.system == "audio-text"]
    assert sorted((r.info["protocol"], r.info["seed"]) for r in at_results) == [
        ("fixed", 0), ("fixed", 1), ("random", 0), ("random", 1)]
    for r in at_results:
        out = steps[r.step].argv[steps[r.step].argv.index("--out") + 1]
        assert r.path == out.with_name(f"{out.name}_{r.info['protocol']}.json") and r.info["metric"] == "CCC"
        assert set(r.info["variants"].values()) == {"multiscale", "fixed"}
    (stm0,) = [s for s in steps.values() if s.key == "speech-text-mocap/a/seed0"]
    assert "--protocols fixed,sweep --rates 0,0.1,0.2,0.3,0.4,0.5,0.6,0.7 --sweep-kinds frames --ci-method " \
           "percentile" in stm0.command()
    stm = [r for r in results if r.system == "speech-text-mocap"]
    assert {(r.info["configuration"], r.info["protocol"]) for r in stm} >= {
        ("speech+text+mocap", "fixed"), ("speech+text+mocap", "sweep")}
    assert {r.info["seed"] for r in stm} == {0, 3}
    for r in stm:
        assert r.path.name.startswith(f"stm_{r.info['configuration']}_s5") and f"_{r.info['protocol']}" in r.path.name
        assert r.step == f"speech-text-mocap/a/seed{r.info['seed']}" and r.info["metric"] == "WA/UA"
        assert ("_seed3" in r.path.name) == (r.info["seed"] == 3)
    (mdre,) = [s for s in steps.values() if s.script == "mdre"]
    assert "--missing frames:0.5 --protocols fixed,random --rates 0,0.5 --sim-seeds 2" in mdre.command()
    by = {r.info["protocol"]: r for r in results if r.system == "mdre"}
    assert set(by) == {"fixed", "random", "conditions"}  # the --missing list is the "conditions" protocol
    assert all(r.path.name.endswith(f"_{p}.json") and r.step == mdre.key for p, r in by.items())
    assert not [r for j in jobs for r in j.results if r.section not in ("class", "class-folds", "ablation", "protocol",
                                                                     "ccc", "cross", "cross-class")]


def test_the_older_audio_text_missing_keys_run_as_the_conditions_protocol(tmp_path):
    """missing_rates / missing_conditions keep working: evaluate_missing.py's --conditions list at those rates,
    whose file (<out>_conditions.json) is the result; with `protocols` the same step scores both, one --rates."""
    text = SEEDS.split("  - system: speech-text-mocap")[0].replace(
        "    protocols: [fixed, random]\n    rates: [0.6, 0, 0.3]\n    sim_seeds: 2\n    bootstrap: 200\n",
        "    missing_rates: [0, 0.5]\n    missing_conditions: [frames, words]\n")
    jobs = _plan(tmp_path, text)
    (step,) = [s for j in jobs for s in j.steps if s.script == "evaluate_missing" and s.key.endswith("seed0")]
    assert "--rates 0,0.5 --conditions frames,words --out" in step.command() and "--protocols" not in step.command()
    (r,) = [r for j in jobs for r in j.results if r.step == step.key]
    assert r.section == "protocol" and r.info["protocol"] == "conditions" and r.path.name == \
        "audio_text_missing_data_conditions.json"
    from report.config import ConfigError
    with pytest.raises(ConfigError, match="rates and missing_rates"):
        _plan(tmp_path, text.replace("missing_rates: [0, 0.5]", "missing_rates: [0, 0.5]\n    protocols: [random]\n"
                                     "    rates: [0, 0.5]"))


# ------------------------------------------------------------------ issue 24: corpora of every kind
ANY = """
data: {d}/data
report: {d}/report
corpora:
  mine: {{kind: manifest, root: {manifest}}}
  ebx: {{kind: emobox, root: {d}/data/toy, fold: 1}}
systems:
  - system: chunk-lstm
    corpus: mine
    attributes: [Act]
    variants: [{{atten: RnnAttenVec, iterations: 4, batch: 8}}]
  - system: mdre
    corpus: ebx
    variants: [{{model: TRE, iterations: 4, batch: 8}}]
  - system: speech-text-mocap
    corpus: mine
    speech_model: tiny-random-wav2vec2
    text_model: tiny-random-bert
    variants: [{{name: fusion, iterations: 4}}]
"""


@pytest.fixture
def emobox_folder(tmp_path):
    """<tmp>/data/toy: an EmoBox corpus with one fold and no valid file (labels only: the plan reads no audio)."""
    from test_manifest import emobox_row, write_jsonl
    folder = tmp_path / "data" / "toy"
    rows = [emobox_row(f"k{k}", "ah"[k % 2]) for k in range(4)]
    write_jsonl(folder / "toy.jsonl", rows)
    (folder / "label_map.json").write_text('{"a": "Angry", "h": "Happy"}')
    write_jsonl(folder / "fold_1" / "toy_train_fold_1.jsonl", rows[:2])
    write_jsonl(folder / "fold_1" / "toy_test_fold_1.jsonl", rows[2:])
    return folder


def test_every_corpus_kind_reaches_each_command_with_its_splits(tmp_path, emobox_folder):
    """A manifest and an EmoBox fold: every command reads the corpus with --corpus KIND --root ROOT [--fold N]
    and names its splits; a manifest's stores and NormTerm go beside the manifest; an EmoBox fold without a valid
    file passes no dev split (the script holds out a share of train); speech + text + mocap trains the
    configurations without motion capture; results are labelled by the test split."""
    manifest = tmp_path / "m" / "corpus.csv"
    manifest.parent.mkdir()
    manifest.write_text("id,path,split\n")
    jobs = _plan(tmp_path, ANY.replace("{manifest}", str(manifest)))
    steps, results = {s.key: s for j in jobs for s in j.steps}, [r for j in jobs for r in j.results]

    def flags(key):
        return " ".join(map(str, steps[key].argv))
    corpus = f"--corpus manifest --root {manifest}"
    store = manifest.parent / "Features" / "OpenSmile_lld_IS13ComParE"
    assert flags("features/mine/OpenSmile_lld_IS13ComParE").startswith(f"{corpus} --store {store}")
    assert f"{corpus} --split train --out {manifest.parent / 'NormTerm'}" in flags("normterm/mine/NormTerm")
    assert f"{corpus} --store {store}" in flags("chunk-lstm/RnnAttenVec/train/Act")
    assert "--train-split train --val-split dev" in flags("chunk-lstm/RnnAttenVec/train/Act")
    assert "--split test" in flags("chunk-lstm/RnnAttenVec/test/Act")
    assert flags("mdre/TRE").startswith(f"--corpus emobox --root {emobox_folder} --fold 1 --model TRE "
                                        "--train-split train --test-split test -iter")  # no dev split, no protocol
    assert flags("speech-text-mocap/fusion").startswith(f"{corpus} --train-split train --dev-split dev "
                                                        "--test-split test --speech-model")
    assert "--configs speech,text,speech+text " in flags("speech-text-mocap/fusion")
    assert {r.info["fold"] for r in results if r.section == "class"} == {"test split"}
    assert {r.info["corpus"] for r in results if r.section in ("ccc", "class")} == {"mine", "ebx"}


@pytest.mark.parametrize("change, names", [
    (("corpus: mine\n    attributes", "corpus: ebx\n    attributes"),
     ["systems[0] (chunk-lstm)", "'ebx' is emobox", "EmoBox rows are categorical only"]),
    (("{d}/data/toy, fold: 1", "{d}/data/toy"), ["corpus 'ebx'", "fold", "needs the fold"]),
    (("{d}/data/toy, fold: 1", "{d}/data/toy, fold: 3"), ["corpus 'ebx'", "no fold 3"]),
    (("root: {manifest}}}", "root: {manifest}, fold: 1}}"), ["corpus 'mine'", "only EmoBox corpora have folds"]),
    (("root: {manifest}}}", "root: {d}}}"), ["corpus 'mine'", "is not a file"]),
    (("root: {manifest}}}", "root: {d}/m/c.csv, synthetic: {{n: 40}}}}"), ["corpus 'mine'", "corpus.csv"]),
    (("root: {manifest}}}", "root: {manifest}, splits: {{test: test2, tset: x}}}}"), ["corpus 'mine' splits", "tset"]),
    (("corpus: ebx\n", "corpus: ebx\n    protocol: loso\n"), ["systems[1] (mdre)", "protocol", "one fold"]),
    (("{{name: fusion,", "{{name: fusion, configs: [text, speech+mocap],"),
     ["systems[2].variants[0] (speech-text-mocap)", "configs: speech+mocap", "motion capture"]),
    (("kind: emobox", "kind: emobox-v2"), ["corpus 'ebx'", "kind (one of msp-podcast, iemocap, manifest, emobox)"]),
])
def test_corpora_of_other_kinds_are_checked_at_load(tmp_path, emobox_folder, capsys, change, names):
    import benchmark
    manifest = tmp_path / "m" / "corpus.csv"
    manifest.parent.mkdir()
    manifest.write_text("id,path,split\n")
    old, new = change
    assert old in ANY
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(ANY.replace(old, new, 1).replace("{manifest}", str(manifest)).format(d=tmp_path))
    assert benchmark.main(["--config", str(cfg), "--no-progress"]) == 1
    err = capsys.readouterr().err
    for name in [str(cfg), *names]:
        assert name in err, (name, err)
