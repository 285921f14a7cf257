"""System 3 (audio-text, main.py without DeepEmoCluster flags) beyond the happy path: bit-exact resume with the
crop and missing-data RNGs, seeded determinism, torchrun with two CPU processes, damaged corpora (TextGrid or
transcript missing, no words, 200 words / text rows, a last validation batch of one), a refused -batch 1, and
the published v1.10 NormTerms. Runs are tiny (-iter <= 6, -batch 4, --val-every 3) and shared where the same
command would be repeated."""
import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import PRETRAINED

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = PRETRAINED / "multiscale_chunk_v1.10"


def at_args(at_setup, *extra, root=None, audio=None, text=None, nt_audio=None, nt_text=None) -> list[str]:
    corpus, d = at_setup
    return ["--root", str(root or corpus), "--audio-store", str(audio or d / "audio"),
            "--text-store", str(text or d / "text"), "--normterm-audio", str(nt_audio or d / "NT_S"),
            "--normterm-text", str(nt_text or d / "NT_T"), "-batch", "4", "--val-every", "3", "--no-progress",
            *extra]


def only_run(out: Path) -> Path:
    (run,) = out.iterdir()
    return run


def state(run: Path) -> dict:
    return torch.load(run / "state.pt", weights_only=True)


def log_rows(run: Path) -> list[dict]:
    """log.csv without the wall-clock column."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(run / "log.csv"))]


def banner_cccs(out: str) -> dict[str, float]:
    """The banner's test CCCs (each line: the value, then its 95 % interval)."""
    return {a: float(line.split(":", 1)[1].split()[0]) for line in out.splitlines()
            for a in ("Act", "Dom", "Val") if line.startswith(f"{a}-CCC: ")}


def has_line(text: str, *parts: str) -> bool:
    """Some line of `text` holds every one of `parts`."""
    return any(all(p in line for p in parts) for line in text.splitlines())


def corpus_copy(corpus: Path, where: Path) -> Path:
    """A copy of the corpus to damage (labels, transcripts, TextGrids; the features come from the stores)."""
    root = where / corpus.name
    shutil.copytree(corpus, root, ignore=shutil.ignore_patterns("Audios"))
    return root


def split_ids(root: Path, split: str) -> list[str]:
    from corpora.msp_podcast import read_msp_podcast
    return [r.utt_id for r in read_msp_podcast(root, split=split, require_audio=False).records]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(at_setup, tmp_path_factory):
    """run(*flags) -> the run folder of `main.py <at_setup data> *flags`, trained once per module for the same
    flags (the resume and determinism tests need the same reference runs)."""
    import main
    cache = tmp_path_factory.mktemp("at_runs")
    done = {}

    def run(*flags):
        if flags not in done:
            out = cache / f"r{len(done)}"
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(cache)  # the banner's results/ CSVs
                assert main.main(at_args(at_setup, *flags, "--out", str(out))) == 0
            done[flags] = only_run(out)
        return done[flags]
    return run


# ------------------------------------------------------------------------------------ resume, determinism

