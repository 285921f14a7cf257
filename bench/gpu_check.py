#!/usr/bin/env python
"""The prepared GPU check: every system trained, tested and run for prediction on CUDA and on the CPU, per
precision, with the outputs compared, and wav2vec2-large-sized feature extraction timed; one JSON + a table.

    python bench/gpu_check.py                      # on the first lent GPU (< 8 min from a fresh clone)
    python bench/gpu_check.py --device cpu --tiny  # the same checks on the CPU (tests/test_gpu_check.py)

Per system (chunk LSTM, DeepEmoCluster, audio-text, MDREA, speech + text + mocap) the data are synthetic feature
stores of the real shapes (130-d LLDs at 62.5 frames/s, 128-d mel, 1024-d wav2vec2 + 768-d token rows, 39-d MFCC +
35-d prosody + word ids, 1024-d + 768-d + 189-d mocap; --tiny: a few utterances and small dims), made in a
temporary folder: the check measures the code paths and the card, which do not depend on what the features
hear. For each system:

* reference: a few training steps through engine/loop.py on the CPU in fp32 (deterministic), then its test
  outputs (engine.loop.evaluate) on held-out utterances;
* per precision on the checked device: the same training (same seed, same batches) -> steps/s, share of step time
  waiting for data, peak GPU memory (torch.cuda.max_memory_allocated); `test`: its outputs against the
  reference's (`trained_rel_diff`: dropout streams differ between devices and precisions, so this is bounded
  loosely); `predict`: the reference's own weights run on the device at that precision (autocast) -> real-time
  factor and `predict_rel_diff`, checked against TOLERANCE (relative to max |reference output|); `test_metric`
  (CCC for the regressors, UA for the classifiers) of the short training, within METRIC_BOUND of the reference's.

With --device cpu the checked device is the CPU itself: fp32 must then equal the reference exactly. Precisions
the loop cannot train in yet (no LoopConfig.precision) are trained in fp32 and say so (`train_note`); fp16 is a
CUDA precision. Without CUDA and without --device cpu the script writes a JSON saying why and exits 0.

wav2vec2: transformers' Wav2Vec2Model with wav2vec2-large-robust's configuration (24 layers, 1024 hidden, random
weights, built locally) on batches of 10 s utterances: real-time factor of the forward pass alone and with the
frames copied to the host and written to a float16 feature store (the target on an H100: >= 2000x).
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import parser  # noqa: E402
from utils import atomic_write_text  # noqa: E402

SYSTEMS = ("chunk-lstm", "deep-emo-cluster", "audio-text", "mdre", "speech-text-mocap")
PRECISIONS = ("fp32", "bf16", "fp16")
# predict_rel_diff bound per system and precision: max |outputs - reference| / max |reference|, same weights.
# fp32 on CUDA: cuDNN's TF32 convolutions / RNNs and other reduction orders; bf16 keeps 8 mantissa bits (~4e-3
# per rounding), fp16 11; the recurrent systems (LSTM, GRU/Transformer over chunks) accumulate more of them.
TOLERANCE = {
    "chunk-lstm": {"fp32": 1e-3, "bf16": 0.1, "fp16": 0.02},
    "deep-emo-cluster": {"fp32": 1e-3, "bf16": 0.1, "fp16": 0.02},
    "audio-text": {"fp32": 1e-3, "bf16": 0.1, "fp16": 0.02},
    "mdre": {"fp32": 1e-3, "bf16": 0.1, "fp16": 0.02},
    "speech-text-mocap": {"fp32": 1e-3, "bf16": 0.1, "fp16": 0.02},
}
TRAINED_BOUND = 1.0  # trained_rel_diff: a few steps with other dropout draws move outputs, never to nonsense
METRIC_BOUND = 0.15  # |test metric (CCC or UA) of a short training at this precision - the fp32 reference's|
CLASSIFIERS = ("mdre", "speech-text-mocap")
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclasses.dataclass
class Size:
    train: int
    test: int
    steps: int
    batch: int
    small_dims: bool  # tiny mode: 32-d audio, 64-d text instead of 1024 / 768


FULL = Size(train=256, test=64, steps=10, batch=32, small_dims=False)
TINY = Size(train=8, test=4, steps=2, batch=4, small_dims=True)


# ------------------------------------------------------------------------------ synthetic stores, per system

def _store(root: Path, name: str, dims: int, frame_rate: float | None, arrays: dict):
    from features.store import FeatureStore
    store = FeatureStore.create(root / name, name=name, extractor="GpuCheck", params={}, dims=dims,
                                frame_rate=frame_rate)
    with store.writer() as w:
        for utt, x in arrays.items():
            w.add(utt, x)
    return FeatureStore(root / name)


def _nt(dims: int, mean: float = 0.0, std: float = 1.0):
    from features.normterm import NormTerm
    return NormTerm(np.full(dims, mean), np.full(dims, std), {a: (4.0, 1.0) for a in ("act", "dom", "val")})


def _lengths(rng, n: int, lo: int, hi: int) -> np.ndarray:
    return rng.integers(lo, hi, n)


def make_system(name: str, root: Path, size: Size, seed: int = 0):
    """(method factory, train items, test items, audio seconds of the test items, LoopConfig settings)."""
    rng = np.random.default_rng(seed)
    n = size.train + size.test
    utts = [f"u{i:05d}" for i in range(n)]
    short = size.small_dims
    if name == "chunk-lstm":
        from systems.chunk_lstm import ChunkLSTMMethod
        lens = _lengths(rng, n, 70, 120 if short else 690)
        store = _store(root, "lld", 130, 62.5, {u: rng.normal(size=(t, 130)).astype(np.float32) for u, t in zip(utts, lens)})
        factory = lambda: ChunkLSTMMethod(store, _nt(130), "act", "RnnAttenVec")  # noqa: E731
        items = [(u, float(rng.uniform(1, 7))) for u in utts]
        secs, loop = lens / 62.5, {"lr": 1e-3}
    elif name == "deep-emo-cluster":
        from systems.deep_emo_cluster import DeepEmoClusterMethod
        dec_batch = size.batch if short else size.batch // 2  # tiny: one epoch = 2 steps
        lens = _lengths(rng, n, 70, 120 if short else 690)
        store = _store(root, "mel", 128, 62.5, {u: rng.gamma(0.5, 1.0, size=(t, 128)).astype(np.float32)
                                               for u, t in zip(utts, lens)})
        factory = lambda: DeepEmoClusterMethod(store, _nt(128, 0.5, 0.7), "act", "Temp-Trans", 3 if short else 10,  # noqa: E731
                                               dec_batch)
        items = [(u, float(rng.uniform(1, 7))) for u in utts]
        secs, loop = lens / 62.5, {"epochs": 1, "iterations": 0, "batch_size": dec_batch}
    elif name == "audio-text":
        from bench.bench_audio_text import words_for
        from systems.audio_text import AudioTextMethod
        da, dt = (32, 64) if short else (1024, 768)
        lens = _lengths(rng, n, 100, 140 if short else 551)
        audio = _store(root, "w2v", da, 50.0, {u: rng.normal(size=(t, da)).astype(np.float32) for u, t in zip(utts, lens)})
        words = {u: words_for(t) for u, t in zip(utts, lens)}
        text = _store(root, "tok", dt, None, {u: rng.normal(size=(len(words[u]) + 2, dt)).astype(np.float32)
                                             for u in utts})
        factory = lambda: AudioTextMethod(audio, text, _nt(da), _nt(dt), words, seed=seed)  # noqa: E731
        items = [(u, tuple(float(v) for v in rng.uniform(1, 7, 3))) for u in utts]
        secs, loop = lens / 50.0, {"lr": 5e-4}
    elif name == "mdre":
        from systems.mdre import MDREMethod
        lens = _lengths(rng, n, 56, 300 if short else 900)
        mfcc = _store(root, "mfcc", 39, 100.0, {u: rng.normal(size=(t, 39)).astype(np.float32) for u, t in zip(utts, lens)})
        pros = _store(root, "pros", 35, None, {u: rng.normal(size=(1, 35)).astype(np.float32) for u in utts})
        vocab = ["_PAD_", "_UNK_"] + [f"w{i}" for i in range(200 if short else 3745)]
        tokens = {u: rng.integers(2, len(vocab), int(rng.integers(1, 40))) for u in utts}
        emb = rng.uniform(-0.25, 0.25, (len(vocab), 32 if short else 300)).astype(np.float32)
        factory = lambda: MDREMethod("MDREA", mfcc, pros, tokens, vocab, embedding=emb)  # noqa: E731
        items = [(u, int(rng.integers(0, 4))) for u in utts]
        secs, loop = lens / 100.0, {"lr": 1e-3, "clip_value": 10.0}
    elif name == "speech-text-mocap":
        from features.mocap import MocapStats
        from systems.speech_text_mocap import CONFIGURATIONS, THREE_WAY, FusionMethod
        ds, dt = (32, 64) if short else (1024, 768)
        lens = _lengths(rng, n, 30, 150 if short else 500)
        speech = _store(root, "speech", ds, 50.0, {u: rng.normal(size=(t, ds)).astype(np.float32) for u, t in zip(utts, lens)})
        text = _store(root, "text", dt, None, {u: rng.normal(size=(int(rng.integers(3, 30)), dt)).astype(np.float32)
                                              for u in utts})
        mocap = _store(root, "mocap", 189, None, {u: rng.normal(size=(200, 189)).astype(np.float32) for u in utts[::2]})
        norm = {"speech": (np.zeros(ds), np.ones(ds)), "text": (np.zeros(dt), np.ones(dt)),
                "mocap": MocapStats(np.zeros(189), np.ones(189))}
        extra = {"d_model": 32, "ff": 64, "fusion_hidden": 32} if short else {}
        factory = lambda: FusionMethod(CONFIGURATIONS[THREE_WAY], speech=speech, text=text, mocap=mocap,  # noqa: E731
                                       norm=norm, **extra)
        items = [(u, int(rng.integers(0, 4))) for u in utts]
        secs, loop = lens / 50.0, {"lr": 1e-4}
    else:
        raise ValueError(f"unknown system {name!r}: one of {', '.join(SYSTEMS)}")
    test_seconds = float(np.sum(secs[size.train:]))
    return factory, items[: size.train], items[size.train:], test_seconds, loop


# ------------------------------------------------------------------------------ one training + test + prediction

def loop_supports_precision() -> bool:
    from engine.loop import LoopConfig
    return "precision" in {f.name for f in dataclasses.fields(LoopConfig)}


def scripts_supporting_precision() -> dict[str, bool]:
    """Which training / inference scripts take --precision (helper work landing in parallel)."""
    import importlib
    out = {}
    for mod in ("training", "testing", "main", "online_testing", "prediction_process", "mdre", "speech_text_mocap",
                "feat_wav2vec2", "feat_roberta"):
        try:
            m = importlib.import_module(mod)
            if hasattr(m, "build_parser"):
                out[mod] = "--precision" in m.build_parser().format_help()
            else:
                import inspect
                out[mod] = "--precision" in inspect.getsource(m)
        except Exception as e:  # noqa: BLE001 - a script that cannot be imported is reported, not fatal
            out[mod] = f"not importable: {type(e).__name__}: {e}"
    return out


def _sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _peak_reset(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: str) -> float | None:
    import torch
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else None


def _autocast(device: str, precision: str):
    """engine.loop.autocast (the one place --precision is applied) where it exists, else torch.autocast."""
    import contextlib

    import torch

    import engine.loop
    if hasattr(engine.loop, "autocast"):
        return engine.loop.autocast(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.split(":")[0], dtype=getattr(torch, DTYPES[precision]))


def train_run(factory, train_items, val_items, out_dir: Path, device: str, precision: str, size: Size,
              loop: dict, deterministic: bool) -> tuple[object, dict]:
    """Train a fresh method for size.steps steps (epoch systems: one epoch); (method, timing record)."""
    from engine.loop import LoopConfig, train
    settings = {"iterations": size.steps, "batch_size": size.batch, "val_every": size.steps, **loop}
    note = None
    if precision != "fp32":
        if loop_supports_precision():
            settings["precision"] = precision
        else:
            note = f"engine.loop has no precision setting yet: trained in fp32, {precision} only in prediction"
    method = factory()
    cfg = LoopConfig(out_dir=out_dir, device=device, progress=False, resume=False, seed=0,
                     deterministic=deterministic, **settings)
    _peak_reset(device)
    res = train(method, train_items, val_items, cfg)
    _sync(device)
    rec = {"steps": res.steps_run, "seconds": res.seconds, "steps_per_s": res.steps_run / res.seconds,
           "data_wait_share": res.data_seconds / res.seconds, "train_peak_gpu_mib": _peak_mib(device),
           "best_val": float(res.best_val)}
    if note:
        rec["train_note"] = note
    return method, rec


def outputs(method, run_dir: Path, items, device: str, precision: str, batch: int) -> tuple[np.ndarray, float, float | None]:
    """(outputs, seconds, peak GPU MiB) of the run's best weights on `items`, on `device` at `precision`."""
    from engine.loop import evaluate, load_best
    model = load_best(method, run_dir, device, allow_unfinished=True)
    with _autocast(device, precision):
        evaluate(method, model, items[:1], batch, device)  # warm-up: kernels, cuDNN plans
        _sync(device)
        _peak_reset(device)
        t0 = time.perf_counter()
        out = evaluate(method, model, items, batch, device)
        _sync(device)
    return np.asarray(out, np.float64), time.perf_counter() - t0, _peak_mib(device)


