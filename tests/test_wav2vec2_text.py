"""wav2vec2 and text-encoder extractors against direct transformers calls, with tiny random models saved to a
temp folder and loaded by path (the same code path as a hub id), plus the real offline MiniLM and the CLIs."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from corpora.textgrid import Interval, read_words  # noqa: E402
from features.store import FeatureStore  # noqa: E402
from features.text import MINILM, TokenFeatures, WordFeatures, resolve_model  # noqa: E402
from features.wav2vec2 import (Wav2Vec2Features, conv_output_length, receptive_field,  # noqa: E402
                               standardise)

TINY_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 4, 4), conv_bias=True,
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0)
SENTENCES = ["You know, that weekend seemed average to me.", "I really did not expect that at all!",
             "Honestly the food was great and the people were lovely.", "Well.", "what a terrible, awful day"]


def _tiny_wav2vec2(folder: Path, norm: str) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(**TINY_W2V, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    Wav2Vec2Model(cfg).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def w2v_layer(tmp_path_factory):
    return _tiny_wav2vec2(tmp_path_factory.mktemp("w2v_layer"), "layer")


@pytest.fixture(scope="module")
def w2v_group(tmp_path_factory):
    return _tiny_wav2vec2(tmp_path_factory.mktemp("w2v_group"), "group")


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    """A byte-level BPE tokenizer trained on a few sentences, wrapped as RobertaTokenizer, and a random
    2-layer RobertaModel, saved together like a hub checkpoint."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    folder = tmp_path_factory.mktemp("roberta")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 5, vocab_size=320, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line.strip()]
    RobertaTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=130, type_vocab_size=1,
                        pad_token_id=1, bos_token_id=0, eos_token_id=2)
    RobertaModel(cfg).eval().save_pretrained(folder)
    return folder


def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n) + 0.01).astype(np.float32) for n in lengths]


def _direct(folder, x, eps=1e-5):
    """The original recipe by hand: processor-style standardisation, model(input_values).last_hidden_state."""
    from transformers import Wav2Vec2Model

    model = Wav2Vec2Model.from_pretrained(folder).eval()
    xn = (x - x.mean()) / np.sqrt(x.var() + eps)
    with torch.no_grad():
        return model(torch.from_numpy(xn.astype(np.float32))[None]).last_hidden_state[0].numpy()


# ------------------------------------------------------------------------------------------------ wav2vec2

def test_frame_count_formula():
    # the real wav2vec2 conv chain gives T = floor((N - 400) / 320) + 1, 50 frames/s
    k, s = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
    assert receptive_field(k, s) == 400
    for n in [400, 401, 719, 720, 16000, 16001, 48321, 160000]:
        assert conv_output_length(n, k, s) == (n - 400) // 320 + 1
    assert conv_output_length(399, k, s) == 0


def test_wav2vec2_equals_direct_call(w2v_layer):
    ex = Wav2Vec2Features(str(w2v_layer), device="cpu")
    assert (ex.name, ex.dims, ex.input, ex.frame_rate) == ("Wav2Vec32", 32, "audio", 16000 / 80)
    assert ex.params["eps"] == 1e-5 and ex.params["layers"] == "last" and ex.params["transformers"]
    assert ex.min_seconds == receptive_field(TINY_W2V["conv_kernel"], TINY_W2V["conv_stride"]) / 16000
    for x in _waves([3000, 8123]):
        got = ex([x])[0]
        ref = _direct(w2v_layer, x)
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert got.shape[0] == conv_output_length(len(x), TINY_W2V["conv_kernel"], TINY_W2V["conv_stride"])
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # eps 1e-7 (current transformers) is a different, selectable recipe
    x = _waves([4000], seed=3)[0] * 0.01
    ex7 = Wav2Vec2Features(str(w2v_layer), device="cpu", eps=1e-7)
    np.testing.assert_allclose(ex7([x])[0], _direct(w2v_layer, x, eps=1e-7), atol=1e-5, rtol=0)
    assert not np.allclose(ex7([x])[0], ex([x])[0], atol=1e-4)


