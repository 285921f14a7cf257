"""Audio-text fusion with multi-scale chunks (Lin, Goncalves & Busso, ICMI 2023) as a method for engine/loop.py.

Data: a frame-level audio store (wav2vec2, 50 frames/s), a token-level text store (RoBERTa or any encoder, incl.
<s> ... </s>), their NormTerms (utterance-mean statistics; the label statistics come from the audio one, as the
original reads them), and each utterance's TextGrid words. A batch z-normalises both streams (utils.znorm),
applies a missing-data condition where one is asked for (features.missing, after the z-norm, so a blank is the
Train mean; words and wer re-encode the edited transcript, features.degraded_text; an absent stream is
`absent_stream`'s fixed rows, in training, evaluation and prediction alike), cuts the audio into C = max(2, words) chunks of 50 frames (systems.audio_text_inputs: even windows
of the one chunker, or word-boundary chunks with `lexical`), crops each chunk at a random scale in training
(`multiscale` only), pools it with the 1-2-4 temporal pyramid, puts the ones-row global token first on both
streams and pads them to 128 rows with masks. One model predicts Act, Dom and Val; the loss is the mean of the
three 1 - CCC losses (published estimator: population covariance, unbiased variances).
"""
from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from corpora.records import ATTRIBUTES
from features.missing import KINDS as MISSING_KINDS
from features.missing import Condition, apply_condition, parse_condition, rng_state, set_rng_state, utterance_rng
from features.normterm import NormTerm
from features.store import FeatureStore
from models.audio_text_coatten import AudioTextCoAttention
from systems.audio_text_inputs import audio_sequence, pad_batch, with_global_token
from utils import ccc, ccc_loss

SYSTEM = "audio_text"
STRATEGIES = ("multiscale", "fixed", "lexical")
MAX_LEN, M_FRAMES = 128, 50
MODALITIES = ("audio", "text")  # the names missing-data conditions use (present:audio, random-missing:P)
# An absent stream is a fixed number of rows at the Train mean (z = 0), whatever the utterance: the model is
# told the stream is missing, never how long it would have been (issue 20.2). Text: the empty transcript's two
# special-token rows (what prediction has fed for a WAV without transcript from the start); audio: one chunk's
# worth of frames, cut into the same C chunks the words give (every chunk pools to zeros).
ABSENT_ROWS = {"audio": M_FRAMES, "text": 2}


def absent_stream(modality: str, dims: int) -> np.ndarray:
    """The one definition of an absent `modality` ("audio" or "text") of this system, used by training
    augmentation, evaluation and prediction alike: ABSENT_ROWS[modality] rows of `dims` zeros (z-normalised
    space, i.e. the Train mean; float32)."""
    return np.zeros((ABSENT_ROWS[modality], int(dims)), np.float32)


def transcript_word_grid(mine: list[str], grid_words: list[str]) -> np.ndarray:
    """Index into `grid_words` (the TextGrid's words) of each whitespace word of a transcript (`mine`), -1 for
    words the alignment lacks, plus a last entry -1 (so index -1 maps to -1): by position when the counts
    agree, else by difflib on their lower-cased letters and digits."""
    import difflib
    key = lambda w: re.sub(r"\W", "", w.lower())  # noqa: E731
    mine, theirs = [key(w) for w in mine], [key(w) for w in grid_words]
    to_grid = np.full(len(mine) + 1, -1, np.int64)
    if len(mine) == len(theirs):
        to_grid[:-1] = np.arange(len(mine))
    else:
        for blk in difflib.SequenceMatcher(a=mine, b=theirs, autojunk=False).get_matching_blocks():
            to_grid[blk.a: blk.a + blk.size] = np.arange(blk.b, blk.b + blk.size)
    return to_grid


def transcript_token_words(tokenizer, text: str, grid_words: list[str]) -> np.ndarray:
    """Index into `grid_words` (the TextGrid's words) of every token row of `text` as the text store holds it,
    special tokens included (-1 for them and for words the alignment lacks). A token belongs to the whitespace
    word its characters fall in; whitespace words are matched to TextGrid words by `transcript_word_grid`."""
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    special = tokenizer.get_special_tokens_mask(enc["input_ids"], already_has_special_tokens=True)
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    word_of_char = np.full(len(text) + 1, -1, np.int64)
    for i, (a, b) in enumerate(spans):
        word_of_char[a:b] = i
    to_grid = transcript_word_grid([text[a:b] for a, b in spans], grid_words)
    rows = []
    for (a, b), sp in zip(enc["offset_mapping"], special):
        if sp or b <= a:
            rows.append(-1)
            continue
        while a < b and text[a].isspace():  # byte-level BPE tokens carry their leading space
            a += 1
        rows.append(int(to_grid[word_of_char[a]]))
    return np.array(rows, np.int64)


