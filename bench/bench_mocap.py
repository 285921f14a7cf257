#!/usr/bin/env python
"""IEMOCAP motion-capture throughput: parsing the dialog files and cutting them to utterances.

Parsing the dialog-level MOCAP_{rotated,head,hand} files, and `features.mocap.utterance_mocap` (parse + slice to the
utterance span + resample to --frames + NaN interpolation) for every utterance whose speaker wore the markers.

    python bench/bench_mocap.py [--dialogs 151] [--utterances-per-dialog 40] [--rounds 3] [--corpus-dir D]

The real release has 151 dialogs (about 12 h, ~5 min each). The synthetic IEMOCAP writer
(`corpora.synth.iemocap.write_iemocap`) always lays its `n` utterances out on the same 15 dialog slots (5
sessions x 3 dialogs): n sets the dialogs' length, not their number. So the bench writes ceil(dialogs / 15)
corpora with seeds 0, 1, ... (n = 15 x --utterances-per-dialog each; 40 per dialog gives dialogs of about the
real average length at 120 mocap frames/s) under --corpus-dir, reused on later runs, and times the first
--dialogs dialogs. Generation runs in child processes and is reported apart; it is not part of the timing.

Cold parse: `corpora.iemocap._read_mocap_file` keeps the last parsed files in an lru_cache; it is cleared
before every dialog in every round, so each dialog's three files are parsed once per round, as on a first pass
over the corpus (the OS page cache is warm: this times parsing, not the disk). Per dialog, the best of --rounds
(bench.common.best_of_rounds, after one warm-up call) is kept and the bests are summed. One thread (pandas'
C parser). Peak RSS is this process's (ru_maxrss), generation children excluded.

Baseline, measured in the same run: the bare `pandas.read_csv` call `_read_mocap_file` makes (same arguments:
whitespace separator, two header lines skipped, no header, float64, C engine), on the same three files per
dialog, with no header decoding, array conversion or short-row check. It is timed with the parse in the same
best_of_rounds call (the variants' order rotates every round), so the ratio parse / read_csv is our reader's
overhead over the library it wraps; utterance_mocap's ratio is to read_csv of the dialogs it reads.
"""
import datetime
import math
import os
import platform
import resource
import sys
import time
from collections import defaultdict
from types import SimpleNamespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import best_of_rounds  # noqa: E402
from engine.cli import int_at_least, parser  # noqa: E402

DIALOGS_PER_CORPUS = 15  # write_iemocap's fixed dialog slots
MOCAP_FPS = 120


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _write(folder: str, n: int, seed: int) -> float:
    """Child process: one synthetic corpus; returns its seconds."""
    t0 = time.perf_counter()
    from corpora.synth.iemocap import write_iemocap
    write_iemocap(folder, n=n, seed=seed, progress=False)
    return time.perf_counter() - t0


def corpora_for(corpus_dir: Path, dialogs: int, per_dialog: int) -> tuple[list[Path], float, int]:
    """The corpus roots (written where missing, in parallel child processes), generation wall seconds and
    how many corpora were written now."""
    import json
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from corpora.synth.msp_podcast import SUMMARY
    n = DIALOGS_PER_CORPUS * per_dialog
    roots = [corpus_dir / f"u{per_dialog}_seed{k}" for k in range(math.ceil(dialogs / DIALOGS_PER_CORPUS))]

    def ready(root: Path, seed: int) -> bool:
        try:
            s = json.loads((root / SUMMARY).read_text())
        except (OSError, ValueError):
            return False
        return s.get("n") == n and s.get("seed") == seed and s.get("dialogs") == DIALOGS_PER_CORPUS

    todo = [(str(r), n, k) for k, r in enumerate(roots) if not ready(r, k)]
    t0 = time.perf_counter()
    if todo:
        with ProcessPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1),
                                 mp_context=get_context("spawn")) as pool:
            list(pool.map(_write, *zip(*todo)))
    return roots, time.perf_counter() - t0, len(todo)