def test_wav2vec2_batched_equals_one_at_a_time(w2v_layer):
    ex = Wav2Vec2Features(str(w2v_layer), device="cpu", max_batch_seconds=160)
    assert ex.use_mask and Wav2Vec2Features(str(w2v_layer), device="cpu").max_batch_samples == 0  # CPU default
    lengths = [5000, 1200, 9001, 5000, 333, 7777]
    waves = _waves(lengths, seed=1)
    batched = ex(waves)
    for x, got in zip(waves, batched):
        one = ex([x])[0]
        assert got.shape == one.shape == (ex.n_frames(len(x)), 32)
        np.testing.assert_allclose(got, one, atol=1e-4, rtol=0)
    # per-utterance normalisation uses only the real samples: padding never leaks into the statistics
    np.testing.assert_allclose(standardise(waves[1]), (waves[1] - waves[1].mean()) / np.sqrt(waves[1].var() + 1e-5),
                               atol=1e-6)
    # a small max_batch_seconds splits the call into several forward passes, same numbers
    small = Wav2Vec2Features(str(w2v_layer), device="cpu", max_batch_seconds=0.7)
    assert 1 < len(small._batches(lengths)) < len(lengths)
    for a, b in zip(small(waves), batched):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_wav2vec2_group_norm_runs_unpadded(w2v_group):
    ex = Wav2Vec2Features(str(w2v_group), device="cpu", max_batch_seconds=160)
    assert not ex.use_mask
    lengths = [4000, 2500, 4000, 6100]
    assert sorted(map(sorted, ex._batches(lengths))) == [[0, 2], [1], [3]]  # only equal lengths share a pass
    waves = _waves(lengths, seed=2)
    for x, got in zip(waves, ex(waves)):
        np.testing.assert_allclose(got, _direct(w2v_group, x), atol=1e-5, rtol=0)
    # why: zero padding changes a group-norm model's output for the shorter input
    from transformers import Wav2Vec2Model
    model = Wav2Vec2Model.from_pretrained(w2v_group).eval()
    short = standardise(waves[1])
    padded = np.zeros(4000, np.float32)
    padded[:2500] = short
    with torch.no_grad():
        h = model(torch.from_numpy(padded)[None]).last_hidden_state[0, :ex.n_frames(2500)].numpy()
    assert np.abs(h - ex([waves[1]])[0]).max() > 1e-3


def test_wav2vec2_layer_choice(w2v_layer):
    from transformers import Wav2Vec2Model

    x = _waves([3500], seed=4)[0]
    model = Wav2Vec2Model.from_pretrained(w2v_layer).eval()
    with torch.no_grad():
        hs = model(torch.from_numpy(standardise(x))[None], output_hidden_states=True).hidden_states
    cat = Wav2Vec2Features(str(w2v_layer), layers=(1, -1), device="cpu")
    assert cat.dims == 64 and cat.name == "Wav2Vec64" and cat.params["layers"] == [1, -1]
    np.testing.assert_allclose(cat([x])[0], torch.cat([hs[1], hs[-1]], -1)[0].numpy(), atol=1e-5, rtol=0)
    mean = Wav2Vec2Features(str(w2v_layer), layers=(1, 2), combine="mean", device="cpu")
    assert mean.dims == 32
    np.testing.assert_allclose(mean([x])[0], ((hs[1] + hs[2]) / 2)[0].numpy(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        Wav2Vec2Features(str(w2v_layer), layers=(7,), device="cpu")


def test_hub_style_checkpoints_load_as_base_models(tmp_path, tiny_roberta):
    """The real hub checkpoints hold heads (wav2vec2-large-robust: Wav2Vec2ForPreTraining, roberta-base:
    RobertaForMaskedLM); the extractors load their base model, the same numbers as the head model's encoder."""
    from transformers import (AutoTokenizer, RobertaConfig, RobertaForMaskedLM, Wav2Vec2Config,
                              Wav2Vec2ForPreTraining)

    torch.manual_seed(1)
    cfg = Wav2Vec2Config(**TINY_W2V, feat_extract_norm="layer", do_stable_layer_norm=True, codevector_dim=16,
                         proj_codevector_dim=16, num_codevectors_per_group=8)
    full = Wav2Vec2ForPreTraining(cfg).eval()
    full.save_pretrained(tmp_path / "w2v")
    x = _waves([4321], seed=5)[0]
    with torch.no_grad():
        ref = full.wav2vec2(torch.from_numpy(standardise(x))[None]).last_hidden_state[0].numpy()
    np.testing.assert_allclose(Wav2Vec2Features(str(tmp_path / "w2v"), device="cpu")([x])[0], ref, atol=1e-5)

    mlm = RobertaForMaskedLM(RobertaConfig.from_pretrained(tiny_roberta)).eval()
    mlm.save_pretrained(tmp_path / "mlm")
    AutoTokenizer.from_pretrained(tiny_roberta).save_pretrained(tmp_path / "mlm")
    enc = AutoTokenizer.from_pretrained(tmp_path / "mlm")(SENTENCES[0], return_tensors="pt")
    with torch.no_grad():
        ref = mlm.roberta(**enc).last_hidden_state[0].numpy()
    np.testing.assert_allclose(TokenFeatures(str(tmp_path / "mlm"), device="cpu")([SENTENCES[0]])[0], ref, atol=1e-5)


# ------------------------------------------------------------------------------------------------ text

def _direct_text(folder, text, **kw):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, **kw)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(text, return_tensors="pt", **({"is_split_into_words": True} if isinstance(text, list) else {}))
    with torch.no_grad():
        return model(**enc).last_hidden_state[0].numpy(), enc


def test_token_features_equal_direct_call_and_batch(tiny_roberta):
    ex = TokenFeatures(str(tiny_roberta), device="cpu")
    assert (ex.name, ex.dims, ex.input, ex.frame_rate, ex.max_tokens) == ("RoBERTa32", 32, "text", None, 128)
    batched = ex(SENTENCES)
    for text, got in zip(SENTENCES, batched):
        ref, enc = _direct_text(tiny_roberta, text)
        ids = enc["input_ids"][0].tolist()
        assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s> kept
        assert got.shape == (len(ids), 32) == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ex([text])[0], got, atol=1e-5, rtol=0)


