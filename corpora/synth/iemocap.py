"""A synthetic corpus in the exact IEMOCAP release layout, spoken by espeak-ng, with motion capture.

    <out>/Session{1..5}/
      sentences/wav/<dialog>/<utt>.wav           one utterance, 16 kHz mono PCM16
      dialog/wav/<dialog>.wav                     the dialog: utterances joined by 0.3-0.8 s of silence
      dialog/EmoEvaluation/<dialog>.txt           summary lines + per-evaluator C-/A- lines, in time order
      dialog/EmoEvaluation/{Categorical,Attribute,Self-evaluation}/   one decoy file each (readers skip them)
      dialog/transcriptions/<dialog>.txt          `<utt> [sss.ssss-eee.eeee]: <text>`, plus one `XX` turn
      dialog/MOCAP_{rotated,head,hand}/<dialog>.txt   120 frames/s over the whole dialog

Each session has one female and one male actor (distinct voices) and up to three dialogs; the gender letter
of a dialog name is the marker wearer, the letter of an utterance id the speaker. `Ses05M_script01_1b` keeps
its mocap in `Ses05M_script01_1`, as in the real release.

Labels follow `corpora.synth.rules`: the 1-5 V/A/D triple is the mean of three simulated evaluators, whose
integer ratings are the `A-E` lines; the consensus code is `rules.iemocap_category`. Motion capture is a
smooth random trajectory per column whose frame-to-frame displacement is proportional to the current
utterance's five-point arousal (and small in the gaps), so mocap carries arousal the way audio does.

Deterministic for a seed: one `np.random.default_rng(seed)` with child generators per dialog in a fixed
order; every draw happens before synthesis, which runs in one fresh process (`speech.speak_many`: espeak-ng
output depends on what the process spoke before). Every file is written atomically; `synth_summary.json`
is written last.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter
from tqdm import tqdm

from corpora.iemocap import MOCAP_NAME_EXCEPTIONS, mocap_dialog
from corpora.synth import generator_version, rules
from corpora.synth.msp_podcast import SUMMARY
from corpora.synth.speech import speak_many
from features.audio import TARGET_SR, write_wav
from utils import atomic_path, atomic_write_text

MOCAP_FPS = 120
# (female, male) voice per session: ten distinct actors. No `breath` variants (f2, f3, f5): their noise
# differs from run to run and would break byte-identical corpora.
ACTOR_VOICES = {1: ("en-us+f1", "en-us+m3"), 2: ("en-gb-x-rp+f4", "en-gb-x-rp+m1"),
                3: ("en-029+Annie", "en-029+m2"), 4: ("en-gb-scotland+belinda", "en-gb-scotland+m4"),
                5: ("en-us+linda", "en-us+m7")}
# dialog name after `Ses0<S>` (marker wearer first); utterances are dealt to these in order, so with few
# utterances every session still gets its first two dialogs (and Session 5 its `_1b` dialog)
DIALOG_SUFFIXES = ("F_impro01", "M_script01_1", "M_impro02")
MIN_UTTERANCES = 2 * len(ACTOR_VOICES)

# 55 face markers (x, y, z each). Names in the style of the release headers (forehead, cheeks, brows, mouth,
# nose ...); the real list is not reproduced, the reader takes whatever line 1 of a file says
FACE_MARKERS = (("CH1", "CH2", "CH3", "FH1", "FH2", "FH3")
                + tuple(f"LC{i}" for i in range(1, 9)) + tuple(f"RC{i}" for i in range(1, 9))
                + tuple(f"LBM{i}" for i in range(4)) + tuple(f"RBM{i}" for i in range(4))
                + tuple(f"LBRO{i}" for i in range(1, 5)) + tuple(f"RBRO{i}" for i in range(1, 5))
                + tuple(f"MOU{i}" for i in range(1, 9))
                + ("LLID", "RLID", "MH", "MNOSE", "LNSTRL", "TNOSE", "RNSTRL", "LHD", "RHD"))
HEAD_COLUMNS = ("pitch", "roll", "yaw", "tra_x", "tra_y", "tra_z")
HEAD_UNITS = ("deg", "deg", "deg", "mm", "mm", "mm")
HAND_MARKERS = ("RWRI", "RHND", "RTHM", "LWRI", "LHND", "LTHM")  # 6 markers x (x, y, z)
STREAM_WIDTHS = {"rotated": 3 * len(FACE_MARKERS), "head": len(HEAD_COLUMNS), "hand": 3 * len(HAND_MARKERS)}
ROTATED_NAN_RATE = 0.005  # share of (frame, face marker) samples lost, as occluded markers are in the release
GAP_MOTION = 0.2  # motion amplitude between utterances, against the 1-5 arousal of an utterance
# per-frame step size per unit of arousal (mm, or degrees for head rotation) and resting-position spread
STEP = {"rotated": 0.08, "head": np.array([0.04, 0.04, 0.04, 0.1, 0.1, 0.1]), "hand": 0.3}
SPREAD = {"rotated": 90.0, "head": np.array([8.0, 8.0, 8.0, 60.0, 60.0, 60.0]), "hand": 300.0}

CATEGORY_WORDS = {"ang": "Anger", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "fru": "Frustration",
                  "neu": "Neutral state", "sur": "Surprise", "fea": "Fear", "oth": "Other", "dis": "Disgust"}
EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
# times are kept on a 0.5 ms grid (8 samples) so the 4-decimal times in the text files are exact sample offsets
GRID = 8


def dialog_plan(n: int) -> list[tuple[int, str, int]]:
    """(session, dialog name, utterance count) for every dialog that gets utterances, sorted by name."""
    if n < MIN_UTTERANCES:
        raise ValueError(f"n={n}: need at least {MIN_UTTERANCES} utterances (two per session)")
    renamed = {real: odd for odd, real in MOCAP_NAME_EXCEPTIONS.items()}
    slots = [(s, f"Ses0{s}{suffix}") for suffix in DIALOG_SUFFIXES for s in sorted(ACTOR_VOICES)]
    base, extra = divmod(n, len(slots))
    plan = [(s, renamed.get(name, name), base + (i < extra)) for i, (s, name) in enumerate(slots)]
    return sorted(p for p in plan if p[2] > 0)


def _category_lines(code: str, rng: np.random.Generator) -> list[str]:
    """Three evaluators' category words: a majority for the consensus code, three different ones for xxx."""
    others = [c for c in CATEGORY_WORDS if c != code]
    if code == "xxx":
        picks = [others[i] for i in rng.choice(len(others), size=3, replace=False)]
    else:
        dissent = others[rng.integers(len(others))] if rng.random() < 0.5 else code
        picks = [code, code, dissent]
        picks = [picks[i] for i in rng.permutation(3)]
    return [f"C-E{k + 1}:\t{CATEGORY_WORDS[c]};\t()" for k, c in enumerate(picks)]