def dialogs_to_time(roots: list[Path], n_dialogs: int, corpus_dir: Path) -> SimpleNamespace:
    """The first `n_dialogs` dialogs (corpus order, then name order) and what the report divides by: their MOCAP
    files, the marker wearer's utterances, sizes, frame counts and durations."""
    from corpora.iemocap import MOCAP_STREAMS, _read_mocap_file, mocap_path, read_iemocap
    from features.mocap import speaker_wore_markers
    # dialogs in corpus order, then name order; the first --dialogs of them
    by_dialog: dict[tuple[int, str], list] = defaultdict(list)
    for k, root in enumerate(roots):
        for r in read_iemocap(root).records:
            by_dialog[(k, r.dialog)].append(r)
    keys = sorted(by_dialog)[:n_dialogs]
    if len(keys) < n_dialogs:
        raise SystemExit(f"only {len(keys)} dialogs with utterances in {corpus_dir}, {n_dialogs} asked for")
    files = [tuple(str(mocap_path(by_dialog[key][0], s)) for s in MOCAP_STREAMS) for key in keys]
    worn = [[r for r in by_dialog[key] if speaker_wore_markers(r.utt_id)] for key in keys]
    n_utts = sum(len(by_dialog[key]) for key in keys)
    n_worn = sum(map(len, worn))
    sizes = [sum(os.path.getsize(p) for p in trio) / 1e6 for trio in files]
    counts = []
    for trio in files:  # every stream of a dialog has one row per frame
        _read_mocap_file.cache_clear()
        rows = {len(_read_mocap_file(p)[0]) for p in trio}
        if len(rows) != 1:
            raise SystemExit(f"{trio[0]}: streams with different frame counts {sorted(rows)}")
        counts.append(rows.pop())
    mbytes, frames = sum(sizes), sum(counts)
    dialog_s = frames / MOCAP_FPS
    # utterance_mocap reads only the dialogs holding utterances of the marker wearer
    has = [i for i, w in enumerate(worn) if w]
    mbytes_u, frames_u = sum(sizes[i] for i in has), sum(counts[i] for i in has)
    utt_s = sum(r.end - r.start for rs in worn for r in rs)

    return SimpleNamespace(keys=keys, files=files, worn=worn, has=has, n_utts=n_utts, n_worn=n_worn, mbytes=mbytes,
                           frames=frames, dialog_s=dialog_s, mbytes_u=mbytes_u, frames_u=frames_u, utt_s=utt_s)


