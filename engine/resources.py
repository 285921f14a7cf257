"""Measures the resources a block of work used: wall time, resident memory and the CUDA peak allocation.

Recorded where it happened, so a comparison report needs no re-measuring: the process's resident memory is
RSS, its peak sampled every 20 ms.

    with ResourceMonitor() as mon:
        ...
    mon.as_dict()  # {"seconds", "rss_start_mb", "rss_peak_mb", "gpu_peak_mb"}

The training loop writes it to <run>/resources.json; the testing scripts add `inference_record(...)` to their
result JSON (time per utterance and real-time factor of the model on the test split).
"""
from __future__ import annotations

import os
import resource
import sys
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")
_INTERVAL = 0.02  # seconds between RSS samples
_active: list["ResourceMonitor"] = []  # monitors inside their block, outermost first (nesting, see _cuda_reset)
_lock = threading.Lock()


def rss_mb() -> float:
    """The process's resident memory now, in MB. Where /proc is absent (macOS) this is ru_maxrss, the
    process's lifetime peak, so a block's start and peak then read as at least every earlier peak."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


def _cuda():
    """torch.cuda when CUDA is in use by this process (torch imported, a GPU present, CUDA initialised)."""
    torch = sys.modules.get("torch")  # never import torch here: without it nothing can use CUDA
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None


class ResourceMonitor:
    """Context manager: wall seconds, RSS at the start and its peak, CUDA peak memory of the block.

    A daemon thread reads RSS every 20 ms (one small read of /proc, negligible next to any model). CUDA's peak
    counter is process-wide, so a nested monitor, which resets it, first hands the peak so far to the monitors
    around it: every level reports its own block's peak."""

    def __init__(self):
        self.seconds = self.rss_start_mb = self.rss_peak_mb = 0.0
        self.gpu_peak_mb: float | None = None
        self._gpu_before = 0.0  # peak of this block handed over by nested monitors before they reset the counter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="ResourceMonitor", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(_INTERVAL):
            self.rss_peak_mb = max(self.rss_peak_mb, rss_mb())

    def __enter__(self) -> "ResourceMonitor":
        cuda = _cuda()
        with _lock:
            if cuda is not None:
                peak = cuda.max_memory_allocated() / 2**20
                for outer in _active:
                    outer._gpu_before = max(outer._gpu_before, peak)
                cuda.reset_peak_memory_stats()
            _active.append(self)
        self.rss_start_mb = self.rss_peak_mb = rss_mb()
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        self.rss_peak_mb = max(self.rss_peak_mb, rss_mb())  # a block shorter than one interval
        cuda = _cuda()
        with _lock:
            if cuda is not None:
                self.gpu_peak_mb = max(self._gpu_before, cuda.max_memory_allocated() / 2**20)
            _active.remove(self)

    def as_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "rss_start_mb": round(self.rss_start_mb, 1),
                "rss_peak_mb": round(self.rss_peak_mb, 1),
                "gpu_peak_mb": None if self.gpu_peak_mb is None else round(self.gpu_peak_mb, 1)}


def inference_record(seconds: float, utterances: int, audio_seconds: float | None, monitor=None) -> dict:
    """{"inference": ...} for a result JSON: the time the model took on the test items, per utterance, and the
    real-time factor rtf = seconds / audio_seconds (None without audio durations). The seconds are model
    inference from stored features: feature extraction is not included (its cost is in the extraction
    benches). With the ResourceMonitor that timed it, also its peak RSS and CUDA memory."""
    rec = {"seconds": round(seconds, 3), "utterances": utterances,
           "ms_per_utterance": round(1000 * seconds / utterances, 3) if utterances else None,
           "audio_seconds": round(audio_seconds, 3) if audio_seconds else None,
           "rtf": float(f"{seconds / audio_seconds:.4g}") if audio_seconds else None}  # 4 significant digits
    if monitor is not None:
        m = monitor.as_dict()
        rec.update(rss_peak_mb=m["rss_peak_mb"], gpu_peak_mb=m["gpu_peak_mb"])
    return {"inference": rec}
