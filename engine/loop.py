"""The one training loop: iterations, validation every k steps, best-by-validation checkpoint, resume, CSV log,
loss-curve PNG, tqdm, and torchrun/DDP picked up from the environment (only rank 0 logs and saves).

A system plugs in through a small `Method` object (see systems/chunk_lstm.py):
    build_model() -> nn.Module
    collate(items) -> dict of tensors            (items: a list of the system's dataset entries)
    loss(model, batch) -> scalar tensor
    predict(model, batch) -> np.ndarray          (per-utterance outputs, model in eval mode)
    targets(items) -> np.ndarray                 (the validation targets, aligned with predict)
    val_loss(pred, target) -> float              (lower is better)
    config() -> dict                             (what config.json records besides the loop's settings)

Batches are always full: the sampler walks a fresh seeded permutation of the training items and continues
into the next one at the end (so no batch of one, whose CCC is undefined). Training stops after exactly
`iterations` steps (the original overshoots to the end of the epoch). Resume restores the model, the
optimiser, the sampler and every RNG, so a resumed run continues bit for bit.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import sys
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from engine.checkpoint import CONFIG, STATE, WEIGHTS, load_state, save_checkpoint, save_state
from engine.cli import UserError
from utils import atomic_path, atomic_write_text, seed_everything

RUN = "run.json"


@dataclass
class LoopConfig:
    out_dir: Path
    iterations: int
    batch_size: int
    lr: float = 1e-4
    val_every: int = 50
    seed: int = 0
    device: str = "cpu"
    resume: bool = True
    progress: bool = True
    eval_batch_size: int = 64
    deterministic: bool = False  # one thread + deterministic kernels: identical weights under any load
    train_name: str = "training"  # what the items are, for messages ("train split of MSP-Podcast")
    val_name: str = "validation"


# settings that do not change what a run computes: a run may be resumed with other values of these
NOT_IDENTITY = ("loop.out_dir", "loop.resume", "loop.progress", "loop.device", "loop.eval_batch_size",
                "loop.iterations", "loop.train_name", "loop.val_name", "loop.threads")


@dataclass
class LoopResult:
    best_step: int
    best_val: float
    steps: int  # the run's step count when this call returned
    seconds: float  # wall time of this call
    data_seconds: float  # time this call waited for batches (outside forward/backward)
    steps_run: int = 0  # steps this call ran (0 when the run had already finished)
    batch_size: int = 0  # the batch size actually used (the request capped at the number of training items)


def ddp_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


class Sampler:
    """Endless stream of full batches over `n` items from seeded permutations; its state is resumable."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 2:
            raise ValueError(f"need at least two training items, got {n}")
        self.n, self.batch_size = n, min(batch_size, n)
        self.rng = np.random.default_rng(seed)
        self.perm, self.pos = self.rng.permutation(n), 0

    def next(self) -> np.ndarray:
        take = []
        while len(take) < self.batch_size:
            if self.pos == self.n:
                self.perm, self.pos = self.rng.permutation(self.n), 0
            k = min(self.batch_size - len(take), self.n - self.pos)
            take.extend(self.perm[self.pos: self.pos + k])
            self.pos += k
        return np.array(take)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "perm": torch.from_numpy(self.perm.copy()), "pos": self.pos}

    def load(self, s: dict) -> None:
        self.rng.bit_generator.state = s["rng"]
        self.perm, self.pos = s["perm"].numpy(), int(s["pos"])