def test_token_features_truncate_only_past_max_positions(tiny_roberta):
    ex = TokenFeatures(str(tiny_roberta), device="cpu")
    long = " ".join(["zebra quokka"] * 100)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = ex([long, SENTENCES[0]])
    assert any("cut to" in str(m.message) for m in w)
    assert out[0].shape == (128, 32) and len(out[1]) < 128
    assert "cut" in ex.params["truncation"]


def _intervals(words):
    return [Interval(0.3 * i, 0.3 * i + 0.25, w) for i, w in enumerate(words)]


def test_word_features_are_mean_of_subwords(tiny_roberta):
    ex = WordFeatures(str(tiny_roberta), device="cpu")
    assert ex.name == "RoBERTa32_words" and ex.input == "words" and ex.params["add_prefix_space"] is True
    seqs = [s.replace(",", "").replace(".", "").replace("!", "").split() for s in SENTENCES[:3]]
    out = ex([_intervals(s) for s in seqs])
    for words, (feats, times) in zip(seqs, out):
        ref, enc = _direct_text(tiny_roberta, words, add_prefix_space=True)
        wid = enc.word_ids(0)
        assert wid[0] is None and wid[-1] is None
        assert any(wid.count(j) > 1 for j in range(len(words)))  # some words really are split
        expect = np.stack([ref[[t for t, w in enumerate(wid) if w == j]].mean(0) for j in range(len(words))])
        assert feats.shape == (len(words), 32)
        np.testing.assert_allclose(feats, expect, atol=1e-5, rtol=0)
        assert times["words"] == words and times["start"][1] == pytest.approx(0.3) and len(times["end"]) == len(words)


def test_minilm_alias_offline():
    path, alias = resolve_model("minilm")
    assert alias == "MiniLM" and Path(path).is_dir() and resolve_model(MINILM)[0] == path
    ex = TokenFeatures("minilm", device="cpu")
    assert ex.name == "MiniLM384" and ex.dims == 384 and ex.max_tokens == 512
    a, b, c = ex(["I am so happy today, this is wonderful.", "The train was cancelled again and I am furious.",
                  "I am so happy today, this is wonderful."])
    assert a.shape[1] == 384 and a.shape[0] == len(ex.tokenizer("I am so happy today, this is wonderful.").input_ids)
    assert np.abs(a.mean(0) - b.mean(0)).max() > 1e-2
    np.testing.assert_allclose(a, c, atol=1e-5)
    w = WordFeatures("minilm", device="cpu")
    feats, times = w([_intervals(["unbelievably", "good"])])[0]
    assert feats.shape == (2, 384) and w.params["add_prefix_space"] is None


# ------------------------------------------------------------------------------------------------ tiny BERT

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """features.text.save_tiny_random_bert: the stand-in for bert-base-uncased, vocabulary from SENTENCES."""
    from features.text import save_tiny_random_bert

    return save_tiny_random_bert(tmp_path_factory.mktemp("bert"), texts=SENTENCES)