def test_metric(name: str, out: np.ndarray, items: list) -> float:
    """The system's test metric on `items`: UA of the argmax for the classifiers; for the regressors the CCC of the
    (normalised) outputs with the z-normalised labels, averaged over the attributes (what their CCC loss fits)."""
    from metrics import ccc, unweighted_accuracy
    labels = np.asarray([y for _, y in items], np.float64)
    if name in CLASSIFIERS:
        return unweighted_accuracy(labels.astype(int), out.reshape(len(items), -1).argmax(1), out.shape[-1])
    labels, out = labels.reshape(len(items), -1), out.reshape(len(items), -1)
    z = (labels - labels.mean(0)) / np.maximum(labels.std(0), 1e-12)
    return float(np.mean([ccc(out[:, k], z[:, k]) for k in range(z.shape[1])]))


def rel_diff(a: np.ndarray, ref: np.ndarray) -> float:
    if a.shape != ref.shape:
        return math.inf
    return float(np.max(np.abs(a - ref)) / max(float(np.max(np.abs(ref))), 1e-12)) if ref.size else 0.0


def check_system(name: str, tmp: Path, device: str, precisions, size: Size) -> dict:
    """The reference (CPU fp32) and every precision on `device`, compared."""
    t_sys = time.perf_counter()
    factory, train_items, test_items, test_s, loop = make_system(name, tmp / name, size)
    cpu_only = device == "cpu"
    ref_method, ref_train = train_run(factory, train_items, test_items[:2], tmp / name / "ref", "cpu", "fp32", size,
                                      loop, deterministic=True)
    ref_out, ref_sec, _ = outputs(ref_method, tmp / name / "ref", test_items, "cpu", "fp32", size.batch)
    ref_metric = test_metric(name, ref_out, test_items)
    result = {"reference": {**ref_train, "device": "cpu", "precision": "fp32", "test_rtf": ref_sec / test_s,
                            "test_metric": ref_metric},
              "test_audio_seconds": test_s, "test_utterances": len(test_items), "rows": []}
    for p in precisions:
        row = {"system": name, "device": device, "precision": p, "tolerance": TOLERANCE[name][p]}
        try:
            method, tr = train_run(factory, train_items, test_items[:2], tmp / name / p, device, p, size, loop,
                                   deterministic=cpu_only)
            row.update(tr)
            out, sec, peak = outputs(method, tmp / name / p, test_items, device, p, size.batch)
            row.update(test_rtf=sec / test_s, test_peak_gpu_mib=peak, trained_rel_diff=rel_diff(out, ref_out),
                       test_metric=test_metric(name, out, test_items))
            row["metric_diff"] = abs(row["test_metric"] - ref_metric)
            pred, sec, peak = outputs(ref_method, tmp / name / "ref", test_items, device, p, size.batch)
            row.update(predict_rtf=sec / test_s, predict_peak_gpu_mib=peak, predict_rel_diff=rel_diff(pred, ref_out))
            finite = all(math.isfinite(row[k]) for k in ("steps_per_s", "trained_rel_diff", "predict_rel_diff"))
            exact = cpu_only and p == "fp32"  # cpu vs cpu, deterministic: the very same numbers
            row["ok"] = bool(finite and row["predict_rel_diff"] <= (0.0 if exact else row["tolerance"])
                             and row["trained_rel_diff"] <= (0.0 if exact else TRAINED_BOUND)
                             and row["metric_diff"] <= (0.0 if exact else METRIC_BOUND))
        except Exception as e:  # noqa: BLE001 - one failing precision is reported, the others still run
            row.update(ok=False, error=f"{type(e).__name__}: {e}")
        result["rows"].append(row)
    result["seconds"] = time.perf_counter() - t_sys
    return result


