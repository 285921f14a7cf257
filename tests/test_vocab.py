"""MDRE text side: tokenizer, vocabulary (train-only vs faithful), index encoding, GloVe and random embeddings."""
import json
import warnings
import zipfile

import numpy as np
import pytest

from features.vocab import (PAD, UNK, EmbeddingFileError, TruncationWarning, Vocabulary, _PUNKT_ABBREVIATIONS,
                            _PUNKT_COLLOCATIONS, _PUNKT_SENT_STARTERS, build_vocabulary, load_glove,
                            random_embedding, split_sentences, tokenize)

# ------------------------------------------------------------------------------------------ tokenizer

TOKEN_CASES = [
    ("I don't know. [LAUGHTER] Okay.", ["i", "do", "n't", "know", ".", "[", "laughter", "]", "okay", "."]),
    ('He said "no way" to me.', ["he", "said", "``", "no", "way", "''", "to", "me", "."]),
    ("What? Are you serious?!", ["what", "?", "are", "you", "serious", "?", "!"]),
    ("It costs $3.50, 12 of them.", ["it", "costs", "$", "3.50", ",", "12", "of", "them", "."]),
    ("Yeah. I know.", ["yeah", ".", "i", "know", "."]),  # the sentence split: not 'yeah.'
    ("It's 5. Then 6.", ["it", "'s", "5", ".", "then", "6", "."]),
    ("Mr. Smith is here.", ["mr.", "smith", "is", "here", "."]),  # abbreviation keeps its period
    ("I can't... I won't.", ["i", "ca", "n't", "...", "i", "wo", "n't", "."]),
    ("I-- I'm gonna go.", ["i", "--", "i", "'m", "gon", "na", "go", "."]),
    ("We're here, aren't we?", ["we", "'re", "here", ",", "are", "n't", "we", "?"]),
    ("Oh my God!  [BREATHING] Um; fine.", ["oh", "my", "god", "!", "[", "breathing", "]", "um", ";", "fine", "."]),
    ('"Stop." Why?', ["``", "stop", ".", "''", "why", "?"]),
    ("", []),
    ("   ", []),
]


@pytest.mark.parametrize("text,expected", TOKEN_CASES)
def test_tokenize_hand_written_cases(text, expected):
    assert tokenize(text) == expected


def test_sentence_split():
    assert split_sentences("Yeah. I know. Mr. Smith left? Okay!") == ["Yeah.", "I know.", "Mr. Smith left?", "Okay!"]


def test_documented_difference_abbreviation_before_a_capital():
    # 'ok' is a Punkt abbreviation; without the orthographic table only the 39 sentence starters (here 'I')
    # end a sentence after it. The real model may also split before 'Let' (see the module docstring).
    assert tokenize("Ok. Let's go.") == ["ok.", "let", "'s", "go", "."]
    assert tokenize("OK. I know.") == ["ok", ".", "i", "know", "."]


def test_same_as_nltk_word_tokenize_given_the_same_tables(tmp_path, monkeypatch):
    """Wiring check: nltk.word_tokenize on a punkt_tab folder holding the built-in tables (orthographic table
    empty) gives exactly our tokens, before lower-casing."""
    import nltk
    import nltk.tokenize as nt

    d = tmp_path / "tokenizers" / "punkt_tab" / "english"
    d.mkdir(parents=True)
    (d / "abbrev_types.txt").write_text("\n".join(_PUNKT_ABBREVIATIONS))
    (d / "sent_starters.txt").write_text("\n".join(_PUNKT_SENT_STARTERS))
    (d / "collocations.tab").write_text("\n".join("\t".join(c) for c in _PUNKT_COLLOCATIONS))
    (d / "ortho_context.tab").write_text("")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)] + list(nltk.data.path))
    clear = getattr(nt._get_punkt_tokenizer, "cache_clear", lambda: None)
    clear()
    try:
        texts = [t for t, _ in TOKEN_CASES] + [
            "Ok. Let's go. Dr. Who? A. B. c. d.", "Well... I mean. [LAUGHTER] 'Cause it's 9 p.m. Now.",
            "They said \"fine.\" Then--  nothing."]
        for text in texts:
            assert tokenize(text) == [t.lower() for t in nltk.word_tokenize(text)], text
    finally:
        clear()  # no later user of word_tokenize sees these tables


def test_tokenize_rejects_non_text():
    with pytest.raises(TypeError):
        tokenize(None)


# ------------------------------------------------------------------------------------------ vocabulary

TRAIN = ["The cat sat.", "The dog ran!"]
TEST = ["A zebra sat."]


def test_build_first_appearance_order_and_specials():
    v = Vocabulary.build(TRAIN)
    assert v.tokens == [PAD, UNK, "the", "cat", "sat", ".", "dog", "ran", "!"]
    assert len(v) == 9 and v[0] == PAD and v[1] == UNK
    assert v.index("cat") == 3 and v.index("zebra") == 1
    assert Vocabulary.build([["x", "y"], "y z"]).tokens == [PAD, UNK, "x", "y", "z"]  # token lists accepted