def to_device(batch: dict, device) -> dict:
    """Move a collated batch to `device`. On the CPU, tensors that wrap a NumPy buffer are copied into torch's
    own 64-byte-aligned memory first: BLAS kernels may round differently depending on where a buffer starts,
    and NumPy's alignment depends on the allocator's history, so seeded runs would otherwise hinge on it."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            if v.device.type == "cpu" and v.data_ptr() % 64:
                v = v.clone(memory_format=torch.contiguous_format)
            v = v.to(device, non_blocking=True)
        out[k] = v
    return out


@contextlib.contextmanager
def deterministic_mode(on: bool):
    """--deterministic: one intra-op thread and deterministic kernels for the duration of a run, so a seeded
    run gives the same weights whatever else the machine is doing and however many cores it has (parallel
    reductions split their work by the thread count). Costs speed; see README "Determinism"."""
    if not on:
        yield
        return
    threads, was = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was)


def evaluate(method, model, items, batch_size: int, device) -> np.ndarray:
    model.eval()
    preds = []
    with torch.inference_mode():
        for b in range(0, len(items), batch_size):
            batch = to_device(method.collate(items[b: b + batch_size]), device)
            preds.append(np.asarray(method.predict(model, batch), dtype=np.float64))
    return np.concatenate(preds) if preds else np.zeros(0)


def _plot(log_rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [r["step"] for r in log_rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["train_loss"] for r in log_rows], "b-", label="train (mean since last validation)")
    ax.plot(steps, [r["val_loss"] for r in log_rows], "r-", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def items_digest(items: list) -> str:
    """A short hash of the items a run trains or validates on (ids and labels, in order)."""
    return hashlib.sha256(json.dumps(items, default=str).encode()).hexdigest()[:16]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def check_run_identity(out: Path, identity: dict, resume: bool) -> None:
    """Refuse to resume a run folder that was started with other settings, naming the settings that differ.

    A run folder records its full configuration in run.json; a folder with a resume state but no run.json
    comes from an older version and is refused too (its settings cannot be checked)."""
    has_state, run_file = (out / "state.pt").is_file(), out / RUN
    if not resume or not has_state:
        return
    if not run_file.is_file():
        raise UserError(f"{out}: holds a training state but no {RUN}, so its settings cannot be checked; "
                        "add --no-resume to start this run over, or give another --out")
    try:
        old = json.loads(run_file.read_text())["identity"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{run_file}: unreadable ({e}); add --no-resume to start this run over") from None
    a, b = _flat(old), _flat(json.loads(json.dumps(identity, default=str)))
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if diff:
        def show(v):
            text = json.dumps(v)
            return text if len(text) <= 40 else text[:37] + "..."
        lines = "; ".join(f"{k}: {show(a.get(k))} -> {show(b.get(k))}" for k in diff[:8])
        more = f" (and {len(diff) - 8} more)" if len(diff) > 8 else ""
        raise UserError(f"{out} was started with other settings ({lines}{more}); to keep both runs give another "
                        "--out, or add --no-resume to discard this run and start over")


def train(method, train_items: list, val_items: list, cfg: LoopConfig) -> LoopResult:
    with deterministic_mode(cfg.deterministic):
        return _train(method, train_items, val_items, cfg)


def _train(method, train_items: list, val_items: list, cfg: LoopConfig) -> LoopResult:
    rank, world, local_rank = ddp_env()
    if len(train_items) < 2:
        raise UserError(f"the {cfg.train_name} has {len(train_items)} usable item(s); training needs at least 2")
    if not val_items:
        raise UserError(f"the {cfg.val_name} has no usable item; validation needs at least 1")
    if cfg.batch_size > len(train_items) and rank == 0:
        print(f"warning: batch size {cfg.batch_size} is larger than the {len(train_items)} items of the "
              f"{cfg.train_name}; using batches of {len(train_items)}", file=sys.stderr)
    requested_batch = cfg.batch_size
    cfg = replace(cfg, batch_size=min(cfg.batch_size, len(train_items)))
    out = Path(cfg.out_dir)
    config = {"loop": {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                       "requested_batch_size": requested_batch, "threads": torch.get_num_threads()},
              **method.config(),
              "data": {"train": {"items": len(train_items), "digest": items_digest(train_items)},
                       "val": {"items": len(val_items), "digest": items_digest(val_items)}}}
    identity = {k: v for k, v in _flat(config).items() if k not in NOT_IDENTITY}
    check_run_identity(out, identity, cfg.resume)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
    device = torch.device(f"cuda:{local_rank}" if cfg.device == "cuda" and world > 1 else cfg.device)
    main_rank = rank == 0
    seed_everything(cfg.seed)
    model = method.build_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sampler = Sampler(len(train_items), cfg.batch_size, cfg.seed)
    step, best_val, best_step, log_rows = 0, float("inf"), -1, []
    state = load_state(out) if cfg.resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sampler.load(state["sampler"])
        step, best_val, best_step = int(state["step"]), float(state["best_val"]), int(state["best_step"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_to_python_random(state["python_rng"]))
        log_rows = _read_log(out / "log.csv")
        if main_rank:
            done = " (already finished)" if step >= cfg.iterations else ""
            print(f"resuming {out} at iteration {step}{done} (best validation {best_val:.4f} at {best_step})")
    elif main_rank:  # a fresh start: nothing of an earlier run in this folder may survive to be resumed later
        out.mkdir(parents=True, exist_ok=True)
        for name in (STATE, WEIGHTS, CONFIG, "log.csv", "loss.png"):
            (out / name).unlink(missing_ok=True)
        atomic_write_text(out / RUN, json.dumps({"identity": identity, "config": config}, indent=1, default=str))
    first_step = step
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    val_targets = method.targets(val_items)

    # data for the next step is prepared in a background thread while the model trains
    def next_batch():
        idx = sampler.next()
        mine = idx[rank::world] if world > 1 else idx
        return method.collate([train_items[i] for i in mine])

    pool = ThreadPoolExecutor(max_workers=1)
    pending = pool.submit(next_batch) if step < cfg.iterations else None
    losses, t_start, t_data = [], time.time(), 0.0
    bar = tqdm(total=cfg.iterations, initial=step, desc=f"train {out.name}", unit="it",
               disable=not (cfg.progress and main_rank))
    while step < cfg.iterations:
        t0 = time.perf_counter()
        batch = pending.result()
        t_data += time.perf_counter() - t0
        # the sampler and RNGs must be captured before the next batch is drawn, for an exact resume
        snapshot = None
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.iterations:
            snapshot = {"sampler": sampler.state(), "python_rng": random.getstate()}
        pending = pool.submit(next_batch) if step + 1 < cfg.iterations else None
        batch = to_device(batch, device)
        net.train()
        loss = method.loss(net, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        if snapshot is not None:
            pred = evaluate(method, model, val_items, cfg.eval_batch_size, device)
            val = float(method.val_loss(pred, val_targets))
            improved = val < best_val
            if improved:
                best_val, best_step = val, step
            row = {"step": step, "train_loss": float(np.mean(losses)), "val_loss": val, "best_val": best_val,
                   "seconds": round(time.time() - t_start, 2)}
            log_rows.append(row)
            losses = []
            bar.set_postfix(val=f"{val:.4f}", best=f"{best_val:.4f}@{best_step}")
            if main_rank:
                if improved:
                    save_checkpoint(out, model.state_dict(), {**config, "step": step, "val_loss": val})
                _write_log(out / "log.csv", log_rows)
                _plot(log_rows, out / "loss.png", out.name)
                save_state(out, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                 "best_val": best_val, "best_step": best_step, "torch_rng": torch.get_rng_state(),
                                 "sampler": snapshot["sampler"],
                                 "python_rng": _from_python_random(snapshot["python_rng"])})
            if world > 1:
                dist.barrier()
    bar.close()
    pool.shutdown()
    return LoopResult(best_step, best_val, step, time.time() - t_start, t_data, step - first_step, cfg.batch_size)


def _from_python_random(s):  # a tuple with a tuple of ints: make it a plain list for weights_only loading
    return [s[0], list(s[1]), s[2]]


def _to_python_random(s):
    return (s[0], tuple(s[1]), s[2])


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if k != "step" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]