# ------------------------------------------------------------------------------ wav2vec2-large extraction speed

def wav2vec2_config(tiny: bool):
    from transformers import Wav2Vec2Config
    if tiny:
        return Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                              conv_dim=(32,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True)
    # facebook/wav2vec2-large-robust: 24 layers, 1024 hidden, 16 heads, 4096 FFN, layer-norm conv stack
    return Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                          feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)


def time_wav2vec2(device: str, precision: str, tiny: bool, store_dir: Path, *, utt_seconds: float, batch: int,
                  batches: int) -> dict:
    """Forward-only and forward + host copy + float16 store real-time factors (audio seconds per second)."""
    import torch
    from transformers import Wav2Vec2Model

    from features.store import FeatureStore
    torch.manual_seed(0)
    model = Wav2Vec2Model(wav2vec2_config(tiny)).to(device).eval()
    wave = torch.randn(batch, int(16000 * utt_seconds), device=device)
    audio_s = batch * utt_seconds * batches

    def forward():
        with torch.inference_mode(), _autocast(device, precision):
            return model(wave).last_hidden_state  # (batch, frames, hidden)

    forward()  # warm-up
    _sync(device)
    _peak_reset(device)
    t0 = time.perf_counter()
    for _ in range(batches):
        h = forward()
    _sync(device)
    compute = time.perf_counter() - t0
    peak = _peak_mib(device)
    store = FeatureStore.create(store_dir, name="w2v", extractor="GpuCheck", params={}, dims=h.shape[-1],
                                frame_rate=50.0, dtype="float16")
    pinned = device.startswith("cuda")
    host = torch.empty(h.shape, dtype=torch.float16, pin_memory=pinned)
    t0 = time.perf_counter()
    with store.writer(flush_mb=256) as w:
        for b in range(batches):
            h = forward()
            host.copy_(h.to(torch.float16), non_blocking=pinned)
            _sync(device)  # the copy must be complete before numpy reads the pinned buffer
            for i, x in enumerate(host.numpy()):
                w.add(f"b{b}_{i}", x)
    stored = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    return {"device": device, "precision": precision, "parameters": params, "batch": batch,
            "utterance_seconds": utt_seconds, "audio_seconds": audio_s, "compute_x_realtime": audio_s / compute,
            "with_store_x_realtime": audio_s / stored, "peak_gpu_mib": peak,
            "hours_for_324h_compute": 324 / (audio_s / compute), "hours_for_324h_with_store": 324 / (audio_s / stored)}