def blank_word_audio(audio: np.ndarray, grid_idx, words: list, frame_rate: float, rng) -> np.ndarray:
    """`audio` (z-normalised) with the frames of the TextGrid words `grid_idx` at the Train mean (0), one frame
    kept when they cover all of it (a present stream holds something, as every simulator of features.missing)."""
    from features.missing import _keep_one, word_frames
    mask = np.zeros(len(audio), bool)
    mask[word_frames(words, grid_idx, frame_rate, len(audio))] = True
    out = np.array(audio, copy=True)
    out[_keep_one(mask, rng)] = 0.0
    return out


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
    corpus: dict | None = None  # kind and name of a corpus other than MSP-Podcast (systems.common.run_corpus)
    transcripts: dict = field(default_factory=dict)  # utt -> transcript path (word conditions only)
    vocabulary: tuple = ()  # the training transcripts' words: wer's substitutes and insertions
    device: str = "cpu"  # where a degraded transcript is encoded again

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"chunking strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        self.crop_rng = random.Random(self.seed)  # the multi-resolution crops, in the prefetch thread's order
        self.miss_rng = np.random.default_rng(self.seed + 1)
        self.condition: Condition | None = None  # evaluation-time condition, set by the caller
        self.eval_seed = 0  # the simulation seed of evaluation-time conditions
        self.draw_info: dict = {}  # utt -> {"present": "audio+text", edit info} of the last evaluation
        self._tokenizer = None
        self._token_word_cache: dict = {}
        self._degraded = None  # features.degraded_text.DegradedText, made on first need
        if self.train_condition:
            check_train_condition(parse_condition(self.train_condition))

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

    def report_validation(self, iteration: int, losses: dict, val: float, best_before: float) -> None:
        """The original's lines after each validation (its text and str() precision; the training loss is the
        last batch's, as the original prints it)."""
        train_loss = losses["train"][-1] if losses.get("train") else float("nan")
        rule = "=" * 65
        print("validation process")
        print(f"Iteration: {iteration} ,Training-loss: {train_loss} ,Validation-loss: {val}")
        print(rule)
        if best_before == float("inf"):
            print(f"=> Saving the initial best model (Iteration={iteration})")
        elif val < best_before:
            print(f"=> Saving a new best model (Iteration={iteration})")
            print(f"=> Loss reduction from {best_before} to {val}")
        else:
            print(f"=> Validation Loss did not improve (Iteration={iteration})")
        print(rule)

    def state(self) -> dict:
        s = self.crop_rng.getstate()
        return {"crop": [s[0], list(s[1]), s[2]], "missing": rng_state(self.miss_rng)}

    def load_state(self, s: dict) -> None:
        self.crop_rng.setstate((s["crop"][0], tuple(s["crop"][1]), s["crop"][2]))
        set_rng_state(self.miss_rng, s["missing"])

    def config(self) -> dict:
        return {"system": SYSTEM, "model": {"audio_dim": 7 * self.audio.dims, "text_dim": self.text.dims},
                "attributes": list(ATTRIBUTES), "chunking": {"strategy": self.strategy, "m": M_FRAMES,
                                                             "max_len": MAX_LEN},
                "features": {"audio": self.audio.describe(), "text": self.text.describe()},
                "normterm": {"audio": self.nt_audio.to_json_all(), "text": self.nt_text.to_json_all()},
                "train_condition": self.train_condition, "seed": self.seed,
                "loss": "mean of 1-CCC (unbiased variances) over Act, Dom, Val", "corpus_version": self.corpus_version,
                **({"corpus": self.corpus} if self.corpus else {})}

    def without_word_alignment(self, items) -> list[str]:
        """The utterances of `items` a word-drop condition cannot be applied to: no transcript, or one whose
        tokens do not match the text store's rows (checked before any work, so nothing fails halfway)."""
        return [utt for utt, _ in items if self._token_words(utt) is None]

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
        """(audio (T, D), text (N, Dt)) of one utterance, z-normalised, under the training or the evaluation
        condition; an absent stream is `absent_stream` (the one definition). In evaluation, what the utterance
        really had and the transcript edit are kept in self.draw_info[utt] (engine.robustness.Draw)."""
        audio = self.nt_audio.features(self.audio[utt])
        text = self.nt_text.features(self.text[utt])
        cond = parse_condition(self.train_condition) if train and self.train_condition else self.condition
        info = {}
        if cond is not None and cond.kind != "none":
            rng = self.miss_rng if train else utterance_rng(self.eval_seed, utt, cond)
            audio, text, info = self._degrade(utt, cond, audio, text, rng)
        if not train:
            present = "+".join(m for m, x in zip(MODALITIES, (audio, text)) if x is not None)
            self.draw_info[utt] = {"present": present, **info}
        return (absent_stream("audio", self.audio.dims) if audio is None else audio,
                absent_stream("text", self.text.dims) if text is None else text)

    def _degrade(self, utt: str, cond: Condition, audio: np.ndarray, text: np.ndarray, rng):
        """(audio or None, text or None, info) of one utterance under `cond`, None = the stream absent. words,
        wer and words+audio edit the transcript and encode it again (DegradedText; no word left = text absent);
        words+audio also blanks the removed words' audio spans; word-rows blanks the words' encoded rows (the
        original helper); frames and bursts blank audio frames; *-absent, present:... and random-missing:P make
        whole streams absent."""
        from features.missing import REENCODED_KINDS, absent_modalities
        info = {}
        frame_rate = self.audio.meta.get("frame_rate") or 50.0
        if cond.kind in REENCODED_KINDS:
            text, info = self._edited_text(utt, cond)
            if cond.kind == "words+audio":
                audio = blank_word_audio(audio, self._grid_indices(utt, info["dropped"]), self.words[utt],
                                         frame_rate, rng)
        elif cond.kind in ("frames", "bursts", "word-rows"):
            token_words = self._token_words(utt) if cond.kind == "word-rows" else None
            if cond.kind == "word-rows" and token_words is None:  # callers check first: a backstop
                from corpora.records import CorpusError
                raise CorpusError(f"{self.transcripts.get(utt, utt)}: the {cond.kind} condition needs {utt}'s "
                                  "transcript, matching its text features, and its TextGrid words")
            audio, text = apply_condition(cond, audio, text, self.words.get(utt), token_words, rng, frame_rate)
        gone = absent_modalities(cond, MODALITIES, rng)
        return None if "audio" in gone else audio, None if "text" in gone else text, info

    def degraded_text(self):
        """The features.degraded_text.DegradedText of this method's text store (made on first need)."""
        if self._degraded is None:
            from features.degraded_text import DegradedText
            self._degraded = DegradedText(self.text, vocabulary=self.vocabulary, device=self.device)
        return self._degraded

    def prepare_text(self, items) -> None:
        """Encode in batches (or find cached) the edited transcripts of `items` under the evaluation condition
        and seed, so that collating them reads them back (a transcript-editing condition only)."""
        from corpora.records import read_transcript_file
        self.degraded_text().prepare({u: read_transcript_file(self.transcripts[u]) for u, _ in items},
                                     self.condition, self.eval_seed)

    def _edited_text(self, utt: str, cond: Condition):
        """(z-normalised token rows of the edited transcript, or None when no word is left; the edit's info
        with the realised WER)."""
        from corpora.records import read_transcript_file
        rows, info = self.degraded_text().features(utt, read_transcript_file(self.transcripts[utt]), cond,
                                                   self.eval_seed)
        return (None if rows is None else self.nt_text.features(rows)), info

    def _grid_indices(self, utt: str, dropped) -> np.ndarray:
        """TextGrid word indices of the transcript words `dropped` (indices into its whitespace words), matched
        as `transcript_token_words` matches them; words the alignment lacks have no audio span to blank."""
        from corpora.records import read_transcript_file
        to_grid = transcript_word_grid(read_transcript_file(self.transcripts[utt]).split(),
                                       [w.text for w in self.words.get(utt, [])])
        idx = to_grid[np.asarray(dropped, np.int64)] if len(dropped) else np.zeros(0, np.int64)
        return idx[idx >= 0]

    def _collate(self, items, train: bool) -> dict:
        streams = [self._streams(utt, train) for utt, _ in items]
        batch = model_inputs([a for a, _ in streams], [t for _, t in streams],
                             [self.words.get(utt, []) for utt, _ in items], self.strategy, train=train,
                             rng=self.crop_rng, frame_rate=self.audio.meta.get("frame_rate") or 50.0)
        if items and items[0][1] is not None:
            batch["y"] = torch.from_numpy(self.targets(items).astype(np.float32))
        return batch


