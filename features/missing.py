"""Simulated missing data for audio-text emotion recognition (shared by every system).

Generic: works on NumPy arrays of frame-level features (T, D) (or (T,)) with a known frame rate, token-level text
features (N_tok, D), and word alignments (a list of `corpora.textgrid.Interval(start, end, text)`, times in
seconds). Rows are always the first axis.

Conventions
-----------
* Every simulator takes an explicit `rng: np.random.Generator` (seeded by the caller, e.g. with
  `utterance_rng`) and returns a NEW array plus what was dropped; the input is never modified.
* The replacement value is `fill` (default 0.0). Callers apply the simulators AFTER z-normalisation with the
  Train statistics, where 0 is the Train mean (the original helpers also wrote 0, but whether before or after
  normalisation is not determinable from its repository).
* Frame-level simulators (`drop_frames`, `markov_loss`) are applied to the AUDIO stream by `apply_condition`;
  the text stream is only touched by word drop or `text-absent`.
* No simulator but `absent` removes every frame of an utterance: a draw that would keeps one frame.

What the original had (first commit only, never called; re-implemented here, not copied):
* random frame drop of int(ratio*T) frames; here exactly round(rate*T) distinct frames (Python's `round`,
  i.e. halves to even, the rounding the original used for word drop), at most T - 1;
* two-state (Gilbert) Markov packet loss with states N (kept) / L (lost), starting in N with the next state
  drawn before each frame; here parametrised by the target loss rate and the mean burst length, and started
  from the stationary distribution so the expected loss rate equals `rate` from the first frame on;
* random word drop of round(ratio*n_words) words without replacement, blanking the audio frames from the frame
  nearest the word start to the frame nearest its end (inclusive) and ONE text row found by fuzzy string
  matching; here the text rows come from an explicit token->word map (`token_word`), so every token of a
  dropped word is blanked and the special tokens (-1 in the map) never are.

Markov (Gilbert) loss model, with r = target loss rate and b = mean burst length in frames (b >= 1):
    P(L->L) = 1 - 1/b                 (burst lengths are geometric with mean b)
    P(N->L) = r / (b * (1 - r))       (gap lengths are geometric with mean b*(1-r)/r)
    stationary P(L) = P(N->L) / (P(N->L) + 1 - P(L->L)) = r
P(N->L) <= 1 requires r <= b / (1 + b) (5/6 for b = 5); a higher rate raises ValueError. r = 0 (nothing lost)
and r = 1 (everything lost) are accepted as degenerate chains. The default b = 5 frames is 100 ms at the
50 frames/s of wav2vec2 features (20 ms hop).

Conditions (CLIs and evaluation tables): `Condition(kind, rate)`, written "kind:rate" ("bursts:0.3";
"bursts:0.3:8" for a non-default burst length; "none", "audio-absent", "text-absent", "mocap-absent" without a
rate; "mocap-absent" only for the systems with a motion-capture stream).

What each text condition means (a reader assumes a dropped word is gone; blanking rows of contextual features is
not removal, because the special tokens and the neighbouring tokens still carry the sentence):
* `words:R`: round(R * n) words are REMOVED from the transcript and the shorter transcript is encoded again by
  the system's own text encoder (`features.degraded_text.DegradedText`; MDRE's GRU reads word ids, which it
  re-reads anyway). No word left = the text absent, by the system's one definition of an absent stream.
* `wer:R`: simulated speech-recogniser errors to a target word error rate R (`asr_errors`): substitutions (words
  of a vocabulary, never the word they replace), deletions and insertions in the proportion 3 : 1 : 1, then
  re-encoded like `words`; the realised WER (Levenshtein distance / reference words) of each draw is recorded.
* `word-rows:R`: the original authors' unused helper: the dropped words' rows of the already-encoded features
  are blanked (kept to compare with their numbers; it leaks the sentence through the context).
* `words+audio:R`: `words` plus the dropped words' audio frames (from the word alignment).

Whole modalities (the literature's protocols; modality names "audio", "text", "mocap"):
* `present:audio+mocap`: only those modalities present, every other one absent (the fixed-condition protocol
  of MMIN, ACL 2021: every non-empty proper subset of a fusion model's modalities, `protocol_conditions`).
* `random-missing:P`: each modality of each utterance absent with probability P, at least one kept (the
  random-missing protocol of GCNet, TPAMI 2023, and MoMKE / CyIN after it), drawn by `absent_modalities`.
What "absent" means is each system's one definition (shared by its training augmentation, evaluation and
prediction), and it reveals nothing about the utterance, not even its length.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np

DEFAULT_BURST = 5.0  # mean burst length in frames: 100 ms at 50 frames/s

KINDS = ("none", "frames", "bursts", "words", "wer", "word-rows", "words+audio", "audio-absent", "text-absent",
         "mocap-absent", "present", "random-missing")
_RATED = ("frames", "bursts", "words", "wer", "word-rows", "words+audio", "random-missing")  # kinds with a rate
_FIXED_RATE = {"none": 0.0, "audio-absent": 1.0, "text-absent": 1.0, "mocap-absent": 1.0, "present": 1.0}
MODALITY_NAMES = ("audio", "text", "mocap")  # the streams `present:` and `random-missing:` speak of, in order
REENCODED_KINDS = ("words", "wer", "words+audio")  # the transcript is edited and encoded again
ABSENT_KIND = {"audio": "audio-absent", "text": "text-absent", "mocap": "mocap-absent"}
RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # the protocols' default rates (GCNet's missing rates)
SWEEP_KINDS = ("frames", "bursts", "words", "wer")  # the rate sweep's default kinds
PROTOCOLS = ("fixed", "random", "sweep")
WER_SHARES = (3, 1, 1)  # substitutions : deletions : insertions of simulated recogniser errors


class MissingModality(str, Enum):
    """A whole stream is absent (see `absent`, `Condition.missing_modality`)."""

    AUDIO = "audio"
    TEXT = "text"
    MOCAP = "mocap"  # motion capture (speech + text + mocap system)


# ----------------------------------------------------------------------------------------------- validation

def _check_rate(rate, what: str = "rate") -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"missing-data {what} must be a number in [0, 1], got {rate!r}") from None
    if isinstance(rate, bool) or not (0.0 <= r <= 1.0):  # also rejects NaN
        raise ValueError(f"missing-data {what} must be in [0, 1], got {rate!r}")
    return r


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (seeded by the caller), got {type(rng).__name__}")


def _rows(x) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim < 1:
        raise ValueError(f"expected an array with rows on axis 0, got a scalar of shape {a.shape}")
    return a


def _keep_one(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`mask` with one rng-chosen row kept when it would drop every row: a stream marked present must hold
    something; only the "absent" conditions (see `absent`) remove a whole stream."""
    if mask.size and mask.all():
        mask[rng.integers(mask.size)] = False
    return mask


