"""Issue 20 on the MDRE family: one definition of an absent stream (revealing nothing, not even the length),
words removed and re-read, simulated recogniser errors, and the literature's protocols through mdre.py."""
import numpy as np
import pytest
import torch

from features.missing import parse_condition
from systems.mdre import ABSENT_WORDS, UNK, MDREMethod, apply_missing


def toy_method(kind: str, n: int = 12, seed: int = 0) -> tuple[MDREMethod, list]:
    """A method over in-memory features of `n` utterances of different lengths (frames 5..60, words 1..12) and its
    labelled items: an untrained model already maps different lengths to different outputs."""
    rng = np.random.default_rng(seed)
    utts = [f"u{i}" for i in range(n)]
    mfcc = {u: rng.normal(size=(5 + 5 * i, 39)).astype(np.float32) for i, u in enumerate(utts)}
    prosody = {u: rng.normal(size=(1, 35)).astype(np.float32) for u in utts}
    tokens = {u: rng.integers(2, 20, size=1 + i).astype(np.int64) for i, u in enumerate(utts)}
    vocab = ["_PAD_", "_UNK_", *[f"w{i}" for i in range(2, 20)]]
    method = MDREMethod(kind, mfcc, prosody, tokens, vocab, seed=seed, substitutes=tuple(range(2, 20)))
    return method, [(u, i % 4) for i, u in enumerate(utts)]


def trained_like(method):
    """The method's model with every parameter moved off its initial value (a fresh GRU's zero candidate bias
    keeps its state at 0 on zero input whatever the length; a trained one does not)."""
    torch.manual_seed(0)
    model = method.build_model().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def draws(kind: str, cond: str, sim_seed: int = 0):
    method, items = toy_method(kind)
    model = trained_like(method)
    with torch.no_grad():
        method.condition, method.eval_seed = parse_condition(cond), sim_seed
        from engine.loop import evaluate
        return evaluate(method, model, items, 5, "cpu"), method, model, items


@pytest.mark.parametrize("kind, cond", [("ARE", "audio-absent"), ("TRE", "text-absent"), ("MDREA", "present:audio"),
                                        ("MDRE", "present:text"), ("TRE", "words:1")])
def test_absent_stream_gives_one_output_whatever_the_length(kind, cond):
    """Item 2: an absent stream reveals nothing about the utterance: ARE without audio, TRE without text give
    ONE output for utterances of 5..60 frames / 1..12 words (before: zero frames / _UNK_ per word of the original
    length gave a different output per length); a fusion model with one stream absent depends on the other only."""
    logits, *_ = draws(kind, cond)
    if kind in ("ARE", "TRE"):
        assert np.ptp(logits, axis=0).max() < 1e-6, logits
        complete, *_ = draws(kind, "none")
        assert np.ptp(complete, axis=0).max() > 1e-4  # the lengths do change the complete data's outputs
    else:  # present:audio gives the same logits as text absent, whatever the transcript's length was
        other, *_ = draws(kind, "text-absent" if cond == "present:audio" else "audio-absent")
        np.testing.assert_array_equal(logits, other)


def test_empty_transcript_reads_as_text_absent_and_absent_inputs_are_fixed():
    """Item 2: the one definition: one zero frame + zero prosody, one _UNK_ word; an empty transcript (the
    prediction path of an utterance without words) reads exactly as text-absent, and the Draw says text was
    absent for it."""
    method, items = toy_method("MDREA")
    rng = np.random.default_rng(0)
    m, p, t, info = apply_missing(parse_condition("audio-absent"), np.ones((40, 39)), np.ones(35), np.arange(2, 9), rng)
    assert m.shape == (1, 39) and not m.any() and not p.any() and (t == np.arange(2, 9)).all()
    assert info["absent"] == {"audio"}
    m, p, t, info = apply_missing(parse_condition("text-absent"), np.ones((40, 39)), np.ones(35), np.arange(2, 9), rng)
    assert (t == ABSENT_WORDS).all() and len(t) == 1 and m.shape == (40, 39)
    method.tokens["u3"] = np.zeros(0, np.int64)  # no transcript
    m1, p1, t1, i1 = method.utterance("u3", None, None)
    m2, p2, t2, i2 = method.utterance("u3", parse_condition("text-absent"), None)
    assert (t1 == t2).all() and (t1 == [UNK]).all() and i1["present"] == i2["present"] == "audio"
    assert method.utterance("u4", None, None)[3]["present"] == "audio+text"


