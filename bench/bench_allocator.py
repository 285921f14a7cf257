#!/usr/bin/env python
"""The C allocator's modes (engine.allocator, SER_ALLOCATOR) on every system's training and on extraction: wall
time, CPU time in the kernel, minor page faults and peak memory, each as a ratio to glibc's defaults measured in
the same run (so the table means the same on another machine).

    python bench/bench_allocator.py [--rounds 2] [--only chunk-lstm,deep-emo-cluster] [--modes glibc,thp,heap]

Each workload is one of the bench/ scripts (small settings, below), run whole in a fresh process per mode (a mode
is per process, and torch reads its huge-page switch once); the modes are interleaved round by round, and the
table keeps each (workload, mode)'s fastest round. wall/sys/faults/peak come from wait4(2)'s rusage of the child
(peak = ru_maxrss, the resident high-water mark). A workload's own setup (synthetic stores, model build) is inside
its time, the same for every mode.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine import allocator  # noqa: E402
from engine.cli import parser  # noqa: E402

# workload -> the bench script and its (small) settings: training of every system, and extraction
WORKLOADS = {  # one round of the loop and its baseline each (the training benches' --rounds default is more)
    "chunk-lstm": ["bench/bench_chunk_lstm.py", "--store-gb", "0.3", "--steps", "20", "--batch", "128", "--rounds", "1"],
    "deep-emo-cluster": ["bench/bench_deep_emo_cluster.py", "--sentences", "400", "--batch", "16", "--rounds", "1"],
    "audio-text": ["bench/bench_audio_text.py", "--store-gb", "0.3", "--steps", "10", "--mem-store-gb", "0.3",
                   "--mem-steps", "10", "--rounds", "1"],
    "mdre": ["bench/bench_mdre_training.py", "--steps", "10", "--models", "ARE,MDREA", "--rounds", "1"],
    "speech-text-mocap": ["bench/bench_stm_training.py", "--steps", "5", "--configs", "speech+text+mocap", "--rounds", "1"],
    "extraction (mel)": ["bench/bench_mel.py", "--n", "100"],
}
# run a script with the mode applied first (as importing the engine and engine.cli.entry do for every script)
LAUNCH = ("import runpy, sys; from engine import allocator; allocator.configure(); "
          "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def run_once(script_args: list[str], mode: str) -> dict:
    """Wall seconds, user/sys CPU seconds, minor page faults and peak RSS (MiB) of one child run under `mode`."""
    env = {**{k: v for k, v in os.environ.items() if k not in (allocator.THP_ENV, allocator.NUMPY_ENV)},
           "SER_ALLOCATOR": mode,  # this process's engine import set those for its own mode: the child's decides
           "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, *script_args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(script_args)} under {mode} failed:\n{out[-3000:]}")
    return {"wall": wall, "user": ru.ru_utime, "sys": ru.ru_stime, "faults": ru.ru_minflt,
            "peak_mib": ru.ru_maxrss / 1024, "output": out}


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--rounds", type=int, default=2, help="rounds per (workload, mode); the fastest is kept")
    ap.add_argument("--only", help="comma-separated workloads (default: all of " + ", ".join(WORKLOADS) + ")")
    ap.add_argument("--modes", default="glibc,thp,heap", help="allocator modes compared; the first is the base")
    ap.add_argument("--json", type=Path, help="also write the measurements here (default: none)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(WORKLOADS)
    modes = args.modes.split(",")
    best: dict[tuple[str, str], dict] = {}
    for r in range(args.rounds):
        for name in names:
            for mode in modes[r % len(modes):] + modes[: r % len(modes)]:  # rotated: no mode always first
                m = run_once(WORKLOADS[name], mode)
                print(f"round {r + 1} {name} {mode}: {m['wall']:.1f} s wall, {m['sys']:.1f} s sys, "
                      f"{m['faults'] / 1e6:.2f} M faults, peak {m['peak_mib']:.0f} MiB", flush=True)
                key = (name, mode)
                if key not in best or m["wall"] < best[key]["wall"]:
                    best[key] = m
    base = modes[0]
    print(f"\n| workload | mode | wall s | x {base} | user s | sys s | minor faults | peak MiB | x {base} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        b = best[(name, base)]
        for mode in modes:
            m = best[(name, mode)]
            print(f"| {name} | {mode} | {m['wall']:.1f} | {m['wall'] / b['wall']:.2f} | {m['user']:.1f} | "
                  f"{m['sys']:.1f} | {m['faults'] / 1e6:.2f} M | {m['peak_mib']:.0f} | "
                  f"{m['peak_mib'] / b['peak_mib']:.2f} |")
    if args.json:
        from utils import atomic_write_text
        atomic_write_text(args.json, json.dumps({f"{n}|{m}": {k: v for k, v in d.items() if k != "output"}
                                                 for (n, m), d in best.items()}, indent=1))


if __name__ == "__main__":
    main()