def _emo_block(u: dict, rng: np.random.Generator) -> str:
    lab = u["labels"]
    lines = [f"[{u['start']:.4f} - {u['end']:.4f}]\t{u['utt']}\t{u['category']}\t"
             f"[{lab['val']:.4f}, {lab['act']:.4f}, {lab['dom']:.4f}]"]
    lines += _category_lines(u["category"], rng)
    ratings = u["ratings"]
    lines += [f"A-E{k + 1}:\tval {ratings['val'][k]}; act {ratings['act'][k]}; dom {ratings['dom'][k]};\t()"
              for k in range(3)]
    return "\n".join(lines) + "\n"


def _mocap_trajectories(times: np.ndarray, spans: list[tuple[float, float, float]],
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Marker trajectories for every stream: frames x columns, NaN where a face marker was lost.

    The per-frame velocity is low-passed white noise times an envelope equal to the arousal of the utterance
    being spoken (GAP_MOTION between utterances); a leaky integrator turns it into positions around a resting
    pose, so frame-to-frame displacement (motion energy) tracks arousal while positions stay bounded.
    """
    envelope = np.full(len(times), GAP_MOTION)
    for start, end, arousal in spans:
        envelope[(times > start) & (times < end)] = arousal
    out = {}
    for stream, width in STREAM_WIDTHS.items():
        noise = rng.standard_normal((len(times), width))
        velocity = lfilter([0.1], [1.0, -0.9], noise, axis=0) * (envelope[:, None] * STEP[stream])
        rest = rng.uniform(-1.0, 1.0, size=width) * SPREAD[stream]
        out[stream] = rest + lfilter([1.0], [1.0, -0.995], velocity, axis=0)
    lost = rng.random((len(times), len(FACE_MARKERS))) < ROTATED_NAN_RATE
    out["rotated"][np.repeat(lost, 3, axis=1)] = np.nan
    return out


def _mocap_header(stream: str) -> str:
    if stream == "head":
        return " ".join(("Frame#", "Time") + HEAD_COLUMNS) + "\n" + " ".join(("frame", "sec") + HEAD_UNITS) + "\n"
    markers = FACE_MARKERS if stream == "rotated" else HAND_MARKERS
    return (" ".join(("Frame#", "Time") + markers) + "\n"
            + " ".join(("frame", "sec") + ("X", "Y", "Z") * len(markers)) + "\n")


def format_table(table: np.ndarray, decimals: np.ndarray | list[int], *, rows_per_block: int = 8192) -> bytes:
    """Rows of single-space-separated numbers, column j printed like '%.{decimals[j]}f' (NaN as 'NaN', no
    '-0.000'), each row ending in a newline. Values must be finite or NaN.

    Built with array operations: every value becomes a right-aligned character cell, padding is masked out.
    Python's '%' formatting costs ~0.4 us per value and dominated corpus generation (a dialog's face mocap is
    10^6 values); this is several times faster. Blocks of rows bound the memory.
    """
    table = np.asarray(table, dtype=np.float64)
    dec = np.broadcast_to(np.asarray(decimals, dtype=np.int64), table.shape[1:])
    return b"".join(_format_block(table[i:i + rows_per_block], dec)
                    for i in range(0, len(table), rows_per_block))


def _format_block(table: np.ndarray, dec: np.ndarray) -> bytes:
    nan = np.isnan(table)
    scaled = np.rint(np.abs(np.where(nan, 0.0, table)) * 10.0 ** dec)
    kind = np.uint32 if scaled.max(initial=0) < 2**32 else np.uint64  # uint32 division is ~5x faster
    scaled = scaled.astype(kind)
    negative = (table < 0) & (scaled > 0)
    whole, length, power = scaled // (10 ** dec).astype(kind), np.ones(table.shape, np.uint8), 10
    while power <= whole.max(initial=0):  # integer digits
        length += whole >= power
        power *= 10
    length += (dec + (dec > 0)).astype(np.uint8) + negative
    length[nan] = 3  # characters of each number
    width = int(length.max()) + 1  # plus the separator after it
    cells = np.empty(table.shape + (width,), np.uint8)
    for d in np.unique(dec):  # columns sharing a decimal count share the position of the point
        cols = np.flatnonzero(dec == d)
        if cols[-1] - cols[0] + 1 == len(cols):  # a slice writes in place; an index array scatters
            cols = slice(cols[0], cols[-1] + 1)
        rest = scaled[:, cols]
        for k in range(width - 1):  # k-th character left of the separator; past a number's length: masked
            if d > 0 and k == d:
                cells[:, cols, width - 2 - k] = ord(".")
                continue
            quotient = rest // 10
            cells[:, cols, width - 2 - k] = rest - quotient * 10 + ord("0")
            rest = quotient
    first = (width - 1 - length).ravel()  # where each number starts within its cell
    flat = cells.reshape(-1)  # 1-d puts: much faster than (row, col, char) index triples
    at = np.flatnonzero(negative)
    flat[at * width + first[at]] = ord("-")
    at = np.flatnonzero(nan)
    for j, char in enumerate(b"NaN"):
        flat[at * width + width - 4 + j] = char
    cells[..., -1] = ord(" ")
    cells[:, -1, -1] = ord("\n")
    keep = np.arange(width, dtype=np.uint8) >= first.reshape(table.shape)[..., None]
    return cells[keep].tobytes()


def _write_mocap(path: Path, stream: str, times: np.ndarray, values: np.ndarray) -> None:
    """Two header lines, then `Frame# Time v1 .. vC` rows: Frame# from 1, Time 4 decimals, values 3."""
    table = np.column_stack([np.arange(1, len(times) + 1), times, values])
    with atomic_path(path) as tmp:
        tmp.write_bytes(_mocap_header(stream).encode() + format_table(table, [0, 4] + [3] * values.shape[1]))


