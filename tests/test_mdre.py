"""The MDRE family end to end on a small synthetic IEMOCAP release: folds (random and leave-one-session-out),
the fold table, result files (per utterance, confusion matrix, WA/UA JSON), resume, early stopping, the
vocabulary of the training part only, and the missing-data conditions."""
import csv
import json
import re

import numpy as np
import pytest

from systems.mdre import UNK, apply_missing


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    from corpora.synth.iemocap import write_iemocap
    root = tmp_path_factory.mktemp("mdre_corpus") / "IEMOCAP_full_release"
    write_iemocap(root, n=80, seed=3, progress=False)
    return root


TAG = "MDREA_loso_iter6_batch8_val-every3_deterministic"  # run()'s settings, as the names carry them


def run(iemocap, tmp_path, *extra):
    import mdre
    return mdre.main(["--root", str(iemocap), "-iter", "6", "-batch", "8", "--val-every", "3", "--out",
                      str(tmp_path / "M"), "--results", str(tmp_path / "R"), "--no-progress", "--deterministic",
                      *extra])


def test_loso_fold_table_result_files_and_resume(iemocap, tmp_path, capsys):
    """The fold table and result files; issue 20: every --protocols protocol and the --missing list score both
    folds' models through engine.robustness into one file per protocol (one series per fold), with intervals."""
    from corpora.iemocap import four_class, read_iemocap
    assert run(iemocap, tmp_path, "--model", "MDREA", "--protocol", "loso", "--folds", "4,5",
               "--missing", "words:1,text-absent", "--protocols", "fixed,random,sweep",
               "--rates", "0,0.5", "--sweep-kinds", "wer", "--sim-seeds", "2", "--bootstrap", "200") == 0
    out = capsys.readouterr().out
    assert f"| {TAG} fold | train | dev | test | WA [95% CI] | UA [95% CI] |" in out
    assert "| mean of 2 (± sd over folds) |" in out
    assert re.search(rf"{TAG} fold 4: WA \d\.\d{{4}} \[\d\.\d\d, \d\.\d\d\]  UA \d\.\d{{4}} \[", out)
    R = tmp_path / "R"
    folds = list(csv.DictReader(open(R / f"{TAG}_folds.csv")))
    assert [r["fold"] for r in folds] == ["4", "5"] and all(r["WA_ci"].startswith("[") for r in folds)
    records = {r.utt_id: r for r, _ in four_class(read_iemocap(iemocap).records, "mdre")}
    for k in (4, 5):
        rows = list(csv.DictReader(open(R / f"{TAG}_fold{k}.csv")))
        # leave one session out: the test part is exactly session k's four-class utterances
        assert {r["utterance"] for r in rows} == {u for u, rec in records.items() if rec.session == k}
        res = json.loads((R / f"{TAG}_fold{k}.json").read_text())
        labels = np.array([res["classes"].index(r["label"]) for r in rows])
        pred = np.array([res["classes"].index(r["prediction"]) for r in rows])
        assert res["WA"] == pytest.approx(np.mean(labels == pred))
        recalls = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
        assert res["UA"] == pytest.approx(np.mean(recalls))
        assert np.array(res["confusion"]).sum() == len(rows)
        assert (R / f"{TAG}_fold{k}_confusion.png").read_bytes()[:4] == b"\x89PNG"
        assert res["protocol"] == "loso" and res["fold"] == k and res["code_version"]
        assert res["inference"]["rtf"] > 0 and res["inference"]["utterances"] == len(rows)
        # the vocabulary holds no token seen only outside the training part
        from features.vocab import tokenize
        cfg = json.loads((tmp_path / "M" / f"{TAG}_fold{k}" / "config.json").read_text())
        train_tokens = {t for u, rec in records.items() if rec.session != k for t in tokenize(rec.transcript or "")}
        assert set(cfg["vocab"]) - {"_PAD_", "_UNK_"} <= train_tokens
        assert cfg["loop"]["clip_value"] == 10.0 and cfg["loop"]["patience"] == 7
    # the protocols: one file each, both folds as series, complete data first, intervals on every row
    import mdre
    from engine.cli import parsed_arguments
    names = mdre.output_names(*parsed_arguments(mdre.main, [
        "--root", str(iemocap), "--model", "MDREA", "--protocol", "loso", "-iter", "6", "-batch", "8", "--val-every",
        "3", "--deterministic", "--out", str(tmp_path / "M"), "--results", str(R), "--protocols", "fixed,random,sweep",
        "--missing", "frames:0.5"]), [4, 5])
    assert set(names["protocols"]) == {"fixed", "random", "sweep", "conditions"}
    docs = {p: json.loads(path.read_text()) for p, path in names["protocols"].items()}
    conditions = {"fixed": ["complete", "present:audio", "present:text"],
                  "random": ["complete", "random-missing:0.5"], "sweep": ["complete", "wer:0.5"],
                  "conditions": ["complete", "words:1", "text-absent"]}
    for p, doc in docs.items():
        assert doc["protocol"] == p and doc["metric"] == "WA/UA" and doc["interval"]["resamples"] == 200
        assert [(r["series"], r["condition"]) for r in doc["rows"]] == [
            (f"fold {k}", c) for k in (4, 5) for c in conditions[p]]
        assert all(r["WA_ci"] is not None and r["UA_ci"] is not None for r in doc["rows"])
        assert names["protocols"][p].with_suffix(".png").is_file()
    fixed = {(r["series"], r["condition"]): r for r in docs["fixed"]["rows"]}
    assert fixed[("fold 4", "present:audio")]["present"] == {"audio": 1.0, "text": 0.0}
    assert {"mean", "pooled"} <= set(docs["fixed"]["summary"]["by_series"]["fold 5"])  # MMIN's two averages
    assert set(docs["sweep"]["summary"]["by_series"]["fold 4"]) == {"wer"}  # robustness summary per curve
    random_row = docs["random"]["rows"][1]
    assert random_row["sim_seeds"] == 2 and 0 < random_row["present"]["text"] < 1
    assert all(r["realised_wer"] == pytest.approx(0.5, abs=0.15) for r in docs["sweep"]["rows"] if r["kind"] == "wer")
    # words:1 IS text absent, utterance by utterance
    per = list(csv.DictReader(open(R / docs["conditions"]["per_utterance_csv"])))
    by = {(r["condition"], r["utterance"]): r["prediction"] for r in per}
    assert all(by[("words:1", u)] == by[("text-absent", u)] for _, u in by)
    assert {r["present"] for r in per if r["condition"] == "words:1"} == {"audio"}
    # a second run resumes every fold and writes the same table
    before = (R / f"{TAG}_folds.csv").read_bytes()
    assert run(iemocap, tmp_path, "--model", "MDREA", "--protocol", "loso", "--folds", "4,5", "--bootstrap", "200") == 0
    assert "already finished" in capsys.readouterr().out
    assert (R / f"{TAG}_folds.csv").read_bytes() == before