TRAIN_REFUSED = ("words", "wer", "words+audio")  # re-encoding a transcript per training step costs too much
# the conditions this system simulates (every kind but mocap-absent: it has no motion capture), and in training
KINDS = tuple(k for k in MISSING_KINDS if k != "mocap-absent")
TRAIN_KINDS = tuple(k for k in KINDS if k not in TRAIN_REFUSED)
TRAIN_WHY = {k: "the transcript is encoded again for every utterance, too costly inside training (word-rows blanks "
                "the words' encoded rows instead)" for k in TRAIN_REFUSED}


def check_train_condition(cond: Condition) -> None:
    """ValueError when `cond` cannot be training augmentation here: the transcript re-encoding kinds (encoding a
    text per utterance per step would cost more than the step itself; `word-rows` blanks the encoded rows)."""
    if cond.kind in TRAIN_REFUSED:
        raise ValueError(f"{cond}: the transcript is encoded again for every utterance, too costly inside training; "
                         f"use word-rows:{cond.rate:g} (the words' encoded rows blanked), frames, bursts, "
                         "text-absent, audio-absent or random-missing as augmentation")


def model_inputs(audios, texts, words, strategy: str, train: bool = False, rng=None,
                 frame_rate: float = 50.0) -> dict:
    """The model's four input tensors for a batch. audios[i]: (T, D) z-normalised frames; texts[i]: (N, Dt)
    z-normalised token rows; words[i]: the TextGrid's word intervals, or a bare word count when there is no
    alignment (then `lexical` falls back to the even windows, which need only the count). Sequences over
    MAX_LEN rows keep their first MAX_LEN (audio_text_items lists such utterances before training)."""
    seqs_a, seqs_t = [], []
    for audio, text, w in zip(audios, texts, words):
        aligned = not isinstance(w, (int, np.integer))
        seqs_a.append(audio_sequence(audio, len(w) if aligned else int(w),
                                     strategy if aligned or strategy != "lexical" else "fixed", rng=rng,
                                     train=train, words=w if aligned else None, frame_rate=frame_rate))
        seqs_t.append(with_global_token(np.asarray(text, np.float32)))
    a, ma = pad_batch(seqs_a, MAX_LEN, truncate=True)
    t, mt = pad_batch(seqs_t, MAX_LEN, truncate=True)
    return {"audio": torch.from_numpy(a), "text": torch.from_numpy(t),
            "mask_audio": torch.from_numpy(ma), "mask_text": torch.from_numpy(mt)}


