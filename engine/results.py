"""The result file format: a script's numbers plus their provenance (code version, command, machine, date, run).

Every test and evaluation script writes one JSON beside its per-utterance CSV through `write_result`; the
comparison report aggregates them, and benchmark.py reads `WRITTEN` to show exactly the files a step wrote.
It lives in engine/ (not systems/) because engine.robustness writes results too and may import only its own
layer or lower.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import torch

from engine.checkpoint import git_commit, training_fields
from engine.model_card import record_result
from utils import atomic_write_text

WRITTEN: list[Path] = []  # every result file write_result wrote in this process, in order (benchmark.py reads a
#                            step's own list: the report shows exactly the files the step wrote, never a guess)


def machine() -> str:
    """What ran it, for the record: CPU model and cores, the GPU if torch sees one, torch's version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}"


def active_precision() -> str:
    """The precision the forward passes run in here and now: "bf16" / "fp16" inside engine.loop.autocast (the
    experiment layer's test stage and systems.predict enter it), "fp32" outside. Read where a result is written,
    so a result file states the precision its numbers were computed in, whatever path led there."""
    names = {torch.bfloat16: "bf16", torch.float16: "fp16"}
    for device_type in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device_type):
            return names.get(torch.get_autocast_dtype(device_type), str(torch.get_autocast_dtype(device_type)))
    return "fp32"


def run_identity(checkpoint) -> dict:
    """What identifies a trained run: a hash of its run.json identity (every setting and the data it trained on)
    and its weights' size and modification time; for a single-file checkpoint (an original .pth.tar) the file's.
    A result file records it, so a report can tell results of one run from those of another."""
    run = Path(checkpoint)
    weights = run / "model.safetensors" if run.is_dir() else run
    try:
        st = weights.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "absent"
    try:
        ident = json.loads((run / "run.json").read_text())["identity"]
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    except (OSError, ValueError, KeyError, TypeError):
        digest = None
    return {"identity": digest, "weights": stamp}


def write_result(path: Path, fields: dict) -> None:
    """One result file in the shared format (every test / evaluation script writes one beside its CSV; the
    comparison report aggregates them): `fields` (metric, system, corpus, split or protocol, checkpoint, seed,
    the numbers, ...) plus the provenance: code version, the command line that re-creates it, machine, date,
    the precision of the forward passes (active_precision: a bf16 result is never taken for fp32's), and the identity of each run it scores (`checkpoint` -> `run`, `checkpoints` -> `runs`: run_identity).
    Each scored run folder of ours records the file in its run.json and gets its model card rewritten."""
    prov = {"code_version": git_commit(), "command": " ".join(["python", *sys.argv]), "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "precision": active_precision()}
    if fields.get("checkpoint"):
        prov["run"] = run_identity(fields["checkpoint"])
    if fields.get("checkpoints"):
        prov["runs"] = {str(c): run_identity(c) for c in fields["checkpoints"]}
    prov.update(training_fields(fields))  # how far each scored run trained: done / planned / finished
    atomic_write_text(path, json.dumps({**fields, **{k: v for k, v in prov.items() if k not in fields}},
                                       indent=1, default=str))
    WRITTEN.append(Path(path))
    for checkpoint in [fields.get("checkpoint"), *(fields.get("checkpoints") or ())]:
        if checkpoint:  # the scored run's model card lists this result (our trained folders only)
            record_result(checkpoint, Path(path))
