"""features.missing: missing-data simulators, condition specs and per-utterance seeding."""
import numpy as np
import pytest

from corpora.textgrid import Interval
from features.missing import (DEFAULT_BURST, KINDS, Condition, MissingModality, absent, apply_condition,
                              apply_word_drop, drop_frames, drop_words, markov_loss, markov_mask, markov_params,
                              parse_condition, token_word_from_counts, utterance_rng, word_frames,
                              word_token_rows)

FPS = 50.0
WORDS = [Interval(0.00, 0.31, "hello"), Interval(0.31, 0.52, "big"), Interval(0.60, 1.01, "world"),
         Interval(1.01, 1.50, "again")]
COUNTS = [2, 1, 3, 1]  # BPE tokens per word
TOKEN_WORD = token_word_from_counts(COUNTS)  # <s> w0 w0 w1 w2 w2 w2 w3 </s>


def _audio(T=80, D=6, seed=0):
    return np.random.default_rng(seed).normal(size=(T, D)).astype(np.float32) + 5.0  # never 0


def _text(seed=1):
    return np.random.default_rng(seed).normal(size=(len(TOKEN_WORD), 4)) + 5.0


def _runs(mask):
    """Lengths of the runs of True in a bool vector."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


# ------------------------------------------------------------------------------------------ frame simulators

@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5, 0.77, 1.0])
def test_drop_frames_exact_count_mask_and_input_untouched(rate):
    x = _audio(T=123)
    before = x.copy()
    y, mask = drop_frames(x, rate, np.random.default_rng(3), fill=-7.0)
    assert np.array_equal(x, before)
    assert y is not x and y.shape == x.shape and y.dtype == x.dtype
    assert mask.dtype == bool and mask.shape == (123,)
    assert mask.sum() == min(122, round(rate * 123))  # one row always stays
    assert np.all(y[mask] == -7.0)
    assert np.array_equal(y[~mask], x[~mask])


def test_drop_frames_default_fill_is_zero_and_1d_input():
    x = np.arange(1, 11, dtype=float)
    y, mask = drop_frames(x, 0.3, np.random.default_rng(0))
    assert mask.sum() == 3 and np.all(y[mask] == 0.0) and np.array_equal(y[~mask], x[~mask])
    assert np.array_equal(x, np.arange(1, 11, dtype=float))


def test_markov_params_formulas_and_stationary_rate():
    p_nl, p_ll = markov_params(0.2, 5)
    assert p_ll == pytest.approx(0.8)
    assert p_nl == pytest.approx(0.2 / (5 * 0.8))
    assert p_nl / (p_nl + 1 - p_ll) == pytest.approx(0.2)  # stationary P(L)
    assert markov_params(1.0, 5) == (1.0, 1.0)
    assert markov_params(5 / 6, 5)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4, 0.5])
def test_markov_loss_rate_and_burst_length(rate):
    T = 200_000
    mask = markov_mask(T, rate, np.random.default_rng(int(rate * 100)), burst=DEFAULT_BURST)
    assert mask.shape == (T,) and mask.dtype == bool
    assert abs(mask.mean() - rate) <= 0.01
    runs = _runs(mask)
    assert abs(runs.mean() - DEFAULT_BURST) <= 0.1 * DEFAULT_BURST


def test_markov_loss_other_burst_length():
    mask = markov_mask(200_000, 0.3, np.random.default_rng(11), burst=12)
    assert abs(mask.mean() - 0.3) <= 0.01
    assert abs(_runs(mask).mean() - 12) <= 1.2


def test_markov_loss_stationary_start():
    # the first frame is lost with probability `rate` (stationary start), not P(N->L) as in the original
    first = [markov_mask(200, 0.4, np.random.default_rng(s))[0] for s in range(4000)]  # never all lost
    assert abs(np.mean(first) - 0.4) < 0.03


def test_markov_loss_returns_new_array_and_mask():
    x = _audio(T=500)
    before = x.copy()
    y, mask = markov_loss(x, 0.3, np.random.default_rng(5), fill=0.0)
    assert np.array_equal(x, before)
    assert 0 < mask.sum() < 500
    assert np.all(y[mask] == 0) and np.array_equal(y[~mask], x[~mask])
    assert markov_loss(x, 0.0, np.random.default_rng(0))[1].sum() == 0
    assert markov_loss(x, 1.0, np.random.default_rng(0))[1].sum() == 499  # one frame kept
    assert markov_loss(x[:0], 0.3, np.random.default_rng(0))[1].shape == (0,)


def test_no_simulator_blanks_a_whole_utterance():
    """Short utterances often draw an all-lost Markov chain (rate 0.5, burst 5, 10 frames: ~7 % of draws before
    the fix); frames rounding up (0.95 * 10 -> 10) and words covering all the audio also blanked everything."""
    rng = np.random.default_rng(0)
    masks = np.array([markov_mask(10, 0.5, rng, burst=5) for _ in range(20_000)])
    assert not masks.all(axis=1).any()
    assert 0.45 < masks.mean() < 0.52  # the loss rate barely moves
    assert markov_mask(1, 0.8, np.random.default_rng(1), burst=5).tolist() == [False]
    for T in (1, 2, 10):
        assert not drop_frames(_audio(T=T), 0.95, np.random.default_rng(T))[1].all()
    words = [Interval(0.0, 0.5, "two"), Interval(0.5, 1.0, "words")]  # spanning all 51 frames
    for seed in range(20):
        a, t, d = apply_word_drop(_audio(T=51), _text()[:4], words, token_word_from_counts([1, 1]), 1.0,
                                  np.random.default_rng(seed), FPS)
        assert len(d) == 2 and (a != 0).all(axis=1).sum() == 1
    for spec in ("frames:1", "bursts:1", "bursts:0.8:4"):
        a, _ = apply_condition(spec, _audio(T=7), _text(), None, None, np.random.default_rng(2), FPS)
        assert (a != 0).all(axis=1).any(), spec
    assert (apply_condition("audio-absent", _audio(T=7), _text(), None, None, np.random.default_rng(2), FPS)[0]
            == 0).all()


def test_markov_unreachable_rate_and_bad_burst_raise():
    with pytest.raises(ValueError, match="unreachable"):
        markov_params(0.9, 5)
    with pytest.raises(ValueError, match="burst"):
        markov_params(0.2, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        markov_params(1.5, 5)


# ------------------------------------------------------------------------------------------------ word drop

@pytest.mark.parametrize("rate,n", [(0.0, 0), (0.25, 1), (0.5, 2), (0.6, 2), (0.75, 3), (1.0, 4)])
def test_drop_words_counts(rate, n):
    d = drop_words(WORDS, rate, np.random.default_rng(2))
    assert len(d) == n == round(rate * len(WORDS))
    assert len(set(d.tolist())) == n and np.all((d >= 0) & (d < len(WORDS)))
    assert np.array_equal(d, np.sort(d))


def test_drop_words_many_and_empty():
    words = [Interval(i * 0.1, i * 0.1 + 0.1, "w") for i in range(37)]
    assert len(drop_words(words, 0.3, np.random.default_rng(0))) == round(0.3 * 37)
    assert len(drop_words([], 0.5, np.random.default_rng(0))) == 0


def test_token_word_map_and_rows():
    assert TOKEN_WORD.tolist() == [-1, 0, 0, 1, 2, 2, 2, 3, -1]
    assert word_token_rows(TOKEN_WORD, [0, 2]).tolist() == [1, 2, 4, 5, 6]
    assert word_token_rows(TOKEN_WORD, []).tolist() == []
    # a global token in front of <s>
    tw = token_word_from_counts([1, 2], lead=2, trail=1)
    assert tw.tolist() == [-1, -1, 0, 1, 1, -1]
    assert word_token_rows(tw, [0, 1]).tolist() == [2, 3, 4]


def test_word_frames_hand_computed():
    # frame i at i/50 s. word 1: 0.31 s -> nearest frame 15 (0.30 s), 0.52 s -> 26 (0.52 s): frames 15..26
    # word 2: 0.60 s -> 30; 1.01 s is halfway between frames 50 (1.00 s) and 51 (1.02 s): a tie, the earlier
    # frame wins -> frames 30..50
    assert word_frames(WORDS, [1], FPS, 100).tolist() == list(range(15, 27))
    assert word_frames(WORDS, [2], FPS, 100).tolist() == list(range(30, 51))
    assert word_frames(WORDS, [1, 2], FPS, 100).tolist() == list(range(15, 27)) + list(range(30, 51))
    # ties (up to float rounding) -> earlier frame: 0.03 s -> 1 (not 2); 0.035 -> 2; 0.07 -> 3 (not 4); 0.071 -> 4
    w = [Interval(0.035, 0.071, "x"), Interval(0.03, 0.07, "y")]
    assert word_frames(w, [0], FPS, 10).tolist() == [2, 3, 4]
    assert word_frames(w, [1], FPS, 10).tolist() == [1, 2, 3]
    # a word past the end of the audio is clipped onto the last frame
    assert word_frames(WORDS, [3], FPS, 40).tolist() == [39]
    assert word_frames(WORDS, [], FPS, 100).tolist() == []


def test_apply_word_drop_text_audio_and_specials():
    audio, text = _audio(T=80), _text()
    a0, t0 = audio.copy(), text.copy()
    for seed in range(20):
        a, t, dropped = apply_word_drop(audio, text, WORDS, TOKEN_WORD, 0.5, np.random.default_rng(seed), FPS)
        assert np.array_equal(audio, a0) and np.array_equal(text, t0)
        assert len(dropped) == 2
        rows = word_token_rows(TOKEN_WORD, dropped)
        blank_rows = np.flatnonzero((t == 0).all(axis=1))
        assert blank_rows.tolist() == rows.tolist()
        assert 0 not in blank_rows and len(TOKEN_WORD) - 1 not in blank_rows  # <s>, </s> kept
        frames = word_frames(WORDS, dropped, FPS, 80)
        assert np.flatnonzero((a == 0).all(axis=1)).tolist() == frames.tolist()
    # all words dropped: every row but the specials is blank
    _, t, _ = apply_word_drop(audio, text, WORDS, TOKEN_WORD, 1.0, np.random.default_rng(0), FPS)
    assert np.flatnonzero((t == 0).all(axis=1)).tolist() == list(range(1, 8))
    # text only
    a, t, d = apply_word_drop(audio, text, WORDS, TOKEN_WORD, 0.5, np.random.default_rng(0), FPS,
                              drop_audio=False)
    assert np.array_equal(a, audio) and a is not audio and len(d) == 2


def test_apply_word_drop_rejects_bad_token_map():
    with pytest.raises(ValueError, match="rows"):
        apply_word_drop(_audio(), _text()[:-1], WORDS, TOKEN_WORD, 0.5, np.random.default_rng(0), FPS)
    with pytest.raises(ValueError, match="word index"):
        apply_word_drop(_audio(), _text(), WORDS[:2], TOKEN_WORD, 0.5, np.random.default_rng(0), FPS)


def test_absent():
    x = _audio(T=10)
    before = x.copy()
    y, mask = absent(x, fill=0.0)
    assert np.array_equal(x, before) and y.shape == x.shape and y.dtype == x.dtype
    assert np.all(y == 0) and mask.all() and mask.shape == (10,)
    assert np.all(absent(x, fill=2.5)[0] == 2.5)


# ----------------------------------------------------------------------------------------------- conditions

@pytest.mark.parametrize("spec", ["none", "frames:0.2", "bursts:0.3", "bursts:0.3:8", "words:0.1",
                                  "words+audio:0.25", "audio-absent", "text-absent", "frames:1",
                                  "frames:0.123456789", "wer:0.2", "word-rows:0.5", "present:audio+mocap",
                                  "random-missing:0.3"])
def test_parse_str_round_trip(spec):
    c = parse_condition(spec)
    assert str(c) == spec
    assert parse_condition(str(c)) == c


def test_condition_defaults_and_flags():
    assert parse_condition("none").rate == 0.0
    assert parse_condition("audio-absent").rate == 1.0
    assert parse_condition("audio-absent").missing_modality is MissingModality.AUDIO
    assert parse_condition("text-absent").missing_modality is MissingModality.TEXT
    assert parse_condition("bursts:0.3").missing_modality is None
    assert parse_condition("bursts:0.3").burst == DEFAULT_BURST
    assert parse_condition(" Frames : 0.50 ") == Condition("frames", 0.5)
    assert str(Condition("bursts", 0.3)) == "bursts:0.3"
    assert set(KINDS) == {"none", "frames", "bursts", "words", "wer", "word-rows", "words+audio", "audio-absent",
                          "text-absent", "mocap-absent", "present", "random-missing"}
    assert parse_condition("present:text+audio") == Condition("present", modalities=("audio", "text"))
    assert str(parse_condition("present:text+audio")) == "present:audio+text"
    assert parse_condition("mocap-absent").missing_modality is MissingModality.MOCAP


@pytest.mark.parametrize("spec,msg", [("gaps:0.1", "unknown"), ("frames:1.5", r"\[0, 1\]"),
                                      ("words:-0.1", r"\[0, 1\]"), ("frames", "needs a rate"),
                                      ("frames:abc", "malformed"), ("frames:0.1:3", "malformed"),
                                      ("bursts:0.95", "unreachable"), ("audio-absent:0.5", "no rate"),
                                      ("", "string"), ("frames:nan", r"\[0, 1\]")])
def test_parse_errors(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_condition(spec)


def test_condition_constructor_errors():
    with pytest.raises(ValueError, match="unknown"):
        Condition("drop", 0.1)
    with pytest.raises(ValueError, match="only to 'bursts'"):
        Condition("frames", 0.1, burst=3)


@pytest.mark.parametrize("kind", ["none", "frames", "bursts", "word-rows", "audio-absent", "text-absent"])
def test_apply_condition_every_kind(kind):
    spec = kind if kind in ("none", "audio-absent", "text-absent") else f"{kind}:0.5"
    audio, text = _audio(T=80), _text()
    a0, t0 = audio.copy(), text.copy()
    a, t = apply_condition(spec, audio, text, WORDS, TOKEN_WORD, np.random.default_rng(0), FPS)
    assert np.array_equal(audio, a0) and np.array_equal(text, t0)
    assert a is not audio and t is not text and a.shape == audio.shape and t.shape == text.shape
    a_blank = (a == 0).all(axis=1)
    t_blank = (t == 0).all(axis=1)
    if kind == "none":
        assert not a_blank.any() and not t_blank.any()
    elif kind == "frames":
        assert a_blank.sum() == 40 and not t_blank.any()
    elif kind == "bursts":
        assert a_blank.any() and not t_blank.any()
    elif kind == "word-rows":
        assert not a_blank.any() and t_blank.any() and not t_blank[[0, -1]].any()
    elif kind == "audio-absent":
        assert a_blank.all() and np.array_equal(t, text)
    elif kind == "text-absent":
        assert t_blank.all() and np.array_equal(a, audio)
    assert np.array_equal(a[~a_blank], audio[~a_blank]) and np.array_equal(t[~t_blank], text[~t_blank])


def test_mocap_absent_is_refused_for_audio_and_text_streams():
    with pytest.raises(ValueError, match="motion-capture"):
        apply_condition("mocap-absent", _audio(), _text(), None, None, np.random.default_rng(0), FPS)


@pytest.mark.parametrize("spec,msg", [("words:0.5", "encoded again"), ("wer:0.2", "encoded again"),
                                      ("words+audio:0.5", "encoded again"), ("present:audio", "absent"),
                                      ("random-missing:0.3", "absent")])
def test_apply_condition_refuses_what_needs_the_system(spec, msg):
    # removing words means encoding the shorter transcript again; blanking its rows is `word-rows`
    with pytest.raises(ValueError, match=msg):
        apply_condition(spec, _audio(), _text(), WORDS, TOKEN_WORD, np.random.default_rng(0), FPS)


def test_apply_condition_words_need_alignment():
    with pytest.raises(ValueError, match="word alignment"):
        apply_condition("word-rows:0.5", _audio(), _text(), None, None, np.random.default_rng(0), FPS)
    # non-word kinds do not need it
    apply_condition("bursts:0.2", _audio(), _text(), None, None, np.random.default_rng(0), FPS)


# ------------------------------------------------------------------------------------------------- seeding

def test_utterance_rng_reproducible_and_distinct():
    audio, text = _audio(T=300), _text()

    def run(seed, utt, cond):
        return apply_condition(cond, audio, text, WORDS, TOKEN_WORD, utterance_rng(seed, utt, cond), FPS)

    for cond in ("frames:0.3", "bursts:0.3", "word-rows:0.5"):
        a1, t1 = run(7, "MSP-PODCAST_0001_0001", cond)
        a2, t2 = run(7, "MSP-PODCAST_0001_0001", cond)
        assert np.array_equal(a1, a2) and np.array_equal(t1, t2)
    r = utterance_rng(7, "utt_a", "frames:0.3").random(8)
    assert np.array_equal(r, utterance_rng(7, "utt_a", parse_condition("frames:0.30")).random(8))
    assert not np.array_equal(r, utterance_rng(7, "utt_b", "frames:0.3").random(8))
    assert not np.array_equal(r, utterance_rng(8, "utt_a", "frames:0.3").random(8))
    assert not np.array_equal(r, utterance_rng(7, "utt_a", "frames:0.4").random(8))
    a1, _ = run(7, "utt_a", "frames:0.3")
    a2, _ = run(7, "utt_b", "frames:0.3")
    assert not np.array_equal(a1, a2)


def test_utterance_rng_stable_across_processes():
    # a fixed value: guards against a salted hash() sneaking in (PYTHONHASHSEED differs between runs)
    import subprocess
    import sys
    code = ("from features.missing import utterance_rng; "
            "print(utterance_rng(3, 'Ses01F_impro01_F000', 'bursts:0.2').integers(0, 2**31, 4).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(h), "PYTHONPATH": "."}).stdout for h in (1, 2)}
    assert len(outs) == 1
    assert outs.pop().strip() == str(utterance_rng(3, "Ses01F_impro01_F000", "bursts:0.2")
                                     .integers(0, 2**31, 4).tolist())


def test_utterance_rng_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        utterance_rng(-1, "u", "none")
    with pytest.raises(ValueError, match="unknown"):
        utterance_rng(1, "u", "nope:0.1")


def test_simulators_require_generator():
    with pytest.raises(TypeError, match="Generator"):
        drop_frames(_audio(), 0.1, 42)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_frames(_audio(), 1.2, np.random.default_rng(0))


def test_markov_transition_probabilities():
    p_nl, p_ll = markov_params(0.25, 4)
    m = markov_mask(200_000, 0.25, np.random.default_rng(9), burst=4)
    prev, nxt = m[:-1], m[1:]
    assert abs(nxt[prev].mean() - p_ll) < 0.01
    assert abs(nxt[~prev].mean() - p_nl) < 0.01


# --------------------------------------------------------------------- transcripts edited, whole modalities

from features.missing import (absent_modalities, asr_errors, edit_words, protocol_conditions,  # noqa: E402
                              word_errors)

SENTENCE = "so i was thinking we could go to the beach tomorrow if the weather holds up".split()
VOCAB = ["yes", "no", "maybe", "the", "beach", "car", "house", "today"]


def test_word_errors_is_the_levenshtein_distance():
    assert word_errors("a b c".split(), "a b c".split()) == 0
    assert word_errors("a b c".split(), "a x c d".split()) == 2  # one substitution, one insertion
    assert word_errors("a b c".split(), []) == 3
    assert word_errors([], "a b".split()) == 2
    assert word_errors("a b c d".split(), "b c d e".split()) == 2  # deletion + insertion, not 4 substitutions
    def textbook(a, b):  # the O(n m) table, cell by cell
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
        return d[-1][-1]
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = (list(rng.integers(0, 4, rng.integers(0, 9))) for _ in range(2))
        assert word_errors(a, b) == textbook(a, b)


@pytest.mark.parametrize("target", [0.1, 0.3, 0.5])
def test_wer_hits_its_target_within_tolerance(target):
    realised = []
    for seed in range(200):
        words, info = asr_errors(SENTENCE, target, np.random.default_rng(seed), VOCAB)
        assert info["wer"] == word_errors(SENTENCE, words) / len(SENTENCE)  # what is recorded is what happened
        assert info["substitutions"] + info["deletions"] + info["insertions"] == round(target * len(SENTENCE))
        realised.append(info["wer"])
    # rounding to whole edits: |E/n - target| <= 0.5/n; an insertion may rarely undo a deletion (lower WER)
    assert abs(np.mean(realised) - target) <= 0.5 / len(SENTENCE) + 0.01
    assert max(realised) <= round(target * len(SENTENCE)) / len(SENTENCE) + 1e-12


def test_wer_substitutes_come_from_the_vocabulary_and_differ():
    words, info = asr_errors(["the"] * 20, 1.0, np.random.default_rng(0), ["the", "a"])
    assert info["substitutions"] == 12 and info["deletions"] == 4 and info["insertions"] == 4
    assert set(words) <= {"the", "a"} and words.count("a") >= 12
    with pytest.raises(ValueError, match="vocabulary"):
        asr_errors(SENTENCE, 0.3, np.random.default_rng(0), ["only"])
    assert asr_errors(SENTENCE, 0.0, np.random.default_rng(0), [])[0] == SENTENCE


def test_edit_words_removes_words_and_reports_them():
    out, info = edit_words(SENTENCE, "words:0.5", np.random.default_rng(3))
    assert len(out) == len(SENTENCE) - round(0.5 * len(SENTENCE)) == len(SENTENCE) - len(info["dropped"])
    assert out == [w for k, w in enumerate(SENTENCE) if k not in info["dropped"]]
    assert edit_words(SENTENCE, "words:0", np.random.default_rng(3))[0] == SENTENCE
    assert edit_words(SENTENCE, "words:1", np.random.default_rng(3))[0] == []
    assert edit_words([5, 9, 5], "words:0.34", np.random.default_rng(0))[1]["deletions"] == 1  # any tokens
    with pytest.raises(ValueError, match="does not edit"):
        edit_words(SENTENCE, "frames:0.3", np.random.default_rng(0))


def test_absent_modalities_of_each_kind():
    mods = ("audio", "text", "mocap")
    rng = np.random.default_rng(0)
    assert absent_modalities("text-absent", mods) == {"text"}
    assert absent_modalities("mocap-absent", ("audio", "text")) == set()
    assert absent_modalities("present:audio+mocap", mods) == {"text"}
    assert absent_modalities("frames:0.3", mods) == set()
    draws = [absent_modalities("random-missing:0.5", mods, rng) for _ in range(3000)]
    assert all(len(d) < 3 for d in draws)  # at least one modality kept
    share = np.mean([("audio" in d) for d in draws])
    # P(absent) = p, except that all-absent draws (p^3) keep one of the three: p - p^3/3
    assert abs(share - (0.5 - 0.125 / 3)) < 0.03
    assert absent_modalities("random-missing:1", mods, rng) != set()


def test_protocol_conditions():
    fixed = [str(c) for c in protocol_conditions("fixed", ["text", "audio", "mocap"])]
    assert fixed == ["none", "present:audio", "present:text", "present:mocap", "present:audio+text",
                     "present:audio+mocap", "present:text+mocap"]
    assert [str(c) for c in protocol_conditions("fixed", ["audio", "text"])] == ["none", "present:audio",
                                                                                 "present:text"]
    assert [str(c) for c in protocol_conditions("random", ["audio", "text"], rates=[0, 0.2])] == [
        "none", "random-missing:0.2"]
    sweep = [str(c) for c in protocol_conditions("sweep", ["audio"], rates=[0, 0.5], kinds=["frames", "wer"])]
    assert sweep == ["none", "frames:0.5", "wer:0.5"]
    with pytest.raises(ValueError, match="two or more"):
        protocol_conditions("fixed", ["audio"])
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_conditions("mmin", ["audio", "text"])


def test_seeded_says_which_conditions_depend_on_the_draw():
    assert not parse_condition("none").seeded and not parse_condition("text-absent").seeded
    assert not parse_condition("present:audio").seeded and not parse_condition("words:0").seeded
    assert parse_condition("frames:0.1").seeded and parse_condition("random-missing:0.2").seeded


def test_absent_with_fixed_rows_hides_the_length():
    a, m = absent(np.ones((17, 4), np.float32), rows=2)
    b, _ = absent(np.ones((5, 4), np.float32), rows=2)
    assert a.shape == b.shape == (2, 4) and np.array_equal(a, b) and m.all() and a.dtype == np.float32
