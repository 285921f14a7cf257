#!/usr/bin/env python
"""How each stage a full corpus stresses grows with the corpus: time and peak memory at 1x, 4x and 16x a base
size, with synthetic data of the real shapes, and the fitted growth exponent (log-log slope) of each.

    python bench/bench_scale.py [--quick] [--factors 1,4,16] [--stages store-write,kmeans-torch,...]
                                [--out /tmp/bench_scale]

Stages (base size at 1x, full run; --quick divides the bases by 8):
  store-write     a 1024-d float32 wav2vec2-like FeatureStore (3-9 s utterances at 50 frames/s): 48 utterances
  store-read      the same store reopened and every utterance read once in random order (values touched)
  norm-para       norm_para.py's statistics over that store (utterance-mean, the wav2vec2 default, and frames)
  dec-embed       DeepEmoCluster's per-epoch embedding pass: mel chunks (11 per sentence) -> model.embed: 24 sentences
  kmeans-faiss    k-means of 256-d embeddings, faiss-cpu (20 iterations, 10 clusters): 57,750 rows, so 16x is
  kmeans-torch    the same with the torch fallback           ... MSP-Podcast Train's 84,000 sentences x 11 chunks
  audio-text      the audio-text system's batch preparation (model_inputs) over all utterances, batches of 16
  stm-collate     the speech + text + mocap system's collate over all utterances (its FeatureStores), batches of 16
  report          the report's CCC section, provenance entries and markdown + HTML over N result JSONs + CSVs

Every measurement runs in a fresh Python process (after an untimed warm-up at a tiny size), so memory the
allocator kept from an earlier stage cannot hide a stage's own. Time: wall seconds of the stage (inputs prepared
before the clock starts). Memory, sampled every 5 ms from /proc/self/status during the stage: the peak growth of
anonymous resident memory (RssAnon: the process's own heap, numpy and torch included) and of file-backed resident
memory (RssFile: store pages mapped in by memory-mapped reads; page cache, reclaimable). A slope near 1 is linear
in the corpus; a time slope above 1.1 is flagged. Writes <out>/bench_scale.json and bench_scale.md.
"""
import gc
import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import UserError, entry, parser  # noqa: E402
from utils import atomic_write_text  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "demo_data"  # make demo's output: the report stage's templates
BASES = {"store-write": 48, "store-read": 48, "norm-para": 48, "dec-embed": 24, "kmeans-faiss": 57_750,
         "kmeans-torch": 57_750, "audio-text": 96, "stm-collate": 96, "report": 24}
UNITS = {"store-write": "utterances", "store-read": "utterances", "norm-para": "utterances",
         "dec-embed": "sentences", "kmeans-faiss": "embeddings", "kmeans-torch": "embeddings",
         "audio-text": "utterances", "stm-collate": "utterances", "report": "result files"}
W2V_DIMS, FRAME_RATE = 1024, 50.0
NONLINEAR = 1.1


# ---------------------------------------------------------------------------------------------- measuring

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def measured(work) -> tuple[float, float, float]:
    """(seconds, peak RssAnon growth in MiB, peak RssFile growth in MiB) of `work()`, memory sampled by a thread."""
    import threading
    gc.collect()
    base = {k: _status_kb(k) for k in ("RssAnon", "RssFile")}
    peak = dict(base)
    done = threading.Event()

    def sample():
        while True:
            for k in peak:
                peak[k] = max(peak[k], _status_kb(k))
            if done.wait(0.005):
                return
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        work()
    finally:
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
    for k in peak:  # the last state too, in case the stage ended between two samples
        peak[k] = max(peak[k], _status_kb(k))
    return seconds, (peak["RssAnon"] - base["RssAnon"]) / 1024, (peak["RssFile"] - base["RssFile"]) / 1024


def slope(sizes, values) -> float | None:
    """Least-squares slope of log(value) on log(size): 1 = linear growth."""
    pts = [(s, v) for s, v in zip(sizes, values) if v is not None and v > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


# ---------------------------------------------------------------------------------------------- the stages

def _lengths(n: int, rng) -> np.ndarray:
    return rng.integers(int(3 * FRAME_RATE), int(9 * FRAME_RATE) + 1, size=n)  # 3-9 s utterances


def w2v_store(folder: Path, n: int, seed: int = 0):
    """A fresh 1024-d float32 store of n utterances (written by the store-write stage, read by the others)."""
    from features.store import FeatureStore
    shutil.rmtree(folder, ignore_errors=True)
    store = FeatureStore.create(folder, name="Wav2Vec1024", extractor="Wav2Vec2", params={"bench": True},
                                dims=W2V_DIMS, frame_rate=FRAME_RATE)
    rng = np.random.default_rng(seed)
    block = rng.normal(size=(int(9 * FRAME_RATE), W2V_DIMS)).astype(np.float32)
    with store.writer() as w:
        for i, t in enumerate(_lengths(n, rng)):
            w.add(f"MSP-PODCAST_{i:04d}_{i:04d}", block[:t])
    return store


def stage_store_write(n: int, tmp: Path) -> dict:
    from features.store import dir_size
    secs, peak, mapped = measured(lambda: w2v_store(tmp / "store", n))
    size = dir_size(tmp / "store")
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"store_mib": round(size / 2**20, 1),
                                                          "write_mib_s": round(size / 2**20 / secs, 1)}}


