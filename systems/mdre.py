"""The MDRE family (Yoon, Byun & Jung, SLT 2018) as a method for engine/loop.py: ARE, TRE, MDRE and MDREA on
IEMOCAP's four classes (angry, happy + excited, sad, neutral).

Data: the MFCC-E-D-A frame store (39-d, first 750 frames used) and the prosody store (one 35-d row), both raw
as in the original (never normalised; `--normalise` z-normalises them with training-part statistics), and each utterance's word ids under a vocabulary built from the
training part of the fold (`features.vocab`; the original's all-utterance vocabulary by flag). Loss: sigmoid
cross-entropy on one-hot targets, mean over batch x 4 (the original), or softmax cross-entropy; prediction =
argmax of the logits. The validation loss the loop minimises (best model, early stopping) is the same
sigmoid / softmax loss over the whole dev part (the original sums it; the mean picks the same model).

Missing data (features.missing, the conditions the audio-text system uses): `frames` / `bursts` blank MFCC
frames (zeros), `words` turn that share of the word ids into `_UNK_` (a missing word is an unknown word, as a
missing audio frame is a blank one), `audio-absent` blanks every MFCC frame and the prosody vector,
`text-absent` turns every word into `_UNK_`. `words+audio` needs word timings IEMOCAP's reader does not give
and is refused, as is a condition on a stream the model does not read (ARE: no words; TRE: no audio).

`masked_attention=False` (MDREA, `mdre.py --unmasked-attention`) is the 2018 paper's attention: the softmax over
all 128 text positions, padding included (the masking fix came in 2020); recorded in the checkpoint's config.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from features.missing import (Condition, absent, drop_frames, drop_words, markov_loss, parse_condition,
                              rng_state, set_rng_state, utterance_rng)
from features.store import FeatureStore
from models.mdre import MDRE
from utils import znorm

SYSTEM = "mdre"
KINDS = ("ARE", "TRE", "MDRE", "MDREA")
CLASSES = ("angry", "happy", "sad", "neutral")
MAX_FRAMES, MAX_TOKENS = 750, 128
UNK = 1
USES_AUDIO = {"ARE", "MDRE", "MDREA"}
USES_TEXT = {"TRE", "MDRE", "MDREA"}
# the missing-data kinds this system simulates (features.missing); words+audio needs word timings, mocap-absent a
# motion-capture stream, neither of which the family has
CONDITION_KINDS = ("none", "frames", "bursts", "words", "audio-absent", "text-absent")
REFUSED_KINDS = {"words+audio": "it needs word timings, which IEMOCAP's reader does not give",
                 "mocap-absent": "the family reads no motion capture"}


def streams(kind: str) -> set[str]:
    """The input streams a model of the family reads ("audio" = MFCC + prosody, "text" = words): the conditions
    that can be measured on it (engine.cli.check_conditions)."""
    return ({"audio"} if kind in USES_AUDIO else set()) | ({"text"} if kind in USES_TEXT else set())


def apply_missing(cond: Condition, mfcc: np.ndarray, prosody: np.ndarray, ids: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mfcc, prosody, word ids) under a missing-data condition; new arrays, inputs untouched."""
    k = cond.kind
    if k == "none":
        return mfcc, prosody, ids
    if k == "frames":
        return drop_frames(mfcc, cond.rate, rng)[0], prosody, ids
    if k == "bursts":
        return markov_loss(mfcc, cond.rate, rng, cond.burst)[0], prosody, ids
    if k == "words":
        out = np.array(ids, copy=True)
        out[drop_words(ids, cond.rate, rng)] = UNK
        return mfcc, prosody, out
    if k == "audio-absent":
        return absent(mfcc)[0], absent(prosody)[0], ids
    if k == "text-absent":
        return mfcc, prosody, np.full_like(ids, UNK)
    raise ValueError(f"missing-data condition {cond}: not available for MDRE (no word timings in IEMOCAP's "
                     "reader); use frames, bursts, words, audio-absent or text-absent")


