"""Speech + text + mocap fusion on IEMOCAP (System 5; Patamia et al., PRML 2021) as a loop method.

Every configuration of the ablation (one modality, each mocap stream alone, the pairs, all three)
is this one method with a different tuple of modalities, over models/multimodal_transformer.py.

Data, per utterance (each stream read from its feature store):
* speech: wav2vec2 frames (features/wav2vec2.py, 50 frames/s), z-normalised with the training part's frame
  statistics, then averaged over windows of `speech_pool` frames (5: 10 rows/s, the original's 0.1 s hop), at
  most `max_speech` rows (the first ones; 400 = 40 s, longer than any IEMOCAP utterance);
* text: BERT token features ([CLS] ... [SEP], features/text.py), z-normalised with the training part's token
  statistics, at most `max_tokens` rows (the original's 128); the text encoder pools the [CLS] row ("first") or
  the mean of the tokens ("mean");
* mocap: the (200, 189) per-utterance motion capture (features/mocap.py: face 165 | head 6 | hand 18 in their
  real widths), z-normalised with the training part's statistics (MocapStats; a marker lost for a whole
  utterance becomes the training mean); "mocap" feeds all 189 columns, "face" / "head" / "hand" one stream.
  `mocap_velocity` (ours, off by default as in the original) appends each column's frame-to-frame difference
  (normalised with its own training statistics), which exposes motion energy to the encoder directly.
Labels: ang 0, exc 1, neu 2, sad 3, always on IEMOCAP (the original's BERT scripts numbered them by first
appearance); on another corpus its declared classes in declared order (`classes`, recorded in the config).

Missing streams are never faked: an utterance without a stream (its speaker wore no markers, an empty transcript,
features that failed) has that modality absent, and the model uses its learned absent vector in its place.
Missing-data conditions (features.missing, shared with Systems 3 and 4): `frames` / `bursts` blank z-normalised
wav2vec2 frames (0 = the training mean) before pooling; `words` removes that share of the transcript's words and
`wer` simulates recogniser errors (substitutes from the training transcripts' words), both re-encoded by the text
store's own BERT (features.degraded_text.DegradedText, cached per condition and simulation seed; no word left =
text absent); `word-rows` blanks the token rows of the dropped words in the already-encoded features (the
original authors' helper, kept for comparison: the [CLS] row and the neighbouring tokens still carry the
sentence); `audio-absent`, `text-absent`, `mocap-absent`, `present:...` (the fixed-condition protocol) and
`random-missing:P` mark whole modalities absent (features.missing.absent_modalities, over the streams an
utterance has). `words+audio` needs word timings and is refused.

One definition of an absent stream, everywhere: the stream is not fed at all (no rows, an all-False mask) and
the model uses its learned absent vector; nothing about the utterance (not its length) reaches the model. The
same path serves training (`modality_dropout`, `train_condition`), evaluation (conditions, protocols) and
scoring on a corpus without a stream (cross_corpus.py: mocap on MSP-Podcast). `modality_dropout` (training
only) marks each present modality of a row absent with that probability, keeping at least one, so a fused
model learns to work from any subset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from corpora.iemocap import FOUR_CLASS
from features.missing import (MODALITY_NAMES, Condition, absent_modalities, apply_word_drop, drop_frames,
                              markov_loss, parse_condition, rng_state, set_rng_state, utterance_rng)
from features.mocap import MocapStats, column_layout, stored_mocap
from features.store import FeatureStore
from models.multimodal_transformer import MultimodalTransformer
from utils import znorm

SYSTEM = "speech-text-mocap"
CLASSES = FOUR_CLASS["prml"].classes  # ("ang", "exc", "neu", "sad")
MOCAP_COLUMNS = {"mocap": (0, 189), **{p["stream"].replace("rotated", "face"): (p["first"], p["stop"])
                                       for p in column_layout()}}
MODALITIES = ("speech", "text", *MOCAP_COLUMNS)  # speech, text, mocap, face, head, hand
# the ablation, in table order: each modality, each mocap stream, the pairs, all three
CONFIGURATIONS = {"speech": ("speech",), "text": ("text",), "mocap": ("mocap",), "face": ("face",),
                  "head": ("head",), "hand": ("hand",), "speech+text": ("speech", "text"),
                  "speech+mocap": ("speech", "mocap"), "text+mocap": ("text", "mocap"),
                  "speech+text+mocap": ("speech", "text", "mocap")}
THREE_WAY = "speech+text+mocap"
CONDITION_KINDS = ("none", "frames", "bursts", "words", "wer", "word-rows", "audio-absent", "text-absent",
                   "mocap-absent", "present", "random-missing")
REENCODED = ("words", "wer")  # the transcript is edited and encoded again (DegradedText)
ABSENT_KIND = {"speech": "audio-absent", "text": "text-absent", **{m: "mocap-absent" for m in MOCAP_COLUMNS}}
REFUSED_KINDS = {"words+audio": "it needs word timings, which IEMOCAP's reader does not give"}
# re-encoding every training batch's transcripts with BERT would cost more than the training step itself
TRAINING_REFUSED = {k: "re-encoding transcripts in every training batch is not supported; word-rows:R blanks the "
                       "dropped words' token rows instead" for k in REENCODED}
STREAM_OF = {"speech": "audio", "text": "text", **{m: "mocap" for m in MOCAP_COLUMNS}}  # features.missing's names


def streams(config: str) -> set[str]:
    """The input streams a configuration reads ("audio", "text", "mocap"): the missing-data conditions that can
    apply to it (engine.cli.check_conditions)."""
    return {STREAM_OF[m] for m in CONFIGURATIONS[config]}


def ordered_streams(modalities) -> tuple[str, ...]:
    """The streams ("audio", "text", "mocap", features.missing's names and order) these modalities read: face,
    head and hand are all mocap."""
    have = {STREAM_OF[m] for m in modalities}
    return tuple(s for s in MODALITY_NAMES if s in have)


def sweep_kinds_of(kinds: str, config: str) -> list[str]:
    """The kinds of a comma-separated --sweep-kinds list a configuration can be swept over: those this system
    simulates on streams it reads (frames and bursts need speech, words, wer and word-rows text)."""
    from features.missing import KIND_STREAMS
    have = streams(config)
    listed = [k.strip().lower() for k in kinds.split(",") if k.strip()]
    return [k for k in dict.fromkeys(listed) if k in CONDITION_KINDS and k in KIND_STREAMS
            and KIND_STREAMS[k] and set(KIND_STREAMS[k]) <= have]


def pool_frames(x: np.ndarray, k: int) -> np.ndarray:
    """(T, D) -> (ceil(T / k), D): the mean of every k consecutive rows (the last window may be shorter)."""
    if k == 1 or len(x) == 0:
        return x
    T = len(x)
    full = (T // k) * k
    out = x[:full].reshape(T // k, k, x.shape[1]).mean(axis=1)  # the width named: T < k gives 0 full windows
    if full < T:
        out = np.concatenate([out, x[full:].mean(axis=0, keepdims=True)])
    return out.astype(np.float32, copy=False)


def with_velocity(x: np.ndarray) -> np.ndarray:
    """(T, D) mocap -> (T, 2D): the positions, then their frame-to-frame differences (0 for the first frame)."""
    x = np.asarray(x, np.float32)
    return np.concatenate([x, np.diff(x, axis=0, prepend=x[:1])], axis=1)


def check_condition(cond: Condition) -> Condition:
    if cond.kind not in CONDITION_KINDS:
        raise ValueError(f"missing-data condition {cond}: not available for {SYSTEM} (no word timings); use "
                         f"{', '.join(CONDITION_KINDS[1:])}")
    return cond


@dataclass
class FusionMethod:
    modalities: tuple
    speech: FeatureStore | None = None
    text: FeatureStore | None = None
    mocap: FeatureStore | None = None
    norm: dict = field(default_factory=dict)  # "speech"/"text": (mean, std); "mocap": MocapStats
    no_text: frozenset = frozenset()  # utterances whose transcript is empty: text absent
    token_words: Callable | None = None  # utt -> (token->word map, n_words) or None, for `word-rows` conditions
    degraded: object | None = None  # features.degraded_text.DegradedText of the text store, for words / wer
    transcripts: dict = field(default_factory=dict)  # utt -> transcript, for words / wer
    speech_pool: int = 5
    max_speech: int = 400
    max_tokens: int = 128
    text_pooling: str = "first"  # "first" = the [CLS] row, "mean" = the mean over tokens
    mocap_velocity: bool = False  # append frame-to-frame differences to every mocap column
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    ff: int = 256
    dropout: float = 0.1
    fusion_hidden: int = 128
    fusion_dropout: float = 0.3
    modality_dropout: float = 0.0
    train_condition: str | None = None
    seed: int = 0
    protocol: dict | None = None  # which fold of which protocol, for the record
    classes: tuple = CLASSES  # the run's classes in class index order (the classifier has one output per class)
    speech_rows: object | None = None  # features.derived.DerivedStore of the z-normalised, pooled speech rows

    def __post_init__(self):
        self.modalities, self.classes = tuple(self.modalities), tuple(self.classes)
        if len(self.classes) < 2:
            raise ValueError(f"classes {list(self.classes)}: a classifier needs at least two")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if not self.modalities or unknown:
            raise ValueError(f"modalities {list(self.modalities)}: choose from {', '.join(MODALITIES)}")
        need = {"speech": self.speech, "text": self.text, **{m: self.mocap for m in MOCAP_COLUMNS}}
        lacking = [m for m in self.modalities if need[m] is None]
        if lacking:
            raise ValueError(f"no feature store for {', '.join(lacking)}")
        if not 0 <= self.modality_dropout < 1:
            raise ValueError(f"modality dropout {self.modality_dropout}: a probability in [0, 1)")
        if self.text_pooling not in ("first", "mean"):
            raise ValueError(f"text pooling {self.text_pooling!r}: first ([CLS]) or mean")
        if self.train_condition:
            cond = check_condition(parse_condition(self.train_condition))
            if cond.kind in TRAINING_REFUSED:
                raise ValueError(f"training condition {cond}: {TRAINING_REFUSED[cond.kind]}")
        self.miss_rng = np.random.default_rng(self.seed + 1)
        self.condition: Condition | None = None  # evaluation-time condition, set by the caller
        self.eval_seed = 0
        self.observed: dict = {}  # evaluation: utt -> (streams it really had, transcript edit info)

    # ------------------------------------------------------------------ what the loop calls
    def input_dims(self) -> dict[str, int]:
        dims = {"speech": self.speech.dims if self.speech is not None else None,
                "text": self.text.dims if self.text is not None else None}
        dims.update({m: (b - a) * (2 if self.mocap_velocity else 1) for m, (a, b) in MOCAP_COLUMNS.items()})
        return {m: int(dims[m]) for m in self.modalities}

    def build_model(self) -> MultimodalTransformer:
        max_len = {"speech": self.max_speech, "text": self.max_tokens, **{m: 512 for m in MOCAP_COLUMNS}}
        return MultimodalTransformer(
            inputs=self.input_dims(), n_classes=len(self.classes), d_model=self.d_model, heads=self.heads,
            layers=self.layers, ff=self.ff, dropout=self.dropout, fusion_hidden=self.fusion_hidden,
            fusion_dropout=self.fusion_dropout, max_len={m: max_len[m] for m in self.modalities},
            pooling={m: self.text_pooling if m == "text" else "mean" for m in self.modalities})

    def collate(self, items) -> dict:
        return self._collate(items, train=False)

    def train_collate(self, items) -> dict:
        return self._collate(items, train=True)

    def _logits(self, model, batch) -> torch.Tensor:
        return model(batch["x"], batch["mask"], batch["present"])

    def loss(self, model, batch) -> torch.Tensor:
        return F.cross_entropy(self._logits(model, batch), batch["y"])

    def predict(self, model, batch) -> np.ndarray:
        return self._logits(model, batch).float().cpu().numpy()  # (B, classes) logits

    def targets(self, items) -> np.ndarray:
        return np.array([y for _, y in items], np.int64)

    def val_loss(self, pred, target) -> float:
        return float(F.cross_entropy(torch.from_numpy(np.asarray(pred, np.float32)), torch.from_numpy(np.asarray(target))))

    def state(self) -> dict:
        return {"missing": rng_state(self.miss_rng)}

    def load_state(self, s: dict) -> None:
        set_rng_state(self.miss_rng, s["missing"])

    def config(self) -> dict:
        norm = {}
        for m in ("speech", "text"):
            if m in self.norm:
                norm[m] = [np.asarray(v, np.float64).tolist() for v in self.norm[m]]
        if "mocap" in self.norm:
            norm["mocap"] = [self.norm["mocap"].mean.tolist(), self.norm["mocap"].std.tolist()]
        stores = {"speech": self.speech, "text": self.text, "mocap": self.mocap}
        return {"system": SYSTEM, "modalities": list(self.modalities), "classes": list(self.classes),
                "model": {"inputs": self.input_dims(), "d_model": self.d_model, "heads": self.heads,
                          "layers": self.layers, "ff": self.ff, "dropout": self.dropout,
                          "fusion_hidden": self.fusion_hidden, "fusion_dropout": self.fusion_dropout,
                          "text_pooling": self.text_pooling},
                "features": {k: s.describe() for k, s in stores.items() if s is not None},
                "inputs": {"speech_pool": self.speech_pool, "max_speech": self.max_speech,
                           "mocap_velocity": self.mocap_velocity,
                           "max_tokens": self.max_tokens, "mocap_columns": {m: list(MOCAP_COLUMNS[m])
                                                                            for m in MOCAP_COLUMNS}},
                "norm": norm, "modality_dropout": self.modality_dropout, "train_condition": self.train_condition,
                "seed": self.seed, "protocol": self.protocol}

    # ------------------------------------------------------------------ one utterance's streams
    def derive_speech_rows(self, utts, *, progress: bool = True, write: bool = True) -> None:
        """Read the speech stream's z-normalised, pooled rows of `utts` from a store derived once from the speech
        store (features.derived: the same bytes, without the loader's float64 z-norm and pooling of every
        1024-d frame in every epoch); `write=False` (a DDP rank other than 0) uses what is there. Conditions
        that drop frames start from the frames, so they still compute the rows themselves."""
        from features.derived import DerivedStore, array_digest
        if "speech" not in self.modalities:
            return
        mean, std = self.norm["speech"]
        pool, most = self.speech_pool, self.max_speech
        self.speech_rows = DerivedStore(
            self.speech, name="speech-rows", dims=self.speech.dims, rows_of=lambda T: min(-(-T // pool), most),
            params={"version": 1, "znorm": array_digest(np.asarray(mean, np.float64), np.asarray(std, np.float64)),
                    "speech_pool": pool, "max_speech": most},
            fn=lambda x: pool_frames(znorm(x, mean, std), pool)[:most])
        if write:
            self.speech_rows.ensure(utts, progress=progress)

    def _speech(self, utt: str, kind: str, cond: Condition | None, rng) -> np.ndarray:
        """The speech stream's rows of a present utterance: z-normalised, frames dropped by `cond`, pooled."""
        if self.speech_rows is not None and kind not in ("frames", "bursts"):
            a = self.speech_rows.get(utt)
            if a is not None:
                return a
        a = znorm(self.speech[utt], *self.norm["speech"])
        if kind == "frames":
            a = drop_frames(a, cond.rate, rng)[0]
        elif kind == "bursts":
            a = markov_loss(a, cond.rate, rng, cond.burst)[0]
        return pool_frames(a, self.speech_pool)[: self.max_speech]

    def available(self, utt: str) -> tuple[str, ...]:
        """The streams ("audio", "text", "mocap") this model reads that the utterance has at all: its speech
        features, a non-empty transcript with token features, its speaker's motion capture."""
        have = {"audio": self.speech is not None and utt in self.speech,
                "text": self.text is not None and utt in self.text and utt not in self.no_text,
                "mocap": self.mocap is not None and utt in self.mocap}
        return tuple(s for s in ordered_streams(self.modalities) if have[s])

    def _streams(self, utt: str, cond: Condition | None, rng, sim_seed: int = 0) -> tuple[dict, dict]:
        """(modality -> (rows, D) float32 array, or None when absent; the transcript's edit info or {}).
        Whole-modality conditions act on the streams the utterance has (random-missing keeps one of those)."""
        kind = cond.kind if cond is not None else "none"
        have = self.available(utt)
        gone = absent_modalities(cond, have, rng) if cond is not None else frozenset()
        out, info = {}, {}
        if "speech" in self.modalities:
            out["speech"] = self._speech(utt, kind, cond, rng) if "audio" in have and "audio" not in gone else None
        if "text" in self.modalities:
            t = None
            if "text" in have and "text" not in gone:
                t, info = self._text(utt, cond, rng, sim_seed)
            out["text"] = t
        mocap_mods = [m for m in self.modalities if m in MOCAP_COLUMNS]
        if mocap_mods:
            x = None
            if "mocap" in have and "mocap" not in gone:
                raw = stored_mocap(self.mocap, utt)
                x = self.norm["mocap"].apply(with_velocity(raw) if self.mocap_velocity else raw)
            for m in mocap_mods:
                a, b = MOCAP_COLUMNS[m]
                if x is None:
                    out[m] = None
                else:  # the stream's positions (and, with velocity, its differences 189 columns on)
                    out[m] = np.concatenate([x[:, a:b], x[:, 189 + a:189 + b]], axis=1) if self.mocap_velocity else x[:, a:b]
        return out, info

    def _text(self, utt: str, cond: Condition | None, rng, sim_seed: int) -> tuple[np.ndarray | None, dict]:
        """The z-normalised token rows of a present transcript under `cond` (None: no word left, so text absent),
        and the edit info of words / wer."""
        kind = cond.kind if cond is not None else "none"
        info = {}
        if kind in REENCODED:
            if self.degraded is None or utt not in self.transcripts:
                raise ValueError(f"{utt}: condition {cond} needs the transcript and its re-encoder (DegradedText)")
            raw, info = self.degraded.features(utt, self.transcripts[utt], cond, sim_seed)
            if raw is None:
                return None, info
        else:
            raw = self.text[utt]
        t = znorm(raw, *self.norm["text"])
        if kind == "word-rows":
            tw = self.token_words(utt) if self.token_words is not None else None
            if tw is None:
                raise ValueError(f"{utt}: condition {cond} needs the token->word map of its transcript")
            t = apply_word_drop(t[:, :1], t, range(tw[1]), tw[0], cond.rate, rng, 1.0, drop_audio=False)[1]
        return t[: self.max_tokens], info

    def _collate(self, items, train: bool) -> dict:
        cond = parse_condition(self.train_condition) if train and self.train_condition else self.condition
        rows, infos = [], []
        for utt, _ in items:
            rng = self.miss_rng if train else (utterance_rng(self.eval_seed, utt, cond) if cond else None)
            row, info = self._streams(utt, cond, rng, self.eval_seed)
            rows.append(row)
            infos.append(info)
        B, M = len(items), len(self.modalities)
        present = np.array([[r[m] is not None for m in self.modalities] for r in rows], bool).reshape(B, M)
        if train and self.modality_dropout > 0:
            keep = self.miss_rng.random((B, M)) >= self.modality_dropout
            for i in range(B):
                if present[i].any() and not (present[i] & keep[i]).any():  # keep one present modality
                    keep[i, self.miss_rng.choice(np.flatnonzero(present[i]))] = True
            present &= keep
        if not train:  # what each utterance really had, for the present shares of a result (condition_draw)
            for (utt, _), here, info in zip(items, present, infos):
                self.observed[utt] = (ordered_streams(m for m, p in zip(self.modalities, here) if p), info)
        x, mask = {}, {}
        dims = self.input_dims()
        for j, m in enumerate(self.modalities):
            T = max([1] + [len(r[m]) for r, p in zip(rows, present[:, j]) if p])
            arr = np.zeros((B, T, dims[m]), np.float32)  # (B, T, D)
            msk = np.zeros((B, T), bool)
            for i, r in enumerate(rows):
                if present[i, j]:
                    arr[i, : len(r[m])] = r[m]
                    msk[i, : len(r[m])] = True
            x[m], mask[m] = torch.from_numpy(arr), torch.from_numpy(msk)
        return {"x": x, "mask": mask, "present": torch.from_numpy(present),
                "y": torch.tensor([y if y is not None else 0 for _, y in items], dtype=torch.long)}


def scored(method: FusionMethod, model, items, cond: Condition | None, sim_seed: int, device,
           batch_size: int = 64) -> tuple[np.ndarray, list[str], dict]:
    """The model's logits (n, 4) on `items` under `cond` (None or none: the complete data) drawn with simulation
    seed `sim_seed`; per utterance the streams it really had ("audio+mocap"; "" for none: then the prediction
    is the model's constant guess from its absent vectors); and the means a result records (words / wer: the
    realised word error rate, edits over reference words of the utterances with a transcript)."""
    from engine.loop import evaluate
    cond = None if cond is None or cond.kind == "none" else check_condition(cond)
    if cond is not None and cond.kind in REENCODED and method.degraded is not None:  # encode the draws in batches
        method.degraded.prepare({u: method.transcripts[u] for u, _ in items
                                 if u in method.transcripts and "text" in method.available(u)}, cond, sim_seed)
    method.condition, method.eval_seed, method.observed = cond, sim_seed, {}
    try:
        logits = evaluate(method, model, items, batch_size, device)
    finally:
        method.condition, method.eval_seed = None, 0
    present = ["+".join(method.observed[u][0]) for u, _ in items]
    extra = {}
    if cond is not None and cond.kind in REENCODED:
        infos = [method.observed[u][1] for u, _ in items if method.observed[u][1]]
        words = sum(i["words"] for i in infos)
        extra["realised_wer"] = sum(i["wer"] * i["words"] for i in infos) / words if words else 0.0
    return logits, present, extra


def condition_draw(method: FusionMethod, model, items, cond: Condition, sim_seed: int, device):
    """One engine.robustness.Draw: the class predicted for each utterance under `cond`, the streams it had."""
    from engine.robustness import Draw
    logits, present, extra = scored(method, model, items, cond, sim_seed, device)
    return Draw(utts=[u for u, _ in items], labels=np.array([y for _, y in items], np.int64),
                preds=logits.argmax(1), present=present, extra=extra)


def present_shares(present: list[str], streams) -> dict:
    """{stream: share of the utterances that had it} and "none": the share that had none of them."""
    sets = [set(p.split("+")) - {""} for p in present]
    n = max(1, len(sets))
    return {**{s: sum(s in x for x in sets) / n for s in streams}, "none": sum(not x for x in sets) / n}


def training_norm(utts, speech: FeatureStore | None, text: FeatureStore | None, mocap: FeatureStore | None,
                  mocap_velocity: bool = False) -> dict:
    """The z-norm statistics of the training part: frame-pooled mean / std of the wav2vec2 frames and of the
    BERT tokens (features.normterm.frame_pooled_stats; a constant column gets std 1), MocapStats of the mocap
    (of its positions and differences with `mocap_velocity`)."""
    from features.normterm import frame_pooled_stats
    norm = {}
    for name, store in (("speech", speech), ("text", text)):
        if store is None:
            continue
        have = [u for u in utts if u in store]
        if not have:
            raise ValueError(f"no training utterance has {name} features in {store.root}")
        mean, std = frame_pooled_stats(store[u] for u in have)
        norm[name] = (mean, np.where(std < 1e-8, 1.0, std))
    if mocap is not None:
        have = [u for u in utts if u in mocap]
        if not have:
            raise ValueError(f"no training utterance has motion capture in {mocap.root}")
        norm["mocap"] = MocapStats.fit((with_velocity(stored_mocap(mocap, u)) if mocap_velocity
                                        else stored_mocap(mocap, u)) for u in have)
    return norm


def tokenizer_token_words(tokenizer, transcripts: dict, text: FeatureStore) -> Callable:
    """utt -> (token->word map of the stored token rows, number of whitespace words) or None when the tokenizer's
    rows do not match the store's (a text cut at the model's length limit): for `words` conditions."""
    from systems.audio_text import transcript_token_words
    cache = {}

    def token_words(utt: str):
        if utt not in cache:
            t = (transcripts.get(utt) or "").strip()
            words = t.split()
            tw = transcript_token_words(tokenizer, t, words) if words else None
            cache[utt] = (tw, len(words)) if tw is not None and utt in text and len(tw) == text.frames(utt) else None
        return cache[utt]
    return token_words


def method_from_config(cfg: dict, speech: FeatureStore | None, text: FeatureStore | None, mocap,
                       no_text: frozenset = frozenset()) -> FusionMethod:
    """The method a checkpoint's config.json describes (modalities, model sizes, inputs, z-norm), over another
    corpus's stores: for scoring a trained model elsewhere (cross_corpus.py). `mocap` may be any container no
    utterance is in (a corpus without motion capture: the modality is absent for every utterance)."""
    m, inp, norm = cfg["model"], cfg["inputs"], {}
    for k in ("speech", "text"):
        if k in cfg["norm"]:
            norm[k] = tuple(np.asarray(v, np.float64) for v in cfg["norm"][k])
    if "mocap" in cfg["norm"]:
        norm["mocap"] = MocapStats(*cfg["norm"]["mocap"])
    method = FusionMethod(tuple(cfg["modalities"]), speech=speech, text=text, mocap=mocap, norm=norm, no_text=no_text,
                          speech_pool=inp["speech_pool"], max_speech=inp["max_speech"], max_tokens=inp["max_tokens"],
                          text_pooling=m["text_pooling"], mocap_velocity=inp["mocap_velocity"], d_model=m["d_model"],
                          heads=m["heads"], layers=m["layers"], ff=m["ff"], dropout=m["dropout"],
                          fusion_hidden=m["fusion_hidden"], fusion_dropout=m["fusion_dropout"], seed=cfg.get("seed", 0),
                          protocol=cfg.get("protocol"), classes=tuple(cfg.get("classes", CLASSES)))
    dims = method.input_dims()
    wrong = {k: (dims[k], v) for k, v in m["inputs"].items() if dims.get(k) != v}
    if wrong:
        raise ValueError("input widths differ from the checkpoint's: " +
                         ", ".join(f"{k} {a} here, {b} in training" for k, (a, b) in wrong.items()))
    return method