# ---------------------------------------------------------------------------- data and command line

def run_name(iterations: int, batch: int, strategy: str, train_condition: str | None) -> str:
    """The original's model name for its own setting; the other strategies and missing-data training named
    alike, so a comparison's runs sit side by side."""
    tag = {"multiscale": "MultiRslParymidPool", "fixed": "FixedChunkParymidPool", "lexical": "LexicalChunkParymidPool"}
    miss = f"_miss-{str(parse_condition(train_condition)).replace(':', '')}" if train_condition else ""
    return f"TransformerCoAtten_iter{iterations}_batch{batch}_AudioText_{tag[strategy]}{miss}_MTL"


def audio_text_items(root: Path, split: str, audio: FeatureStore, text: FeatureStore, *, kind: str = "msp-podcast",
                     fold: int | None = None):
    """(items [(utt, (act, dom, val))], words {utt: [Interval]}, transcripts {utt: path}) of a split of the
    `kind` of corpus (systems.common.read_split): every utterance needs both feature sets and its TextGrid; the
    others are listed on stderr, never dropped silently."""
    import sys

    from corpora.records import CorpusError
    from corpora.textgrid import MalformedTextGrid, read_words
    from features.store import without_changed_inputs
    from systems.common import read_split, refuse_categorical, require_dimensional_labels
    refuse_categorical(kind)
    corpus = read_split(kind, root, split, fold=fold)
    corpus.report()
    require_dimensional_labels(corpus, kind, split, ATTRIBUTES)
    items, words, transcripts, missing, malformed = [], {}, {}, {}, []
    for r in without_changed_inputs(corpus.records, (audio, text), split):  # never stale features (issue 19.5)
        if not all(a in r.labels for a in ATTRIBUTES):
            missing.setdefault("labels", []).append(r.utt_id)
            continue
        if r.utt_id not in audio or r.utt_id not in text:
            missing.setdefault("audio or text features", []).append(r.utt_id)
            continue
        try:
            words[r.utt_id] = read_words(r.alignment_path)
        except MalformedTextGrid as e:  # listed apart from missing ones, with the file and the problem
            malformed.append(str(e))
            continue
        except CorpusError:
            missing.setdefault("TextGrid", []).append(r.utt_id)
            continue
        transcripts[r.utt_id] = r.transcript_path
        items.append((r.utt_id, tuple(r.labels[a] for a in ATTRIBUTES)))
    for what, utts in missing.items():
        print(f"warning: {len(utts)} {split} utterance(s) without {what} are left out: {', '.join(utts[:10])}"
              f"{' ...' if len(utts) > 10 else ''}", file=sys.stderr)
    if malformed:
        print(f"warning: {len(malformed)} {split} utterance(s) with a malformed TextGrid are left out:\n  "
              + "\n  ".join(malformed[:10]) + ("\n  ..." if len(malformed) > 10 else ""), file=sys.stderr)
    long = [f"{u} ({max(2, len(words[u]))} chunks, {text.frames(u)} tokens)" for u, _ in items
            if max(2, len(words[u])) + 1 > MAX_LEN or text.frames(u) + 1 > MAX_LEN]
    if long:  # the original crashes on these; we keep each stream's first MAX_LEN rows
        print(f"warning: {len(long)} {split} utterance(s) exceed {MAX_LEN} rows per stream (global token "
              f"included) and are cut to their first {MAX_LEN}: {', '.join(long[:10])}"
              f"{' ...' if len(long) > 10 else ''}", file=sys.stderr)
    return items, words, transcripts