def test_words_removes_words_and_wer_reaches_its_target():
    """Items 1 and 3: words:R removes round(R n) word ids (a shorter sequence; words:1 is text-absent exactly),
    words:0 changes nothing; wer:R substitutes from the given training words and realises R within tolerance."""
    ids = np.arange(2, 22)
    cond = parse_condition("words:0.25")
    _, _, t, info = apply_missing(cond, np.ones((4, 39)), np.ones(35), ids, np.random.default_rng(1))
    assert len(t) == 15 and set(t) < set(ids) and UNK not in t and info["wer"] == pytest.approx(0.25)
    _, _, t, _ = apply_missing(parse_condition("words:0"), np.ones((4, 39)), np.ones(35), ids, np.random.default_rng(1))
    assert (t == ids).all()
    subs = tuple(range(100, 140))
    wers = []
    for s in range(40):
        _, _, t, info = apply_missing(parse_condition("wer:0.3"), np.ones((4, 39)), np.ones(35), ids,
                                      np.random.default_rng(s), substitutes=subs)
        assert set(t) <= set(ids) | set(subs)
        wers.append(info["wer"])
    assert np.mean(wers) == pytest.approx(0.3, abs=0.03)
    complete, *_ = draws("TRE", "none")
    none0, *_ = draws("TRE", "words:0")
    np.testing.assert_array_equal(complete, none0)
    all_gone, *_ = draws("TRE", "words:1")
    absent, *_ = draws("TRE", "text-absent")
    np.testing.assert_array_equal(all_gone, absent)


def test_draw_reports_present_modalities_and_realised_wer():
    """Items 3 and 5: a Draw carries class indices, per utterance the modalities it really had (random-missing
    never removes both), and for wer the realised WER of the draw."""
    method, items = toy_method("MDREA")
    model = trained_like(method)
    d = method.draw(model, items, parse_condition("random-missing:0.7"), 1, "cpu")
    assert set(d.present) <= {"audio", "text", "audio+text"} and len(set(d.present)) > 1
    assert d.preds.shape == (len(items),) and d.labels.tolist() == [y for _, y in items]
    again = method.draw(model, items, parse_condition("random-missing:0.7"), 1, "cpu")
    assert again.present == d.present and (again.preds == d.preds).all()  # seeded per utterance
    w = method.draw(model, items, parse_condition("wer:0.4"), 0, "cpu")
    assert w.extra["realised_wer"] == pytest.approx(0.4, abs=0.1) and set(w.present) == {"audio+text"}
    assert method.condition is None  # evaluation leaves the method as it found it



def test_training_augmentation_uses_the_same_absent_definition():
    """Item 2 (training): --train-missing audio-absent / text-absent / random-missing:P build the training batches
    with the same absent streams as evaluation: one zero frame (length 1), one _UNK_ word, never both absent."""
    method, items = toy_method("MDREA")
    method.train_condition = "audio-absent"
    b = method.train_collate(items)
    assert (b["mfcc_len"] == 1).all() and not b["mfcc"].any() and not b["prosody"].any()
    assert b["token_len"].tolist() == [len(method.tokens[u]) for u, _ in items]
    method.train_condition = "random-missing:0.6"
    b = method.train_collate(items * 4)
    audio_gone = (b["mfcc_len"] == 1).numpy()
    text_gone = (b["token_len"] == 1).numpy() & (b["tokens"][:, 0] == UNK).numpy()
    assert audio_gone.any() and text_gone.any() and not (audio_gone & text_gone).any()
    assert not b["prosody"][torch.from_numpy(audio_gone)].any()


@pytest.mark.parametrize("argv, message", [
    (["--model", "ARE", "--train-missing", "random-missing:0.3"], "random-missing needs two or more modalities"),
    (["--model", "TRE", "--train-missing", "present:text"], "present: names a non-empty proper subset"),
])
def test_training_modality_conditions_refused_on_one_modality(tmp_path, capsys, argv, message):
    import mdre
    assert mdre.main(["--root", str(tmp_path / "absent-root"), "--out", str(tmp_path / "M"), *argv]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "M").exists()


@pytest.mark.parametrize("model, kinds", [("ARE", {"frames", "bursts"}), ("TRE", {"words", "wer"}),
                                          ("MDREA", {"frames", "bursts", "words", "wer"})])
def test_default_sweep_takes_the_kinds_the_model_reads(tmp_path, model, kinds):
    """Item 6: the default --sweep-kinds sweep only the model's own streams (ARE audio, TRE words); the rates
    default to 0..0.7 and each protocol starts with the complete data."""
    import mdre
    from engine.cli import parsed_arguments
    args, ap = parsed_arguments(mdre.main, ["--root", str(tmp_path), "--model", model, "--protocols", "sweep",
                                           "--missing", "none"])
    plan = mdre.checked_conditions(args)
    assert {c.kind for c in plan["sweep"][1:]} == kinds and str(plan["sweep"][0]) == "none"
    assert sorted({c.rate for c in plan["sweep"][1:]}) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    # --missing none: no list to score
    assert "conditions" not in plan and set(mdre.output_names(args, ap, [1])["protocols"]) == {"sweep"}
