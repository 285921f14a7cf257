"""Audio-text fusion with multi-scale chunks (Lin, Goncalves & Busso, ICMI 2023) as a method for engine/loop.py.

Data: a frame-level audio store (wav2vec2, 50 frames/s), a token-level text store (RoBERTa or any encoder, incl.
<s> ... </s>), their NormTerms (utterance-mean statistics; the label statistics come from the audio one, as the
original reads them), and each utterance's TextGrid words. A batch z-normalises both streams (utils.znorm),
applies a missing-data condition where one is asked for (features.missing, after the z-norm, so a blank is the
Train mean), cuts the audio into C = max(2, words) chunks of 50 frames (systems.audio_text_inputs: even windows
of the one chunker, or word-boundary chunks with `lexical`), crops each chunk at a random scale in training
(`multiscale` only), pools it with the 1-2-4 temporal pyramid, puts the ones-row global token first on both
streams and pads them to 128 rows with masks. One model predicts Act, Dom and Val; the loss is the mean of the
three 1 - CCC losses (published estimator: population covariance, unbiased variances).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from corpora.records import ATTRIBUTES
from features.missing import Condition, apply_condition, parse_condition, utterance_rng
from features.normterm import NormTerm
from features.store import FeatureStore
from models.audio_text_coatten import AudioTextCoAttention
from systems.audio_text_inputs import audio_sequence, pad_batch, with_global_token
from utils import ccc, ccc_loss

SYSTEM = "audio_text"
STRATEGIES = ("multiscale", "fixed", "lexical")
MAX_LEN, M_FRAMES = 128, 50


def transcript_token_words(tokenizer, text: str, grid_words: list[str]) -> np.ndarray:
    """Index into `grid_words` (the TextGrid's words) of every token row of `text` as the text store holds it,
    special tokens included (-1 for them and for words the alignment lacks). A token belongs to the whitespace
    word its characters fall in; whitespace words are matched to TextGrid words by position when the counts
    agree, else by difflib on their lower-cased letters and digits."""
    import difflib
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    special = tokenizer.get_special_tokens_mask(enc["input_ids"], already_has_special_tokens=True)
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    word_of_char = np.full(len(text) + 1, -1, np.int64)
    for i, (a, b) in enumerate(spans):
        word_of_char[a:b] = i
    key = lambda w: re.sub(r"\W", "", w.lower())  # noqa: E731
    mine, theirs = [key(text[a:b]) for a, b in spans], [key(w) for w in grid_words]
    to_grid = np.full(len(spans) + 1, -1, np.int64)  # the last entry serves -1
    if len(mine) == len(theirs):
        to_grid[:-1] = np.arange(len(mine))
    else:
        for blk in difflib.SequenceMatcher(a=mine, b=theirs, autojunk=False).get_matching_blocks():
            to_grid[blk.a: blk.a + blk.size] = np.arange(blk.b, blk.b + blk.size)
    rows = []
    for (a, b), sp in zip(enc["offset_mapping"], special):
        if sp or b <= a:
            rows.append(-1)
            continue
        while a < b and text[a].isspace():  # byte-level BPE tokens carry their leading space
            a += 1
        rows.append(int(to_grid[word_of_char[a]]))
    return np.array(rows, np.int64)


@dataclass
class AudioTextMethod:
    audio: FeatureStore
    text: FeatureStore
    nt_audio: NormTerm
    nt_text: NormTerm
    words: dict  # utt -> list of corpora.textgrid.Interval (the TextGrid's words)
    strategy: str = "multiscale"
    train_condition: str | None = None  # missing data as regularisation in training, e.g. "bursts:0.2"
    seed: int = 0
    corpus_version: str | None = None
    transcripts: dict = field(default_factory=dict)  # utt -> transcript path (word conditions only)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"chunking strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        self.crop_rng = random.Random(self.seed)  # the multi-resolution crops, in the prefetch thread's order
        self.miss_rng = np.random.default_rng(self.seed + 1)
        self.condition: Condition | None = None  # evaluation-time condition, set by the caller
        self.eval_seed = 0
        self._tokenizer = None
        self._token_word_cache: dict = {}

    # ------------------------------------------------------------------ what the loop calls
    def build_model(self) -> AudioTextCoAttention:
        return AudioTextCoAttention(audio_dim=7 * self.audio.dims, text_dim=self.text.dims)

    def collate(self, items) -> dict:
        return self._collate(items, train=False)

    def train_collate(self, items) -> dict:
        return self._collate(items, train=True)

    def loss(self, model, batch) -> torch.Tensor:
        out = model(batch["audio"], batch["text"], batch["mask_audio"], batch["mask_text"])
        return sum(ccc_loss(out[a], batch["y"][:, k]) for k, a in enumerate(ATTRIBUTES)) / 3

    def predict(self, model, batch) -> np.ndarray:
        out = model(batch["audio"], batch["text"], batch["mask_audio"], batch["mask_text"])
        return torch.stack([out[a] for a in ATTRIBUTES], 1).float().cpu().numpy()

    def targets(self, items) -> np.ndarray:
        return np.stack([self.nt_audio.label([y[k] for _, y in items], a) for k, a in enumerate(ATTRIBUTES)], 1)

    def val_loss(self, pred, target) -> float:
        return float(np.mean([1.0 - ccc(pred[:, k], target[:, k]) for k in range(3)]))

    def state(self) -> dict:
        s = self.crop_rng.getstate()
        g = self.miss_rng.bit_generator.state
        return {"crop": [s[0], list(s[1]), s[2]], "missing": {"state": int(g["state"]["state"]),
                                                              "inc": int(g["state"]["inc"]),
                                                              "has_uint32": g["has_uint32"], "uinteger": g["uinteger"]}}

    def load_state(self, s: dict) -> None:
        self.crop_rng.setstate((s["crop"][0], tuple(s["crop"][1]), s["crop"][2]))
        m = s["missing"]
        self.miss_rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": m["state"], "inc": m["inc"]},
                                             "has_uint32": m["has_uint32"], "uinteger": m["uinteger"]}

    def config(self) -> dict:
        return {"system": SYSTEM, "model": {"audio_dim": 7 * self.audio.dims, "text_dim": self.text.dims},
                "attributes": list(ATTRIBUTES), "chunking": {"strategy": self.strategy, "m": M_FRAMES,
                                                             "max_len": MAX_LEN},
                "features": {"audio": self.audio.describe(), "text": self.text.describe()},
                "normterm": {"audio": self.nt_audio.to_json_all(), "text": self.nt_text.to_json_all()},
                "train_condition": self.train_condition, "seed": self.seed,
                "loss": "mean of 1-CCC (unbiased variances) over Act, Dom, Val", "corpus_version": self.corpus_version}

    # ------------------------------------------------------------------ the pieces
    def _token_words(self, utt: str) -> np.ndarray | None:
        if utt in self._token_word_cache:
            return self._token_word_cache[utt]
        path = self.transcripts.get(utt)
        if path is None or not Path(path).is_file():
            return None
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from features.text import resolve_model
            model, alias = resolve_model(self.text.meta["params"]["model"])
            self._tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
        from corpora.records import read_transcript_file
        tw = transcript_token_words(self._tokenizer, read_transcript_file(path),
                                    [w.text for w in self.words.get(utt, [])])
        self._token_word_cache[utt] = tw if len(tw) == self.text.frames(utt) else None
        return self._token_word_cache[utt]

    def _streams(self, utt: str, train: bool):
        audio = self.nt_audio.features(self.audio[utt])
        text = self.nt_text.features(self.text[utt])
        cond = parse_condition(self.train_condition) if train and self.train_condition else self.condition
        if cond is not None and cond.kind != "none":
            rng = self.miss_rng if train else utterance_rng(self.eval_seed, utt, cond)
            token_words = self._token_words(utt) if cond.kind.startswith("words") else None
            if cond.kind.startswith("words") and token_words is None:
                raise ValueError(f"{utt}: the {cond.kind} condition needs the transcript and its TextGrid words")
            audio, text = apply_condition(cond, audio, text, self.words.get(utt), token_words, rng,
                                          self.audio.meta.get("frame_rate") or 50.0)
        return audio, text

    def _collate(self, items, train: bool) -> dict:
        seqs_a, seqs_t = [], []
        for utt, _ in items:
            audio, text = self._streams(utt, train)
            words = self.words.get(utt, [])
            seqs_a.append(audio_sequence(audio, len(words), self.strategy, rng=self.crop_rng, train=train,
                                         words=words, frame_rate=self.audio.meta.get("frame_rate") or 50.0))
            seqs_t.append(with_global_token(text.astype(np.float32)))
        a, ma = pad_batch(seqs_a, MAX_LEN, truncate=True)
        t, mt = pad_batch(seqs_t, MAX_LEN, truncate=True)
        batch = {"audio": torch.from_numpy(a), "text": torch.from_numpy(t),
                 "mask_audio": torch.from_numpy(ma), "mask_text": torch.from_numpy(mt)}
        if items and items[0][1] is not None:
            batch["y"] = torch.from_numpy(self.targets(items).astype(np.float32))
        return batch


# ---------------------------------------------------------------------------- data and command line

def run_name(iterations: int, batch: int, strategy: str, train_condition: str | None) -> str:
    """The original's model name for its own setting; the other strategies and missing-data training named
    alike, so a comparison's runs sit side by side."""
    tag = {"multiscale": "MultiRslParymidPool", "fixed": "FixedChunkParymidPool", "lexical": "LexicalChunkParymidPool"}
    miss = f"_miss-{str(parse_condition(train_condition)).replace(':', '')}" if train_condition else ""
    return f"TransformerCoAtten_iter{iterations}_batch{batch}_AudioText_{tag[strategy]}{miss}_MTL"


def audio_text_items(root: Path, split: str, audio: FeatureStore, text: FeatureStore):
    """(items [(utt, (act, dom, val))], words {utt: [Interval]}, transcripts {utt: path}) of a split: every
    utterance needs both feature sets and its TextGrid; the others are listed on stderr, never dropped silently."""
    import sys

    from corpora.msp_podcast import read_msp_podcast
    from corpora.records import CorpusError
    from corpora.textgrid import read_words
    corpus = read_msp_podcast(root, split=split, require_audio=False)
    corpus.report()
    items, words, transcripts, missing = [], {}, {}, {}
    for r in corpus.records:
        if not all(a in r.labels for a in ATTRIBUTES):
            missing.setdefault("labels", []).append(r.utt_id)
            continue
        if r.utt_id not in audio or r.utt_id not in text:
            missing.setdefault("audio or text features", []).append(r.utt_id)
            continue
        try:
            words[r.utt_id] = read_words(r.alignment_path)
        except CorpusError:
            missing.setdefault("TextGrid", []).append(r.utt_id)
            continue
        transcripts[r.utt_id] = r.transcript_path
        items.append((r.utt_id, tuple(r.labels[a] for a in ATTRIBUTES)))
    for what, utts in missing.items():
        print(f"warning: {len(utts)} {split} utterance(s) without {what} are left out: {', '.join(utts[:10])}"
              f"{' ...' if len(utts) > 10 else ''}", file=sys.stderr)
    return items, words, transcripts


def load_trained(folder: Path, audio: FeatureStore, text: FeatureStore, words: dict, transcripts: dict):
    """(method in evaluation configuration, model in eval mode) of one of our audio-text checkpoints, over the
    given stores (which must hold the feature sets it was trained on)."""
    from engine.checkpoint import load_checkpoint
    sd, cfg = load_checkpoint(folder)
    if cfg.get("system") != SYSTEM:
        raise ValueError(f"{folder}: a {cfg.get('system')!r} checkpoint, not {SYSTEM}")
    for kind, store in (("audio", audio), ("text", text)):
        want = cfg["features"][kind]
        if want.get("name") != store.meta.get("name") or want.get("dims") != store.dims:
            raise ValueError(f"{folder} was trained on {kind} features {want.get('name')} ({want.get('dims')}-d), "
                             f"{store.root} holds {store.meta.get('name')} ({store.dims}-d)")
    method = AudioTextMethod(audio, text, NormTerm.from_json_all(cfg["normterm"]["audio"]),
                             NormTerm.from_json_all(cfg["normterm"]["text"]), words,
                             strategy=cfg["chunking"]["strategy"], seed=cfg.get("seed", 0), transcripts=transcripts)
    model = AudioTextCoAttention(**cfg["model"])
    model.load_state_dict(sd, strict=True)
    return method, model.eval()

