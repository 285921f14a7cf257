"""Small pieces shared by every system: CCC, the dynamic chunker, z-norm, atomic file writes, seeding."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import random
import tempfile
from pathlib import Path

import numpy as np


# the toolkit's user-facing errors and the argparse number types, here at the bottom layer so that every package
# (features' extraction runner included) can raise them; engine.cli re-exports them
class UserError(Exception):
    """Bad input or settings the user can fix; the message names the file or flag and says what to do."""


def _number(text: str, cast, what: str):
    """`cast(text)`, or the argparse error "'x' is not <what>"."""
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def int_at_least(low: int, why: str | None = None):
    """argparse type: an integer >= low, with a message naming the bound (and `why`, when given)."""
    def check(text: str) -> int:
        v = _number(text, int, "a whole number")
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} is too small (at least {low}{': ' + why if why else ''})")
        return v
    check.__name__ = f"integer >= {low}"
    return check


class OutputError(Exception):
    """An output cannot be written (read-only folder, full disk, ...). Names the target, never the temp file."""


_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask alone must set it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def writable_dir(folder: str | Path, flag: str | None = None) -> Path:
    """Prove that files can be written in `folder` (or, where it does not exist yet, that it can be created)
    without leaving anything behind; OutputError naming the folder (and the flag that sets it, when given)
    otherwise.

    Scripts call this before long work, so an unwritable output fails in a second, not after an hour."""
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    try:
        if not probe_in.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{probe_in} is not a folder")
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=probe_in)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        change = f"; give {flag} a folder you can write to" if flag else ""
        raise OutputError(f"{folder}: cannot write there ({e.strerror or e}){change}") from None
    return folder


OUTPUT_SUFFIXES = (".csv", ".json", ".png")  # what the scripts write beside one another under one user-given name


def output_file(name: str | Path, suffix: str) -> Path:
    """The file `suffix` ('.json') of the outputs named `name` by the user (--out, --csv): `name` with its own
    output suffix (.csv, .json, .png) replaced, any other name with `suffix` appended. Never Path.with_suffix,
    which cuts a name at its last dot: --out run_lr0.5e-3 gives run_lr0.5e-3.csv, not run_lr0.csv."""
    name = Path(name)
    stem = name.name[: -len(name.suffix)] if name.suffix.lower() in OUTPUT_SUFFIXES else name.name
    return name.with_name(stem + suffix)


_DISK_FULL_TEXT = ("no space left on device", "not enough free space", "storagefull", "disk quota exceeded")


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def _free_bytes(folder: Path) -> int | None:
    import shutil
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(e: BaseException, folder: str | Path | None = None) -> bool:
    """Whether `e` says the disk (or the quota) is full: ENOSPC/EDQUOT, numpy's "Not enough free space",
    safetensors' "No space left on device" / StorageFull, or torch.save's bare "file write failed" / "unexpected
    pos" while `folder`'s disk has (almost) nothing free."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e).lower()
    if any(t in text for t in _DISK_FULL_TEXT):
        return True
    torch_writer = "write failed" in text or "unexpected pos" in text  # torch.save's PytorchStreamWriter
    free = _free_bytes(Path(folder)) if folder is not None and torch_writer else None
    return free is not None and free < 2**20


def disk_full_error(path: str | Path, need: int | None = None) -> OutputError:
    """One line naming the target, the space it needs (when known) and what its disk has free."""
    free = _free_bytes(Path(path).parent)
    parts = [f"needs {_human_bytes(need)}" if need else None,
             f"{_human_bytes(free)} free on its disk" if free is not None else None]
    said = ", ".join(p for p in parts if p)
    return OutputError(f"{path}: disk full, cannot write it{f' ({said})' if said else ''}; free some space or "
                       "write elsewhere")