@pytest.mark.parametrize("missing", [(), ("--train-missing", "frames:0.3")], ids=["multiscale", "frames0.3"])
def test_interrupted_run_resumes_bit_exact_with_its_rngs(at_setup, trained, tmp_path, capsys, monkeypatch, missing):
    """-iter 3, then the same command with -iter 6 in the same run folder, ends exactly where an uninterrupted
    -iter 6 run ends: weights, best checkpoint, optimiser, sampler, crop RNG and missing-data RNG."""
    import main
    from features.normterm import NormTerm
    from features.store import FeatureStore
    from systems.audio_text import AudioTextMethod
    flags = ("--deterministic", *missing)
    straight = trained("-iter", "6", *flags)
    half = trained("-iter", "3", *flags)
    # the first half drew from the crop RNG, and from the missing-data RNG only with --train-missing
    d = at_setup[1]
    fresh = AudioTextMethod(FeatureStore(d / "audio"), FeatureStore(d / "text"), NormTerm.load(d / "NT_S"),
                            NormTerm.load(d / "NT_T"), {}, seed=0).state()  # the RNGs before any draw
    s3 = state(half)
    assert s3["step"] == 3 and s3["method"]["crop"] != fresh["crop"]
    assert (s3["method"]["missing"] != fresh["missing"]) == bool(missing)
    # as if killed after iteration 3: that run folder under the full command's name, then the full command
    resumed = tmp_path / "c" / straight.name
    shutil.copytree(half, resumed)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main.main(at_args(at_setup, "-iter", "6", *flags, "--out", str(tmp_path / "c"))) == 0
    out = capsys.readouterr().out
    assert "at iteration 3 (best validation" in out and "3 iterations this run" in out  # resumed, not restarted
    a, b = state(straight), state(resumed)
    assert b["step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["method"] == b["method"]  # the crop and missing-data RNGs end where the straight run's end
    assert a["sampler"]["pos"] == b["sampler"]["pos"] and torch.equal(a["sampler"]["perm"], b["sampler"]["perm"])
    assert (straight / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes()
    assert log_rows(straight) == log_rows(resumed) and [r["step"] for r in log_rows(resumed)] == ["3", "6"]
    assert json.loads((resumed / "config.json").read_text())["train_condition"] == (missing[1] if missing else None)


def test_seeded_deterministic_runs_repeat_and_another_seed_differs(at_setup, trained, tmp_path, monkeypatch):
    import main
    monkeypatch.chdir(tmp_path)
    a = trained("-iter", "3", "--deterministic")  # also the first half of the resume test
    for out, seed in (("again", "0"), ("seed1", "1")):
        assert main.main(at_args(at_setup, "-iter", "3", "--deterministic", "--seed", seed,
                                 "--out", str(tmp_path / out))) == 0
    b, c = only_run(tmp_path / "again"), only_run(tmp_path / "seed1")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    wa, wb, wc = state(a)["model"], state(b)["model"], state(c)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not any(torch.equal(wa[k], wc[k]) for k in wa if k.startswith("top_layer_"))
    assert log_rows(a) == log_rows(b) and log_rows(a) != log_rows(c)
    cfg = json.loads((c / "config.json").read_text())
    assert cfg["seed"] == 1 and cfg["loop"]["seed"] == 1 and cfg["loop"]["threads"] == 1 and cfg["loop"]["deterministic"]


# ------------------------------------------------------------------------------------------------ torchrun

def test_torchrun_two_cpu_processes(at_setup, tmp_path):
    """Each rank trains on half of every batch; only rank 0 saves, logs and prints the banner."""
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "main.py"), *at_args(at_setup, "-iter", "3", "--out", str(tmp_path / "M"))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Summary Performance on") == 1 and proc.stdout.count("iterations this run") == 1
    assert all(np.isfinite(v) for v in banner_cccs(proc.stdout).values()) and len(banner_cccs(proc.stdout)) == 3
    run = only_run(tmp_path / "M")
    assert sorted(p.name for p in run.iterdir()) == ["README.md", "config.json", "log.csv", "loss.png",
        "model.safetensors", "resources.json", "run.json", "state.pt"]
    assert [r["step"] for r in log_rows(run)] == ["3"] and state(run)["step"] == 3
    assert len(list((tmp_path / "results").glob("*_test1_*.csv"))) == 3


# ------------------------------------------------------------------------------------------- bad inputs

@pytest.fixture(scope="module")
def damaged(at_setup, tmp_path_factory):
    """One run (-iter 6) on a damaged copy of the corpus, validating in batches of 7 (15 = 7 + 7 + 1):
    train utterance `no_grid` without TextGrid, `no_words` (train) and `test_no_words` (test1) with a word tier
    holding no word, `no_text` (train) without transcript, `long_text` (train) with 200 text rows, and
    `long_grid` (test1) with 200 words. Returns what the run printed, warned and wrote."""
    import main
    from corpora.textgrid import Interval, write_textgrid
    from engine.experiment import Training
    from features.store import FeatureStore
    corpus, d = at_setup
    work = tmp_path_factory.mktemp("damaged")
    root = corpus_copy(corpus, work)
    train, test = split_ids(root, "train"), split_ids(root, "test1")
    ids = SimpleNamespace(no_grid=train[0], no_words=train[1], no_text=train[2], long_text=train[3],
                          test_no_words=test[0], long_grid=test[1])
    grids = root / "ForceAligned"
    (grids / f"{ids.no_grid}.TextGrid").unlink()
    (root / "Transcripts" / f"{ids.no_text}.txt").unlink()
    audio = FeatureStore(d / "audio")
    for u in (ids.no_words, ids.test_no_words):
        write_textgrid(grids / f"{u}.TextGrid", {"words": [Interval(0.0, audio.frames(u) / 50, "")]})
    dur = audio.frames(ids.long_grid) / 50
    write_textgrid(grids / f"{ids.long_grid}.TextGrid",
                   {"words": [Interval(dur * i / 200, dur * (i + 1) / 200, f"w{i}") for i in range(200)]})
    src = FeatureStore(d / "text")
    text = FeatureStore.create(work / "text", name=src.meta["name"], extractor=src.meta["extractor"],
                               params=src.meta["params"], dims=src.dims, frame_rate=src.meta["frame_rate"],
                               extra={"norm_pooling": src.meta["norm_pooling"]})
    with text.writer() as w:
        for u in src.keys():
            x = np.asarray(src[u])
            w.add(u, np.resize(x, (200, x.shape[1])) if u == ids.long_text else x)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        mp.chdir(work)
        loop_config = Training.loop_config  # main.py's loop settings come from the experiment layer
        mp.setattr(Training, "loop_config", lambda self, *a, **k: loop_config(self, *a, **{**k, "eval_batch_size": 7}))
        rc = main.main(at_args(at_setup, "-iter", "6", "--out", str(work / "M"), root=root, text=work / "text"))
    return SimpleNamespace(rc=rc, out=out.getvalue(), err=err.getvalue(), warnings=[str(w.message) for w in caught],
                           run=only_run(work / "M") if rc == 0 else None, root=root, text=work / "text", ids=ids,
                           work=work)


def test_missing_textgrid_is_listed_by_utterance_and_the_run_trains(damaged):
    assert damaged.rc == 0, damaged.err[-3000:]
    assert has_line(damaged.err, "warning: ", "train", "TextGrid", damaged.ids.no_grid), damaged.err
    cfg = json.loads((damaged.run / "config.json").read_text())
    assert cfg["data"]["train"]["items"] == 14 and cfg["data"]["val"]["items"] == 15
    assert "Summary Performance on" in damaged.out and state(damaged.run)["step"] == 6
    # a missing transcript is no reason to leave an utterance out when no word condition is asked for
    assert damaged.ids.no_text not in damaged.err


def test_textgrid_without_words_gives_two_chunks_and_is_scored(at_setup, damaged):
    from features.store import FeatureStore
    from systems.audio_text import audio_text_items, load_trained
    ids = damaged.ids
    assert damaged.rc == 0, damaged.err[-3000:]
    assert ids.no_words not in damaged.err and ids.test_no_words not in damaged.err  # kept, not listed
    audio, text = FeatureStore(at_setup[1] / "audio"), FeatureStore(damaged.text)
    items, words, transcripts = {}, {}, {}
    for split in ("train", "test1"):
        its, ws, ts = audio_text_items(damaged.root, split, audio, text)
        items.update(its)
        words.update(ws)
        transcripts.update(ts)
    assert words[ids.no_words] == [] and words[ids.test_no_words] == []
    method, model = load_trained(damaged.run, audio, text, words, transcripts)
    batch = method.collate([(u, items[u]) for u in (ids.no_words, ids.test_no_words)])
    assert (~batch["mask_audio"]).sum(1).tolist() == [3, 3]  # the global row + C = 2 chunks
    with torch.inference_mode():
        assert np.isfinite(method.predict(model, batch)).all()
    scores = {r["utterance"]: float(r["prediction"])
              for r in csv.DictReader(open(next((damaged.work / "results").glob("*_test1_act.csv"))))}
    assert len(scores) == 15 and np.isfinite(scores[ids.test_no_words])
    assert all(np.isfinite(v) for v in banner_cccs(damaged.out).values()) and len(banner_cccs(damaged.out)) == 3


def test_over_127_words_or_text_rows_are_cut_to_128_rows_with_a_warning(damaged):
    ids = damaged.ids
    assert damaged.rc == 0, damaged.err[-3000:]
    assert has_line(damaged.err, "warning: ", "test1", "128", f"{ids.long_grid} (200 chunks, "), damaged.err
    assert has_line(damaged.err, "warning: ", "train", "128", ids.long_text, "200 tokens)"), damaged.err
    assert any(w.startswith("pad_batch: truncated 1 sequence(s) to 128 rows") for w in damaged.warnings)
    assert "Summary Performance on" in damaged.out and "Val-CCC: " in damaged.out


def test_a_last_validation_batch_of_one_gives_finite_validation_losses(at_setup, damaged):
    """15 validation utterances in batches of 7: the loss is computed over all predictions together, so the
    lone last one neither breaks nor biases it (the predictions equal those of one batch of 15)."""
    from engine.loop import evaluate
    from features.store import FeatureStore
    from systems.audio_text import audio_text_items, load_trained
    assert damaged.rc == 0, damaged.err[-3000:]
    cfg = json.loads((damaged.run / "config.json").read_text())
    assert cfg["loop"]["eval_batch_size"] == 7 and cfg["data"]["val"]["items"] % 7 == 1
    rows = list(csv.DictReader(open(damaged.run / "log.csv")))
    assert [r["step"] for r in rows] == ["3", "6"] and all(np.isfinite(float(r["val_loss"])) for r in rows)
    audio, text = FeatureStore(at_setup[1] / "audio"), FeatureStore(damaged.text)
    items, words, transcripts = audio_text_items(damaged.root, "dev", audio, text)
    method, model = load_trained(damaged.run, audio, text, words, transcripts)
    by7, whole = (evaluate(method, model, items, b, "cpu") for b in (7, 64))
    np.testing.assert_allclose(by7, whole, rtol=1e-4, atol=1e-5)
    loss = method.val_loss(by7, method.targets(items))
    assert np.isfinite(loss) and loss == pytest.approx(cfg["val_loss"], abs=1e-4)


@pytest.mark.parametrize("value", ["1", "0"])
def test_batch_of_one_is_refused_by_the_command_line(value, tmp_path, capsys):
    import main
    with pytest.raises(SystemExit) as e:
        main.main(["--root", str(tmp_path), "-iter", "2", "-batch", value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument -batch" in err and "too small (at least 2)" in err, err


def test_missing_transcript_does_not_matter_without_word_conditions(at_setup, trained, tmp_path, capsys):
    import evaluate_missing
    corpus, d = at_setup
    root = corpus_copy(corpus, tmp_path)
    utt = split_ids(root, "test1")[0]
    (root / "Transcripts" / f"{utt}.txt").unlink()
    assert evaluate_missing.main(["--checkpoints", str(trained("-iter", "3", "--deterministic")), "--root",
                                  str(root), "--audio-store", str(d / "audio"), "--text-store", str(d / "text"),
                                  "--conditions", "frames,bursts", "--rates", "0.5", "--no-absent",
                                  "--sim-seeds", "1", "--bootstrap", "0", "--out", str(tmp_path / "miss")]) == 0
    rows = json.loads((tmp_path / "miss_conditions.json").read_text())["rows"]
    assert [r["condition"] for r in rows] == ["complete", "frames:0.5", "bursts:0.5"]
    assert all(np.isfinite(r[a]) for r in rows for a in ("Act", "Dom", "Val"))
    assert utt not in capsys.readouterr().err


def test_missing_transcript_with_word_conditions_is_a_clear_error(at_setup, trained, tmp_path, capsys):
    """evaluate_missing.py with the words condition: a clear error naming the utterance before any scoring
    (exit 1, nothing written)."""
    import evaluate_missing
    corpus, d = at_setup
    root = corpus_copy(corpus, tmp_path)
    utt = split_ids(root, "test1")[0]
    (root / "Transcripts" / f"{utt}.txt").unlink()
    try:
        rc = evaluate_missing.main(["--checkpoints", str(trained("-iter", "3", "--deterministic")), "--root",
                                    str(root), "--audio-store", str(d / "audio"), "--text-store", str(d / "text"),
                                    "--protocols", "sweep", "--sweep-kinds", "words", "--rates", "0.5",
                                    "--out", str(tmp_path / "miss")])
    except ValueError as e:
        pytest.fail(f"traceback instead of a clear error: ValueError: {e}")
    captured = capsys.readouterr()
    assert rc == 1 and captured.err.splitlines()[-1].startswith("error: ") and utt in captured.err.splitlines()[-1]
    assert "Act" not in captured.out  # refused before the complete-data row was scored
    assert not list(tmp_path.glob("miss*"))


def test_training_with_word_drop_and_a_missing_transcript_is_a_clear_error(at_setup, tmp_path, capsys,
                                                                          monkeypatch):
    """--train-missing word-rows:0.2 needs every train transcript: refused up front, naming the utterances;
    words:0.2 (the transcript re-encoded, issue 20.1) is evaluation-only and refused in training, saying why."""
    import main
    corpus, d = at_setup
    root = corpus_copy(corpus, tmp_path)
    gone = split_ids(root, "train")[:4]  # some of them are in the first batch
    for u in gone:
        (root / "Transcripts" / f"{u}.txt").unlink()
    monkeypatch.chdir(tmp_path)
    try:
        rc = main.main(at_args(at_setup, "-iter", "3", "--train-missing", "word-rows:0.2", "--out",
                               str(tmp_path / "M"), root=root))
    except ValueError as e:
        pytest.fail(f"traceback instead of a clear error: ValueError: {e}")
    err = capsys.readouterr().err
    assert rc == 1 and err.splitlines()[-1].startswith("error: ") and any(u in err for u in gone), err
    for cond in ("words:0.2", "wer:0.2", "words+audio:0.2"):
        assert main.main(at_args(at_setup, "-iter", "3", "--train-missing", cond, "--out", str(tmp_path / "M"))) == 1
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.startswith(f"error: --train-missing {cond}: not available for the audio-text model") \
            and "too costly inside training" in err, err
    assert not (tmp_path / "M").exists()


# ------------------------------------------------------------------------------ published v1.10 NormTerms

def published() -> tuple[Path, Path]:
    speech, text = PUBLISHED / "NormTerm_Speech", PUBLISHED / "NormTerm_Text"
    if not (speech.is_dir() and text.is_dir()):
        pytest.skip(f"{PUBLISHED}: the published v1.10 NormTerms are not here")
    return speech, text


def test_published_v110_normterms_load_with_their_readme_values():
    from features.normterm import NormTerm
    speech, text = published()
    nt_s, nt_t = NormTerm.load(speech), NormTerm.load(text)
    assert nt_s.feat_mean.shape == nt_s.feat_std.shape == (1024,)
    assert nt_t.feat_mean.shape == nt_t.feat_std.shape == (768,)
    assert nt_t.feat_mean.dtype == nt_t.feat_std.dtype == np.float64
    assert nt_s.feat_mean.dtype == nt_s.feat_std.dtype == np.float32
    assert nt_s.labels == {"act": (4.328008765156319, 0.9579139928646752),
                           "dom": (4.447731276793075, 0.8670455463193582),
                           "val": (4.021101978311878, 0.8999097205396257)}
    assert nt_t.labels == nt_s.labels  # byte-identical copies
    assert np.count_nonzero(nt_s.feat_std == np.float32(1e-10)) == 4 and (nt_t.feat_std > 0).all()


def test_published_v110_normterms_train_and_score(at_setup, tmp_path, capsys, monkeypatch):
    """1024-d audio and 768-d text stores (random features around the published means) for the corpus, two
    iterations with --normterm-audio / --normterm-text on the published folders: finite CCCs in the banner."""
    import main
    from features.normterm import NormTerm
    from features.store import FeatureStore
    speech, text_nt = published()
    corpus, d = at_setup
    rng = np.random.default_rng(0)
    src_text = FeatureStore(d / "text")
    stores = {}
    for kind, folder, name, dims, rate in (("audio", speech, "Wav2Vec1024", 1024, 50.0),
                                           ("text", text_nt, "RoBERTa768", 768, None)):
        nt = NormTerm.load(folder)
        store = FeatureStore.create(tmp_path / kind, name=name, extractor="Synthetic", params={"seed": 0},
                                    dims=dims, frame_rate=rate, extra={"norm_pooling": "utterance-mean"})
        with store.writer() as w:
            for u in src_text.keys():
                n = 80 if kind == "audio" else src_text.frames(u)  # 1.6 s of audio, the real token count
                w.add(u, (nt.feat_mean + nt.feat_std * rng.standard_normal((n, dims))).astype(np.float32))
        stores[kind] = tmp_path / kind
    monkeypatch.chdir(tmp_path)
    assert main.main(at_args(at_setup, "-iter", "2", "--out", str(tmp_path / "M"), audio=stores["audio"],
                             text=stores["text"], nt_audio=speech, nt_text=text_nt)) == 0
    out = capsys.readouterr().out
    cccs = banner_cccs(out)
    assert sorted(cccs) == ["Act", "Dom", "Val"] and all(np.isfinite(v) for v in cccs.values()), out
    cfg = json.loads((only_run(tmp_path / "M") / "config.json").read_text())
    assert cfg["model"] == {"audio_dim": 7 * 1024, "text_dim": 768}
    assert cfg["normterm"]["audio"]["labels"]["act"] == [4.328008765156319, 0.9579139928646752]
