"""The MDRE family (ARE, TRE, MDRE, MDREA; Yoon et al., SLT 2018) as a method for engine/loop.py.

Authors: Yoon, Byun & Jung. IEMOCAP's four classes (angry, happy + excited, sad, neutral), or any corpus's
declared classes (`classes`, recorded in the checkpoint's config; the head has one output per class).

Data: the MFCC-E-D-A frame store (39-d, first 750 frames used) and the prosody store (one 35-d row), both raw
as in the original (never normalised; `--normalise` z-normalises them with training-part statistics), and each utterance's word ids under a vocabulary built from the
training part of the fold (`features.vocab`; the original's all-utterance vocabulary by flag). Loss: sigmoid
cross-entropy on one-hot targets, mean over batch x classes (the original), or softmax cross-entropy; prediction =
argmax of the logits. The validation loss the loop minimises (best model, early stopping) is the same
sigmoid / softmax loss over the whole dev part (the original sums it; the mean picks the same model).

Missing data (features.missing, the conditions every fusion system uses): `frames` / `bursts` blank MFCC frames
(zeros), `words:R` REMOVES that share of the word ids (`features.missing.edit_words`) and the text GRU reads the
shorter sequence: the family's text encoder is the GRU itself, so reading the edited ids is already the
re-encoding the other systems do with their text models (no contextual feature of a dropped word can leak). We
remove rather than turn dropped words into `_UNK_` (the family's behaviour before issue 20) because an `_UNK_` per
dropped word keeps the transcript's length, which tells the model how much was said, and because the other
systems' `words` removes words too. `wer:R` substitutes (with words of the training part's vocabulary), deletes
and inserts word ids to a word error rate R; the realised WER of each draw is recorded. `word-rows` (blanking
rows of contextual features) has no meaning here: there are no such features. `words+audio` needs word timings
IEMOCAP's reader does not give and is refused, as is a condition on a stream the model does not read.

One definition of an absent stream (`absent_audio`, `ABSENT_WORDS`), shared by training augmentation
(`train_condition`), evaluation and prediction (`collate`), that reveals nothing about the utterance, not even
its length: audio absent = ONE zero MFCC frame and a zero prosody vector (the blank the frame conditions write;
with `--normalise` the training mean); text absent = ONE `_UNK_` word, also what an utterance with an empty
transcript (or with every word removed) reads. Why one frame / one unknown word rather than nothing: the GRU's
state after it is a constant the model can learn to read as "no audio" / "no text" (an empty sequence leaves the
zero state, so TRE's four logits would be its scalar bias: a tie broken by class order), and `_UNK_` is the
token the model already reads for a word it does not know. The modality conditions (`audio-absent`,
`text-absent`, `present:M`, `random-missing:P`) pick the absent streams with `features.missing.absent_modalities`.

`masked_attention=False` (MDREA, `mdre.py --unmasked-attention`) is the 2018 paper's attention: the softmax over
all 128 text positions, padding included (the masking fix came in 2020); recorded in the checkpoint's config.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from features.missing import (Condition, absent_modalities, drop_frames, edit_words, markov_loss, parse_condition,
                              rng_state, set_rng_state, utterance_rng)
from features.store import FeatureStore
from models.mdre import MDRE, MFCC_DIM, PROSODY_DIM
from utils import znorm

SYSTEM = "mdre"
KINDS = ("ARE", "TRE", "MDRE", "MDREA")
CLASSES = ("angry", "happy", "sad", "neutral")
MAX_FRAMES, MAX_TOKENS = 750, 128
PAD, UNK = 0, 1
USES_AUDIO = {"ARE", "MDRE", "MDREA"}
USES_TEXT = {"TRE", "MDRE", "MDREA"}
# the missing-data kinds this system simulates (features.missing); words+audio needs word timings, mocap-absent a
# motion-capture stream, word-rows contextual token features, none of which the family has
CONDITION_KINDS = ("none", "frames", "bursts", "words", "wer", "audio-absent", "text-absent", "present",
                   "random-missing")
REFUSED_KINDS = {"words+audio": "it needs word timings, which IEMOCAP's reader does not give",
                 "mocap-absent": "the family reads no motion capture",
                 "word-rows": "it blanks rows of contextual token features, and the family has none: its text GRU "
                              "reads word ids, so `words` (the words removed, the ids read again) is the condition"}
MODALITY_KINDS = ("audio-absent", "text-absent", "present", "random-missing")  # whole streams absent
# the one absent text stream: one unknown word (see the module docstring)
ABSENT_WORDS = np.array([UNK], np.int64)


def streams(kind: str) -> set[str]:
    """The input streams a model of the family reads ("audio" = MFCC + prosody, "text" = words): the conditions
    that can be measured on it (engine.cli.check_conditions)."""
    return ({"audio"} if kind in USES_AUDIO else set()) | ({"text"} if kind in USES_TEXT else set())


def modalities(kind: str) -> tuple[str, ...]:
    """The model's modalities in features.missing.MODALITY_NAMES' order ("audio", "text")."""
    return tuple(m for m in ("audio", "text") if m in streams(kind))


def absent_audio() -> tuple[np.ndarray, np.ndarray]:
    """The one absent audio stream: one zero MFCC frame and a zero prosody vector, whatever the utterance."""
    return np.zeros((1, MFCC_DIM), np.float32), np.zeros(PROSODY_DIM, np.float32)


def words_or_absent(ids: np.ndarray) -> np.ndarray:
    """The word ids the text GRU reads: `ids`, or the one absent text stream when there is no word (an empty
    transcript, every word removed): an empty transcript and `text-absent` read the same."""
    return ids if len(ids) else ABSENT_WORDS.copy()


def apply_missing(cond: Condition, mfcc: np.ndarray, prosody: np.ndarray, ids: np.ndarray,
                  rng: np.random.Generator, *, model_modalities=("audio", "text"),
                  substitutes=()) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(mfcc, prosody, word ids, info) under a missing-data condition; new arrays, inputs untouched. An absent
    stream comes back as the one absent definition (`absent_audio`, `ABSENT_WORDS`); info["absent"] lists the
    absent modalities, info["wer"] / info["words"] the realised word error rate of a words / wer edit.
    `substitutes`: the word ids a wer condition substitutes and inserts (the training part's words)."""
    k = cond.kind
    info: dict = {"absent": frozenset()}
    if k == "none":
        return mfcc, prosody, ids, info
    if k == "frames":
        return drop_frames(mfcc, cond.rate, rng)[0], prosody, ids, info
    if k == "bursts":
        return markov_loss(mfcc, cond.rate, rng, cond.burst)[0], prosody, ids, info
    if k in ("words", "wer"):
        out, edit = edit_words([int(i) for i in ids], cond, rng, substitutes)
        info.update(wer=edit["wer"], words=len(ids))
        return mfcc, prosody, np.asarray(out[:MAX_TOKENS], np.int64), info
    if k in MODALITY_KINDS:
        gone = absent_modalities(cond, model_modalities, rng)
        info["absent"] = gone
        if "audio" in gone:
            mfcc, prosody = absent_audio()
        return mfcc, prosody, (ABSENT_WORDS.copy() if "text" in gone else ids), info
    raise ValueError(f"missing-data condition {cond}: not available for MDRE; use frames, bursts, words, wer, "
                     "audio-absent, text-absent, present:... or random-missing:...")


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
    substitutes: tuple = ()  # word ids a wer condition substitutes / inserts: the training part's words
    classes: tuple = CLASSES  # the run's classes in class index order (the model has one output per class)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"model {self.kind!r}: one of {', '.join(KINDS)}")
        if self.loss_kind not in ("sigmoid", "softmax"):
            raise ValueError(f"loss {self.loss_kind!r}: sigmoid or softmax")
        self.classes = tuple(self.classes)
        if len(self.classes) < 2:
            raise ValueError(f"classes {list(self.classes)}: a classifier needs at least two")
        if not self.masked_attention and self.kind != "MDREA":
            raise ValueError(f"{self.kind} has no attention: unmasked attention is for MDREA only")
        self.miss_rng = np.random.default_rng(self.seed + 1)
        self.condition: Condition | None = None  # evaluation-time condition, set by the caller
        self.eval_seed = 0
        self.seen: dict = {}  # utt -> what the last evaluation collate made of it (see draw)
        if not self.substitutes:  # the vocabulary's words (built from the training part unless --faithful-vocab)
            self.substitutes = tuple(range(UNK + 1, len(self.vocab)))

    # ------------------------------------------------------------------ what the loop calls
    def build_model(self) -> MDRE:
        emb = torch.from_numpy(np.asarray(self.embedding, np.float32)) if self.embedding is not None else None
        return MDRE(kind=self.kind, vocab_size=len(self.vocab), embedding=emb,
                    audio_dropout=self.audio_dropout, text_dropout=self.text_dropout,
                    masked_attention=self.masked_attention, text_positions=MAX_TOKENS, num_classes=len(self.classes))

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
            return F.binary_cross_entropy_with_logits(logits, F.one_hot(batch["y"], len(self.classes)).float())
        return F.cross_entropy(logits, batch["y"])

    def predict(self, model, batch) -> np.ndarray:
        return self._inputs(model, batch).float().cpu().numpy()  # (B, classes) logits

    def targets(self, items) -> np.ndarray:
        return np.array([y for _, y in items], np.int64)

    def val_loss(self, pred, target) -> float:
        logits, y = torch.from_numpy(np.asarray(pred, np.float32)), torch.from_numpy(np.asarray(target))
        if self.loss_kind == "sigmoid":
            return float(F.binary_cross_entropy_with_logits(logits, F.one_hot(y, len(self.classes)).float()))
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
                "classes": list(self.classes), "loss": self.loss_kind, "vocab": list(self.vocab),
                "features": {"mfcc": self.mfcc.describe() if self.mfcc is not None else None,
                             "prosody": self.prosody.describe() if self.prosody is not None else None},
                "limits": {"frames": MAX_FRAMES, "tokens": MAX_TOKENS}, "train_condition": self.train_condition,
                "seed": self.seed, "protocol": self.protocol,
                "norm": None if self.norm is None else {k: [np.asarray(v).tolist() for v in mv]
                                                        for k, mv in self.norm.items()}}

    # ------------------------------------------------------------------ batches
    def utterance(self, utt: str, cond: Condition | None, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """(mfcc, prosody, word ids, info) the model reads for `utt` under `cond` (None: complete): the one path of
        training, evaluation and prediction. info["present"]: the modalities the utterance really had,
        "+"-joined ("audio+text"; text is absent also when the transcript is empty or every word was removed)."""
        m = np.asarray(self.mfcc[utt][:MAX_FRAMES], np.float32) if self.mfcc is not None else np.zeros((1, MFCC_DIM), np.float32)
        p = np.asarray(self.prosody[utt][0], np.float32) if self.prosody is not None else np.zeros(PROSODY_DIM, np.float32)
        t = np.asarray(self.tokens.get(utt, np.zeros(0, np.int64)), np.int64)
        if self.norm is not None:  # before any blanking, so a blank is the training mean
            m, p = znorm(m, *self.norm["mfcc"]), znorm(p, *self.norm["prosody"])
        info: dict = {"absent": frozenset()}
        if cond is not None and cond.kind != "none":
            m, p, t, info = apply_missing(cond, m, p, t, rng, model_modalities=modalities(self.kind),
                                          substitutes=self.substitutes)
        gone = set(info["absent"]) | ({"text"} if len(t) == 0 else set())
        info["present"] = "+".join(x for x in modalities(self.kind) if x not in gone)
        return m, p, words_or_absent(t), info

    def _collate(self, items, train: bool) -> dict:
        cond = parse_condition(self.train_condition) if train and self.train_condition else self.condition
        mfccs, pros, ids = [], [], []
        for utt, _ in items:
            rng = None
            if cond is not None and cond.kind != "none":
                rng = self.miss_rng if train else utterance_rng(self.eval_seed, utt, cond)
            m, p, t, info = self.utterance(utt, cond, rng)
            if not train:  # what evaluation's Draw reports per utterance (present modalities, realised WER)
                self.seen[utt] = info
            mfccs.append(m)
            pros.append(p)
            ids.append(t)
        batch = {"y": torch.tensor([y if y is not None else 0 for _, y in items], dtype=torch.long)}
        if self.kind in USES_AUDIO:
            T = max(len(m) for m in mfccs)
            x = np.zeros((len(items), T, MFCC_DIM), np.float32)
            for i, m in enumerate(mfccs):
                x[i, : len(m)] = m
            batch["mfcc"] = torch.from_numpy(x)
            batch["mfcc_len"] = torch.tensor([len(m) for m in mfccs], dtype=torch.long)
            batch["prosody"] = torch.from_numpy(np.stack(pros))
        if self.kind in USES_TEXT:
            L = max(len(t) for t in ids)
            w = np.full((len(items), L), PAD, np.int64)
            for i, t in enumerate(ids):
                w[i, : len(t)] = t
            batch["tokens"] = torch.from_numpy(w)
            batch["token_len"] = torch.tensor([len(t) for t in ids], dtype=torch.long)
        return batch

    def draw(self, model, items, cond: Condition, sim_seed: int, device, batch_size: int = 256):
        """Predictions of `model` on the labelled `items` under `cond`, simulation seed `sim_seed`, as an
        engine.robustness.Draw: class indices, the modalities each utterance really had, and for word edits the
        realised word error rate over the draw (total edits / total words of the transcripts that had words)."""
        from engine.loop import evaluate
        from engine.robustness import Draw
        self.condition, self.eval_seed, self.seen = cond, sim_seed, {}
        try:
            logits = evaluate(self, model, items, batch_size, device)
        finally:
            self.condition, self.eval_seed = None, 0
        utts = [u for u, _ in items]
        info = [self.seen[u] for u in utts]
        extra = {}
        if cond.kind in ("words", "wer"):
            words = sum(i["words"] for i in info)
            extra["realised_wer"] = sum(i["wer"] * i["words"] for i in info) / words if words else 0.0
        return Draw(utts, np.array([y for _, y in items], np.int64), logits.argmax(1), [i["present"] for i in info],
                    extra)


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
                      protocol=cfg.get("protocol"), norm=norm, masked_attention=m.get("masked_attention", True),
                      classes=tuple(cfg.get("classes", CLASSES)))
