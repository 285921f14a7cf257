"""What every script's command line promises: each option described with its default, and an unwritable
output named clearly (not the temporary file) before any work, with exit code 1 and nothing left behind."""
import argparse
import importlib.util
from pathlib import Path

import pytest

from conftest import PRETRAINED, unwritable_folders

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in [*REPO.glob("*.py"), *REPO.glob("bench/bench_*.py")]
                 if "def main(" in p.read_text())


class _Parsed(Exception):
    pass


def _parser_of(script: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a script builds, caught when it parses (no work done)."""
    spec = importlib.util.spec_from_file_location(f"_cli_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def catch(self, *a, **k):
        raise _Parsed(self)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(_Parsed) as e:
        module.main([]) if "argv" in module.main.__code__.co_varnames or hasattr(module.main, "__wrapped__") \
            else module.main()
    return e.value.args[0]


def _actions(ap: argparse.ArgumentParser):
    for a in ap._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _actions(sub)
        elif not isinstance(a, argparse._HelpAction):
            yield ap, a


def test_the_script_list_is_complete():
    assert {"training.py", "testing.py", "prediction_process.py", "norm_para.py", "mat_io.py", "feat_mel.py",
            "feat_opensmile.py", "feat_wav2vec2.py", "feat_roberta.py", "demo.py", "make_demo_corpus.py",
            "corpus_info.py", "convert_legacy.py", "bench/bench_store.py", "evaluate_missing.py", "mdre.py",
            "feat_mdre.py", "feat_mocap.py", "bench/bench_audio_text.py", "bench/bench_mdre_training.py",
            "speech_text_mocap.py", "bench/bench_mocap.py", "bench/bench_stm_training.py", "benchmark.py",
            "cross_corpus.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_has_a_description_and_its_default(script, monkeypatch):
    ap = _parser_of(script, monkeypatch)
    missing = []
    for owner, a in _actions(ap):
        shown = owner.formatter_class(prog="x")._get_help_string(a) if a.help else ""
        if not a.help or not (a.required or "default" in shown.lower()):
            missing.append(f"{'/'.join(a.option_strings) or a.dest}: {shown!r}")
    assert not missing, f"{script}: options without description or default: {missing}"


def _cases(tmp_path, target: Path, msp_corpus):
    import numpy as np

    from features.audio import write_wav
    from features.store import FeatureStore
    wavs = tmp_path / "wavs"
    write_wav(wavs / "a.wav", 0.1 * np.random.default_rng(0).normal(size=16000).astype(np.float32))
    store = FeatureStore.create(tmp_path / "store", name="toy", extractor="Toy", params={}, dims=2,
                                frame_rate=100.0, extra={"norm_pooling": "frames"})
    with store.writer() as w:
        w.add("a", np.ones((3, 2)))
    cases = [("feat_mel", ["--wav-dir", wavs, "--store", target / "mel", "--no-progress"]),
             ("norm_para", ["--root", msp_corpus, "--out", target / "NT"]),
             ("mat_io", ["export", "--store", tmp_path / "store", "--out", target / "mats", "--no-progress"]),
             ("corpus_info", ["--corpus", "msp-podcast", "--root", msp_corpus, "--skipped-csv", target / "s.csv"]),
             ("make_demo_corpus", ["--kind", "msp-podcast", "--out", target / "corpus", "--n", "2"])]
    legacy = PRETRAINED / "chunk_attention_lstm_v1.6"
    if legacy.is_dir():
        cases.append(("convert_legacy", ["--pth", next(legacy.glob("*.pth.tar")), "--normterm", legacy / "NormTerm",
                                         "--out", target / "conv"]))
    return cases


def test_unwritable_outputs_are_named_before_any_work(msp_corpus, tmp_path, capsys):
    for i, target in enumerate(unwritable_folders(tmp_path)):
        for name, argv in _cases(tmp_path / f"in{i}", target, msp_corpus):
            module = importlib.import_module(name)
            assert module.main([str(a) for a in argv]) == 1, name
            err = capsys.readouterr().err
            assert err.startswith(f"error: {target}") and "cannot" in err and ".tmp" not in err, (name, err)


def test_openmp_threads_sleep_while_waiting_in_every_script(tmp_path):
    """Multi-threaded training beside other busy processes collapsed (OpenMP threads spinning for descheduled
    peers): every script imports engine before torch, and engine makes waiting threads sleep; a value the user
    set is kept (issue 19, item 35)."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    probe = "import os, sys; sys.argv = ['x']; import {m}; print(os.environ.get('OMP_WAIT_POLICY'))"
    for module in ("training", "mdre"):
        out = subprocess.run([sys.executable, "-c", probe.format(m=module)], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.stdout.strip() == "PASSIVE", (module, out.stderr[-500:])
    out = subprocess.run([sys.executable, "-c", probe.format(m="engine.loop")], cwd=REPO,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ACTIVE"


@pytest.mark.parametrize("script,system", [("training.py", "chunk-lstm"), ("main.py", "audio-text"),
                                           ("main.py -ep", "deep-emo-cluster"), ("mdre.py", "mdre"),
                                           ("speech_text_mocap.py", "speech-text-mocap")])
def test_deterministic_help_states_the_scripts_own_measured_cost(script, system, monkeypatch):
    """Each system's --deterministic help gives that system's measured cost, not the chunk LSTM's for all."""
    from engine.cli import DETERMINISTIC_COST
    if script == "main.py -ep":
        import main
        ap = main.build_parser("deep-emo-cluster")
    else:
        ap = _parser_of(script, monkeypatch)
    (det,) = [a for _, a in _actions(ap) if "--deterministic" in a.option_strings]
    assert DETERMINISTIC_COST[system] in det.help, det.help
    others = [c for s, c in DETERMINISTIC_COST.items() if s != system]
    assert not any(c in det.help for c in others), det.help
