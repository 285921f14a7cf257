"""Checkpoints: `model.safetensors` + `config.json` (ours), legacy `.pth.tar` import, resume state.

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
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_text(folder / CONFIG, json.dumps({"git_commit": git_commit(), **config}, indent=1))


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint folder (needs {WEIGHTS} and {CONFIG})")
    return load_file(str(folder / WEIGHTS)), json.loads((folder / CONFIG).read_text())


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