def _blank(x: np.ndarray, mask: np.ndarray, fill: float) -> np.ndarray:
    out = np.array(x, copy=True)
    out[mask] = fill
    return out


# ------------------------------------------------------------------------------------------ frame simulators

def drop_frames(x, rate, rng: np.random.Generator, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Drop exactly round(rate*T) distinct rows chosen uniformly, but never all of them (at most T - 1: one row
    always stays, only `absent` removes a stream). Returns (new array, bool mask (T,) of dropped)."""
    x = _rows(x)
    r = _check_rate(rate)
    _check_rng(rng)
    T = x.shape[0]
    k = min(T - 1, int(round(r * T)))
    mask = np.zeros(T, dtype=bool)
    if k > 0:
        mask[rng.choice(T, size=k, replace=False)] = True
    return _blank(x, mask, fill), mask


def markov_params(rate, burst: float = DEFAULT_BURST) -> tuple[float, float]:
    """(P(N->L), P(L->L)) of the Gilbert chain whose stationary loss rate is `rate`, mean burst `burst` frames.

    P(L->L) = 1 - 1/burst, P(N->L) = rate / (burst * (1 - rate)). rate = 1 gives (1.0, 1.0) (always lost).
    Raises ValueError for burst < 1 or rate > burst / (1 + burst) (other than rate = 1).
    """
    r = _check_rate(rate)
    try:
        b = float(burst)
    except (TypeError, ValueError):
        raise ValueError(f"mean burst length must be a number >= 1 frame, got {burst!r}") from None
    if not (b >= 1.0) or math.isinf(b):
        raise ValueError(f"mean burst length must be a finite number >= 1 frame, got {burst!r}")
    if r == 1.0:
        return 1.0, 1.0
    p_nl = r / (b * (1.0 - r))
    if p_nl > 1.0 + 1e-12:
        raise ValueError(f"Markov loss rate {r:g} is unreachable with mean burst {b:g} frames "
                         f"(needs P(N->L) = {p_nl:.3f} > 1); the most is burst/(1+burst) = {b / (1 + b):.4f}. "
                         "Use a longer burst")
    return min(p_nl, 1.0), 1.0 - 1.0 / b


def markov_mask(T: int, rate, rng: np.random.Generator, burst: float = DEFAULT_BURST) -> np.ndarray:
    """Bool loss mask (T,) of the Gilbert chain, first state drawn from the stationary distribution. A draw
    that loses every frame (likely for short utterances; certain at rate 1) keeps one rng-chosen frame, so the
    stream is never blank while marked present.

    Sampled as alternating sojourns: a stay in L is geometric with success probability 1 - P(L->L) (mean
    `burst`), a stay in N geometric with success probability P(N->L). By memorylessness, starting in a
    stationary state and cutting the first sojourn at frame 0 gives exactly the frame-by-frame chain.
    """
    p_nl, p_ll = markov_params(rate, burst)
    _check_rng(rng)
    T = int(T)
    if T <= 0:
        return np.zeros(0, dtype=bool)
    r = float(rate)
    if r == 0.0:
        return np.zeros(T, dtype=bool)
    if r == 1.0:
        return _keep_one(np.ones(T, dtype=bool), rng)
    lost = bool(rng.random() < r)  # stationary start
    p_leave = {True: 1.0 - p_ll, False: p_nl}
    mask = np.zeros(T, dtype=bool)
    pos = 0
    mean_cycle = 1.0 / p_nl + 1.0 / (1.0 - p_ll)
    while pos < T:
        n_pairs = int((T - pos) / mean_cycle) + 8
        a = rng.geometric(p_leave[lost], size=n_pairs)      # sojourns in the current state
        c = rng.geometric(p_leave[not lost], size=n_pairs)  # sojourns in the other state
        runs = np.empty(2 * n_pairs, dtype=np.int64)
        runs[0::2], runs[1::2] = a, c
        ends = pos + np.cumsum(runs)
        starts = ends - runs
        # runs at even positions are in state `lost`, odd ones in `not lost`
        sel = slice(0, None, 2) if lost else slice(1, None, 2)
        for s, e in zip(starts[sel], ends[sel]):
            if s >= T:
                break
            mask[s:min(e, T)] = True
        pos = int(ends[-1])
        # the state after an even number of runs is `lost` again; the loop continues from there
    return _keep_one(mask, rng)


def markov_loss(x, rate, rng: np.random.Generator, burst: float = DEFAULT_BURST,
                fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two-state Gilbert (Markov) packet loss on the rows of `x`: expected loss rate `rate`, mean burst
    length `burst` frames (default 5 = 100 ms at 50 frames/s), stationary start (the original started in N).
    Returns (new array, bool mask (T,) of dropped rows)."""
    x = _rows(x)
    mask = markov_mask(x.shape[0], rate, rng, burst)
    return _blank(x, mask, fill), mask


# ------------------------------------------------------------------------------------------------ word drop

def drop_words(words: Sequence, rate, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted int64) of exactly round(rate * n_words) words chosen without replacement."""
    r = _check_rate(rate)
    _check_rng(rng)
    n = len(words)
    k = min(n, int(round(r * n)))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def token_word_from_counts(tokens_per_word: Sequence[int], lead: int = 1, trail: int = 1) -> np.ndarray:
    """token->word map (int64, -1 = special token) for `lead` special rows, then tokens_per_word[i] rows for
    word i, then `trail` special rows (RoBERTa: <s> ... </s> -> lead=1, trail=1)."""
    counts = np.asarray(tokens_per_word, dtype=np.int64).reshape(-1)
    if (counts < 0).any() or lead < 0 or trail < 0:
        raise ValueError("token counts must be >= 0")
    body = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return np.concatenate([np.full(lead, -1, np.int64), body, np.full(trail, -1, np.int64)])


def _token_word(token_word, n_rows: int | None = None, n_words: int | None = None) -> np.ndarray:
    tw = np.asarray(token_word)
    if tw.ndim != 1 or not (np.issubdtype(tw.dtype, np.integer) or tw.size == 0):
        raise ValueError(f"token_word must be a 1-D integer array (word index per text row, -1 = special), "
                         f"got dtype {tw.dtype} shape {tw.shape}")
    tw = tw.astype(np.int64)
    if n_rows is not None and tw.shape[0] != n_rows:
        raise ValueError(f"token_word has {tw.shape[0]} entries but the text has {n_rows} rows")
    if (tw < -1).any() or (n_words is not None and (tw >= n_words).any()):
        raise ValueError(f"token_word entries must be -1 or a word index < {n_words}")
    return tw


def word_token_rows(token_word, dropped) -> np.ndarray:
    """Text rows (sorted int64) of the dropped words. `token_word` is either the per-row word index array
    (-1 = special token, never returned) or, via `token_word_from_counts`, built from per-word token counts."""
    tw = _token_word(token_word)
    d = np.asarray(dropped, dtype=np.int64).reshape(-1)
    return np.flatnonzero(np.isin(tw, d) & (tw >= 0)).astype(np.int64)


def _nearest_frame(t: np.ndarray, frame_rate: float, n_frames: int) -> np.ndarray:
    """Index of the frame whose timestamp i/frame_rate is nearest each time t, clipped to [0, n_frames - 1].
    Ties go to the earlier frame (as argmin over the timestamp vector); distances within 1e-9 s count as ties,
    so a time exactly halfway between two frames (e.g. 0.07 s at 50 frames/s) does not depend on how the
    decimal times round in binary."""
    stamps = np.arange(n_frames, dtype=np.float64) / float(frame_rate)
    j = np.searchsorted(stamps, t, side="left")
    lo = np.clip(j - 1, 0, n_frames - 1)
    hi = np.clip(j, 0, n_frames - 1)
    return np.where(np.abs(t - stamps[lo]) <= np.abs(stamps[hi] - t) + 1e-9, lo, hi)


def word_frames(words: Sequence, dropped, frame_rate: float, n_frames: int) -> np.ndarray:
    """Frame indices (sorted, unique int64) covered by the dropped words: for each, from the frame nearest the
    word start to the frame nearest its end, inclusive (frame i has timestamp i / frame_rate). A word past the
    end of the audio maps onto the last frame, as in the original."""
    if not frame_rate or frame_rate <= 0:
        raise ValueError(f"frame_rate must be > 0 frames/s, got {frame_rate!r}")
    d = np.asarray(dropped, dtype=np.int64).reshape(-1)
    n_frames = int(n_frames)
    if d.size == 0 or n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if (d < 0).any() or (d >= len(words)).any():
        raise ValueError(f"dropped word index out of range for {len(words)} words")
    starts = np.array([float(words[i].start) for i in d])
    ends = np.array([float(words[i].end) for i in d])
    a = _nearest_frame(starts, frame_rate, n_frames)
    b = _nearest_frame(ends, frame_rate, n_frames)
    mask = np.zeros(n_frames, dtype=bool)
    for s, e in zip(a, b):
        mask[s:e + 1] = True
    return np.flatnonzero(mask).astype(np.int64)


def apply_word_drop(audio, text, words: Sequence, token_word, rate, rng: np.random.Generator,
                    frame_rate: float, drop_audio: bool = True,
                    fill: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop round(rate * n_words) words: blank their text rows (every token mapped to them by `token_word`;
    rows mapped to -1, i.e. <s>, </s>, a global token, are never blanked) and, if `drop_audio`, the audio
    frames of their time spans. Returns (new audio, new text, dropped word indices). `words` is the word
    alignment the token map refers to (e.g. `read_words(...)`; whether silence marks count as words is the
    caller's choice). The audio keeps at least one frame (words covering all of it leave one rng-chosen frame)."""
    text = _rows(text)
    tw = _token_word(token_word, n_rows=text.shape[0], n_words=len(words))
    dropped = drop_words(words, rate, rng)
    tmask = np.zeros(text.shape[0], dtype=bool)
    tmask[word_token_rows(tw, dropped)] = True
    new_text = _blank(text, tmask, fill)
    audio = _rows(audio)
    if drop_audio:
        amask = np.zeros(audio.shape[0], dtype=bool)
        amask[word_frames(words, dropped, frame_rate, audio.shape[0])] = True
        _keep_one(amask, rng)
        new_audio = _blank(audio, amask, fill)
    else:
        new_audio = np.array(audio, copy=True)
    return new_audio, new_text, dropped


def absent(x, fill: float = 0.0, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The whole modality missing: (a new array of `rows` rows (default: x's) of x's row shape and dtype, all
    `fill`; an all-True mask). A system's absent stream passes a fixed `rows`, so it reveals nothing about the
    utterance, not even its length. `Condition.missing_modality` tells the caller which stream is absent."""
    x = _rows(x)
    n = x.shape[0] if rows is None else int(rows)
    if n < 0:
        raise ValueError(f"rows must be >= 0, got {rows!r}")
    return np.full((n, *x.shape[1:]), fill, dtype=x.dtype), np.ones(n, dtype=bool)


# ----------------------------------------------------------------------------------------------- conditions

def _fmt(v: float) -> str:
    s = f"{v:g}"
    return s if float(s) == v else repr(float(v))


@dataclass(frozen=True)
class Condition:
    """A missing-data condition: kind in KINDS and a rate in [0, 1] (`burst` only for kind "bursts").

    "none" has rate 0 and "audio-absent"/"text-absent" rate 1 (filled in when omitted)."""

    kind: str
    rate: float | None = None
    burst: float = DEFAULT_BURST
    modalities: tuple = ()  # kind "present": the modalities kept (MODALITY_NAMES' order)

    def __post_init__(self):
        kind = str(self.kind).strip().lower() if isinstance(self.kind, str) else self.kind
        if kind not in KINDS:
            raise ValueError(f"unknown missing-data condition kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "kind", kind)
        mods = (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        if kind == "present":
            unknown = [m for m in mods if m not in MODALITY_NAMES]
            if not mods or unknown:
                raise ValueError(f"condition 'present' names the modalities kept, from {', '.join(MODALITY_NAMES)} "
                                 f"(e.g. present:audio+text), got {'+'.join(map(str, mods)) or 'none'}")
            object.__setattr__(self, "modalities", tuple(m for m in MODALITY_NAMES if m in mods))
        elif mods:
            raise ValueError(f"only 'present' conditions name modalities, not {kind!r}")
        if kind in _FIXED_RATE:
            fixed = _FIXED_RATE[kind]
            if self.rate is not None and _check_rate(self.rate) != fixed:
                raise ValueError(f"condition {kind!r} takes no rate (implicitly {fixed:g}), got {self.rate!r}")
            object.__setattr__(self, "rate", fixed)
        else:
            if self.rate is None:
                raise ValueError(f"condition {kind!r} needs a rate in [0, 1], e.g. '{kind}:0.3'")
            object.__setattr__(self, "rate", _check_rate(self.rate, f"rate of condition {kind!r}"))
        if kind == "bursts":
            markov_params(self.rate, self.burst)  # validates burst and reachability
            object.__setattr__(self, "burst", float(self.burst))
        elif float(self.burst) != DEFAULT_BURST:
            raise ValueError(f"burst length applies only to 'bursts' conditions, not {kind!r}")

    @property
    def missing_modality(self) -> MissingModality | None:
        return {"audio-absent": MissingModality.AUDIO, "text-absent": MissingModality.TEXT,
                "mocap-absent": MissingModality.MOCAP}.get(self.kind)

    @property
    def seeded(self) -> bool:
        """Whether the outcome depends on the simulation draw (a random choice of frames, words or modalities);
        complete data, absent streams and `present:` subsets are the same for every seed."""
        return self.kind not in _FIXED_RATE and not (self.kind in _RATED and self.rate == 0.0)

    def __str__(self) -> str:
        if self.kind == "present":
            return "present:" + "+".join(self.modalities)
        if self.kind in _FIXED_RATE:
            return self.kind
        s = f"{self.kind}:{_fmt(self.rate)}"
        if self.kind == "bursts" and self.burst != DEFAULT_BURST:
            s += f":{_fmt(self.burst)}"
        return s


NONE = Condition("none")

# the input streams each kind degrades: a model lacking one of them cannot be measured under that kind, so the
# scripts refuse it before training (engine.cli.check_conditions) rather than report complete data as a result
KIND_STREAMS = {"none": (), "frames": ("audio",), "bursts": ("audio",), "words": ("text",), "wer": ("text",),
                "word-rows": ("text",), "words+audio": ("audio", "text"), "audio-absent": ("audio",),
                "text-absent": ("text",), "mocap-absent": ("mocap",), "present": (), "random-missing": ()}
# present: and random-missing: act on the model's own modalities (engine.cli.check_conditions checks them)


def parse_condition(spec: str | Condition) -> Condition:
    """'none', 'frames:0.2', 'bursts:0.3', 'bursts:0.3:8' (mean burst 8 frames), 'words:0.1', 'wer:0.2',
    'word-rows:0.1', 'words+audio:0.1', 'audio-absent', 'text-absent', 'mocap-absent', 'present:audio+text',
    'random-missing:0.3' -> Condition. Raises ValueError on anything else."""
    if isinstance(spec, Condition):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"missing-data condition must be a string like 'bursts:0.3', got {spec!r}")
    parts = [p.strip() for p in spec.strip().split(":")]
    kind = parts[0].lower()
    if kind not in KINDS:
        raise ValueError(f"unknown missing-data condition kind {parts[0]!r} in {spec!r}; "
                         f"expected one of {', '.join(KINDS)}")
    if kind == "present":
        if len(parts) != 2 or not parts[1]:
            raise ValueError(f"malformed missing-data condition {spec!r}: write present:<modalities kept>, e.g. "
                             "present:audio+text")
        return Condition("present", modalities=tuple(m.strip().lower() for m in parts[1].split("+")))
    max_parts = 3 if kind == "bursts" else 2
    if len(parts) > max_parts:
        raise ValueError(f"malformed missing-data condition {spec!r}: expected 'kind:rate'"
                         + (" or 'bursts:rate:burst_frames'" if kind == "bursts" else ""))

    def num(s: str, what: str) -> float:
        try:
            return float(s)
        except ValueError:
            raise ValueError(f"malformed {what} {s!r} in missing-data condition {spec!r}") from None

    rate = num(parts[1], "rate") if len(parts) > 1 else None
    burst = num(parts[2], "burst length") if len(parts) > 2 else DEFAULT_BURST
    return Condition(kind, rate, burst)


def apply_condition(cond: Condition | str, audio, text, words: Sequence | None, token_word,
                    rng: np.random.Generator, frame_rate: float,
                    fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(new audio, new text) under `cond`, for conditions that act on encoded rows: frames/bursts on the audio
    rows; word-rows blanks the text rows of the dropped words (the original helper); audio-absent/text-absent
    fill one whole stream with its rows kept (a system's own absent definition may use fewer rows: see
    `absent`). `words`/`token_word` are needed only by word-rows. The re-encoded kinds (words, wer,
    words+audio) and the modality kinds (present, random-missing) need the system (DegradedText, its absent
    definition) and raise ValueError here."""
    cond = parse_condition(cond)
    _check_rng(rng)
    audio, text = _rows(audio), _rows(text)
    k = cond.kind
    if k == "none":
        return np.array(audio, copy=True), np.array(text, copy=True)
    if k == "frames":
        return drop_frames(audio, cond.rate, rng, fill)[0], np.array(text, copy=True)
    if k == "bursts":
        return markov_loss(audio, cond.rate, rng, cond.burst, fill)[0], np.array(text, copy=True)
    if k == "audio-absent":
        return absent(audio, fill)[0], np.array(text, copy=True)
    if k == "text-absent":
        return np.array(audio, copy=True), absent(text, fill)[0]
    if k == "mocap-absent":
        raise ValueError("condition 'mocap-absent' concerns the motion-capture stream, which this audio + text "
                         "input does not have")
    if k != "word-rows":
        raise ValueError(f"condition {str(cond)!r} is not a change of encoded rows: "
                         + ("the transcript is edited and encoded again (features.degraded_text)" if k in REENCODED_KINDS
                            else "whole modalities are absent by the system's own definition (absent_modalities)"))
    if words is None or token_word is None:
        raise ValueError(f"condition {str(cond)!r} needs the word alignment and the token->word map")
    a, t, _ = apply_word_drop(audio, text, words, token_word, cond.rate, rng, frame_rate, drop_audio=False,
                              fill=fill)
    return a, t


# ------------------------------------------------------------------------------------------------- seeding

def rng_state(rng: np.random.Generator) -> dict:
    """A PCG64 generator's state as plain ints (what a resume state saved with weights_only can hold)."""
    g = rng.bit_generator.state
    return {"state": int(g["state"]["state"]), "inc": int(g["state"]["inc"]), "has_uint32": g["has_uint32"],
            "uinteger": g["uinteger"]}


def set_rng_state(rng: np.random.Generator, s: dict) -> None:
    """Restore what `rng_state` saved."""
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": s["state"], "inc": s["inc"]},
                               "has_uint32": s["has_uint32"], "uinteger": s["uinteger"]}


def utterance_rng(seed: int, utt_id: str, condition: Condition | str) -> np.random.Generator:
    """Generator derived from (seed, utterance id, str(condition)) only: reproducible and independent of the
    order utterances are visited in. Uses SHA-256 (not Python's salted hash()) fed to np.random.SeedSequence."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cond = str(parse_condition(condition))
    digest = hashlib.sha256(f"{utt_id}\x00{cond}".encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *words])))


# ------------------------------------------------------------------------------------ transcripts edited

def word_errors(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance between two word sequences (substitutions + deletions + insertions of the best
    alignment): the numerator of the word error rate."""
    ref, hyp = list(reference), list(hypothesis)
    codes = {w: k for k, w in enumerate(dict.fromkeys(ref + hyp))}
    h = np.array([codes[w] for w in hyp], np.int64)
    cols = np.arange(len(hyp) + 1)
    prev = cols.copy()
    for i, r in enumerate(ref, 1):
        best = np.empty_like(prev)
        best[0] = i
        best[1:] = np.minimum(prev[:-1] + (h != codes[r]), prev[1:] + 1)  # substitution/match, deletion
        # insertions: cur[j] = min over k <= j of best[k] + (j - k), one running minimum
        prev = np.minimum.accumulate(best - cols) + cols
    return int(prev[-1])


def asr_errors(words: Sequence, rate, rng: np.random.Generator, vocabulary: Sequence) -> tuple[list, dict]:
    """Simulated recogniser errors to the target word error rate `rate`: E = round(rate * n) edits split
    substitutions : deletions : insertions = WER_SHARES (3 : 1 : 1); substitutes and inserted words are drawn
    uniformly from `vocabulary` (a substitute never equals the word it replaces); distinct positions for the
    substitutions and deletions, insertions at random gaps of the result. Returns (new words, info) with the
    realised WER = word_errors / n (can fall below the target when an insertion happens to restore a deleted
    word, which is why it is recorded)."""
    r = _check_rate(rate, "word error rate")
    _check_rng(rng)
    words = list(words)
    n = len(words)
    info = {"words": n, "substitutions": 0, "deletions": 0, "insertions": 0, "wer": 0.0}
    errors = int(round(r * n))
    if errors == 0:
        return words, info
    vocab = list(dict.fromkeys(vocabulary))
    if len(vocab) < 2:
        raise ValueError(f"condition wer:{r:g} needs a vocabulary of at least 2 words to draw substitutes and "
                         f"insertions from, got {len(vocab)}")
    shares = np.asarray(WER_SHARES, float) / sum(WER_SHARES)
    d, i = int(round(errors * shares[1])), int(round(errors * shares[2]))
    s = errors - d - i
    where = rng.choice(n, size=s + d, replace=False)
    sub, dele = set(where[:s].tolist()), set(where[s:].tolist())
    out = []
    for k, w in enumerate(words):
        if k in dele:
            continue
        if k in sub:
            new = vocab[rng.integers(len(vocab))]
            while new == w:
                new = vocab[rng.integers(len(vocab))]
            w = new
        out.append(w)
    for _ in range(i):
        out.insert(int(rng.integers(len(out) + 1)), vocab[rng.integers(len(vocab))])
    info.update(substitutions=s, deletions=d, insertions=i, wer=word_errors(words, out) / n)
    return out, info


def edit_words(words: Sequence, cond: Condition | str, rng: np.random.Generator,
               vocabulary: Sequence = ()) -> tuple[list, dict]:
    """A word sequence under a transcript condition: `words`/`words+audio` remove round(rate * n) words
    (info["dropped"]: their indices, for the audio spans of words+audio), `wer` simulates recogniser errors
    (`asr_errors`, needs `vocabulary`). info["wer"] is the realised word error rate against `words`. Works on
    any hashable tokens (strings, MDRE's word ids). Rate 0 returns the words unchanged."""
    cond = parse_condition(cond)
    words = list(words)
    if cond.kind == "wer":
        return asr_errors(words, cond.rate, rng, vocabulary)
    if cond.kind not in ("words", "words+audio"):
        raise ValueError(f"condition {cond} does not edit a transcript (words, words+audio or wer do)")
    dropped = drop_words(words, cond.rate, rng)
    gone = set(dropped.tolist())
    out = [w for k, w in enumerate(words) if k not in gone]
    return out, {"words": len(words), "dropped": dropped.tolist(), "deletions": len(gone),
                 "wer": len(gone) / len(words) if words else 0.0}


# --------------------------------------------------------------------------------- whole modalities

def absent_modalities(cond: Condition | str, modalities: Sequence[str], rng: np.random.Generator | None = None
                      ) -> frozenset:
    """Which of a system's `modalities` (MODALITY_NAMES) `cond` makes absent for one utterance: the named one
    for audio-/text-/mocap-absent, all but the kept ones for present:..., a draw for random-missing:P (each
    absent with probability P, independently; when all would be, one of them, chosen uniformly, is kept), none
    for the other kinds. `rng` (utterance_rng) is needed by random-missing only."""
    cond = parse_condition(cond)
    mods = tuple(modalities)
    unknown = [m for m in mods if m not in MODALITY_NAMES]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}: choose from {', '.join(MODALITY_NAMES)}")
    if cond.kind in ("audio-absent", "text-absent", "mocap-absent"):
        return frozenset(m for m in mods if ABSENT_KIND[m] == cond.kind)
    if cond.kind == "present":
        return frozenset(m for m in mods if m not in cond.modalities)
    if cond.kind != "random-missing" or not mods:
        return frozenset()
    _check_rng(rng)
    gone = rng.random(len(mods)) < cond.rate
    if gone.all():
        gone[rng.integers(len(mods))] = False
    return frozenset(m for m, g in zip(mods, gone) if g)


def protocol_conditions(protocol: str, modalities: Sequence[str], *, rates: Sequence[float] = RATES,
                        kinds: Sequence[str] = SWEEP_KINDS) -> list[Condition]:
    """The conditions of one of the literature's protocols for a model reading `modalities`, complete data first:
    fixed = every non-empty proper subset present (one per size, MODALITY_NAMES' order), random = random-missing
    at each rate > 0, sweep = each kind at each rate > 0."""
    import itertools
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: one of {', '.join(PROTOCOLS)}")
    mods = [m for m in MODALITY_NAMES if m in modalities]
    out = [NONE]
    if protocol == "fixed":
        if len(mods) < 2:
            raise ValueError(f"the fixed-condition protocol needs a model of two or more modalities, not "
                             f"{'+'.join(mods) or 'none'}")
        for size in range(1, len(mods)):
            out += [Condition("present", modalities=c) for c in itertools.combinations(mods, size)]
        return out
    rated = [float(r) for r in rates if float(r) > 0]
    if protocol == "random":
        if len(mods) < 2:
            raise ValueError(f"the random-missing protocol needs a model of two or more modalities, not "
                             f"{'+'.join(mods) or 'none'}")
        return out + [Condition("random-missing", r) for r in rated]
    return out + [Condition(k, r) for k in kinds for r in rated]