@dataclass
class DialogPlan:
    """Everything drawn for a dialog before any audio exists (speech must be synthesised in one batch)."""

    session: int
    dialog: str
    utts: list[dict]  # utt, gender, voice, text, controls, labels, category, gap (silence before, samples)
    final_gap: int  # silence after the last utterance, samples
    eval_rng: np.random.Generator  # evaluator lines and the XX turn
    motion_rng: np.random.Generator  # mocap


def _plan_dialog(session: int, dialog: str, count: int, rng: np.random.Generator) -> DialogPlan:
    speech_rng, eval_rng, motion_rng = rng.spawn(3)
    voices = dict(zip("FM", ACTOR_VOICES[session]))

    def gap() -> int:  # silence before / after an utterance, in samples on the time grid
        return GRID * int(speech_rng.uniform(0.3, 0.8) * TARGET_SR / GRID)

    first, per_speaker, utts = int(speech_rng.integers(2)), {"F": 0, "M": 0}, []
    for k in range(count):
        gender = "FM"[(first + k) % 2]  # speakers alternate
        utt = f"{dialog}_{gender}{per_speaker[gender]:03d}"
        per_speaker[gender] += 1
        text, controls = rules.draw_utterance(speech_rng)
        scores = rules.attribute_scores(controls, speech_rng)
        ratings = rules.five_point_ratings(scores, speech_rng)
        labels = rules.consensus(ratings)
        category = rules.iemocap_category(scores, controls.sentiment, speech_rng)
        utts.append({"utt": utt, "dialog": dialog, "session": session, "gender": gender, "voice": voices[gender],
                     "text": text, "controls": controls, "ratings": ratings, "labels": labels, "category": category, "gap": gap()})
    return DialogPlan(session, dialog, utts, gap(), eval_rng, motion_rng)