def test_train_only_vocabulary_excludes_test_words_faithful_includes_them():
    v = build_vocabulary(TRAIN, all_texts=TRAIN + TEST)
    assert "zebra" not in v and "a" not in v
    assert v == Vocabulary.build(TRAIN)
    f = build_vocabulary(TRAIN, all_texts=TRAIN + TEST, faithful=True)
    assert "zebra" in f and "a" in f and set(v.tokens) < set(f.tokens)
    assert build_vocabulary(TRAIN, all_texts=TEST, faithful=True).tokens[-5:] == ["the", "cat", "dog", "ran", "!"]
    with pytest.raises(ValueError, match="all_texts"):
        build_vocabulary(TRAIN, faithful=True)


def test_encode_padding_unknown_and_truncation():
    v = Vocabulary.build(TRAIN)
    ids = v.encode(["the", "zebra", "sat", "."], max_len=6)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 1, 4, 5, 0, 0]
    assert v.encode("A zebra sat.", max_len=5).tolist() == [1, 1, 4, 5, 0]  # a str is tokenised first
    assert v.encode([], max_len=3).tolist() == [0, 0, 0]
    assert v.encode(TRAIN[0]).shape == (128,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert v.encode(["the", "cat", "sat"], max_len=3).tolist() == [2, 3, 4]  # exactly max_len: no warning
    with pytest.warns(TruncationWarning, match="5 tokens cut to 3"):
        assert v.encode(["the", "cat", "sat", "the", "dog"], max_len=3).tolist() == [2, 3, 4]
    assert v.decode([2, 1, 4, 0, 3]) == ["the", UNK, "sat"]
    with pytest.raises(ValueError):
        v.encode(["the"], max_len=0)


def test_encode_batch_lengths_and_one_warning():
    v = Vocabulary.build(TRAIN)
    with pytest.warns(TruncationWarning) as record:
        m, lengths = v.encode_batch(["The cat sat.", "The dog ran! The cat sat.", ""], max_len=4)
    assert len(record) == 1 and "1 of 3" in str(record[0].message)
    assert m.shape == (3, 4) and m.dtype == np.int64
    assert m.tolist() == [[2, 3, 4, 5], [2, 6, 7, 8], [0, 0, 0, 0]]
    assert lengths.tolist() == [4, 4, 0]


def test_json_round_trip_and_validation():
    v = Vocabulary.build(TRAIN + TEST)
    blob = json.dumps({"vocab": v.to_json()})
    again = Vocabulary.from_json(json.loads(blob)["vocab"])
    assert again == v and again.tokens == v.tokens
    assert Vocabulary.from_json(json.dumps(v.to_json())) == v
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(["a", PAD, UNK])
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary([PAD, UNK, "a", "b", "a"])
    with pytest.raises(ValueError, match="list"):
        Vocabulary.from_json('{"a": 1}')


# ------------------------------------------------------------------------------------------ embeddings

GLOVE_LINES = [
    "the 0.1 0.2 0.3",
    "cat 1 2 3",
    "Dog 4 5 6",          # case-sensitive: the vocabulary's 'dog' is not this
    ". . . 7 8 9",        # a token with spaces (glove.840B has some): the last 3 fields are the vector
    ". 0.5 -0.5 0.25",
    "cat 9 9 9",          # a duplicate: the first one wins
]
VOCAB_TOKENS = [PAD, UNK, "the", "cat", "dog", ".", ". . .", "zebra"]


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_glove_rows_coverage_and_random_rows(tmp_path):
    path = write_lines(tmp_path / "glove.txt", GLOVE_LINES)
    vocab = Vocabulary(VOCAB_TOKENS)
    m, cov = load_glove(path, vocab, dim=3, seed=5)
    assert m.dtype == np.float32 and m.shape == (8, 3)
    assert m[0].tolist() == [0.0, 0.0, 0.0]  # _PAD_
    np.testing.assert_allclose(m[2], [0.1, 0.2, 0.3], rtol=1e-6)
    assert m[3].tolist() == [1, 2, 3]
    assert m[5].tolist() == [0.5, -0.5, 0.25]
    assert m[6].tolist() == [7, 8, 9]
    random_rows = m[[1, 4, 7]]  # _UNK_, dog, zebra
    assert np.all(random_rows >= -0.25) and np.all(random_rows < 0.25) and len(np.unique(random_rows)) == 9
    assert (cov.found, cov.tokens, cov.missing) == (4, 6, ("dog", "zebra"))
    assert cov.ratio == pytest.approx(4 / 6) and "4 of 6" in str(cov)
    m2, _ = load_glove(path, VOCAB_TOKENS, dim=3, seed=5, progress=True)  # a plain token list works too
    np.testing.assert_array_equal(m, m2)
    m3, _ = load_glove(path, vocab, dim=3, seed=6)
    np.testing.assert_array_equal(m3[[0, 2, 3, 5, 6]], m[[0, 2, 3, 5, 6]])
    assert not np.array_equal(m3[[1, 4, 7]], random_rows)


def test_load_glove_uniform_range_for_many_missing_rows(tmp_path):
    path = write_lines(tmp_path / "g.txt", ["x 1 1"])
    m, cov = load_glove(path, [PAD, UNK] + [f"w{i}" for i in range(2000)], dim=2, seed=0)
    rows = m[1:]
    assert cov.found == 0 and rows.min() >= -0.25 and rows.max() < 0.25
    assert abs(rows.mean()) < 0.01 and rows.std() == pytest.approx(0.5 / np.sqrt(12), rel=0.03)


def test_load_glove_malformed_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.txt", ["the 0.1 0.2 0.3", "cat 1 2 3", "oops 1 2", "dog 1 2 3"])
    with pytest.raises(EmbeddingFileError, match=r"bad\.txt: line 3: 2 values after the word, expected 3"):
        load_glove(path, VOCAB_TOKENS, dim=3)
    path = write_lines(tmp_path / "nan.txt", ["the 0.1 0.2 0.3", "cat 1 x 3"])
    with pytest.raises(EmbeddingFileError, match=r"nan\.txt: line 2: b'x' is not a number"):
        load_glove(path, VOCAB_TOKENS, dim=3)


def test_load_glove_dimension_mismatch_header_and_zip(tmp_path):
    path = write_lines(tmp_path / "g4.txt", ["the 1 2 3 4", "cat 1 2 3 4"])
    with pytest.raises(EmbeddingFileError, match=r"g4\.txt: line 1 holds a 4-d vector, expected 3"):
        load_glove(path, VOCAB_TOKENS, dim=3)
    path = write_lines(tmp_path / "g2.txt", ["the 1 2", "cat 1 2"])
    with pytest.raises(EmbeddingFileError, match=r"g2\.txt: line 1 holds a 2-d vector, expected 3"):
        load_glove(path, VOCAB_TOKENS, dim=3)
    path = write_lines(tmp_path / "w2v.txt", ["2 3", "the 1 2 3", "cat 4 5 6"])  # word2vec header line
    m, cov = load_glove(path, VOCAB_TOKENS, dim=3)
    assert m[2].tolist() == [1, 2, 3] and cov.found == 2
    with pytest.raises(EmbeddingFileError, match="header says 3-d"):
        load_glove(path, VOCAB_TOKENS, dim=300)
    with zipfile.ZipFile(tmp_path / "glove.zip", "w") as z:
        z.writestr("glove.txt", "the 1 2 3\n")
    with pytest.raises(EmbeddingFileError, match="zip"):
        load_glove(tmp_path / "glove.zip", VOCAB_TOKENS, dim=3)
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        load_glove(tmp_path / "absent.txt", VOCAB_TOKENS, dim=3)


def test_random_embedding():
    e = random_embedding(3000, seed=1)
    assert e.shape == (3000, 100) and e.dtype == np.float32
    assert not e[0].any()  # _PAD_ row zeroed
    assert abs(e[1:].mean()) < 1e-3 and e[1:].std() == pytest.approx(0.01, rel=0.02)
    np.testing.assert_array_equal(e, random_embedding(3000, seed=1))
    assert not np.array_equal(e, random_embedding(3000, seed=2))
    assert random_embedding(10, dim=4, seed=1, zero_pad=False)[0].any()


# ------------------------------------------------------------------------------------------ on IEMOCAP layout


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    from corpora.iemocap import read_iemocap
    from corpora.synth.iemocap import write_iemocap
    root = tmp_path_factory.mktemp("iemocap_vocab") / "IEMOCAP_full_release"
    write_iemocap(root, n=40, seed=11, progress=False)
    return read_iemocap(root)


def test_train_fold_vocabulary_never_holds_a_held_out_only_token(iemocap):
    from corpora.iemocap import four_class, mdre_random_folds
    items = four_class(iemocap.records, "mdre")
    all_texts = [r.transcript for r in iemocap.records]  # every utterance, non-4-class ones included
    held_out_only_somewhere = False
    for train, dev, test in mdre_random_folds(items):
        train_tokens = {t for r, _ in train for t in tokenize(r.transcript)}
        held_out_only = {t for r, _ in dev + test for t in tokenize(r.transcript)} - train_tokens
        held_out_only_somewhere |= bool(held_out_only)
        v = build_vocabulary([r.transcript for r, _ in train], all_texts=all_texts)
        assert set(v.tokens[2:]) == train_tokens
        assert not held_out_only & set(v.tokens)
        for r, _ in dev + test:  # held-out-only words encode as _UNK_
            tokens = tokenize(r.transcript)
            ids = v.encode(tokens)
            assert [i == 1 for i in ids[: len(tokens)]] == [t in held_out_only for t in tokens]
        faithful = build_vocabulary([r.transcript for r, _ in train], all_texts=all_texts, faithful=True)
        assert held_out_only <= set(faithful.tokens)
    assert held_out_only_somewhere  # the check above is not vacuous on this corpus


def test_multi_sentence_transcripts_leave_no_word_with_a_period(iemocap):
    texts = [r.transcript for r in iemocap.records]
    assert any(t.count(".") > 1 for t in texts)  # the demo corpus has two-sentence utterances
    v = Vocabulary.build(texts)
    assert [t for t in v.tokens if t.endswith(".")] == ["."]
