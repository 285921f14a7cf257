"""Audio-side inputs of the multi-scale chunk audio-text system (Lin, Goncalves & Busso, ICMI 2023).

Reference: shared/reference/multiscale_chunk_audio_text.md, sections 5-6 and quirks 2-4, 15-18. Written from
that description, no code taken from the original repository.

Pipeline for one utterance (`audio_sequence`): z-normalised wav2vec2 frames (T, D) -> C chunks of m = 50
frames (`chunk_starts` + `gather_blocks`) -> in training, for the "multiscale" strategy only, a random crop of
10/20/30/40/50 frames per chunk (`random_crop`) -> temporal pyramid pooling, levels 1, 2, 4
(`temporal_pyramid_pool`, 7*D per chunk) -> a row of ones in front (`with_global_token`). `pad_batch` pads the
per-utterance sequences (audio or text) of a batch to 128 rows with a True-is-padding mask.

Chunk strategies:

* "multiscale" (the published system, "VFVC") and "fixed": C = number of words (at least 2, `chunk_count`),
  C evenly spaced windows of m frames (section 6.1). This is exactly `utils.dynamic_chunks(lengths, m, C, n=1)`
  (the project's one chunker), called per utterance with that utterance's C; only the word *count* is used
  (quirk 2). "multiscale" adds the training crop, "fixed" never crops.
* "lexical": one chunk per aligned word, cut at the TextGrid word boundaries (the alternative the paper
  compares; not in the published code, rule documented in `chunk_starts`). Never cropped.

Deliberate differences from the original (defined behaviour where it crashes):

* utterances shorter than m frames (quirk 16; the original builds a ragged array and fails) get step 0 and
  start 0, and the window is zero-padded at the end to m rows (zero is the z-normalised mean). The padding
  counts as frames of the window (length m) for cropping and pooling, exactly as if the utterance had been
  extended with its normalised mean; MSP-Podcast turns are at least 2.75 s, so this never occurs there;
* sequences over 128 rows (quirk 15; the original's negative pad size raises inside numpy) raise a clear
  ValueError in `pad_batch`, or are truncated on request;
* pooling always returns float32 (quirk 18, see `temporal_pyramid_pool`);
* evaluation (`train=False`) does not draw from the RNG at all; the original's eval collate called
  `random.choice([1.0])` once per chunk, which consumes global-RNG state without changing any output.
"""
from __future__ import annotations

import random
import warnings
from typing import Sequence

import numpy as np

from utils import dynamic_chunks, gather_chunks

M_FRAMES = 50  # chunk length: 50 wav2vec2 frames = 1 s
FRAME_RATE = 50.0  # wav2vec2 frames per second (20 ms hop)
TRAIN_SCALES = (0.2, 0.4, 0.6, 0.8, 1.0)  # crop lengths 10/20/30/40/50 frames for m = 50
EVAL_SCALES = (1.0,)
MAX_LEN = 128  # rows per sequence after padding (global token included)
STRATEGIES = ("multiscale", "fixed", "lexical")
TPP_PARTS = 7  # 1 + 2 + 4 pyramid segments


# ------------------------------------------------------------------------------------------- chunk layout

def chunk_count(n_words: int) -> int:
    """C = number of (non-empty) words of the utterance, at least 2 (0 or 1 word -> 2 chunks)."""
    n_words = int(n_words)
    if n_words < 0:
        raise ValueError(f"word count cannot be negative (got {n_words})")
    return max(n_words, 2)


def _word_times(word) -> tuple[float, float]:
    """(start, end) in seconds of a corpora.textgrid.Interval, or of a (start, end[, text]) tuple."""
    if hasattr(word, "start") and hasattr(word, "end"):
        return float(word.start), float(word.end)
    return float(word[0]), float(word[1])