def test_tiny_bert_token_features_equal_direct_bert_call(tiny_bert):
    from transformers import BertModel

    ex = TokenFeatures(str(tiny_bert), device="cpu")
    assert (ex.name, ex.dims, ex.input, ex.max_tokens) == ("BERT32", 32, "text", 512)
    assert ex.params["model_type"] == "bert" and ex.tokenizer.do_lower_case
    tok = ex.tokenizer
    model = BertModel.from_pretrained(tiny_bert).eval()
    texts = SENTENCES + ["Honestly, the weekend was lovely!"]
    for text, got in zip(texts, ex(texts)):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id  # [CLS] ... [SEP] kept
        assert tok.convert_ids_to_tokens([ids[0], ids[-1]]) == ["[CLS]", "[SEP]"]
        assert got.dtype == np.float32 and got.shape == (len(ids), 32)
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            ref = model(**enc).last_hidden_state[0].numpy()
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_tiny_bert_lower_cases_like_bert_base_uncased(tiny_bert):
    ex = TokenFeatures(str(tiny_bert), device="cpu")
    text = "You Know, That WEEKEND seemed Average to me."
    assert ex.tokenizer(text)["input_ids"] == ex.tokenizer(text.lower())["input_ids"]
    assert "[UNK]" not in ex.tokenizer.tokenize(text)  # every word of SENTENCES is a whole vocabulary entry
    assert ex.tokenizer.tokenize(text) == text.lower().replace(",", " ,").replace(".", " .").split()
    upper, lower = ex([text.upper(), text.lower()])
    np.testing.assert_allclose(upper, lower, atol=1e-6, rtol=0)


