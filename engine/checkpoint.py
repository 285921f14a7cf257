"""Saves and loads checkpoints: ours (`model.safetensors` + `config.json`), legacy `.pth.tar`, resume states.

Our checkpoint folder holds everything needed to use a model later: the system and its hyper-parameters, the
feature set and its parameters, the NormTerm values, the attribute, chunking, corpus version and git commit.
Nothing here unpickles untrusted data: legacy files and resume states go through `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from utils import atomic_path, atomic_write_text

WEIGHTS, CONFIG, STATE = "model.safetensors", "config.json", "state.pt"
RUN = "run.json"  # the run's identity, configuration and training record (engine/loop.py writes it)


def git_commit() -> str:
    """The code version for the record: HEAD's commit, with `+dirty` when tracked files differ from it
    ("unknown" outside a git checkout)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        if not head:
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if changed else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def save_checkpoint(folder: str | Path, state_dict: dict[str, torch.Tensor], config: dict) -> None:
    folder = Path(folder)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(folder / WEIGHTS, need=sum(t.nbytes for t in tensors.values())) as tmp:  # names a full disk
        save_file(tensors, str(tmp))
    atomic_write_text(folder / CONFIG, json.dumps({"git_commit": git_commit(), **config}, indent=1))


def load_checkpoint(folder: str | Path, allow_unfinished: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, config) of one of our checkpoint folders; the config's "training" is the run's training
    record (None without one). The best checkpoint of a run that has not finished is refused unless
    `allow_unfinished` (the user's --allow-unfinished): scored, it would look like a finished model's numbers."""
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint folder (needs {WEIGHTS} and {CONFIG})")
    record = require_finished(folder, allow_unfinished)
    return load_file(str(folder / WEIGHTS)), {**json.loads((folder / CONFIG).read_text()), "training": record}


def training_record(folder: str | Path) -> dict | None:
    """How far the run that wrote this checkpoint folder trained: run.json's "training", which the loop rewrites
    after every round ({"unit": "iteration" or "epoch", "done", "planned", "optimizer_steps", "best_at",
    "stopped_early", "finished"}). None for a folder without one: a published model, a checkpoint copied
    without its run folder, or a run made before the record existed."""
    from engine.cli import UserError
    path = Path(folder) / RUN
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("training")
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: unreadable ({e}), so whether its training finished is unknown") from None


def describe_training(record: dict) -> str:
    """'iteration 5 of 400' / 'epoch 2 of 30, stopped early' for messages."""
    text = f"{record['unit']} {record['done']} of {record['planned']}"
    return text + (", stopped early" if record.get("stopped_early") else "")


def require_finished(folder: str | Path, allow_unfinished: bool = False) -> dict | None:
    """The folder's training record, after refusing a run that has not finished (unless allowed)."""
    from engine.cli import UserError
    record = training_record(folder)
    if record is not None and not record.get("finished") and not allow_unfinished:
        raise UserError(f"{folder}: its training has not finished ({describe_training(record)}; best checkpoint "
                        f"at {record['unit']} {record['best_at']}); re-run its training command to finish it (it "
                        "resumes), or add --allow-unfinished to score it anyway (the result file records how far "
                        "it trained)")
    return record


def training_fields(fields: dict) -> dict:
    """{"training": ...} for a result file that names the checkpoint(s) it scored ("checkpoint" or
    "checkpoints") and does not say it yet: each one's training record, so a result always tells how far its
    model trained (None: no record, e.g. a published .pth.tar)."""
    if "training" in fields:
        return {}
    if fields.get("checkpoint"):
        return {"training": training_record(fields["checkpoint"]) if Path(fields["checkpoint"]).is_dir() else None}
    if fields.get("checkpoints"):
        return {"training": {str(c): training_record(c) if Path(c).is_dir() else None
                             for c in fields["checkpoints"]}}
    return {}


def load_legacy(path: str | Path) -> dict[str, torch.Tensor]:
    """A published `.pth.tar` (old pickle format, CUDA-tagged storages) as a CPU state_dict, safely."""
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for foreign or corrupt files
        raise ValueError(f"{path}: cannot read as a PyTorch state_dict ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: not a state_dict of tensors")
    return dict(sd)


def save_state(folder: str | Path, state: dict) -> None:
    with atomic_path(Path(folder) / STATE) as tmp:
        torch.save(state, str(tmp))


def load_state(folder: str | Path) -> dict | None:
    """The resume state of a run folder, None when it has none; a corrupt one is a clear error, not a traceback."""
    from engine.cli import UserError
    path = Path(folder) / STATE
    if not path.is_file():
        return None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for truncated or foreign files
        raise UserError(f"{path}: cannot read the resume state ({type(e).__name__}: {str(e)[:200]}); delete it or "
                        "add --no-resume to start this run over") from None