def chunk_starts(n_frames: int, C: int, m: int = M_FRAMES, strategy: str = "multiscale",
                 words: Sequence | None = None, frame_rate: float = FRAME_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(starts (C,), lengths (C,)) int64: chunk k covers frames [starts[k], starts[k] + lengths[k]).

    "multiscale" / "fixed": the even windows of section 6.1, `utils.dynamic_chunks([n_frames], m, C, n=1)[0]`:
    step = floor((T - m) / (C - 1)), starts k*step, every length m. T - m < C - 1 gives step 0 (C copies of
    the first m frames); T < m gives start 0 and a window that `gather_blocks` zero-pads to m rows (length
    still m: the padding, the normalised mean, counts as frames, see the module docstring).

    "lexical": one chunk per word of `words` (corpora.textgrid.Interval or (start, end) tuples in seconds;
    C must equal `chunk_count(len(words))`). Frame k has timestamp k / frame_rate, as in the original's
    timestamp vector. For a word [s, e):
        a = nearest frame to s = floor(s * frame_rate + 0.5), clamped to [0, T - 1];
        b = nearest frame to e = floor(e * frame_rate + 0.5), clamped to at most T;
        length = clip(b - a, 1, m)     (half-open [a, b): adjacent words share no frame).
    So a word shorter than one frame (or rounding to none) gets 1 frame, a word longer than m frames keeps
    its first m frames, and a word past the end of the features (alignment longer than the audio) gets the
    last frame. With fewer than 2 words the even windows above are used (C = 2, lengths m).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown chunk strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    n_frames, C, m = int(n_frames), int(C), int(m)
    if n_frames < 1:
        raise ValueError(f"an utterance needs at least one frame (got {n_frames})")
    if m < 1 or C < 1:
        raise ValueError(f"need m >= 1 and C >= 1 (got m={m}, C={C})")
    if strategy == "lexical":
        if words is None:
            raise ValueError("the lexical strategy needs the word alignment (words=...)")
        if C != chunk_count(len(words)):
            raise ValueError(f"lexical chunks: C={C} but the alignment has {len(words)} word(s) "
                             f"(expected C={chunk_count(len(words))})")
        if len(words) >= 2:
            if frame_rate <= 0:
                raise ValueError(f"frame_rate must be positive (got {frame_rate})")
            times = np.array([_word_times(w) for w in words], dtype=np.float64)  # (C, 2)
            a = np.floor(times[:, 0] * frame_rate + 0.5).astype(np.int64)
            b = np.floor(times[:, 1] * frame_rate + 0.5).astype(np.int64)
            a = np.clip(a, 0, n_frames - 1)
            b = np.minimum(b, n_frames)
            return a, np.clip(b - a, 1, m)
    starts = dynamic_chunks([n_frames], m=m, C=C, n=1)[0]
    return starts, np.full(C, m, dtype=np.int64)


def gather_blocks(feats: np.ndarray, starts: np.ndarray, lengths: np.ndarray, m: int = M_FRAMES) -> np.ndarray:
    """(C, m, D) float32 blocks: row r of block k = feats[starts[k] + r] for r < lengths[k], else 0.

    Full-length windows inside the utterance go through `utils.gather_chunks`; blocks that are shorter than
    m (lexical words) or run past the end of the features are zero-filled beyond their frames."""
    feats = np.asarray(feats)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if feats.ndim != 2:
        raise ValueError(f"features must be (T, D) (got shape {feats.shape})")
    if starts.shape != lengths.shape or starts.ndim != 1:
        raise ValueError("starts and lengths must be two (C,) arrays")
    T = len(feats)
    if np.all(lengths == m) and (np.all(starts == 0) if T < m else np.all(starts + m <= T)):
        return gather_chunks([feats], starts[None, :], m)  # the even windows: the shared gatherer
    out = np.zeros((len(starts), m, feats.shape[1]), dtype=np.float32)
    for k, (s, n) in enumerate(zip(starts, lengths)):
        rows = feats[s: s + min(int(n), m)]
        out[k, : len(rows)] = rows
    return out


# --------------------------------------------------------------------------------------- multi-scale crop

def random_crop(chunks: np.ndarray, rng, scales: Sequence[float] = TRAIN_SCALES) -> tuple[np.ndarray, np.ndarray]:
    """Random multi-resolution crop of each chunk (section 6.2): (cropped (C, m, D), lengths (C,) int64).

    Per chunk, in chunk order: draw r from `scales`; r == 1 keeps the chunk (length m, no further draw);
    otherwise f = int(r * m) frames are kept from a uniformly drawn start, moved to the top and zero-padded
    at the end back to m rows. The start follows the original's centre rule: c = randrange(f//2, m - f//2),
    crop [c - f//2, c + f//2), so it is uniform over 0 .. m-1-f and the last frame (m - 1) is never inside a
    crop (quirk 3). For odd f (not reachable with m = 50 and the default scales; the original fails there)
    the centre is drawn from randrange(f//2, f//2 + m - f) and the crop is [c - f//2, c - f//2 + f), which
    keeps both properties.

    `rng`: a `random.Random` (or the `random` module itself, the original's global RNG): the draws are
    exactly `rng.choice(scales)` then, if r != 1, `rng.randrange(f//2, m - f//2)`, chunk after chunk, so a
    seeded Python RNG reproduces the original's crops. A `np.random.Generator` draws
    `scales[rng.integers(len(scales))]` and the start with `rng.integers(0, m - f)` instead.
    Evaluation = scales (1.0,): the chunks come back unchanged (a copy), every length m.
    """
    chunks = np.asarray(chunks)
    if chunks.ndim != 3:
        raise ValueError(f"chunks must be (C, m, D) (got shape {chunks.shape})")
    scales = tuple(float(s) for s in scales)
    if not scales or any(not 0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"crop scales must lie in (0, 1] (got {scales})")
    C, m, _ = chunks.shape
    out = np.zeros_like(chunks)
    lengths = np.empty(C, dtype=np.int64)
    use_numpy = isinstance(rng, np.random.Generator)
    for k in range(C):
        r = scales[int(rng.integers(len(scales)))] if use_numpy else rng.choice(scales)
        if r == 1:
            out[k] = chunks[k]
            lengths[k] = m
            continue
        f = max(int(r * m), 1)
        if f >= m:  # cannot happen for r < 1 (int(r*m) < m); kept for safety
            out[k] = chunks[k]
            lengths[k] = m
            continue
        half = f // 2
        if use_numpy:
            start = int(rng.integers(0, m - f))
        else:
            start = rng.randrange(half, half + (m - f)) - half  # == randrange(f//2, m - f//2) for even f
        out[k, :f] = chunks[k, start: start + f]
        lengths[k] = f
    return out, lengths


# ------------------------------------------------------------------------------ temporal pyramid pooling

def temporal_pyramid_pool(chunks: np.ndarray, lengths: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
    """Temporal pyramid pooling, levels 1, 2, 4 (section 6.3): (C, m, D) -> (C, 7*D) float32.

    Only the first lengths[k] rows of chunk k are used (all m rows when `lengths` is None); with L that count,
    h = floor(L/2), q = floor(L/4), the seven D-dim means are concatenated in the order
        mean[0:L], mean[0:h], mean[h:L], mean[0:q], mean[q:2q], mean[2q:3q], mean[3q:L]
    (the last quarter takes the remainder: L=50 -> 25/25 and 12/12/12/14). L < 5 (a quarter could be empty):
    the overall mean repeated 7 times.

    Computed as one batched matrix product: a (C, 7, m) weight matrix holding 1/len over each part's rows times
    the (C, m, D) chunks (BLAS; ~17x faster than float64 running sums on 1024-d wav2vec2 frames, which made this
    the audio-text batch preparation's main cost, issue 25). Float32 accumulation over at most m = 50 rows: the
    result differs from an exact mean by float32 rounding (measured max 2.4e-7 on z-normalised frames).

    Precision (quirk 18): the original pools in float32 in evaluation and in float64 in training (its padded
    crops are float64), then the model casts to float32; both modes match it to float32 rounding.
    """
    x = np.asarray(chunks, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"chunks must be (C, m, D) (got shape {x.shape})")
    C, m, D = x.shape
    if lengths is None:
        L = np.full(C, m, dtype=np.int64)
    else:
        L = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if L.shape != (C,):
            raise ValueError(f"need one length per chunk ({C}), got {L.shape[0]}")
        if np.any(L < 1) or np.any(L > m):
            raise ValueError(f"chunk lengths must lie in 1..{m} (got {L.tolist()})")
    h, q = L // 2, L // 4
    zero = np.zeros_like(L)
    lo = np.stack([zero, zero, h, zero, q, 2 * q, 3 * q], axis=1)  # (C, 7)
    hi = np.stack([L, h, L, q, 2 * q, 3 * q, L], axis=1)
    short = L < 5
    lo[short] = 0
    hi[short] = L[short, None]
    rows = np.arange(m)
    weights = ((rows >= lo[..., None]) & (rows < hi[..., None])).astype(np.float32)  # (C, 7, m)
    weights /= (hi - lo)[..., None].astype(np.float32)
    means = np.matmul(weights, x)                                                    # (C, 7, D)
    return means.reshape(C, TPP_PARTS * D)


# ------------------------------------------------------------------------------------- sequence assembly

def with_global_token(seq: np.ndarray) -> np.ndarray:
    """(N, D) -> (N + 1, D): a row of ones first, the "global" token (quirk 4). It lives in the normalised
    feature space (not a learned embedding); the model reads its output at position 0. Dtype kept."""
    seq = np.asarray(seq)
    if seq.ndim != 2:
        raise ValueError(f"sequence must be (N, D) (got shape {seq.shape})")
    return np.concatenate([np.ones((1, seq.shape[1]), dtype=seq.dtype), seq], axis=0)


class PaddedBatch(tuple):
    """(batch, mask), unpacking as two values, with `.cut`: rows dropped from each sequence (B,) int64,
    all zero unless `pad_batch(..., truncate=True)` had to shorten something."""

    cut: np.ndarray

    def __new__(cls, batch: np.ndarray, mask: np.ndarray, cut: np.ndarray):
        self = super().__new__(cls, (batch, mask))
        self.cut = cut
        return self

    @property
    def batch(self) -> np.ndarray:
        return self[0]

    @property
    def mask(self) -> np.ndarray:
        return self[1]


def pad_batch(seqs: Sequence[np.ndarray], max_len: int = MAX_LEN, truncate: bool = False) -> PaddedBatch:
    """Zero-pad (N_i, D) sequences to (B, max_len, D) float32 with a (B, max_len) bool mask, True = padding
    (mask[i, j] = j >= N_i), as the original collates (section 6.4).

    A sequence longer than max_len (127 chunks / 125 BPE tokens plus the global token; quirk 15, where the
    original crashes inside numpy): ValueError naming the sequence, by default. With `truncate=True` its first
    max_len rows are kept (the global token, row 0, always survives), a warning says how many rows of how many
    sequences were cut, and the returned object's `.cut` holds the per-sequence count.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1 (got {max_len})")
    arrays = [np.asarray(s) for s in seqs]
    if any(a.ndim != 2 for a in arrays):
        raise ValueError(f"sequences must be (N, D) (got shapes {[a.shape for a in arrays]})")
    D = arrays[0].shape[1]
    if any(a.shape[1] != D for a in arrays):
        raise ValueError(f"sequences have different widths: {sorted({a.shape[1] for a in arrays})}")
    n = np.array([len(a) for a in arrays], dtype=np.int64)
    cut = np.maximum(n - max_len, 0)
    if cut.any():
        i = int(np.argmax(cut))
        if not truncate:
            raise ValueError(f"sequence {i} has {n[i]} rows, more than max_len={max_len} "
                             f"({int((cut > 0).sum())} sequence(s) too long); pass truncate=True to keep the "
                             f"first {max_len} rows")
        warnings.warn(f"pad_batch: truncated {int((cut > 0).sum())} sequence(s) to {max_len} rows, "
                      f"{int(cut.sum())} row(s) cut", stacklevel=2)
    batch = np.zeros((len(arrays), max_len, D), dtype=np.float32)
    for i, a in enumerate(arrays):
        k = min(len(a), max_len)
        batch[i, :k] = a[:k]
    mask = np.arange(max_len)[None, :] >= np.minimum(n, max_len)[:, None]
    return PaddedBatch(batch, mask, cut)


def audio_sequence(feats: np.ndarray, n_words: int | None, strategy: str = "multiscale", rng=None,
                   train: bool = False, words: Sequence | None = None, frame_rate: float = FRAME_RATE,
                   m: int = M_FRAMES) -> np.ndarray:
    """One utterance's audio input: (C + 1, 7*D) float32 = [ones] + TPP of each chunk.

    `feats`: (T, D) frames, already z-normalised and clipped (utils.znorm / NormTerm). `n_words`: the
    utterance's non-empty word count (None: len(words)); C = chunk_count(n_words). Chunks come from
    `chunk_starts` with `strategy`; in training (`train=True`) and for "multiscale" only, each chunk is
    cropped by `random_crop(..., rng, TRAIN_SCALES)` (`rng` None = Python's global `random` module, as the
    original); otherwise nothing is drawn and each chunk is pooled over its own length (m for the even
    windows, the word span for "lexical").
    """
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"features must be (T, D) (got shape {feats.shape})")
    if n_words is None:
        if words is None:
            raise ValueError("give n_words or the word alignment")
        n_words = len(words)
    C = chunk_count(n_words)
    starts, lengths = chunk_starts(len(feats), C, m=m, strategy=strategy, words=words, frame_rate=frame_rate)
    blocks = gather_blocks(feats, starts, lengths, m)
    if train and strategy == "multiscale":
        blocks, lengths = random_crop(blocks, random if rng is None else rng, TRAIN_SCALES)
    return with_global_token(temporal_pyramid_pool(blocks, lengths))