def transcript_vocabulary(root: Path, split: str, *, kind: str = "msp-podcast", fold: int | None = None
                          ) -> tuple[str, ...]:
    """The distinct words (whitespace tokens, as features.degraded_text splits a transcript) of a split's
    transcripts, in first-seen order: the words the `wer` condition substitutes and inserts."""
    from corpora.records import read_transcript_file
    from systems.common import read_split
    corpus = read_split(kind, root, split, fold=fold)
    words = (w for r in corpus.records if r.transcript_path and Path(r.transcript_path).is_file()
             for w in read_transcript_file(r.transcript_path).split())
    vocabulary = tuple(dict.fromkeys(words))
    if len(vocabulary) < 2:
        from engine.cli import UserError
        raise UserError(f"--train-split {split}: its transcripts under {root} hold {len(vocabulary)} distinct "
                        "word(s); the wer condition draws substitutes from them and needs at least 2")
    return vocabulary


def load_trained(folder: Path, audio: FeatureStore, text: FeatureStore, words: dict, transcripts: dict,
                 allow_unfinished: bool = False):
    """(method in evaluation configuration, model in eval mode) of one of our audio-text checkpoints, over the
    given stores (which must hold the feature sets it was trained on)."""
    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: not a checkpoint folder (an original .pth.tar scores WAVs through "
                         "prediction_process.py)")
    pred = Predictor.load(Path(folder), allow_unfinished=allow_unfinished)
    cfg = pred.config
    for kind, store in (("audio", audio), ("text", text)):
        want = cfg["features"][kind]
        if want.get("name") != store.meta.get("name") or want.get("dims") != store.dims:
            raise ValueError(f"{folder} was trained on {kind} features {want.get('name')} ({want.get('dims')}-d), "
                             f"{store.root} holds {store.meta.get('name')} ({store.dims}-d)")
    method = AudioTextMethod(audio, text, pred.nt_audio, pred.nt_text, words, strategy=pred.strategy,
                             seed=cfg.get("seed", 0), transcripts=transcripts)
    return method, pred.model