def stage_store_read(n: int, tmp: Path) -> dict:
    from features.store import FeatureStore
    if not (tmp / "store").is_dir() or len(FeatureStore(tmp / "store")) != n:
        w2v_store(tmp / "store", n)
    total = []

    def work():
        store = FeatureStore(tmp / "store")
        for utt in np.random.default_rng(1).permutation(store.keys()):
            total.append(float(store[utt].sum()))  # touch every value
    secs, peak, mapped = measured(work)
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"utt_per_s": round(n / secs, 1),
                                                          "note": "page cache warm (just written)"}}


def stage_norm_para(n: int, tmp: Path) -> dict:
    from features.store import FeatureStore
    from norm_para import feature_stats
    if not (tmp / "store").is_dir() or len(FeatureStore(tmp / "store")) != n:
        w2v_store(tmp / "store", n)
    store = FeatureStore(tmp / "store")
    records = [SimpleNamespace(utt_id=u) for u in store.keys()]
    args = SimpleNamespace(no_progress=True, store=tmp / "store", split="train")
    out = {}

    def work():
        for method in ("utterance-mean", "frames"):
            out[method] = feature_stats(store, records, method, args)
    secs, peak, mapped = measured(work)
    assert out["frames"][0].shape == (W2V_DIMS,)
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"methods": "utterance-mean + frames"}}


def stage_dec_embed(n: int, tmp: Path) -> dict:
    """DeepEmoCluster's embedding pass as systems/deep_emo_cluster.py runs it: chunk_batch of each eval batch of
    sentences (z-norm, 11 chunks of 62 mel frames) -> model.embed -> one (n * 11, 256) float32 matrix."""
    import torch

    from features.normterm import NormTerm
    from models.deep_emo_cluster import DeepEmoCluster
    from systems.common import chunk_batch
    from systems.deep_emo_cluster import CHUNKS, M_FRAMES
    rng = np.random.default_rng(2)
    mels = [rng.normal(size=(int(t * 62.5 / FRAME_RATE), 128)).astype(np.float32) for t in _lengths(n, rng)]
    nt = NormTerm(feat_mean=np.zeros(128), feat_std=np.ones(128))
    torch.manual_seed(0)
    model = DeepEmoCluster(variant="Temp-Trans", num_clusters=10).eval()
    out = []

    def work():
        with torch.inference_mode():
            for b in range(0, n, 8):  # 8 sentences (88 chunks) a batch: even the 1x size is several batches
                x = chunk_batch(mels[b:b + 8], nt, M_FRAMES, CHUNKS).unsqueeze(1)  # (B*11, 1, 62, 128)
                out.append(model.embed(x).float().numpy())
    secs, peak, mapped = measured(work)
    emb = np.concatenate(out)
    assert emb.shape == (n * CHUNKS, 256), emb.shape
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"chunks_per_s": round(n * CHUNKS / secs, 1)}}


def _stage_kmeans(backend: str):
    def stage(n: int, tmp: Path) -> dict:
        from engine.clustering import faiss_available, kmeans
        if backend == "faiss" and not faiss_available():
            return {"seconds": None, "peak_mib": None, "file_mib": None, "extra": {"note": "faiss not installed"}}
        x = np.random.default_rng(3).normal(size=(n, 256)).astype(np.float32)  # (N, 256) chunk embeddings
        res = []
        secs, peak, mapped = measured(lambda: res.append(kmeans(x, 10, niter=20, seed=5, backend=backend)))
        assert res[0].backend == backend and res[0].assign.shape == (n,)
        return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"input_mib": round(x.nbytes / 2**20, 1)}}
    return stage


def stage_audio_text(n: int, tmp: Path) -> dict:
    """The audio-text system's per-batch input preparation (systems.audio_text.model_inputs) over n utterances:
    1024-d wav2vec2 frames and 768-d token rows, multi-scale chunks with the training crops."""
    from systems.audio_text import model_inputs
    rng = np.random.default_rng(4)
    lengths = _lengths(n, rng)
    block = rng.normal(size=(int(9 * FRAME_RATE), W2V_DIMS)).astype(np.float32)
    tokens = rng.normal(size=(64, 768)).astype(np.float32)
    words = [max(1, int(t / FRAME_RATE * 2.5)) for t in lengths]  # ~2.5 words per second
    audios, texts = [block[:t] for t in lengths], [tokens[: min(60, w + 2)] for w in words]

    def work():
        for b in range(0, n, 16):
            model_inputs(audios[b:b + 16], texts[b:b + 16], words[b:b + 16], "multiscale", train=True,
                         rng=np.random.default_rng(b))
    secs, peak, mapped = measured(work)
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"utt_per_s": round(n / secs, 1)}}