# ------------------------------------------------------------------------------ the run

def table(report: dict) -> str:
    lines = ["| system | device | precision | steps/s | data wait | train peak MiB | test RTF | predict RTF | "
             "predict diff (tol.) | trained diff | test CCC/UA (diff) | ok |", "|---" * 12 + "|"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for name, res in report["systems"].items():
        for r in res.get("rows", []):
            if "error" in r:
                lines.append(f"| {name} | {r['device']} | {r['precision']} | error: {r['error'][:80]} ||||||||| no |")
                continue
            lines.append(f"| {name} | {r['device']} | {r['precision']} | {r['steps_per_s']:.2f} | "
                         f"{100 * r['data_wait_share']:.1f}% | {fmt(r['train_peak_gpu_mib'], '.0f')} | "
                         f"{r['test_rtf']:.5f} | {r['predict_rtf']:.5f} | {r['predict_rel_diff']:.2e} "
                         f"({r['tolerance']:g}) | {r['trained_rel_diff']:.2e} | {r['test_metric']:.3f} "
                         f"({r['metric_diff']:.3f}) | {'yes' if r['ok'] else 'NO'} |")
    lines += ["", "| wav2vec2 | device | precision | x real time (forward) | x real time (+ float16 store) | "
              "peak MiB | 324 h in (h) |", "|---|---|---|---|---|---|---|"]
    for r in report.get("wav2vec2", []):
        if "error" in r:
            lines.append(f"| {r.get('config')} | {r['device']} | {r['precision']} | error: {r['error'][:80]} ||||")
            continue
        lines.append(f"| {r['config']} ({r['parameters'] / 1e6:.0f} M) | {r['device']} | {r['precision']} | "
                     f"{r['compute_x_realtime']:.0f} | {r['with_store_x_realtime']:.0f} | "
                     f"{fmt(r['peak_gpu_mib'], '.0f')} | {r['hours_for_324h_with_store']:.2f} |")
    return "\n".join(lines)


def machine(device: str) -> dict:
    import platform

    import torch
    info = {"date": time.strftime("%Y-%m-%d"), "host_cpus": __import__("os").cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}
    if device.startswith("cuda"):
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    gpu_memory_gib=torch.cuda.get_device_properties(device).total_memory / 2**30)
    return info


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--device", default="cuda", help="cuda (default; skipped when none is visible), cuda:1, or cpu")
    ap.add_argument("--tiny", action="store_true", help="a few steps on tiny stores and a tiny wav2vec2 (the test)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems to check")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON written (default: %(default)s)")
    ap.add_argument("--no-wav2vec2", action="store_true", help="leave out the wav2vec2-large extraction timing")
    args = ap.parse_args(argv)
    import torch
    report: dict = {"device": args.device, "tiny": args.tiny, "tolerance": TOLERANCE, "trained_bound": TRAINED_BOUND}
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        report.update(skipped=True, reason="no CUDA device visible (torch.cuda.is_available() is False); run with "
                                           "--device cpu to run the same checks on the CPU")
        atomic_write_text(args.out, json.dumps(report, indent=1))
        print(f"skipped: {report['reason']}; wrote {args.out}")
        return 0
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        ap.error(f"--systems: unknown {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    size = TINY if args.tiny else FULL
    cuda = args.device.startswith("cuda")
    precisions = PRECISIONS if cuda else ("fp32", "bf16")  # fp16 autocast is a CUDA precision
    report.update(skipped=False, machine=machine(args.device), size=dataclasses.asdict(size),
                  loop_precision=loop_supports_precision(), scripts_precision=scripts_supporting_precision(),
                  systems={}, wav2vec2=[])
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: TF32 would be a fourth precision
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        for name in systems:
            print(f"{name} ...", flush=True)
            try:
                report["systems"][name] = check_system(name, tmp, args.device, precisions, size)
            except Exception as e:  # noqa: BLE001 - a system that cannot even build is reported, the rest run
                report["systems"][name] = {"error": f"{type(e).__name__}: {e}", "rows": []}
        if not args.no_wav2vec2:
            shape = dict(utt_seconds=2.0, batch=2, batches=2) if args.tiny else dict(utt_seconds=10.0, batch=16, batches=8)
            for p in ("fp32", "bf16"):
                print(f"wav2vec2 {p} ...", flush=True)
                try:
                    r = time_wav2vec2(args.device, p, args.tiny, tmp / f"w2v_{p}", **shape)
                    report["wav2vec2"].append({"config": "tiny" if args.tiny else "wav2vec2-large", **r})
                except Exception as e:  # noqa: BLE001
                    report["wav2vec2"].append({"config": "tiny" if args.tiny else "wav2vec2-large",
                                               "device": args.device, "precision": p,
                                               "error": f"{type(e).__name__}: {e}"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = time.perf_counter() - t0
    report["ok"] = all(r.get("ok") for s in report["systems"].values() for r in s.get("rows", [])) and \
        all("error" not in s for s in report["systems"].values()) and \
        all("error" not in r for r in report["wav2vec2"])
    report["table"] = table(report)
    atomic_write_text(args.out, json.dumps(report, indent=1, default=float))
    print(report["table"])
    print(f"{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'} in {report['seconds']:.0f} s; "
          f"wrote {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