def _write_dialog(out: Path, plan: DialogPlan, audios: list[np.ndarray]) -> float:
    """Lay the spoken utterances out on the dialog timeline and write every file of the dialog.

    Adds start/end (seconds in the dialog wav) to the plan's utterances; returns the dialog's seconds.
    """
    dialog, utts = plan.dialog, plan.utts
    pieces, cursor = [], 0
    for u, audio in zip(utts, audios):
        audio = np.concatenate([audio, np.zeros(-len(audio) % GRID, np.float32)])  # end on the time grid
        pieces += [np.zeros(u["gap"], np.float32), audio]
        cursor += u["gap"]
        u["start"], u["end"] = cursor / TARGET_SR, (cursor + len(audio)) / TARGET_SR
        cursor += len(audio)
    pieces.append(np.zeros(plan.final_gap, np.float32))
    dialog_audio = np.concatenate(pieces)
    seconds = len(dialog_audio) / TARGET_SR

    session_dir = out / f"Session{plan.session}"
    for u, audio in zip(utts, pieces[1::2]):
        write_wav(session_dir / "sentences" / "wav" / dialog / f"{u['utt']}.wav", audio)
    write_wav(session_dir / "dialog" / "wav" / f"{dialog}.wav", dialog_audio)

    emo = EMO_HEADER + "\n\n" + "".join(_emo_block(u, plan.eval_rng) + "\n" for u in utts)
    atomic_write_text(session_dir / "dialog" / "EmoEvaluation" / f"{dialog}.txt", emo)

    # one unsegmented turn (`XX` id, no label, no wav) inside a gap, as the release has
    lines = [(u["start"], f"{u['utt']} [{u['start']:08.4f}-{u['end']:08.4f}]: {u['text']}") for u in utts]
    after = utts[int(plan.eval_rng.integers(len(utts)))]
    xx_start, xx_end = after["end"] + 0.05, after["end"] + 0.25
    other = "M" if after["gender"] == "F" else "F"
    lines.append((xx_start, f"{dialog}_{other}XX0 [{xx_start:08.4f}-{xx_end:08.4f}]: [BREATHING]"))
    atomic_write_text(session_dir / "dialog" / "transcriptions" / f"{dialog}.txt",
                      "".join(line + "\n" for _, line in sorted(lines)))

    times = np.round(np.arange(int(seconds * MOCAP_FPS) + 1) / MOCAP_FPS, 4)
    spans = [(u["start"], u["end"], u["labels"]["act"]) for u in utts]
    for stream, values in _mocap_trajectories(times, spans, plan.motion_rng).items():
        path = session_dir / "dialog" / f"MOCAP_{stream}" / f"{mocap_dialog(dialog)}.txt"
        _write_mocap(path, stream, times, values)
    return seconds


