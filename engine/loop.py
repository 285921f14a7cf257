"""The one training loop of every system: rounds of training, each validated, keeping the best checkpoint.

Around it: exact resume, CSV log, curve PNG, resources.json (time, throughput, memory), tqdm, run identity, and
torchrun/DDP picked up from the environment (only rank 0 logs and saves).

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
from engine.model_card import CARD, write_card
from engine.plots import training_curves
from engine.resources import ResourceMonitor
from utils import atomic_path, atomic_write_text, autocast, seed_everything  # noqa: F401 - autocast: engine.loop.autocast

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
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of forward + loss (fp16: with a grad scaler, CUDA only)


# settings added after runs existed: recorded only when set, so older run folders keep resuming (and an fp32 run's
# run.json and config.json stay as they were); a run of another precision has another identity, never resumed
OPTIONAL_SETTINGS = {"patience": 0, "clip_value": 0.0, "precision": "fp32"}


# settings that do not change what a run computes: a run may be resumed with other values of these
NOT_IDENTITY = ("loop.out_dir", "loop.resume", "loop.progress", "loop.device", "loop.eval_batch_size",
                "loop.iterations", "loop.epochs", "loop.train_name", "loop.val_name", "loop.threads")

# the autocast dtype of each --precision (fp32: no autocast at all, the reference)
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

    precision: str = "fp32"  # what a method's own forward passes may run in (engine.loop.autocast)

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
    train_seconds: float = 0.0  # time in the training stages' batch loops (steps + waiting), without validation,
    # saving and a stage's preparation: what a pure-compute baseline of the same batches is compared with
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
    and NumPy's alignment depends on the allocator's history, so seeded runs would otherwise hinge on it. To a
    GPU the copy is asynchronous (non_blocking), truly so from pinned memory (`pinned`, in the loader thread)."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, dict):  # speech+text+mocap's x / mask: one tensor per modality (left as they are on the CPU)
            v = v if torch.device(device).type == "cpu" else to_device(v, device)
        elif torch.is_tensor(v):
            if v.device.type == "cpu" and v.data_ptr() % 64:
                v = v.clone(memory_format=torch.preserve_format)
            v = v.to(device, non_blocking=True)
        out[k] = v
    return out


def pinned(batch: dict) -> dict:
    """The batch's CPU tensors in page-locked memory, so that to_device's copies to a GPU overlap the step
    (called in the loader thread, off the training step's path; page-locked memory is page-aligned)."""
    return {k: pinned(v) if isinstance(v, dict) else
            v.pin_memory() if torch.is_tensor(v) and v.device.type == "cpu" else v for k, v in batch.items()}


@contextlib.contextmanager
def deterministic_mode(on: bool):
    """--deterministic: one intra-op thread and deterministic kernels for the duration of a run, so a seeded
    run gives the same weights whatever else the machine is doing and however many cores it has (parallel
    reductions split their work by the thread count). Costs speed; see docs/speed.md "Determinism"."""
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


def evaluate(method, model, items, batch_size: int, device, precision: str = "fp32") -> np.ndarray:
    """The method's predictions of `items` (float64, as predict returns them turned into NumPy), `batch_size`
    items per forward pass on `device` in `precision` (autocast). One loader thread collates the next batch while
    the model scores this one (in order, so a collate that draws from a seeded generator draws as before)."""
    model.eval()
    preds = []
    parts = [items[b: b + batch_size] for b in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode(), autocast(device, precision):
        ahead = pool.submit(method.collate, parts[0]) if parts else None
        for i in range(len(parts)):
            batch = ahead.result()
            ahead = pool.submit(method.collate, parts[i + 1]) if i + 1 < len(parts) else None
            preds.append(np.asarray(method.predict(model, to_device(batch, device)), dtype=np.float64))
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
        unset = {f"loop.{k}": v for k, v in OPTIONAL_SETTINGS.items()}  # not recorded = the default
        lines = "; ".join(f"{k}: {show(a.get(k, unset.get(k)))} -> {show(b.get(k, unset.get(k)))}" for k in diff[:8])
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


def _record_training(out: Path, record: dict, **more) -> None:
    """Rewrite run.json's "training" (and `more`, e.g. "made_by"; the identity and configuration stay as the
    run's first call wrote them)."""
    run = json.loads((out / RUN).read_text())
    atomic_write_text(out / RUN, json.dumps({**run, "training": record, **more}, indent=1, default=str))


def train(method, train_items: list, val_items: list, cfg: LoopConfig, made_by: dict | None = None) -> LoopResult:
    """Train `method` on `train_items`, validating on `val_items` after every round, into `cfg.out_dir`
    (resuming the run there when it may); the best checkpoint by validation is the run's model.safetensors.
    `made_by` ({"command", "corpus"}: what the experiment layer knows) goes into run.json for the model card
    (engine.model_card), which is rewritten after every round."""
    with deterministic_mode(cfg.deterministic):
        return _Run(method, train_items, val_items, cfg, made_by).train()


class _Run:
    """One call of `train`, in the order it happens: check the inputs, settle the configuration and the run's
    identity, build the model, optimisers and sampler, resume or start fresh, then rounds of stages, each ended
    by a validation that logs and saves, and finally resources.json. The order of every RNG draw and torch
    operation is the order a seeded run's weights depend on: a step here moves only with the steps around it."""

    def __init__(self, method, train_items: list, val_items: list, cfg: LoopConfig, made_by: dict | None = None):
        self.rank, self.world, local_rank = ddp_env()
        self.made_by = {"made_by": made_by} if made_by else {}  # run.json's record of the command (model card)
        self.main_rank = self.rank == 0
        self.method, self.train_items, self.val_items = method, train_items, val_items
        self.epoch_mode = cfg.epochs > 0
        self._check_inputs(cfg)
        self.cfg = replace(cfg, batch_size=min(cfg.batch_size, len(train_items)))
        self.out = Path(self.cfg.out_dir)
        self.config = self._configuration(requested_batch=cfg.batch_size)
        self.identity = {k: v for k, v in _flat(self.config).items() if k not in NOT_IDENTITY}
        check_run_identity(self.out, self.identity, self.cfg.resume)
        self.device = torch.device(f"cuda:{local_rank}" if self.cfg.device == "cuda" and self.world > 1
                                   else self.cfg.device)
        autocast(self.device, self.cfg.precision)  # refuses fp16 off CUDA before any work
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # before NCCL starts: each rank's communicator on its own GPU
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self._build()
        self._resume_or_start()

    def _check_inputs(self, cfg: LoopConfig) -> None:
        """Refuse a run that cannot train; warn when the batch is capped at the training items."""
        n = len(self.train_items)
        if self.epoch_mode == (cfg.iterations > 0) or (self.epoch_mode and not hasattr(self.method, "epoch_stages")):
            raise ValueError("give iterations or epochs (epochs needs a method with epoch_stages)")
        if n < 2:
            raise UserError(f"the {cfg.train_name} has {n} usable item(s); training needs at least 2")
        if not self.val_items:
            raise UserError(f"the {cfg.val_name} has no usable item; validation needs at least 1")
        if cfg.batch_size > n and self.main_rank:
            print(f"warning: batch size {cfg.batch_size} is larger than the {n} items of the "
                  f"{cfg.train_name}; using batches of {n}", file=sys.stderr)

    def _configuration(self, requested_batch: int) -> dict:
        """What config.json and run.json record: the loop's settings, the method's, and the data's digests."""
        loop = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.cfg).items()
                if OPTIONAL_SETTINGS.get(k, object()) != v}
        return {"loop": {**loop, "requested_batch_size": requested_batch, "threads": torch.get_num_threads()},
                **self.method.config(),
                "data": {"train": {"items": len(self.train_items), "digest": items_digest(self.train_items)},
                         "val": {"items": len(self.val_items), "digest": items_digest(self.val_items)}}}

    def _build(self) -> None:
        """The seeded model, its optimisers and (iteration mode) the batch sampler, at step 0."""
        cfg, method = self.cfg, self.method
        seed_everything(cfg.seed)
        self.model = method.build_model().to(self.device)
        self.optimizers = (method.optimizers(self.model) if hasattr(method, "optimizers")
                           else {"adam": torch.optim.Adam(self.model.parameters(), lr=cfg.lr)})
        self.sampler = None if self.epoch_mode else Sampler(len(self.train_items), cfg.batch_size, cfg.seed)
        # fp16's gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.step, self.epoch, self.best_val, self.best_step, self.log_rows = 0, 0, float("inf"), -1, []
        self.stale = 0  # validations in a row without improvement (early stopping)

    def _resume_or_start(self) -> None:
        """Continue from the folder's resume state (model, optimisers, sampler, method, RNGs, log), or clear the
        folder of an earlier run and record this run's identity."""
        state = load_state(self.out) if self.cfg.resume else None
        if state is not None:
            self._load(state)
        elif self.main_rank:  # a fresh start: nothing of an earlier run in this folder may survive to be resumed later
            self.out.mkdir(parents=True, exist_ok=True)
            for name in (STATE, WEIGHTS, CONFIG, "log.csv", "loss.png", RESOURCES, CARD):
                (self.out / name).unlink(missing_ok=True)
            atomic_write_text(self.out / RUN, json.dumps({"identity": self.identity, "config": self.config,
                                                          **self.made_by}, indent=1, default=str))

    def _load(self, state: dict) -> None:
        """Everything `_save` wrote, back in place, so the run continues bit for bit."""
        self.model.load_state_dict(state["model"])
        for name, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][name])
        if self.sampler is not None:
            self.sampler.load(state["sampler"])
        if hasattr(self.method, "load_state"):
            self.method.load_state(state["method"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = int(state["step"]), int(state.get("epoch", 0))
        self.best_val, self.best_step = float(state["best_val"]), int(state["best_step"])
        self.stale = int(state.get("stale", 0))
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_to_python_random(state["python_rng"]))
        self.log_rows = _read_log(self.out / "log.csv")
        if self.main_rank:
            at = f"epoch {self.epoch}" if self.epoch_mode else f"iteration {self.step}"
            done = "" if self._more_to_train() else " (already finished)"
            print(f"resuming {self.out} at {at}{done} (best validation {self.best_val:.4f} at {self.best_step})")

    def _more_to_train(self) -> bool:
        """Epochs or iterations left to run (early stopping aside)."""
        return self.epoch < self.cfg.epochs if self.epoch_mode else self.step < self.cfg.iterations

    def _stopped_early(self) -> bool:
        return self.cfg.patience > 0 and self.stale > self.cfg.patience

    def train(self) -> LoopResult:
        """The rounds until the run is done, then its resources record."""
        cfg = self.cfg
        self.first_step, self.first_epoch = self.step, self.epoch
        # log.csv's clock runs on across resumes
        self.elapsed_before = float(self.log_rows[-1]["seconds"]) if self.log_rows else 0.0
        self.ctx = Context(self.device, self.rank, self.world, cfg.eval_batch_size, cfg.progress and self.main_rank,
                           precision=cfg.precision)
        self.val_targets = self.method.targets(self.val_items)
        self.pool = ThreadPoolExecutor(max_workers=1)  # prepares the next batch while the model trains on this one
        self.t_start, self.t_data, self.t_train = time.time(), 0.0, 0.0
        self.bar = tqdm(total=cfg.epochs if self.epoch_mode else cfg.iterations,
                        initial=self.epoch if self.epoch_mode else self.step, desc=f"train {self.out.name}",
                        unit="epoch" if self.epoch_mode else "it", disable=not self.ctx.progress)
        if self.main_rank and self._more_to_train() and not self._stopped_early():
            _record_training(self.out, training_progress(cfg, self.step, self.epoch, self.best_step, False),
                             **self.made_by)  # the command of the call that trains it further
        with ResourceMonitor() as mon:
            threads = torch.get_num_threads()
            for stages in self._rounds():
                row_losses, timing = {}, {}
                for st in stages:
                    row_losses[st.name] = self._run_stage(st, timing)
                if self.epoch_mode:
                    self.epoch += 1
                    self.bar.update(1)
                self._validate(row_losses, timing)
                if self.world > 1:
                    dist.barrier()
        self.bar.close()
        self.pool.shutdown()
        if self._stopped_early() and self.main_rank:
            print(f"early stop at {'epoch ' + str(self.epoch) if self.epoch_mode else 'iteration ' + str(self.step)}: "
                  f"{self.stale} validations without improvement (patience {cfg.patience})")
        return self._finish(mon, threads)

    def _rounds(self):
        """(stages of one round) until the run is done: an epoch, or the steps up to the next validation, or
        early stopping."""
        cfg, method = self.cfg, self.method
        while self._more_to_train() and not self._stopped_early():
            if self.epoch_mode:
                yield method.epoch_stages(self.model, self.epoch, self.ctx, self.train_items)
            else:
                n = min(cfg.val_every - self.step % cfg.val_every, cfg.iterations - self.step)
                yield [Stage("train", (self.sampler.next() for _ in range(n)), self.train_items, method.loss,
                             list(self.optimizers.values()), collate=getattr(method, "train_collate", None), total=n)]

    def _run_stage(self, st: Stage, timing: dict) -> list[float]:
        """Prepare and train one stage, batch by batch (the next batch collated in the background); its losses.
        `timing` gets the stage's prepare, train and data-wait seconds."""
        t_prepare, data_before = time.perf_counter(), self.t_data
        if st.prepare is not None:
            st.prepare(st)
        t_train = time.perf_counter()
        timing[f"{st.name}_prepare_seconds"] = round(t_train - t_prepare, 3)
        next_batch = self._batch_source(st)
        net = (torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=self.epoch_mode)
               if self.world > 1 else self.model)  # wrapped per stage: a method may swap a head between stages
        inner = tqdm(total=st.total, desc=f"  {st.name}", unit="batch", leave=False,
                     disable=not (self.ctx.progress and self.epoch_mode))
        losses, pending = [], self.pool.submit(next_batch)
        while True:
            t0 = time.perf_counter()
            batch = pending.result()
            self.t_data += time.perf_counter() - t0
            if batch is None:
                break
            pending = self.pool.submit(next_batch)
            losses.append(self._optimise(net, st, to_device(batch, self.device)))
            inner.update(1)
            if not self.epoch_mode:
                self.bar.update(1)
        inner.close()
        # the stage's losses stay on the device during the stage and are read back here, once: no host sync per step
        losses = torch.stack(losses).tolist() if losses else []
        t_end = time.perf_counter()
        self.t_train += t_end - t_train
        timing[f"{st.name}_train_seconds"] = round(t_end - t_train, 3)
        timing[f"{st.name}_data_wait_seconds"] = round(self.t_data - data_before, 3)
        return losses

    def _batch_source(self, st: Stage):
        """() -> the stage's next collated batch (this rank's slice under DDP), None after the last."""
        collate = st.collate or self.method.collate
        batches = iter(st.batches)
        rank, world = self.rank, self.world
        pin = self.device.type == "cuda"

        def next_batch():  # runs in the loader thread
            idx = next(batches, None)
            if idx is None:
                return None
            mine = idx[rank::world] if world > 1 else idx
            batch = collate([st.items[i] for i in mine])
            return pinned(batch) if pin else batch
        return next_batch

    def _optimise(self, net, st: Stage, batch: dict) -> torch.Tensor:
        """One optimisation step of the stage's loss on one batch (forward and loss in the run's precision,
        fp16's loss scaled, gradients clipped when asked); its loss, detached, still on the device."""
        net.train()
        with autocast(self.device, self.cfg.precision):
            loss = st.loss(net, batch)
        for o in st.optimizers:
            o.zero_grad(set_to_none=True)
        scaler = self.scaler
        (loss if scaler is None else scaler.scale(loss)).backward()
        if self.cfg.clip_value > 0:
            for o in st.optimizers if scaler is not None else ():
                scaler.unscale_(o)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_value_(net.parameters(), self.cfg.clip_value)
        for o in st.optimizers:
            o.step() if scaler is None else scaler.step(o)  # the scaler skips a step whose gradients overflowed
        if scaler is not None:
            scaler.update()
        self.step += 1
        return loss.detach()

    def _validate(self, row_losses: dict, timing: dict) -> None:
        """Score the validation items after a round, keep the best, log the round and (rank 0) save it."""
        method = self.method
        pred = evaluate(method, self.model, self.val_items, self.cfg.eval_batch_size, self.device, self.cfg.precision)
        val = float(method.val_loss(pred, self.val_targets))
        improved = val < self.best_val
        where = self.epoch if self.epoch_mode else self.step
        if self.main_rank and hasattr(method, "report_validation"):  # e.g. the original's per-validation lines
            method.report_validation(where, row_losses, val, self.best_val)
        if improved:
            self.best_val, self.best_step = val, where
        self.stale = 0 if improved else self.stale + 1
        self.log_rows.append(self._log_row(where, row_losses, val, timing))
        self.bar.set_postfix(val=f"{val:.4f}", best=f"{self.best_val:.4f}@{self.best_step}")
        if self.main_rank:
            self._save(improved, val, where)

    def _log_row(self, where: int, row_losses: dict, val: float, timing: dict) -> dict:
        """log.csv's row of this round: where, each stage's mean loss, validation, the method's extras, clock."""
        row = {("epoch" if self.epoch_mode else "step"): where}
        if self.epoch_mode:
            row["steps"] = self.step
        for name, ls in row_losses.items():
            row[f"{name}_loss" if name != "train" else "train_loss"] = float(np.mean(ls)) if ls else float("nan")
        row.update({"val_loss": val, "best_val": self.best_val,
                    **(self.method.round_log() if hasattr(self.method, "round_log") else {}),
                    **(timing if self.epoch_mode else {}),
                    "seconds": round(self.elapsed_before + time.time() - self.t_start, 2)})
        return row

    def _save(self, improved: bool, val: float, where: int) -> None:
        """The round's files: the best checkpoint when it improved, log.csv, loss.png, the resume state,
        run.json's training record and the model card (README.md)."""
        out, model = self.out, self.model
        if improved:
            save_checkpoint(out, model.state_dict(), {**self.config, ("epoch" if self.epoch_mode else "step"): where,
                                                      "val_loss": val})
        _write_log(out / "log.csv", self.log_rows)
        training_curves(self.log_rows, out / "loss.png", out.name)
        save_state(out, {"model": model.state_dict(), "step": self.step, "epoch": self.epoch,
                         "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                         "best_val": self.best_val, "best_step": self.best_step, "stale": self.stale,
                         "torch_rng": torch.get_rng_state(),
                         "python_rng": _from_python_random(random.getstate()),
                         **({"sampler": self.sampler.state()} if self.sampler is not None else {}),
                         **({"method": self.method.state()} if hasattr(self.method, "state") else {}),
                         **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {})})
        _record_training(out, training_progress(self.cfg, self.step, self.epoch, self.best_step,
                                                self._stopped_early()))
        write_card(out)  # README.md: what the model is, how far it trained, its test scores

    def _finish(self, mon: ResourceMonitor, threads: int) -> LoopResult:
        """resources.json of a call that trained (what it used), and the call's LoopResult."""
        cfg = self.cfg
        seconds, steps_run = time.time() - self.t_start, self.step - self.first_step
        if self.main_rank and steps_run:  # a call with nothing to do leaves the finished run's record as it was
            used = {"seconds": round(seconds, 3), "steps_run": steps_run, "resumed_at_step": self.first_step,
                    "batch_size": cfg.batch_size, "items_per_second": round(steps_run * cfg.batch_size / seconds, 3),
                    "train_seconds": round(self.t_train, 3), "data_wait_seconds": round(self.t_data, 3),
                    **{k: v for k, v in mon.as_dict().items() if k != "seconds"},
                    "device": str(self.device), "precision": cfg.precision, "threads": threads,
                    "world_size": self.world}
            if self.epoch_mode:
                used["epochs_run"] = self.epoch - self.first_epoch
            atomic_write_text(self.out / RESOURCES, json.dumps(used, indent=1))
        return LoopResult(self.best_step, self.best_val, self.step, seconds, self.t_data, self.t_train,
                          steps_run=steps_run,
                          batch_size=cfg.batch_size, epochs=self.epoch, stopped_early=self._stopped_early())


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