def _stm_method(n: int, tmp: Path):
    """A FusionMethod over fresh speech (768-d), text (768-d) and mocap (189-d) stores of n utterances."""
    from features.mocap import MocapStats
    from features.store import FeatureStore
    from systems.speech_text_mocap import FusionMethod
    rng = np.random.default_rng(5)
    shapes = {"speech": (768, FRAME_RATE), "text": (768, None), "mocap": (189, 120.0)}
    stores = {}
    for kind, (dims, rate) in shapes.items():
        shutil.rmtree(tmp / kind, ignore_errors=True)
        stores[kind] = FeatureStore.create(tmp / kind, name=kind, extractor=f"Bench-{kind}", params={},
                                           dims=dims, frame_rate=rate)
    lengths = _lengths(n, rng)
    utts = [f"Ses01F_impro01_F{i:04d}" for i in range(n)]
    for kind, store in stores.items():
        dims = shapes[kind][0]
        block = rng.normal(size=(int(9 * 120), dims)).astype(np.float32)
        with store.writer() as w:
            for u, t in zip(utts, lengths):
                rows = {"speech": t, "text": max(3, int(t / FRAME_RATE * 3)), "mocap": int(t / FRAME_RATE * 120)}[kind]
                w.add(u, block[:rows])
    norm = {"speech": (np.zeros(768, np.float32), np.ones(768, np.float32)),
            "text": (np.zeros(768, np.float32), np.ones(768, np.float32)),
            "mocap": MocapStats(np.zeros(189), np.ones(189))}
    method = FusionMethod(modalities=("speech", "text", "mocap"), speech=FeatureStore(tmp / "speech"),
                          text=FeatureStore(tmp / "text"), mocap=FeatureStore(tmp / "mocap"), norm=norm)
    return method, [(u, int(i % 4)) for i, u in enumerate(utts)]


def stage_stm_collate(n: int, tmp: Path) -> dict:
    method, items = _stm_method(n, tmp)

    def work():
        for b in range(0, n, 16):
            method.train_collate(items[b:b + 16])
    secs, peak, mapped = measured(work)
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {"utt_per_s": round(n / secs, 1)}}