def test_tiny_bert_vocabulary_and_seeded_weights(tmp_path):
    from safetensors.numpy import load_file

    from features.text import save_tiny_random_bert

    state = torch.random.get_rng_state()
    a = save_tiny_random_bert(tmp_path / "a", texts=SENTENCES, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is left alone
    b = save_tiny_random_bert(tmp_path / "b", texts=list(reversed(SENTENCES)), seed=0)
    c = save_tiny_random_bert(tmp_path / "c", texts=SENTENCES, seed=1)
    vocab = (a / "vocab.txt").read_text().splitlines()
    assert vocab[:5] == BERT_SPECIALS and len(set(vocab)) == len(vocab)
    assert {"a", "z", "0", "9", ",", "!", "##a", "##9", "##!"} <= set(vocab)
    words = vocab[vocab.index("##~") + 1:]
    assert words == sorted(words) and {"weekend", "average", "honestly", "terrible"} <= set(words)
    assert "Weekend" not in vocab and "weekend," not in vocab
    assert (b / "vocab.txt").read_text() == (a / "vocab.txt").read_text()  # sorted: text order does not matter
    wa, wb, wc = (load_file(str(f / "model.safetensors")) for f in (a, b, c))
    assert sorted(wa) == sorted(wb) == sorted(wc) and len(wa) > 10
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa)
    cfg = json.loads((a / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["intermediate_size"],
            cfg["max_position_embeddings"], cfg["vocab_size"]) == (32, 2, 2, 64, 512, len(vocab))
    # a folder already holding a checkpoint is returned as it is
    before = (a / "model.safetensors").read_bytes()
    assert save_tiny_random_bert(a, texts=["other words"], seed=7) == a
    assert (a / "model.safetensors").read_bytes() == before and (a / "vocab.txt").read_text().splitlines() == vocab


def test_tiny_bert_out_of_vocabulary_words_become_pieces(tiny_bert):
    ex = TokenFeatures(str(tiny_bert), device="cpu")
    text = "The quokka said Zyzzogeton 42 times \u20ac"
    pieces = ex.tokenizer.tokenize(text)
    assert "quokka" not in ex.tokenizer.get_vocab() and pieces[:3] == ["the", "q", "##u"]
    assert "z" in pieces and "##n" in pieces and pieces[-1] == "[UNK]"  # the euro sign is in no entry
    ids = ex.tokenizer(text)["input_ids"]
    assert len(ids) == len(pieces) + 2
    (feats,) = ex([text])
    assert feats.shape == (len(ids), 32) and np.isfinite(feats).all()


# ------------------------------------------------------------------------------------------------ CLIs

@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """8 synthetic MSP-Podcast utterances, one without transcript, another without TextGrid."""
    from corpora.synth.msp_podcast import write_msp_podcast

    root = tmp_path_factory.mktemp("msp8") / "MSP-PODCAST-Publish-1.10"
    write_msp_podcast(root, n=8, seed=0, release="1.10", progress=False)
    txts = sorted((root / "Transcripts").glob("*.txt"))
    tgs = sorted((root / "ForceAligned").glob("*.TextGrid"))
    txts[0].unlink()
    tgs[1].unlink()
    return root, txts[0].stem, tgs[1].stem


def test_cli_end_to_end(small_corpus, w2v_layer, tiny_roberta, tmp_path):
    import soundfile as sf

    import feat_roberta
    import feat_wav2vec2

    root, no_txt, no_tg = small_corpus
    io = ["--corpus", "msp-podcast", "--root", str(root), "--no-progress", "--batch-size", "3"]

    assert feat_wav2vec2.main(io + ["--model", str(w2v_layer), "--device", "cpu", "--store", str(tmp_path / "w2v"),
                                    "--fp16-store"]) == 0
    st = FeatureStore(tmp_path / "w2v")
    assert len(st) == 8 and st.dtype == np.float16 and st.meta["params"]["model"] == str(w2v_layer)
    ex = Wav2Vec2Features(str(w2v_layer), device="cpu")
    for wav in sorted((root / "Audios").glob("*.wav")):
        x, _ = sf.read(wav, dtype="float32")
        assert st.frames(wav.stem) == conv_output_length(len(x), TINY_W2V["conv_kernel"], TINY_W2V["conv_stride"])
    wav = sorted((root / "Audios").glob("*.wav"))[2]
    x, _ = sf.read(wav, dtype="float32")
    np.testing.assert_allclose(np.asarray(st[wav.stem], np.float32), ex([x])[0], atol=2e-2)  # float16 store

    assert feat_roberta.main(io + ["--model", str(tiny_roberta), "--device", "cpu",
                                   "--store", str(tmp_path / "tok")]) == 0
    st = FeatureStore(tmp_path / "tok")
    assert len(st) == 7 and no_txt not in st and st.meta["name"] == "RoBERTa32" and st.meta["frame_rate"] is None
    assert [(e["utterance"], e["reason"]) for e in st.errors()] == [(no_txt, "transcript missing")]
    text = (root / "Transcripts" / f"{no_tg}.txt").read_text().strip()
    np.testing.assert_allclose(st[no_tg], _direct_text(tiny_roberta, text)[0], atol=1e-5)

    assert feat_roberta.main(io + ["--model", str(tiny_roberta), "--device", "cpu", "--words",
                                   "--store", str(tmp_path / "words")]) == 0
    st = FeatureStore(tmp_path / "words")
    assert len(st) == 7 and no_tg not in st and st.meta["name"] == "RoBERTa32_words"
    assert [(e["utterance"], e["reason"]) for e in st.errors()] == [(no_tg, "TextGrid missing")]
    words = read_words(root / "ForceAligned" / f"{no_txt}.TextGrid")
    t = st.times(no_txt)
    assert st.frames(no_txt) == len(words) == len(t["start"])
    assert t["words"] == [w.text for w in words] and t["end"] == [w.end for w in words]

    assert feat_roberta.main(io + ["--model", "minilm", "--device", "cpu", "--store", str(tmp_path / "mini")]) == 0
    st = FeatureStore(tmp_path / "mini")
    assert len(st) == 7 and st.dims == 384 and st.meta["params"]["model"] == "minilm"
    means = np.stack([np.asarray(st[u]).mean(0) for u in st.keys()])
    assert np.abs(means[0] - means[1:]).max(axis=1).min() > 1e-3  # different sentences, different vectors


def test_transcripts_keep_inner_newlines_as_the_original(tiny_roberta, tmp_path):
    """The original joins the file's lines with their newline characters kept: an inner newline survives and
    the byte-level BPE makes it a token of its own, so every later token row lines up with the original's."""
    from features.extract import Item, load_input, read_transcript_file
    p = tmp_path / "t.txt"
    p.write_text("  the weather is nice\nand the food is good\n\n")
    text = load_input(Item("t", transcript_path=p), "text")
    assert text == read_transcript_file(p) == "the weather is nice\n and the food is good"
    ex = TokenFeatures(str(tiny_roberta), device="cpu")
    ids = ex.tokenizer(text)["input_ids"]
    assert len(ids) == len(ex.tokenizer("the weather is nice and the food is good")["input_ids"]) + 1
    assert "Ċ" in ex.tokenizer.convert_ids_to_tokens(ids)
    assert ex([text])[0].shape[0] == len(ids)