def describe_run(args, roots: list, c, gen_s: float, written: int) -> tuple[str, str]:
    """Print what was timed (the synthetic corpora, their mocap and utterances) and on what; (machine, date)."""
    import numpy as np
    import pandas as pd
    keys, mbytes, frames, dialog_s = c.keys, c.mbytes, c.frames, c.dialog_s
    n_utts, n_worn, utt_s = c.n_utts, c.n_worn, c.utt_s
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine = f"{cpu_model()}, {os.cpu_count()} cores ({cores} usable)"
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    gen = (f"{gen_s:.1f} s for {written} corpora ({os.cpu_count()} child processes at most)" if written
           else "reused (none written)")
    seeds = "seed 0" if len(roots) == 1 else f"seeds 0-{len(roots) - 1}"
    print(f"synthetic IEMOCAP: {len(keys)} dialogs from {len(roots)} x {DIALOGS_PER_CORPUS}-dialog corpora ({seeds}, "
          f"{args.utterances_per_dialog} utterances/dialog) in {args.corpus_dir}")
    print(f"  mocap: {mbytes:,.0f} MB of text in {3 * len(keys)} files, {frames:,} frames = {dialog_s / 3600:.2f} h "
          f"at {MOCAP_FPS} frames/s ({dialog_s / len(keys):.0f} s per dialog on average)")
    print(f"  utterances: {n_utts}, {n_worn} spoken by the marker wearer ({utt_s / 3600:.2f} h of speech)")
    print(f"generation: {gen}; not part of the timing")
    print(f"machine: {machine}; Python {platform.python_version()}, numpy {np.__version__}, pandas "
          f"{pd.__version__}; {date}")
    return machine, date


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--dialogs", type=int_at_least(1), default=151,
                    help="dialogs to time (the real release has 151)")
    ap.add_argument("--utterances-per-dialog", type=int_at_least(1), default=40,
                    help="synthetic utterances per dialog; sets the dialogs' length (40: about the real ~5 min)")
    ap.add_argument("--rounds", type=int_at_least(1), default=3, help="timing rounds (best per dialog is kept)")
    ap.add_argument("--frames", type=int_at_least(1), default=200, help="frames utterance_mocap resamples to")
    ap.add_argument("--corpus-dir", type=Path, default=Path("/tmp/bench_iemocap_mocap"),
                    help="where the synthetic corpora are written, and reused on later runs")
    args = ap.parse_args(argv)

    import numpy as np
    import pandas as pd

    from corpora.iemocap import _read_mocap_file
    from features.mocap import utterance_mocap

    roots, gen_s, written = corpora_for(args.corpus_dir, args.dialogs, args.utterances_per_dialog)

    c = dialogs_to_time(roots, args.dialogs, args.corpus_dir)
    keys, files, worn, has = c.keys, c.files, c.worn, c.has
    n_worn, mbytes, frames, dialog_s = c.n_worn, c.mbytes, c.frames, c.dialog_s
    mbytes_u, frames_u, utt_s = c.mbytes_u, c.frames_u, c.utt_s

    def parse(trio):
        _read_mocap_file.cache_clear()
        for p in trio:
            _read_mocap_file(p)

    def read_csv(trio):  # the library baseline: _read_mocap_file's pandas call, nothing around it
        for p in trio:
            pd.read_csv(p, sep=r"\s+", skiprows=2, header=None, dtype=np.float64, engine="c")

    def extract(records):
        _read_mocap_file.cache_clear()
        for r in records:
            x, why = utterance_mocap(r, n=args.frames)
            if x is None:
                raise RuntimeError(f"{r.utt_id}: {why}")

    timed = best_of_rounds({"parse": parse, "read_csv": read_csv}, files, args.rounds)
    t_parse, t_csv = timed["parse"], timed["read_csv"]
    # read_csv of the dialogs utterance_mocap reads (all of them unless a dialog has no marker-wearer utterance)
    t_csv_u = t_csv if len(has) == len(files) else best_of_rounds({"read_csv": read_csv}, [files[i] for i in has],
                                                                  args.rounds)["read_csv"]
    t_utt = best_of_rounds({"utterance_mocap": extract}, [worn[i] for i in has], args.rounds)["utterance_mocap"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    machine, date = describe_run(args, roots, c, gen_s, written)
    print(f"timing: best of {args.rounds} per dialog, summed; parse cache cleared before every dialog\n")
    print("| step | items | seconds | items/s | MB/s | mocap frames/s | mocap s per wall s | RTF | ratio to read_csv |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| parse MOCAP_rotated+head+hand | {len(keys)} dialogs | {t_parse:.2f} | {len(keys) / t_parse:.2f} | "
          f"{mbytes / t_parse:.1f} | {frames / t_parse:,.0f} | {dialog_s / t_parse:.0f} | {t_parse / dialog_s:.5f} | "
          f"{t_parse / t_csv:.2f} |")
    print(f"| utterance_mocap (parse, slice, resample to {args.frames}, NaN interpolation) | {n_worn} utterances | "
          f"{t_utt:.2f} | {n_worn / t_utt:.1f} | {mbytes_u / t_utt:.1f} | {frames_u / t_utt:,.0f} | {utt_s / t_utt:.0f} | "
          f"{t_utt / utt_s:.5f} | {t_utt / t_csv_u:.2f} |")
    print(f"| baseline: bare pandas.read_csv of the same files, same arguments | {len(keys)} dialogs | {t_csv:.2f} | "
          f"{len(keys) / t_csv:.2f} | {mbytes / t_csv:.1f} | {frames / t_csv:,.0f} | {dialog_s / t_csv:.0f} | "
          f"{t_csv / dialog_s:.5f} | 1.00 |")
    print(f"\nbaseline pandas.read_csv (sep=r'\\s+', skiprows=2, header=None, float64, C engine; pandas "
          f"{pd.__version__}): {t_csv:.2f} s, {mbytes / t_csv:.1f} MB/s; ratio {t_parse / t_csv:.2f} (parse seconds / "
          f"read_csv seconds); utterance_mocap ratio {t_utt / t_csv_u:.2f} (to read_csv of its {len(has)} dialogs, "
          f"{t_csv_u:.2f} s)")
    print(f"\nRTF: wall seconds per second of mocap (whole dialogs for the parse, the utterances' spans for "
          f"utterance_mocap); peak RSS {peak_mib:,.0f} MiB")
    print("\nresults row:\n| date | machine | dialogs | parse dialogs/s | parse MB/s | parse frames/s | "
          "read_csv MB/s | parse / read_csv | utterance_mocap utt/s | utterance_mocap RTF | utterance_mocap / read_csv | "
          "peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {date} | {machine} | {len(keys)} | {len(keys) / t_parse:.2f} | {mbytes / t_parse:.1f} | "
          f"{frames / t_parse:,.0f} | {mbytes / t_csv:.1f} | {t_parse / t_csv:.2f} | {n_worn / t_utt:.1f} | "
          f"{t_utt / utt_s:.5f} | {t_utt / t_csv_u:.2f} | {peak_mib:,.0f} |")


if __name__ == "__main__":
    main()