# ---------------------------------------------------------------------------- prediction on raw inputs

LEGACY_NAME = re.compile(r"TransformerCoAtten_.*\.pth\.tar$")
PAPER_FEATURES = {"audio": {"name": "Wav2Vec1024", "dims": 1024, "frame_rate": 50.0,
                            "params": {"model": "facebook/wav2vec2-large-robust", "layers": "last",
                                       "combine": "concat", "normalise": True, "eps": 1e-5}},
                  "text": {"name": "RoBERTa768", "dims": 768, "params": {"model": "roberta-base",
                                                                         "layer": "last_hidden_state"}}}
WORDS_PER_SECOND = 2.5  # C for a WAV with neither TextGrid nor transcript: a conversational ~150 words/min


class Predictor:
    """A trained audio-text model ready to score feature arrays: z-norm with its NormTerms, chunks, the model,
    Act/Dom/Val de-normalised with the audio NormTerm's label statistics (as the original)."""

    attributes = ATTRIBUTES

    def __init__(self, model: AudioTextCoAttention, nt_audio: NormTerm, nt_text: NormTerm, config: dict,
                 device: str = "cpu"):
        self.model = model.to(device).eval()
        self.nt_audio, self.nt_text, self.config, self.device = nt_audio, nt_text, config, device
        self.strategy = config["chunking"]["strategy"]
        self.source = str(config.get("source", ""))
        self.chunking = {"m": M_FRAMES}

    @classmethod
    def load(cls, path: str | Path, normterm: str | Path | None = None, device: str = "cpu",
             allow_unfinished: bool = False) -> "Predictor":
        """Our checkpoint folder, or an original `TransformerCoAtten_*.pth.tar` (bare state_dict) with the
        folder holding the original's NormTerm_Speech and NormTerm_Text (`normterm`); an original model was
        trained on the paper's features (PAPER_FEATURES)."""
        from engine.checkpoint import load_checkpoint, load_legacy
        from models.audio_text_coatten import from_original_state_dict
        path = Path(path)
        if path.is_dir():
            sd, cfg = load_checkpoint(path, allow_unfinished)
            if cfg.get("system") != SYSTEM:
                raise ValueError(f"{path}: a {cfg.get('system')!r} checkpoint, not {SYSTEM}")
            model = AudioTextCoAttention(**cfg["model"])
            model.load_state_dict(sd, strict=True)
            return cls(model, NormTerm.from_json_all(cfg["normterm"]["audio"]),
                       NormTerm.from_json_all(cfg["normterm"]["text"]), {**cfg, "source": str(path)}, device)
        if not LEGACY_NAME.search(path.name):
            raise ValueError(f"{path}: expected a checkpoint folder or an original TransformerCoAtten_*.pth.tar")
        if normterm is None or not (Path(normterm) / "NormTerm_Speech").is_dir() \
                or not (Path(normterm) / "NormTerm_Text").is_dir():
            raise ValueError(f"{path}: an original .pth.tar needs --normterm, a folder holding the original's "
                             f"NormTerm_Speech and NormTerm_Text (got {normterm})")
        model = from_original_state_dict(load_legacy(path))
        nt_a, nt_t = NormTerm.load(Path(normterm) / "NormTerm_Speech"), NormTerm.load(Path(normterm) / "NormTerm_Text")
        for what, nt, dims in (("NormTerm_Speech", nt_a, model.audio_dim // 7), ("NormTerm_Text", nt_t, model.text_dim)):
            if nt.feat_mean is None or len(nt.feat_mean) != dims:
                raise ValueError(f"{Path(normterm) / what}: the model takes {dims}-d features, the statistics "
                                 f"are {None if nt.feat_mean is None else len(nt.feat_mean)}-d")
        features = {k: {**v, "dims": d} for (k, v), d in zip(PAPER_FEATURES.items(),
                                                               (model.audio_dim // 7, model.text_dim))}
        cfg = {"system": SYSTEM, "model": {"audio_dim": model.audio_dim, "text_dim": model.text_dim},
               "chunking": {"strategy": "multiscale", "m": M_FRAMES, "max_len": MAX_LEN}, "features": features,
               "legacy_file": path.name, "source": str(path)}
        return cls(model, nt_a, nt_t, cfg, device)

    def truncation(self, audio: np.ndarray, text: np.ndarray | None, words) -> str:
        """'' or what the model will not see of one input (audio (T, D) frames, text (N, Dt) rows or None, words
        as `predict` takes them): each stream keeps its first MAX_LEN rows (global token included), so the audio
        chunks past the 127th and the tokens past the 127th are cut. Said in rows, seconds and tokens."""
        from systems.audio_text_inputs import chunk_count, chunk_starts
        aligned = not isinstance(words, (int, np.integer))
        C = chunk_count(len(words) if aligned else int(words))
        frame_rate = self.config["features"]["audio"].get("frame_rate") or 50.0
        cut = []
        if C + 1 > MAX_LEN:
            strategy = self.strategy if aligned or self.strategy != "lexical" else "fixed"
            starts, lengths = chunk_starts(len(audio), C, m=M_FRAMES, strategy=strategy,
                                           words=words if aligned else None, frame_rate=frame_rate)
            end = min(len(audio), int(starts[MAX_LEN - 2] + lengths[MAX_LEN - 2])) / frame_rate
            cut.append(f"audio {MAX_LEN} of {C + 1} rows kept (chunks 1-{MAX_LEN - 1} of {C}: 0-{end:.1f} s of "
                       f"{len(audio) / frame_rate:.1f} s seen)")
        if text is not None and len(text) + 1 > MAX_LEN:
            cut.append(f"text {MAX_LEN} of {len(text) + 1} rows kept (the first {MAX_LEN - 1} of {len(text)} tokens)")
        return f"truncated: {'; '.join(cut)}" if cut else ""

    def predict(self, inputs: list, batch_size: int = 16) -> np.ndarray:
        """(N, 3) Act, Dom, Val on the label scale for inputs [(audio (T, D) or None, text (N, Dt) or None,
        words)]: raw (un-normalised) feature arrays; None = that modality absent, by the system's one definition
        (`absent_stream`, as in training and evaluation); words = the TextGrid's intervals or a word count."""
        out = []
        with torch.inference_mode():
            for b in range(0, len(inputs), batch_size):
                chunk = inputs[b: b + batch_size]
                audios = [absent_stream("audio", self.model.audio_dim // 7) if a is None else self.nt_audio.features(a)
                          for a, _, _ in chunk]
                texts = [absent_stream("text", self.model.text_dim) if t is None else self.nt_text.features(t)
                         for _, t, _ in chunk]
                with warnings.catch_warnings():  # each cut input is named by `truncation`, file by file
                    warnings.filterwarnings("ignore", message="pad_batch: truncated", category=UserWarning)
                    batch = model_inputs(audios, texts, [w for _, _, w in chunk], self.strategy,
                                         frame_rate=self.config["features"]["audio"].get("frame_rate") or 50.0)
                o = self.model(*(batch[k].to(self.device) for k in ("audio", "text", "mask_audio", "mask_text")))
                out.append(torch.stack([o[a] for a in ATTRIBUTES], 1).float().cpu().numpy())
        z = np.concatenate(out) if out else np.zeros((0, 3))
        return np.stack([self.nt_audio.denorm(z[:, k], a) for k, a in enumerate(ATTRIBUTES)], 1)

    def track(self, inputs: list) -> list[dict]:
        """Per input of `predict`: {"score": (3,) Act, Dom, Val as `predict` gives them, "chunks": (C, 3) the
        chunk outputs (models.audio_text_coatten.AudioTextCoAttention.chunk_outputs), "weights": (C, 3) the
        global audio row's attention over the chunks (one weight, repeated per attribute), "frames": (C, 2) each
        chunk's [start, end) wav2vec2 frame (systems.audio_text_inputs.chunk_starts)}, label scale. Chunks past
        the model's MAX_LEN - 1 rows are not seen and not listed; an absent audio stream has no chunks."""
        return [self.track_one(*x) for x in inputs]

    def track_one(self, a: np.ndarray | None, t: np.ndarray | None, words) -> dict:
        from systems.audio_text_inputs import chunk_count, chunk_starts
        frame_rate = self.config["features"]["audio"].get("frame_rate") or 50.0
        audio = absent_stream("audio", self.model.audio_dim // 7) if a is None else self.nt_audio.features(a)
        text = absent_stream("text", self.model.text_dim) if t is None else self.nt_text.features(t)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pad_batch: truncated", category=UserWarning)
            batch = model_inputs([audio], [text], [words], self.strategy, frame_rate=frame_rate)
            o = self.model.chunk_outputs(*(batch[k].to(self.device)
                                           for k in ("audio", "text", "mask_audio", "mask_text")))
        aligned = not isinstance(words, (int, np.integer))
        n_chunks = chunk_count(len(words) if aligned else int(words))
        starts, lengths = chunk_starts(len(audio), n_chunks, m=M_FRAMES, words=words if aligned else None,
                                       strategy=self.strategy if aligned or self.strategy != "lexical" else "fixed",
                                       frame_rate=frame_rate)
        seen = 0 if a is None else min(n_chunks, MAX_LEN - 1)  # rows the model holds after the global one
        weights = o["weights"][0, :seen].float().cpu().numpy().astype(np.float64)                # (C,)
        return {"score": np.array([self.nt_audio.denorm(o["utterance"][k][0].item(), k) for k in ATTRIBUTES]),
                "chunks": np.stack([self.nt_audio.denorm(o["chunks"][k][0, :seen].float().cpu().numpy(), k)
                                    for k in ATTRIBUTES], axis=1).reshape(seen, 3),              # (C, 3)
                "weights": np.repeat(weights[:, None], 3, axis=1),                                # (C, 3)
                "frames": np.stack([starts, np.minimum(starts + lengths, len(audio))], axis=1)[:seen]}

    def extractors(self, audio_model: str | None = None, text_model: str | None = None, device: str = "cpu"):
        """(wav2vec2 extractor, text token extractor) as the checkpoint's features were made, from the model
        ids recorded (or the ones given, e.g. a local copy); refused when their output differs in size."""
        from features.text import TokenFeatures, load_failure
        from features.wav2vec2 import Wav2Vec2Features
        fa, ft = self.config["features"]["audio"], self.config["features"]["text"]
        pa, pt = fa.get("params") or {}, ft.get("params") or {}
        audio_model = audio_model or self.recorded_model(pa["model"], "--audio-model")
        text_model = text_model or self.recorded_model(pt["model"], "--text-model")
        layers, layer = pa.get("layers", "last"), pt.get("layer", "last_hidden_state")
        try:
            audio = Wav2Vec2Features(model=audio_model, layers=layers, device=device,
                                     precision=pa.get("precision", "fp32"),  # as the training features were made
                                     combine=pa.get("combine", "concat"), normalise=pa.get("normalise", True),
                                     **({"eps": pa["eps"]} if pa.get("eps") is not None else {}))
        except OSError as e:
            raise OSError(load_failure("--audio-model", audio_model, e)) from None
        try:
            text = TokenFeatures(model=text_model, device=device, precision=pt.get("precision", "fp32"),
                                 layer=-1 if layer == "last_hidden_state" else int(layer))
        except OSError as e:
            raise OSError(load_failure("--text-model", text_model, e, keyword="minilm")) from None
        for kind, ext, name, want in (("audio", audio, audio_model, fa), ("text", text, text_model, ft)):
            if ext.dims != want.get("dims"):
                raise ValueError(f"{self.source} takes {want.get('dims')}-d {kind} features; {name} gives "
                                 f"{ext.dims}-d")
        return audio, text

    def recorded_model(self, recorded: str, flag: str) -> str:
        """The model a checkpoint's store recorded, found from any folder: a keyword or hub id as it is, a local
        folder as recorded when it exists, else (a relative folder recorded by an older store) relative to the
        checkpoint's folder or one above it; a local folder found nowhere is an OSError naming `flag` at once,
        never a model-hub lookup."""
        from features.text import TINY_MODELS, load_failure
        p = Path(str(recorded))
        if str(recorded).lower() in (*TINY_MODELS, "minilm") or p.exists():
            return str(recorded)
        source = Path(self.source).resolve()
        found = next((base / p for base in (source, *source.parents) if (base / p / "config.json").is_file()), None)
        if found is not None:
            return str(found)
        if p.is_absolute() or str(recorded).startswith("."):
            raise OSError(load_failure(flag, str(recorded), FileNotFoundError("the folder the checkpoint records "
                                                                            "is not on this machine")))
        return str(recorded)  # a hub id