def training_norm(mfcc: FeatureStore, prosody: FeatureStore, utts) -> dict:
    """Mean and std of the MFCC frames (the first MAX_FRAMES of each utterance) and of the prosody vectors over
    the training utterances: the optional z-norm (`--normalise`; the original feeds raw values)."""
    frames = np.concatenate([np.asarray(mfcc[u][:MAX_FRAMES], np.float64) for u in utts])
    pros = np.stack([np.asarray(prosody[u][0], np.float64) for u in utts])
    return {"mfcc": (frames.mean(0), np.where(frames.std(0) > 0, frames.std(0), 1.0)),
            "prosody": (pros.mean(0), np.where(pros.std(0) > 0, pros.std(0), 1.0))}


@dataclass
class MDREMethod:
    kind: str
    mfcc: FeatureStore | None
    prosody: FeatureStore | None
    tokens: dict  # utt -> np.ndarray int64 word ids (unpadded, at most MAX_TOKENS)
    vocab: list  # the vocabulary's tokens in index order (recorded in the checkpoint)
    embedding: np.ndarray | None = None  # initial word vectors (GloVe rows) or None (random 100-d)
    loss_kind: str = "sigmoid"
    audio_dropout: float = 0.3  # the original's keep probabilities 0.7 (audio) and 0.3 (text) as drop rates
    text_dropout: float = 0.7
    train_condition: str | None = None
    seed: int = 0
    protocol: dict | None = None  # what fold of which protocol, for the record
    norm: dict | None = None  # {"mfcc": (mean, std), "prosody": (mean, std)}: z-norm (ours, by flag); None = raw
    masked_attention: bool = True  # MDREA: False = the 2018 paper's softmax over padded positions too

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"model {self.kind!r}: one of {', '.join(KINDS)}")
        if self.loss_kind not in ("sigmoid", "softmax"):
            raise ValueError(f"loss {self.loss_kind!r}: sigmoid or softmax")
        if not self.masked_attention and self.kind != "MDREA":
            raise ValueError(f"{self.kind} has no attention: unmasked attention is for MDREA only")
        self.miss_rng = np.random.default_rng(self.seed + 1)
        self.condition: Condition | None = None  # evaluation-time condition, set by the caller
        self.eval_seed = 0

    # ------------------------------------------------------------------ what the loop calls
    def build_model(self) -> MDRE:
        emb = torch.from_numpy(np.asarray(self.embedding, np.float32)) if self.embedding is not None else None
        return MDRE(kind=self.kind, vocab_size=len(self.vocab), embedding=emb,
                    audio_dropout=self.audio_dropout, text_dropout=self.text_dropout,
                    masked_attention=self.masked_attention, text_positions=MAX_TOKENS)

    def collate(self, items) -> dict:
        return self._collate(items, train=False)

    def train_collate(self, items) -> dict:
        return self._collate(items, train=True)

    def _inputs(self, model, batch) -> torch.Tensor:
        return model(mfcc=batch.get("mfcc"), mfcc_len=batch.get("mfcc_len"), prosody=batch.get("prosody"),
                     tokens=batch.get("tokens"), token_len=batch.get("token_len"))

    def loss(self, model, batch) -> torch.Tensor:
        logits = self._inputs(model, batch)
        if self.loss_kind == "sigmoid":
            return F.binary_cross_entropy_with_logits(logits, F.one_hot(batch["y"], 4).float())
        return F.cross_entropy(logits, batch["y"])

    def predict(self, model, batch) -> np.ndarray:
        return self._inputs(model, batch).float().cpu().numpy()  # (B, 4) logits

    def targets(self, items) -> np.ndarray:
        return np.array([y for _, y in items], np.int64)

    def val_loss(self, pred, target) -> float:
        logits, y = torch.from_numpy(np.asarray(pred, np.float32)), torch.from_numpy(np.asarray(target))
        if self.loss_kind == "sigmoid":
            return float(F.binary_cross_entropy_with_logits(logits, F.one_hot(y, 4).float()))
        return float(F.cross_entropy(logits, y))

    def state(self) -> dict:
        return {"missing": rng_state(self.miss_rng)}

    def load_state(self, s: dict) -> None:
        set_rng_state(self.miss_rng, s["missing"])

    def config(self) -> dict:
        return {"system": SYSTEM, "model": {"kind": self.kind, "vocab_size": len(self.vocab),
                                            "embedding_dim": None if self.embedding is None else int(self.embedding.shape[1]),
                                            "audio_dropout": self.audio_dropout, "text_dropout": self.text_dropout,
                                            "masked_attention": self.masked_attention},
                "classes": list(CLASSES), "loss": self.loss_kind, "vocab": list(self.vocab),
                "features": {"mfcc": self.mfcc.describe() if self.mfcc is not None else None,
                             "prosody": self.prosody.describe() if self.prosody is not None else None},
                "limits": {"frames": MAX_FRAMES, "tokens": MAX_TOKENS}, "train_condition": self.train_condition,
                "seed": self.seed, "protocol": self.protocol,
                "norm": None if self.norm is None else {k: [np.asarray(v).tolist() for v in mv]
                                                        for k, mv in self.norm.items()}}

    # ------------------------------------------------------------------ batches
    def _collate(self, items, train: bool) -> dict:
        cond = parse_condition(self.train_condition) if train and self.train_condition else self.condition
        mfccs, pros, ids = [], [], []
        for utt, _ in items:
            m = np.asarray(self.mfcc[utt][:MAX_FRAMES], np.float32) if self.mfcc is not None else np.zeros((1, 39), np.float32)
            p = np.asarray(self.prosody[utt][0], np.float32) if self.prosody is not None else np.zeros(35, np.float32)
            t = self.tokens.get(utt, np.zeros(0, np.int64))
            if self.norm is not None:  # before any blanking, so a blank is the training mean
                m, p = znorm(m, *self.norm["mfcc"]), znorm(p, *self.norm["prosody"])
            if cond is not None and cond.kind != "none":
                rng = self.miss_rng if train else utterance_rng(self.eval_seed, utt, cond)
                m, p, t = apply_missing(cond, m, p, t, rng)
            mfccs.append(m)
            pros.append(p)
            ids.append(t)
        batch = {"y": torch.tensor([y if y is not None else 0 for _, y in items], dtype=torch.long)}
        if self.kind in USES_AUDIO:
            T = max(len(m) for m in mfccs)
            x = np.zeros((len(items), T, 39), np.float32)
            for i, m in enumerate(mfccs):
                x[i, : len(m)] = m
            batch["mfcc"] = torch.from_numpy(x)
            batch["mfcc_len"] = torch.tensor([len(m) for m in mfccs], dtype=torch.long)
            batch["prosody"] = torch.from_numpy(np.stack(pros))
        if self.kind in USES_TEXT:
            L = max(1, max(len(t) for t in ids))
            w = np.zeros((len(items), L), np.int64)
            for i, t in enumerate(ids):
                w[i, : len(t)] = t
            batch["tokens"] = torch.from_numpy(w)
            batch["token_len"] = torch.tensor([len(t) for t in ids], dtype=torch.long)
        return batch


def method_from_config(cfg: dict, mfcc: FeatureStore | None, prosody: FeatureStore | None,
                       tokens: dict) -> MDREMethod:
    """The method a checkpoint's config.json describes (model kind, vocabulary, loss, z-norm), over stores and word
    ids of another corpus: for scoring a trained model elsewhere (cross_corpus.py). A GloVe embedding is rebuilt
    by shape only; its trained values are in the weights. A config without "masked_attention" predates the
    unmasked option: it was trained masked."""
    m = cfg["model"]
    emb = None if m.get("embedding_dim") is None else np.zeros((m["vocab_size"], m["embedding_dim"]), np.float32)
    norm = None if cfg.get("norm") is None else {k: tuple(np.asarray(v, np.float64) for v in mv)
                                                 for k, mv in cfg["norm"].items()}
    return MDREMethod(m["kind"], mfcc, prosody, tokens, list(cfg["vocab"]), embedding=emb, loss_kind=cfg["loss"],
                      audio_dropout=m["audio_dropout"], text_dropout=m["text_dropout"], seed=cfg.get("seed", 0),
                      protocol=cfg.get("protocol"), norm=norm, masked_attention=m.get("masked_attention", True))