def _report_inputs(n: int, tmp: Path) -> list:
    """n chunk-LSTM result files (JSON + per-utterance CSV), copies of the demo's three attributes' results as
    n / 3 training seeds, with no run/checkpoint identity (the report's identity check is not measured here)."""
    from report.recipes import Result
    folder = tmp / "results"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        attr = ("Act", "Dom", "Val")[i % 3]
        src = DEMO / "results" / f"chunk_lstm_RnnAttenVec_{attr}_test1.json"
        if not src.is_file():
            raise UserError(f"{src}: the report stage copies the demo's result files; run `make demo` first "
                            "or leave out the report stage (--stages)")
        d = json.loads(src.read_text())
        csv = folder / f"chunk_lstm_seed{i // 3}_{attr}.csv"
        shutil.copyfile(src.with_suffix(".csv"), csv)
        d.update(per_utterance_csv=str(csv), seed=i // 3)
        for key in ("run", "runs", "checkpoint"):
            d.pop(key, None)
        path = csv.with_suffix(".json")
        path.write_text(json.dumps(d))
        out.append(Result("ccc", "chunk-lstm", "RnnAttenVec", path, {"attribute": attr, "seed": i // 3}))
    return out


def stage_report(n: int, tmp: Path) -> dict:
    from engine.plots import bar_chart
    from report.build import Sources, _load, ccc_section
    from report.render import Block, to_html, to_markdown
    results = _report_inputs(n, tmp)
    folder = tmp / "report"
    (folder / "figures").mkdir(parents=True, exist_ok=True)

    def work():
        docs = {r.path: _load(r.path) for r in results}
        src = Sources(folder)
        blocks = ccc_section(results, docs, src, folder / "figures", bar_chart)
        blocks.append(Block("refs", entries=src.entries()))
        atomic_write_text(folder / "report.md", to_markdown(blocks, folder))
        atomic_write_text(folder / "report.html", to_html(blocks, "scale"))
    secs, peak, mapped = measured(work)
    return {"seconds": secs, "peak_mib": peak, "file_mib": mapped, "extra": {}}


STAGES = {"store-write": stage_store_write, "store-read": stage_store_read, "norm-para": stage_norm_para,
          "dec-embed": stage_dec_embed, "kmeans-faiss": _stage_kmeans("faiss"), "kmeans-torch": _stage_kmeans("torch"),
          "audio-text": stage_audio_text, "stm-collate": stage_stm_collate, "report": stage_report}


# ---------------------------------------------------------------------------------------------- the table

def in_child(name: str, n: int, tmp: Path) -> dict:
    """One measurement in a fresh interpreter (this script with --child): warm-up at a tiny size, then size n."""
    import subprocess
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, str(n), "--out", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench_scale: stage {name} at n={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(name: str, n: int, tmp: Path) -> dict:
    STAGES[name](min(n, 2 if name not in ("kmeans-faiss", "kmeans-torch") else 100), tmp / "warmup")
    shutil.rmtree(tmp / "warmup", ignore_errors=True)
    return STAGES[name](n, tmp)


def run_stage(name: str, base: int, factors: list[int], tmp: Path, isolated: bool = True) -> dict:
    rows = []
    for f in factors:
        n = max(1, base * f)
        r = in_child(name, n, tmp) if isolated else child(name, n, tmp)
        rows.append({"factor": f, "n": n, **r})
        print(f"{name:13s} {f:3d}x n={n:<9,d} {_num(r['seconds'], 3):>9s} s  heap +{_num(r['peak_mib'], 1)} MiB  "
              f"mapped +{_num(r['file_mib'], 1)} MiB", flush=True)
    sizes = [r["n"] for r in rows]
    t_slope = slope(sizes, [r["seconds"] for r in rows])
    m_slope = slope(sizes, [r["peak_mib"] for r in rows])
    return {"stage": name, "unit": UNITS[name], "rows": rows, "time_slope": t_slope, "memory_slope": m_slope,
            "nonlinear": t_slope is not None and t_slope > NONLINEAR}


def _num(v, digits: int) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def markdown(result: dict) -> str:
    factors = result["factors"]
    head = (["stage", "unit"] + [f"{f}x: n" for f in factors] + [f"{f}x: s" for f in factors]
            + [f"{f}x: heap MiB" for f in factors] + [f"{f}x: mapped MiB" for f in factors]
            + ["time slope", "memory slope"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result["stages"]:
        rows = s["rows"]
        cells = ([s["stage"], s["unit"]] + [f"{r['n']:,}" for r in rows] + [_num(r["seconds"], 3) for r in rows]
                 + [_num(r["peak_mib"], 1) for r in rows] + [_num(r["file_mib"], 1) for r in rows]
                 + [_num(s["time_slope"], 2) + (" **non-linear**" if s["nonlinear"] else ""), _num(s["memory_slope"], 2)])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="bases divided by 8 (a couple of minutes in all)")
    ap.add_argument("--scale", type=float, default=None, help="multiply every base size by this (tests: 0.02; default: 1, or 1/8 with --quick)")
    ap.add_argument("--factors", default="1,4,16", help="comma-separated multiples of the base size")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages (default: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_scale"), help="work folder and output files")
    ap.add_argument("--in-process", action="store_true",
                    help="measure in this process instead of a fresh one per size (faster; the heap figures then "
                         "miss memory the allocator kept from an earlier measurement)")
    ap.add_argument("--child", nargs=2, metavar=("STAGE", "N"), help="internal: run one stage at one size in this process and print its measures (default: off)")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.out)))
        return 0
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if bad := [s for s in stages if s not in STAGES]:
        raise UserError(f"--stages: unknown {', '.join(bad)} (choose from {', '.join(STAGES)})")
    try:
        factors = sorted({int(f) for f in args.factors.split(",")})
    except ValueError:
        raise UserError(f"--factors {args.factors}: comma-separated positive integers") from None
    if not factors or factors[0] < 1:
        raise UserError(f"--factors {args.factors}: comma-separated positive integers")
    scale = args.scale if args.scale is not None else (0.125 if args.quick else 1.0)
    import torch
    tmp = args.out / "work"
    tmp.mkdir(parents=True, exist_ok=True)
    result = {"factors": factors, "scale": scale, "torch_threads": torch.get_num_threads(),
              "memory": "peak growth over the stage, sampled every 5 ms: heap = RssAnon, mapped = RssFile, MiB; "
                        "memory slope: of the heap",
              "isolated": not args.in_process,
              "stages": [run_stage(s, max(1, round(BASES[s] * scale)), factors, tmp, isolated=not args.in_process)
                         for s in stages]}
    shutil.rmtree(tmp, ignore_errors=True)
    table = markdown(result)
    atomic_write_text(args.out / "bench_scale.json", json.dumps(result, indent=1))
    atomic_write_text(args.out / "bench_scale.md", table)
    print("\n" + table + f"\nwritten: {args.out / 'bench_scale.json'}, {args.out / 'bench_scale.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
