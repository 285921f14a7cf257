"""Degraded transcripts are encoded again by the store's own encoder, cached per condition and seed."""
import shutil

import numpy as np
import pytest

from features.degraded_text import DegradedText
from features.store import FeatureStore


@pytest.fixture()
def text_store(at_setup, tmp_path):
    from corpora.msp_podcast import read_msp_podcast
    from corpora.records import read_transcript_file
    root, d = at_setup
    shutil.copytree(d / "text", tmp_path / "text")  # the cache is written inside the store: use a copy
    store = FeatureStore(tmp_path / "text")
    recs = [r for r in read_msp_podcast(root, split="test1", require_audio=False).records if r.utt_id in store]
    transcripts = {r.utt_id: read_transcript_file(r.transcript_path) for r in recs[:6]}
    return store, transcripts


def test_rate_zero_is_the_store_and_everything_removed_is_none(text_store):
    store, transcripts = text_store
    deg = DegradedText(store)
    utt, text = next(iter(transcripts.items()))
    feats, info = deg.features(utt, text, "words:0", 0)
    assert np.array_equal(feats, store[utt]) and info["wer"] == 0.0
    feats, info = deg.features(utt, text, "words:1", 0)
    assert feats is None and info["wer"] == 1.0
    assert deg.encoded == 0  # neither needed the encoder


def test_removed_words_are_encoded_again_not_blanked(text_store):
    from features.text import TokenFeatures
    store, transcripts = text_store
    deg = DegradedText(store)
    utt, text = max(transcripts.items(), key=lambda kv: len(kv[1].split()))
    feats, info = deg.features(utt, text, "words:0.5", 0)
    words, _ = deg.degraded(utt, text, "words:0.5", 0)
    assert len(words) == len(text.split()) - len(info["dropped"]) > 0
    expected = TokenFeatures(store.meta["params"]["model"], device="cpu")([" ".join(words)])[0]
    assert feats.shape == expected.shape and np.allclose(feats, expected, atol=1e-5)
    assert feats.shape[0] < store.frames(utt)  # fewer tokens: the words are gone, not zeroed
    assert deg.encoded == 1


def test_a_second_sweep_encodes_nothing_and_a_changed_draw_is_encoded_again(text_store):
    store, transcripts = text_store
    first = DegradedText(store, vocabulary=["alpha", "beta", "gamma"])
    infos = first.prepare(transcripts, "wer:0.4", 1)
    assert first.encoded > 0 and all(0 <= i["wer"] <= 1 for i in infos.values())
    again = DegradedText(store, vocabulary=["alpha", "beta", "gamma"])  # e.g. the next checkpoint of a sweep
    again.prepare(transcripts, "wer:0.4", 1)
    utt, text = next(iter(transcripts.items()))
    a, _ = again.features(utt, text, "wer:0.4", 1)
    assert again.encoded == 0 and a is not None
    other = DegradedText(store, vocabulary=["delta", "epsilon"])  # other substitutes: other texts, re-encoded
    other.prepare(transcripts, "wer:0.4", 1)
    assert other.encoded > 0
    assert first.cache_root("wer:0.4", 1) != first.cache_root("wer:0.4", 2)


def test_only_token_stores_can_be_re_encoded(at_setup):
    _, d = at_setup
    with pytest.raises(ValueError, match="cannot be re-encoded"):
        DegradedText(FeatureStore(d / "audio"))
