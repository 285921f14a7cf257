"""The one training loop of every system: rounds of training, validation after each round, the best checkpoint
by validation, exact resume, CSV log, curve PNG, resources.json (time, throughput, memory), tqdm, run identity, and torchrun/DDP picked up from the
environment (only rank 0 logs and saves).

A system plugs in through a small `Method` object (see systems/chunk_lstm.py, systems/deep_emo_cluster.py):
    build_model() -> nn.Module
    collate(items) -> dict of tensors            (items: a list of the system's dataset entries)
    train_collate(items) (optional)              (training batches, e.g. with random crops; default collate)
    loss(model, batch) -> scalar tensor
    predict(model, batch) -> np.ndarray          (per-utterance outputs, model in eval mode)
    targets(items) -> np.ndarray                 (the validation targets, aligned with predict)
    val_loss(pred, target) -> float              (lower is better)
    config() -> dict                             (what config.json records besides the loop's settings)
and, optionally:
    optimizers(model) -> {name: Optimizer}       (default: one Adam at LoopConfig.lr over all parameters)
    epoch_stages(model, epoch, ctx, train_items) -> [Stage]
                                                 (epoch mode: what one epoch trains, in order; each stage's
                                                  prepare() runs just before it, e.g. DeepEmoCluster's
                                                  embedding pass, k-means, fresh head and sampler)
    state() / load_state(s)                      (the method's own RNGs etc., saved for an exact resume)
    round_log() -> dict                          (extra numbers for this round's log row, e.g. NMI)

Early stopping (`patience`) and gradient clipping by value (`clip_value`) are loop settings, off by default.
Two ways to count: `iterations` (System 1: rounds of `val_every` steps drawn from an endless seeded sampler of
full batches, stopping after exactly `iterations` steps, where the original overshoots to the end of an epoch)
or `epochs` (a round is one epoch of the method's stages). Resume restores the model, every optimiser, the
sampler, the method's state and every RNG at the last round boundary, so a resumed run continues bit for bit.
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

from engine.checkpoint import CONFIG, RUN, STATE, WEIGHTS, load_state, save_checkpoint, save_state
from engine.cli import UserError
from engine.plots import training_curves
from engine.resources import ResourceMonitor
from utils import atomic_path, atomic_write_text, seed_everything

RESOURCES = "resources.json"  # what the last call that trained used: time, throughput, memory


@dataclass
class LoopConfig:
    out_dir: Path
    iterations: int  # 0 with epochs > 0
    batch_size: int
    epochs: int = 0  # > 0: epoch mode (the method's epoch_stages), validation after each epoch
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
    patience: int = 0  # > 0: stop after patience + 1 validations in a row without improvement (MDRE: 7)
    clip_value: float = 0.0  # > 0: clip every gradient element to [-clip_value, clip_value] (MDRE: 10)


# settings added after runs existed: recorded only when set, so older run folders keep resuming
OPTIONAL_SETTINGS = {"patience": 0, "clip_value": 0.0}


# settings that do not change what a run computes: a run may be resumed with other values of these
NOT_IDENTITY = ("loop.out_dir", "loop.resume", "loop.progress", "loop.device", "loop.eval_batch_size",
                "loop.iterations", "loop.epochs", "loop.train_name", "loop.val_name", "loop.threads")


@dataclass
class Stage:
    """One pass of training inside a round: batches of item indices (each a whole batch; under DDP every rank
    trains on its slice idx[rank::world]), the items they index, the loss, and the optimisers it steps."""
    name: str
    batches: object = ()  # iterable of np.ndarray of indices into `items`
    items: list = ()
    loss: object = None  # (model, batch) -> scalar tensor
    optimizers: list = ()
    collate: object = None  # (items) -> batch; default: the method's collate
    total: int | None = None  # number of batches, for the progress bar
    prepare: object = None  # (stage) -> None, run just before the stage: may fill in everything above


@dataclass
class Context:
    """What a method's epoch_stages may use: the device, the DDP rank and world, and collectives on NumPy arrays."""
    device: torch.device
    rank: int
    world: int
    eval_batch_size: int
    progress: bool

    def block(self, n: int) -> range:
        """This rank's contiguous share of n items (rank order concatenates back to 0..n-1)."""
        return range(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def gather(self, x: np.ndarray) -> np.ndarray:
        """Every rank's block, concatenated in rank order, on every rank."""
        if self.world == 1:
            return x
        parts = [None] * self.world
        dist.all_gather_object(parts, x)
        return np.concatenate(parts)

    def broadcast(self, x):
        """Rank 0's object on every rank."""
        if self.world == 1:
            return x
        box = [x]
        dist.broadcast_object_list(box, src=0)
        return box[0]


@dataclass
class LoopResult:
    best_step: int
    best_val: float
    steps: int  # the run's step count when this call returned
    seconds: float  # wall time of this call
    data_seconds: float  # time this call waited for batches (outside forward/backward)
    steps_run: int = 0  # steps this call ran (0 when the run had already finished)
    epochs: int = 0  # epoch mode: the run's completed epochs
    batch_size: int = 0  # the batch size actually used (the request capped at the number of training items)
    stopped_early: bool = False  # ended by LoopConfig.patience before its iterations / epochs


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
                v = v.clone(memory_format=torch.preserve_format)
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


def load_best(method, run_dir: Path, device, allow_unfinished: bool = False) -> torch.nn.Module:
    """The method's model holding the run's best checkpoint (model.safetensors), on `device`, in eval mode; a run
    whose training has not finished is refused unless `allow_unfinished` (engine.checkpoint.load_checkpoint)."""
    from engine.checkpoint import load_checkpoint
    model = method.build_model()
    model.load_state_dict(load_checkpoint(run_dir, allow_unfinished)[0])
    return model.to(device).eval()


def evaluate(method, model, items, batch_size: int, device) -> np.ndarray:
    model.eval()
    preds = []
    with torch.inference_mode():
        for b in range(0, len(items), batch_size):
            batch = to_device(method.collate(items[b: b + batch_size]), device)
            preds.append(np.asarray(method.predict(model, batch), dtype=np.float64))
    return np.concatenate(preds) if preds else np.zeros(0)


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


def training_progress(cfg: LoopConfig, step: int, epoch: int, best_step: int, stopped_early: bool) -> dict:
    """run.json's training record: how far the run has trained against what its last call planned, so that a
    scoring script can tell a killed run's best checkpoint from a finished one (engine.checkpoint)."""
    epoch_mode = cfg.epochs > 0
    done, planned = (epoch, cfg.epochs) if epoch_mode else (step, cfg.iterations)
    return {"unit": "epoch" if epoch_mode else "iteration", "done": done, "planned": planned,
            "optimizer_steps": step, "best_at": best_step, "stopped_early": stopped_early,
            "finished": done >= planned or stopped_early}


def _record_training(out: Path, record: dict) -> None:
    """Rewrite run.json's "training" (the identity and configuration stay as the run's first call wrote them)."""
    run = json.loads((out / RUN).read_text())
    atomic_write_text(out / RUN, json.dumps({**run, "training": record}, indent=1, default=str))


def train(method, train_items: list, val_items: list, cfg: LoopConfig) -> LoopResult:
    with deterministic_mode(cfg.deterministic):
        return _train(method, train_items, val_items, cfg)


def _train(method, train_items: list, val_items: list, cfg: LoopConfig) -> LoopResult:
    rank, world, local_rank = ddp_env()
    epoch_mode = cfg.epochs > 0
    if epoch_mode == (cfg.iterations > 0) or (epoch_mode and not hasattr(method, "epoch_stages")):
        raise ValueError("give iterations or epochs (epochs needs a method with epoch_stages)")
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
    config = {"loop": {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()
                          if OPTIONAL_SETTINGS.get(k, object()) != v},
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
    optimizers = (method.optimizers(model) if hasattr(method, "optimizers")
                  else {"adam": torch.optim.Adam(model.parameters(), lr=cfg.lr)})
    sampler = None if epoch_mode else Sampler(len(train_items), cfg.batch_size, cfg.seed)
    step, epoch, best_val, best_step, log_rows = 0, 0, float("inf"), -1, []
    stale = 0  # validations in a row without improvement (early stopping)
    state = load_state(out) if cfg.resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        for name, o in optimizers.items():
            o.load_state_dict(state["optimizers"][name])
        if sampler is not None:
            sampler.load(state["sampler"])
        if hasattr(method, "load_state"):
            method.load_state(state["method"])
        step, epoch = int(state["step"]), int(state.get("epoch", 0))
        best_val, best_step = float(state["best_val"]), int(state["best_step"])
        stale = int(state.get("stale", 0))
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_to_python_random(state["python_rng"]))
        log_rows = _read_log(out / "log.csv")
        if main_rank:
            at = f"epoch {epoch}" if epoch_mode else f"iteration {step}"
            done = " (already finished)" if (epoch >= cfg.epochs if epoch_mode else step >= cfg.iterations) else ""
            print(f"resuming {out} at {at}{done} (best validation {best_val:.4f} at {best_step})")
    elif main_rank:  # a fresh start: nothing of an earlier run in this folder may survive to be resumed later
        out.mkdir(parents=True, exist_ok=True)
        for name in (STATE, WEIGHTS, CONFIG, "log.csv", "loss.png", RESOURCES):
            (out / name).unlink(missing_ok=True)
        atomic_write_text(out / RUN, json.dumps({"identity": identity, "config": config}, indent=1, default=str))
    first_step, first_epoch = step, epoch
    elapsed_before = float(log_rows[-1]["seconds"]) if log_rows else 0.0  # log.csv's clock runs on across resumes
    ctx = Context(device, rank, world, cfg.eval_batch_size, cfg.progress and main_rank)
    val_targets = method.targets(val_items)
    pool = ThreadPoolExecutor(max_workers=1)  # prepares the next batch while the model trains on this one
    t_start, t_data = time.time(), 0.0
    bar = tqdm(total=cfg.epochs if epoch_mode else cfg.iterations, initial=epoch if epoch_mode else step,
               desc=f"train {out.name}", unit="epoch" if epoch_mode else "it", disable=not ctx.progress)

    def rounds():
        """(stages of one round) until the run is done: an epoch, or the steps up to the next validation, or
        early stopping."""
        while (epoch < cfg.epochs if epoch_mode else step < cfg.iterations) and not stopped_early():
            if epoch_mode:
                yield method.epoch_stages(model, epoch, ctx, train_items)
            else:
                n = min(cfg.val_every - step % cfg.val_every, cfg.iterations - step)
                yield [Stage("train", (sampler.next() for _ in range(n)), train_items, method.loss,
                             list(optimizers.values()), collate=getattr(method, "train_collate", None), total=n)]

    def stopped_early() -> bool:
        return cfg.patience > 0 and stale > cfg.patience

    def run_stage(st: Stage, timing: dict) -> list[float]:
        nonlocal step, t_data
        t_prepare, data_before = time.perf_counter(), t_data
        if st.prepare is not None:
            st.prepare(st)
        t_train = time.perf_counter()
        timing[f"{st.name}_prepare_seconds"] = round(t_train - t_prepare, 3)
        collate = st.collate or method.collate
        batches = iter(st.batches)

        def next_batch():
            idx = next(batches, None)
            if idx is None:
                return None
            mine = idx[rank::world] if world > 1 else idx
            return collate([st.items[i] for i in mine])

        net = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=epoch_mode)
               if world > 1 else model)  # wrapped per stage: a method may swap a head between stages
        inner = tqdm(total=st.total, desc=f"  {st.name}", unit="batch", leave=False,
                     disable=not (ctx.progress and epoch_mode))
        losses, pending = [], pool.submit(next_batch)
        while True:
            t0 = time.perf_counter()
            batch = pending.result()
            t_data += time.perf_counter() - t0
            if batch is None:
                break
            pending = pool.submit(next_batch)
            batch = to_device(batch, device)
            net.train()
            loss = st.loss(net, batch)
            for o in st.optimizers:
                o.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_value > 0:
                torch.nn.utils.clip_grad_value_(net.parameters(), cfg.clip_value)
            for o in st.optimizers:
                o.step()
            losses.append(float(loss.detach()))
            step += 1
            inner.update(1)
            if not epoch_mode:
                bar.update(1)
        inner.close()
        timing[f"{st.name}_train_seconds"] = round(time.perf_counter() - t_train, 3)
        timing[f"{st.name}_data_wait_seconds"] = round(t_data - data_before, 3)
        return losses

    if main_rank and (epoch < cfg.epochs if epoch_mode else step < cfg.iterations) and not stopped_early():
        _record_training(out, training_progress(cfg, step, epoch, best_step, False))  # unfinished until done
    with ResourceMonitor() as mon:
        threads = torch.get_num_threads()
        for stages in rounds():
            row_losses, timing = {}, {}
            for st in stages:
                row_losses[st.name] = run_stage(st, timing)
            if epoch_mode:
                epoch += 1
                bar.update(1)
            pred = evaluate(method, model, val_items, cfg.eval_batch_size, device)
            val = float(method.val_loss(pred, val_targets))
            improved = val < best_val
            where = epoch if epoch_mode else step
            if main_rank and hasattr(method, "report_validation"):  # e.g. the original's per-validation lines
                method.report_validation(where, row_losses, val, best_val)
            if improved:
                best_val, best_step = val, where
            stale = 0 if improved else stale + 1
            row = {("epoch" if epoch_mode else "step"): where}
            if epoch_mode:
                row["steps"] = step
            for name, ls in row_losses.items():
                row[f"{name}_loss" if name != "train" else "train_loss"] = float(np.mean(ls)) if ls else float("nan")
            row.update({"val_loss": val, "best_val": best_val, **(method.round_log() if hasattr(method, "round_log") else {}),
                        **(timing if epoch_mode else {}), "seconds": round(elapsed_before + time.time() - t_start, 2)})
            log_rows.append(row)
            bar.set_postfix(val=f"{val:.4f}", best=f"{best_val:.4f}@{best_step}")
            if main_rank:
                if improved:
                    save_checkpoint(out, model.state_dict(), {**config, ("epoch" if epoch_mode else "step"): where,
                                                              "val_loss": val})
                _write_log(out / "log.csv", log_rows)
                training_curves(log_rows, out / "loss.png", out.name)
                save_state(out, {"model": model.state_dict(), "step": step, "epoch": epoch,
                                 "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                                 "best_val": best_val, "best_step": best_step, "stale": stale,
                                 "torch_rng": torch.get_rng_state(),
                                 "python_rng": _from_python_random(random.getstate()),
                                 **({"sampler": sampler.state()} if sampler is not None else {}),
                                 **({"method": method.state()} if hasattr(method, "state") else {})})
                _record_training(out, training_progress(cfg, step, epoch, best_step, stopped_early()))
            if world > 1:
                dist.barrier()
    bar.close()
    pool.shutdown()
    if stopped_early() and main_rank:
        print(f"early stop at {'epoch ' + str(epoch) if epoch_mode else 'iteration ' + str(step)}: "
              f"{stale} validations without improvement (patience {cfg.patience})")
    seconds, steps_run = time.time() - t_start, step - first_step
    if main_rank and steps_run:  # a call with nothing to do leaves the finished run's record as it was
        used = {"seconds": round(seconds, 3), "steps_run": steps_run, "resumed_at_step": first_step,
                "batch_size": cfg.batch_size, "items_per_second": round(steps_run * cfg.batch_size / seconds, 3),
                "data_wait_seconds": round(t_data, 3), **{k: v for k, v in mon.as_dict().items() if k != "seconds"},
                "device": str(device), "threads": threads, "world_size": world}
        if epoch_mode:
            used["epochs_run"] = epoch - first_epoch
        atomic_write_text(out / RESOURCES, json.dumps(used, indent=1))
    return LoopResult(best_step, best_val, step, seconds, t_data, steps_run=steps_run,
                      batch_size=cfg.batch_size, epochs=epoch, stopped_early=stopped_early())


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
    """log.csv's rows as written: a whole number stays an int (rewritten as `0`, not `0.0`), others floats."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: _cell(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _cell(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text) if text else text