def test_random_folds_faithful_vocab_and_early_stop(iemocap, tmp_path, capsys):
    import shutil

    from corpora.iemocap import four_class, mdre_random_folds, read_iemocap
    items = four_class(read_iemocap(iemocap).records, "mdre")
    test_utt = mdre_random_folds(items)[0][2][0][0].utt_id
    iemocap = shutil.copytree(iemocap, tmp_path / "corpus")  # a word only a test utterance says
    for f in iemocap.glob("Session*/dialog/transcriptions/*.txt"):
        text = f.read_text()
        if test_utt in text:
            f.write_text("\n".join(line + " zyzzyva" if line.startswith(test_utt) else line
                                   for line in text.splitlines()) + "\n")
    assert run(iemocap, tmp_path, "--model", "TRE", "--folds", "1", "--faithful-vocab", "-iter", "300",
               "--val-every", "1", "--patience", "1", "--lr", "3") == 0
    train, dev, test = mdre_random_folds(items)[0]
    (row,) = csv.DictReader(open(tmp_path / "R" / "TRE_random5_allvocab_iter300_batch8_lr3.0_val-every1_patience1_deterministic_folds.csv"))
    assert (int(row["train"]), int(row["dev"]), int(row["test"])) == (len(train), len(dev), len(test))
    assert row["stopped_early"] == "True" and int(row["steps"]) < 300
    assert "early stop at iteration" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "M" / "TRE_random5_allvocab_iter300_batch8_lr3.0_val-every1_patience1_deterministic_fold1" / "config.json").read_text())
    from features.vocab import tokenize
    every = {t for r in read_iemocap(iemocap).records for t in tokenize(r.transcript or "")}
    outside = every - {t for r, _ in train for t in tokenize(r.transcript or "")}
    # the original's leak, kept by --faithful-vocab: every transcript's tokens, other classes' and test's too
    assert "zyzzyva" in outside and set(cfg["vocab"]) == every | {"_PAD_", "_UNK_"}


