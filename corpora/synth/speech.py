"""Speak one sentence: 16 kHz float32 audio plus its true word and phone intervals."""
from __future__ import annotations

import multiprocessing
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from corpora.synth.espeak import EspeakSynth, Prosody
from corpora.textgrid import Interval
from features.audio import TARGET_SR, resample


@dataclass
class Spoken:
    audio: np.ndarray  # float32, 16 kHz mono
    words: list[Interval]
    phones: list[Interval]


def _speech_end(audio: np.ndarray, start: float, stop: float, sr: int, thresh: float) -> float:
    """Last time in [start, stop) whose 10 ms frame is above `thresh` RMS: a word's end before a pause."""
    hop = sr // 100
    a, b = int(start * sr), int(stop * sr)
    seg = audio[a:b]
    n = len(seg) // hop
    if n == 0:
        return stop
    rms = np.sqrt((seg[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    loud = np.nonzero(rms > thresh)[0]
    return stop if len(loud) == 0 else float(min(stop, start + (loud[-1] + 1) * hop / sr))


NOISE_FLOOR_DBFS = -60.0


def speak(text: str, voice: str, prosody: Prosody, lead: float = 0.15, tail: float = 0.15) -> Spoken:
    """Synthesise, pad with `lead`/`tail` seconds, and add a -60 dBFS noise floor.

    Why the noise floor: real recordings are never digitally silent, and features such as RASTA-filtered
    spectra or log-HNR behave very differently on exact zeros (the published LLD NormTerm fits demo speech
    only with a floor). The noise is seeded by the utterance's text, voice and prosody: deterministic.
    """
    syn = EspeakSynth().synth(text, voice, prosody)
    audio = resample(syn.audio, syn.sample_rate, TARGET_SR)
    pad_a, pad_b = np.zeros(int(lead * TARGET_SR), np.float32), np.zeros(int(tail * TARGET_SR), np.float32)
    audio = np.concatenate([pad_a, audio, pad_b])
    rng = np.random.default_rng(zlib.crc32(f"{text}|{voice}|{prosody}".encode()))
    audio += (10 ** (NOISE_FLOOR_DBFS / 20) * rng.standard_normal(len(audio))).astype(np.float32)
    dur = len(audio) / TARGET_SR
    thresh = 0.02 * float(np.abs(audio).max() + 1e-9)
    starts = [(off, ln, t + lead) for off, ln, t in syn.word_starts]
    words = []
    for i, (off, ln, t) in enumerate(starts):
        nxt = starts[i + 1][2] if i + 1 < len(starts) else dur - tail
        token = text[off: off + ln].strip(".,!?;:\"'")
        words.append(Interval(round(t, 4), round(_speech_end(audio, t, nxt, TARGET_SR, thresh), 4), token))
    phones = []
    ph = [(p, t + lead) for p, t in syn.phone_starts]
    for i, (p, t) in enumerate(ph):
        nxt = ph[i + 1][1] if i + 1 < len(ph) else dur - tail
        if nxt > t and not p.startswith("_"):  # '_' marks pauses
            phones.append(Interval(round(t, 4), round(nxt, 4), p))
    return Spoken(audio, words, phones)


def _speak_job(job: tuple[str, str, Prosody]) -> Spoken:
    return speak(*job)


def speak_many(jobs: list[tuple[str, str, Prosody]]) -> Iterator[Spoken]:
    """`speak` each (text, voice, prosody) in order, in a fresh process, yielding results as they come.

    Why a fresh process: espeak-ng's output depends on what it synthesised before (state such as the pitch
    flutter phase carries over between calls, even across re-initialisation). A new process given the same
    sequence of calls reproduces every sample, so a corpus is byte-identical for a seed.
    """
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        yield from pool.map(_speak_job, jobs, chunksize=8)