def _write_decoys(session_dir: Path, utts: list[dict]) -> None:
    """One file in each EmoEvaluation sub-folder. The Self-evaluation one repeats the dialog's file name and
    block format with a different code, so a reader that globs recursively double-counts and is caught."""
    emo_dir = session_dir / "dialog" / "EmoEvaluation"
    u = utts[0]
    atomic_write_text(emo_dir / "Categorical" / f"{u['dialog']}_e1_cat.txt",
                      "".join(f"{v['utt']} :{CATEGORY_WORDS.get(v['category'], 'Other')}; ()\n" for v in utts))
    atomic_write_text(emo_dir / "Attribute" / f"{u['dialog']}_e1_atr.txt",
                      "".join(f"{v['utt']} :act 3; val 3; dom 3; ()\n" for v in utts))
    atomic_write_text(emo_dir / "Self-evaluation" / f"{u['dialog']}.txt",
                      f"{EMO_HEADER}\n\n[{u['start']:.4f} - {u['end']:.4f}]\t{u['utt']}\tsur\t"
                      "[3.0000, 3.0000, 3.0000]\n\n")


def write_iemocap(out: str | Path, n: int = 200, seed: int = 0, *, progress: bool = True) -> dict:
    """Write `n` utterances in the IEMOCAP layout under `out`; returns (and saves) a summary.

    Summary: kind, n, seed, sessions, dialogs, per-category counts, seconds of utterance and dialog audio, and
    `controls`/`utterances` (per-utterance rule inputs and ground truth, for tests and README examples).
    """
    out = Path(out)
    layout = dialog_plan(n)
    plans = [_plan_dialog(session, dialog, count, rng)
             for (session, dialog, count), rng in zip(layout, np.random.default_rng(seed).spawn(len(layout)))]
    jobs = [(u["text"], u["voice"], rules.to_prosody(u["controls"])) for p in plans for u in p.utts]
    utts, dialog_seconds = [], 0.0
    with contextlib.closing(speak_many(jobs)) as spoken:  # closing ends the synthesis process
        for plan in tqdm(plans, desc="IEMOCAP demo corpus", disable=not progress, unit="dialog"):
            dialog_seconds += _write_dialog(out, plan, [next(spoken).audio for _ in plan.utts])
            utts += plan.utts
    for session in sorted({p.session for p in plans}):
        _write_decoys(out / f"Session{session}", [u for u in utts if u["session"] == session])

    categories: dict[str, int] = {}
    for u in utts:
        categories[u["category"]] = categories.get(u["category"], 0) + 1
    summary = {"kind": "iemocap", "n": n, "seed": seed, "generator": generator_version(), "sessions": sorted({p.session for p in plans}),
               "dialogs": len(plans),
               "categories": dict(sorted(categories.items())),
               "seconds": round(sum(u["end"] - u["start"] for u in utts), 2),
               "dialog_seconds": round(dialog_seconds, 2),
               "controls": {u["utt"]: asdict(u["controls"]) for u in utts},
               "utterances": {u["utt"]: {k: u[k] for k in ("dialog", "session", "gender", "voice", "text",
                                                           "category", "labels", "start", "end")} for u in utts}}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1))
    return summary