@contextlib.contextmanager
def atomic_path(path: str | Path, need: int | None = None):
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`.

    A run killed half-way leaves at most a `.tmp` file behind, never a truncated `path`. The file gets the
    permissions a plain `open(path, "w")` would (0666 less the umask), not mkstemp's private 0600, so
    colleagues on a shared server can read stores, models and results. Any failure to create, write or
    rename raises OutputError naming `path`; a full disk (whatever the writer raises: OSError, numpy's,
    safetensors' or torch's error) says so, with the space `need`ed in bytes when the caller knows it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, need) from None
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        full = isinstance(e, Exception) and not isinstance(e, OutputError) and is_disk_full(e, path.parent)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise disk_full_error(path, need) from None
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # corpus tools run without torch
        pass


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else unchanged."""
    if device == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def znorm(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 3.0,
          dtype: np.dtype | type = np.float32) -> np.ndarray:
    """(x - mean) / std in float64, NaN -> 0, clipped to [-clip, clip] (so +-inf -> +-clip), cast to `dtype`.

    The one feature normalisation of all five systems; the originals do exactly these steps in this order.
    """
    # in place on one float64 copy, clipped straight into the output: the same values bit for bit as
    # ((x - mean) / std, NaN -> 0, clip, cast) written out, in 1.7x less CPU (it runs per batch in the loader)
    z = np.array(x, dtype=np.float64)
    shape = np.broadcast_shapes(z.shape, np.shape(mean), np.shape(std))
    if shape != z.shape:  # statistics of more dimensions than x: the broadcast result, as x - mean would give
        z = np.array(np.broadcast_to(z, shape))
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero std gives +-inf / NaN, handled next
        np.subtract(z, np.asarray(mean, dtype=np.float64), out=z)
        np.divide(z, np.asarray(std, dtype=np.float64), out=z)
    np.copyto(z, 0.0, where=np.isnan(z))
    out = np.empty(z.shape, dtype)
    np.clip(z, -clip, clip, out=out, casting="same_kind")
    return out


# ------------------------------------------------------------------------------------------------ metrics

# ccc, the class metrics and their bootstrap intervals live in metrics.py (the one metrics module); imported
# here so every `from utils import ccc` keeps working.
# ------------------------------------------------------------------------------ --precision

PRECISIONS = ("fp32", "bf16", "fp16")  # fp32: the reference and the default; the others autocast


def autocast(device, precision: str = "fp32"):
    """The one place --precision is applied: a context manager under which forward passes and losses run in
    `precision` on `device` (torch.autocast; fp32: a no-op, so fp32 results stay byte-identical). The training
    step, validation, the experiment layer's test stage, systems.predict and the feature extractors all enter it."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if precision == "fp16" and device_type != "cuda":
        raise UserError(f"precision fp16 needs a CUDA device, not {device}: on the CPU use bf16")
    lowered = torch.autocast(device_type=device_type, dtype=dtypes[precision])
    if device_type != "cpu" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return lowered
    # a CPU without bf16 instructions: oneDNN cannot build its bf16 LSTM ("could not create a primitive
    # descriptor"); without oneDNN, torch's own kernels run bf16 matmuls and keep the LSTM in fp32
    return _without_onednn(lowered)


@contextlib.contextmanager
def _without_onednn(inner):
    import torch
    with torch.backends.mkldnn.flags(enabled=False), inner:
        yield


from metrics import _class_labels, ccc, confusion_matrix, unweighted_accuracy, weighted_accuracy  # noqa: E402,F401


def ccc_loss(pred, true, *, unbiased_var: bool = True):
    """1 - CCC over a batch of torch tensors, differentiable.

    `unbiased_var=True` is the chunk LSTM's training loss as published: population covariance but
    `torch.var`'s unbiased variances (quirk Q5; a factor (N-1)/N on the variance terms). False gives the
    textbook population CCC. Needs at least two items.
    """
    p, t = pred.reshape(-1), true.reshape(-1)
    if p.numel() < 2:
        raise ValueError("ccc_loss needs a batch of at least two items")
    mp, mt = p.mean(), t.mean()
    cov = ((p - mp) * (t - mt)).mean()
    correction = 0 if not unbiased_var else 1
    vp, vt = p.var(correction=correction), t.var(correction=correction)
    return 1 - 2 * cov / (vp + vt + (mp - mt) ** 2)


# -------------------------------------------------------------------------------- classification outputs

def write_confusion(path_stem: str | Path, cm, class_names, title: str | None = None) -> tuple[Path, Path]:
    """Write `<stem>.csv` and `<stem>.png` for a confusion matrix (rows = true, columns = predicted); returns
    both paths. `.csv`/`.png` are appended to the stem as given (a stem like `out/fold1.test` keeps its dot).

    CSV: header `true\\pred,<class names>`, then one row per true class: name, counts. PNG: the counts with
    the row-normalised percentages (recall of the row's class on the diagonal) in every cell, cells shaded by
    that percentage; a row without items shows `-`. Both written atomically (`atomic_path`).
    """
    import csv

    cm = np.asarray(cm)
    names = [str(c) for c in class_names]
    n = len(names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {n} class names")
    if cm.size and (cm.dtype.kind not in "biuf" or not np.all(cm >= 0) or not np.all(cm == np.round(cm))):
        raise ValueError("a confusion matrix holds non-negative integer counts")
    cm = cm.astype(np.int64)
    csv_path, png_path = Path(f"{path_stem}.csv"), Path(f"{path_stem}.png")

    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *names])
        for name, row in zip(names, cm):
            w.writerow([name, *(int(v) for v in row)])

    from matplotlib.figure import Figure  # no pyplot: no backend state, Agg canvas, safe in any process

    support = cm.sum(axis=1, keepdims=True)
    frac = np.where(support > 0, cm / np.maximum(support, 1), np.nan)  # row shares; NaN for an empty row
    side = max(4.0, 1.1 * n + 2.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(frac), cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            pct = "-" if np.isnan(frac[i, j]) else f"{100 * frac[i, j]:.1f}%"
            dark = not np.isnan(frac[i, j]) and frac[i, j] > 0.5
            ax.text(j, i, f"{cm[i, j]}\n{pct}", ha="center", va="center", fontsize=10,
                    color="white" if dark else "black")
    long_names = max(map(len, names), default=0) > 6
    ax.set_xticks(range(n), names, rotation=30 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(cm.sum())
    present = support[:, 0] > 0
    if total:
        ua = np.mean(np.diag(cm)[present] / support[present, 0])
        acc = f"WA {100 * np.trace(cm) / total:.1f}%, UA {100 * ua:.1f}% ({total} items)"
    else:
        acc = "no items"
    ax.set_title(f"{title}\n{acc}" if title else acc)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return csv_path, png_path


# --------------------------------------------------------------------------------------- chunking

def dynamic_chunks(lengths, m: int = 62, C: int = 11, n: int = 1) -> np.ndarray:
    """Start frame of each of the n*C chunks of m frames of every utterance: (len(lengths), n*C) int64.

    The chunk-level systems' rule, for T >= m: S = n*C - 1 shifts, step = floor((T - m) / S), chunk k covers
    [k*step, k*step + m). No padding; up to S-1 trailing frames (more when step > m) are never seen; step 0
    (m <= T < m + S) gives n*C copies of the first m frames. The original crashes for T < m; here such an
    utterance gets step 0 and start 0, and `gather_chunks` pads it at the end with zeros (the z-normalised
    mean) to m frames. Returns index ranges, not copies: gather them from the (memory-mapped) features.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if n < 1 or C < 1 or m < 1:
        raise ValueError(f"need m, C, n >= 1 (got m={m}, C={C}, n={n})")
    shifts = n * C - 1
    step = np.maximum(lengths - m, 0) // max(shifts, 1)
    return step[:, None] * np.arange(n * C, dtype=np.int64)[None, :]


def gather_chunks(arrays, starts: np.ndarray, m: int) -> np.ndarray:
    """(sum of chunks, m, F) float32: chunk k of utterance u is arrays[u][starts[u, k] : starts[u, k] + m],
    utterance-major (rows u*nC ... u*nC + nC - 1), zero-padded at the end for utterances shorter than m."""
    out = np.zeros((starts.size, m, arrays[0].shape[1]), dtype=np.float32)
    offsets = np.arange(m)
    row = 0
    for x, st in zip(arrays, starts):
        if len(x) >= m:
            out[row: row + len(st)] = x[st[:, None] + offsets[None, :]]  # one fancy-index gather per utterance
        else:
            out[row: row + len(st), : len(x)] = x[None, :, :]
        row += len(st)
    return out