def test_are_normalised_and_bad_arguments(iemocap, tmp_path, capsys):
    assert run(iemocap, tmp_path, "--model", "ARE", "--protocol", "loso", "--folds", "1", "--normalise") == 0
    cfg = json.loads((tmp_path / "M" / "ARE_loso_norm_iter6_batch8_val-every3_deterministic_fold1" / "config.json").read_text())
    assert len(cfg["norm"]["mfcc"][0]) == 39 and len(cfg["norm"]["prosody"][1]) == 35
    assert run(iemocap, tmp_path, "--model", "ARE", "--folds", "9") == 1
    assert "folds 1..5" in capsys.readouterr().err
    assert run(iemocap, tmp_path, "--model", "MDRE", "--missing", "words+audio:0.2") == 1
    assert "word timings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(iemocap, tmp_path, "--model", "ARE", "-batch", "1")


def test_missing_conditions_on_mdre_inputs():
    from features.missing import parse_condition
    rng = np.random.default_rng(0)
    mfcc, pros, ids = rng.normal(size=(40, 39)), rng.normal(size=35), np.arange(2, 22)
    m, p, t, _ = apply_missing(parse_condition("words:0.25"), mfcc, pros, ids, np.random.default_rng(1))
    assert len(t) == 15 and UNK not in t and (m is mfcc) and (ids == np.arange(2, 22)).all()  # removed, not _UNK_
    m, p, t, _ = apply_missing(parse_condition("frames:0.5"), mfcc, pros, ids, np.random.default_rng(1))
    assert (np.abs(m).sum(1) == 0).sum() == 20 and np.abs(mfcc).sum(1).min() > 0
    m, p, t, _ = apply_missing(parse_condition("audio-absent"), mfcc, pros, ids, rng)
    assert m.shape == (1, 39) and not m.any() and not p.any() and (t == ids).all()
    m, p, t, _ = apply_missing(parse_condition("text-absent"), mfcc, pros, ids, rng)
    assert (t == [UNK]).all() and (m == mfcc).all()
    with pytest.raises(ValueError, match="not available for MDRE"):
        apply_missing(parse_condition("words+audio:0.2"), mfcc, pros, ids, rng)


def test_torchrun_two_cpu_processes(iemocap, tmp_path):
    """Rank 0 extracts the features while rank 1 waits; both train; only rank 0 writes results and prints."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    root = shutil.copytree(iemocap, tmp_path / "corpus", ignore=shutil.ignore_patterns("Features"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(repo / "mdre.py"), "--root", str(root), "--model", "MDREA", "--protocol", "loso",
                           "--folds", "2", "-iter", "4", "-batch", "8", "--val-every", "2", "--out", str(tmp_path / "M"),
                           "--results", str(tmp_path / "R"), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("MDREA_loso_iter4_batch8_val-every2 fold 2: WA") == 1 and proc.stdout.count("| mean of 1 (± sd over folds) |") == 1
    assert (tmp_path / "R" / "MDREA_loso_iter4_batch8_val-every2_fold2.json").is_file()
    assert [r["step"] for r in csv.DictReader(open(tmp_path / "M" / "MDREA_loso_iter4_batch8_val-every2_fold2" / "log.csv"))] == ["2", "4"]


# ------------------------------------------------------------------ issue 19: items 4, 8, 27, 31

@pytest.fixture(scope="module")
def no_session3(iemocap, tmp_path_factory):
    """The module's corpus without Session3 (and without feature stores, so a refusal writing one shows)."""
    import shutil
    root = tmp_path_factory.mktemp("no_session3") / "IEMOCAP_full_release"
    shutil.copytree(iemocap, root, ignore=shutil.ignore_patterns("Session3", "Features"))
    return root


