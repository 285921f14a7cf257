#!/usr/bin/env python
"""Per-second tracks (systems/tracks.py): how well chunk outputs track the utterance score, and memory.

    python bench/bench_tracks.py agreement [--data demo_data] [--split Test1]
    python bench/bench_tracks.py memory [--minutes 1 10]

agreement: for each model of the demo run (and the shipped v1.6 chunk LSTMs), every WAV of the split as one
window: the mean of the file's chunk outputs against the utterance score the model gives it, per attribute:
Pearson r, CCC and mean |difference| (label scale). DeepEmoCluster's utterance score is the mean of its chunk
outputs by construction (difference 0 up to rounding); the others' chunk outputs are the head applied to one
chunk's vector, which no loss ever fitted to a label (docs/tracks.md).

memory: the shipped chunk LSTMs track a synthetic recording of each length (the demo's first WAV repeated) in
a fresh process; prints the tracemalloc peak (numpy and Python allocations) and the peak RSS, which must not grow
with the length: each window is read from the WAV and featurized on its own.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import parser  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "demo_data"


def demo_models(data: Path) -> dict[str, dict]:
    """{label: load kwargs} of the chunk-based models of a demo run plus the shipped published ones."""
    from systems.predict import shipped_models
    m = data / "Models"
    lstm = sorted(m.glob("LSTM_*_RnnAttenVec_*"))
    out = {"chunk LSTM RnnAttenVec (demo, 100 it)": {"path": lstm},
           "chunk LSTM SelfAttenVec (published v1.6)": {"path": shipped_models("SelfAttenVec")},
           "chunk LSTM RnnAttenVec (published v1.6)": {"path": shipped_models("RnnAttenVec")}}
    for p in sorted(m.glob("TempDeepEmoCluster_*")):
        out[f"DeepEmoCluster {p.name.split('_')[-2]} (demo)"] = {"path": p}
    for p in sorted(m.glob("TransformerCoAtten_*")):
        tag = "multiscale" if "MultiRsl" in p.name else "fixed"
        out[f"audio-text {tag} (demo)"] = {"path": p, "audio_model": str(data / "tiny_wav2vec2"),
                                           "text_model": "minilm"}
    return out


def split_items(data: Path, split: str):
    import csv

    from features.extract import Item
    root = data / "msp-podcast"
    with open(root / "Labels" / "labels_consensus.csv") as f:
        names = [r["FileName"][:-4] for r in csv.DictReader(f) if r["Split_Set"] == split]
    return [Item(n, root / "Audios" / f"{n}.wav", root / "Transcripts" / f"{n}.txt", None,
                 root / "ForceAligned" / f"{n}.TextGrid") for n in names]


def agreement(data: Path, split: str) -> None:
    import ser
    from systems.tracks import Windows, track_items
    from utils import ccc
    items = split_items(data, split)
    print(f"{len(items)} WAVs of {split} ({data / 'msp-podcast'}), each one window; chunk mean vs utterance score")
    print("| model | attribute | files | Pearson r | CCC | mean abs difference |")
    print("|---|---|---|---|---|---|")
    for label, kw in demo_models(data).items():
        p = ser.load(kw.pop("path"), **kw)
        tracks = []
        _, errors = track_items(p, items, Windows(), on_track=tracks.append)
        assert not errors, errors
        for k, a in enumerate(p.attributes):
            utt = np.array([t.scores[k] for t in tracks])
            mean = np.array([np.mean([r[a] for r in t.rows]) for t in tracks])
            r = np.corrcoef(utt, mean)[0, 1]
            print(f"| {label} | {a} | {len(tracks)} | {r:.3f} | {ccc(mean, utt):.3f} | "
                  f"{np.mean(np.abs(mean - utt)):.4f} |")


def one_length(seconds: float) -> None:
    """(in a fresh process) track a `seconds`-long WAV with the shipped models; print the peaks."""
    import resource
    import tempfile
    import time
    import tracemalloc

    import soundfile as sf

    import ser
    from features.audio import load_audio
    x = load_audio(sorted((DATA / "msp-podcast" / "Audios").glob("*.wav"))[0])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.wav"
        total = int(seconds * 16000)
        with sf.SoundFile(str(path), "w", 16000, 1, "PCM_16") as f:  # written block by block, too
            for start in range(0, total, len(x)):
                f.write(x[: total - start])
        p = ser.load()
        p.track_file(path, window=11.0)  # warm-up: models, openSMILE, first allocations
        tracemalloc.start()
        t0 = time.perf_counter()
        df = p.track_file(path, window=11.0)
        wall = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        p.track_file(path, window=11.0, out=Path(d) / "tracks")
        peak_written = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {seconds / 60:g} min | {df['window'].nunique()} | {peak / 2**20:.1f} MiB "
          f"| {peak_written / 2**20:.1f} MiB "
          f"| {rss:.0f} MiB | {wall:.1f} s |")


def memory(minutes: list[float]) -> None:
    print("| recording | windows | tracemalloc peak: tracking | the same + CSV and PNG | peak RSS | wall (tracking) |")
    print("|---|---|---|---|---|---|")
    for m in minutes:
        subprocess.run([sys.executable, __file__, "_one", str(m * 60)], check=True)


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("mode", choices=("agreement", "memory", "_one"),
                    help="agreement: chunk means vs utterance scores; memory: memory by recording length; _one: internal, one length in this process")
    ap.add_argument("seconds", nargs="?", type=float, help="_one: the recording length in seconds (default: none)")
    ap.add_argument("--data", type=Path, default=DATA, help="a finished demo run's demo_data folder")
    ap.add_argument("--split", default="Test1", help="MSP-Podcast split of the demo corpus")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0], help="recording lengths (memory)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    if args.mode == "agreement":
        agreement(args.data, args.split)
    elif args.mode == "memory":
        memory(args.minutes)
    else:
        one_length(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