def refused(main, argv, capsys) -> tuple[int, str]:
    """(exit code, stderr) of a script refusing its arguments: 2 from argparse, 1 from a clear error."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_loso_folds_are_numbered_by_held_out_session(no_session3, tmp_path, capsys):
    """Item 4: with Session3 absent, fold 4 still holds out Session 4 and fold 5 Session 5; --folds 5 is a fold,
    --folds 3 is refused naming the absent session; a warning says it is absent."""
    from corpora.iemocap import four_class, loso_session_folds, read_iemocap
    items = four_class(read_iemocap(no_session3).records, "mdre")
    folds, absent = loso_session_folds(items)
    assert sorted(folds) == [1, 2, 4, 5] and absent == [3]
    assert {r.session for r, _ in folds[4][2]} == {4} and {r.session for r, _ in folds[5][2]} == {5}
    assert run(no_session3, tmp_path, "--model", "TRE", "--protocol", "loso", "-iter", "2") == 0
    out, err = capsys.readouterr()
    assert "Session 3" in err and "warning" in err
    R = tmp_path / "R"
    (table,) = R.glob("TRE_loso*_folds.csv")
    assert [r["fold"] for r in csv.DictReader(open(table))] == ["1", "2", "4", "5"]
    assert not list(R.glob("*_fold3*")) and not list((tmp_path / "M").glob("*_fold3"))
    for k in (4, 5):
        (res,) = R.glob(f"TRE_loso*_fold{k}.json")
        assert json.loads(res.read_text())["fold"] == k
        tested = {r["utterance"] for r in csv.DictReader(open(res.with_suffix(".csv")))}
        assert tested == {r.utt_id for r, _ in folds[k][2]}
    assert run(no_session3, tmp_path, "--model", "TRE", "--protocol", "loso", "-iter", "2", "--folds", "5") == 0
    assert "already finished" in capsys.readouterr().out
    code, err = refused(__import__("mdre").main, ["--root", str(no_session3), "--model", "TRE", "--protocol",
                                                  "loso", "--folds", "3", "--out", str(tmp_path / "M3")], capsys)
    assert code == 1 and "--folds 3: Session 3" in err and "1, 2, 4, 5" in err


@pytest.mark.parametrize("argv, code, message", [
    # item 27: every flag checked before any work
    (["--folds", "x"], 2, "'x' in 'x' is not a whole number"),
    (["--folds", "1,,2"], 2, "empty entry"),
    (["--folds", "1,1"], 2, "1 is listed twice"),
    (["--seed", "-1"], 2, "--seed: -1 is too small (at least 0)"),
    (["--patience", "-3"], 2, "--patience: -3 is too small (at least 0: 0 is off)"),
    (["--clip", "-1"], 2, "--clip: -1.0 is out of range (at least 0: 0 is off)"),
    (["--missing", "mocap-absent"], 1, "--missing mocap-absent: not available for MDREA"),
    (["--missing", "frames:0.3,,words:0.3"], 1, "--missing frames:0.3,,words:0.3: an empty entry"),
    (["--train-missing", "words+audio:0.2"], 1, "--train-missing words+audio:0.2: not available for MDREA: it "
                                                "needs word timings"),
    (["--train-missing", "mocap-absent"], 1, "--train-missing mocap-absent: not available for MDREA"),
    (["--train-missing", "nonsense:1"], 2, "--train-missing: unknown missing-data condition kind 'nonsense'"),
    (["--protocol", "loso", "--folds", "3"], 1, "--folds 3: Session 3 has no four-class utterance"),
    (["--protocol", "loso", "--folds", "2,6"], 1, "--folds 6: the loso protocol has folds 1, 2, 4, 5"),
    # item 8: a condition on a stream the model does not read
    (["--model", "ARE", "--missing", "frames:0.3,words:0.3"], 1, "--missing words:0.3: ARE has no text stream"),
    (["--model", "ARE", "--missing", "text-absent"], 1, "--missing text-absent: ARE has no text stream"),
    (["--model", "TRE", "--missing", "frames:0.3"], 1, "--missing frames:0.3: TRE has no audio stream"),
    (["--model", "TRE", "--missing", "bursts:0.3"], 1, "--missing bursts:0.3: TRE has no audio stream"),
    (["--model", "TRE", "--missing", "audio-absent"], 1, "--missing audio-absent: TRE has no audio stream"),
    (["--model", "TRE", "--train-missing", "frames:0.2"], 1, "--train-missing frames:0.2: TRE has no audio"),
    (["--model", "ARE", "--train-missing", "words:0.2"], 1, "--train-missing words:0.2: ARE has no text"),
    (["--model", "TRE", "--train-missing", "text-absent"], 1, "TRE reads text only"),
    # issue 20: word-rows has no meaning for word ids; protocols needing two modalities on a unimodal model;
    # a sweep kind on a stream the model does not read; bad protocol flags
    (["--missing", "word-rows:0.3"], 1, "--missing word-rows:0.3: not available for MDREA: it blanks rows of "
                                        "contextual token features"),
    (["--model", "ARE", "--protocols", "fixed"], 1, "--protocols fixed: the fixed-condition protocol needs a model "
                                                    "of two or more modalities, not audio"),
    (["--model", "TRE", "--protocols", "sweep,random"], 1, "--protocols random: the random-missing protocol needs"),
    (["--model", "ARE", "--protocols", "sweep", "--sweep-kinds", "frames,wer"], 1,
     "--sweep-kinds wer:0.5: ARE has no text stream"),
    (["--model", "TRE", "--missing", "present:text"], 1, "--missing present:text: TRE reads text"),
    (["--missing", "present:mocap"], 1, "--missing present:mocap: MDREA reads audio + text"),
    (["--protocols", "fixed,loso"], 1, "--protocols fixed,loso: unknown protocol 'loso'"),
    (["--protocols", "random", "--rates", "0,1.5"], 1, "--rates 0,1.5: distinct numbers in [0, 1]"),
    (["--sim-seeds", "0"], 2, "--sim-seeds: 0 is too small"),
    (["--ci-method", "normal"], 2, "--ci-method: invalid choice"),
    # item 31: the unmasked attention is MDREA's
    (["--model", "MDRE", "--unmasked-attention"], 1, "--unmasked-attention: MDRE has no attention"),
])
def test_flags_refused_before_any_work(no_session3, tmp_path, capsys, argv, code, message):
    import mdre
    got, err = refused(mdre.main, ["--root", str(no_session3), "--out", str(tmp_path / "M"), "--results",
                                   str(tmp_path / "R"), "--no-progress", *argv], capsys)
    assert got == code and message in err, err
    assert "Traceback" not in err
    # nothing written: no run or result folder, no feature store extracted
    assert not (tmp_path / "M").exists() and not (tmp_path / "R").exists()
    assert not (no_session3 / "Features").exists()


def test_unmasked_attention_flag_trains_records_and_names_it(iemocap, tmp_path):
    """Item 31: --unmasked-attention reaches the model, the checkpoint's config, the result file and the name."""
    import mdre
    from engine.cli import parsed_arguments
    base = ["--root", str(iemocap), "--model", "MDREA", "--out", str(tmp_path / "M"), "--results", str(tmp_path / "R")]
    assert mdre.run_tag(*parsed_arguments(mdre.main, base + ["--unmasked-attention"])) != \
        mdre.run_tag(*parsed_arguments(mdre.main, base))
    assert run(iemocap, tmp_path, "--model", "MDREA", "--protocol", "loso", "--folds", "5", "-iter", "2",
               "--unmasked-attention") == 0
    (run_dir,) = (tmp_path / "M").glob("MDREA_loso*unmasked-attention*_fold5")
    assert json.loads((run_dir / "config.json").read_text())["model"]["masked_attention"] is False
    (res,) = (tmp_path / "R").glob("MDREA_loso*unmasked-attention*_fold5.json")
    assert json.loads(res.read_text())["masked_attention"] is False
