"""PyTorch vs onnxruntime on the CPU for the IEMOCAP classifiers (MDRE family, speech + text + mocap fusion).

For each demo checkpoint: export it (systems/onnx_iemocap.py), score its test utterances with the torch path
(engine.loop.evaluate) and with onnxruntime, one thread and all threads, and print the real-time factor (compute
seconds over seconds of audio scored, collate included in both) and the parity (max |posterior difference|,
batch 1 and 16).

    python bench/bench_onnx_iemocap.py --models demo_data/Models --root demo_data/iemocap \
        [--stm-root demo_data/iemocap600] [--out /tmp/onnx_iemocap]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def mdre_setup(run: Path, root: Path):
    """(method, model, test items, seconds of audio) of an MDRE-family run over the corpus at `root`."""
    from corpora.iemocap import four_class, read_iemocap
    from engine.checkpoint import load_checkpoint
    from features.store import FeatureStore
    from features.vocab import Vocabulary, tokenize
    from systems.mdre import MAX_TOKENS, method_from_config
    from systems.mdre_experiment import fold_splits
    state, cfg = load_checkpoint(run)
    records = read_iemocap(root).records
    labelled = four_class(records, "mdre")
    splits, _ = fold_splits(labelled, cfg["protocol"]["name"])
    test = [(r.utt_id, y) for r, y in splits[cfg["protocol"]["fold"]][2]]
    mfcc, prosody = (FeatureStore(root / "Features" / n) for n in ("MDRE_MFCC39", "MDRE_Prosody35"))
    vocab = Vocabulary(cfg["vocab"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = {r.utt_id: vocab.encode(tokenize(r.transcript or ""), max_len=MAX_TOKENS)[:MAX_TOKENS] for r, _ in labelled}
    test = [it for it in test if it[0] in mfcc]
    method = method_from_config(cfg, mfcc, prosody, ids)
    spans = {r.utt_id: r.end - r.start for r, _ in labelled}
    return method, state, test, mfcc.seconds([u for u, _ in test]) or sum(spans[u] for u, _ in test)


def stm_setup(run: Path, root: Path):
    """(method, model, test items, seconds of audio) of a speech+text+mocap run: its held-out session."""
    from corpora.iemocap import four_class, read_iemocap
    from engine.checkpoint import load_checkpoint
    from features.store import FeatureStore
    from systems.speech_text_mocap import method_from_config
    state, cfg = load_checkpoint(run)
    records = read_iemocap(root).records
    session = cfg["protocol"]["test_session"]
    test = [(r.utt_id, y) for r, y in four_class(records, "prml") if r.session == session]
    feats = root / "Features"
    find = lambda prefix: next((FeatureStore(p) for p in sorted(feats.glob(prefix + "*"))), None)  # noqa: E731
    speech, text, mocap = find("Wav2Vec"), find("Tokens"), find("Mocap")
    no_text = frozenset(r.utt_id for r in records if not (r.transcript or "").strip())
    method = method_from_config(cfg, speech, text, mocap, no_text=no_text)
    spans = {r.utt_id: r.end - r.start for r in records}
    return method, state, test, sum(spans[u] for u, _ in test)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (onnxruntime's first run allocates)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(name: str, method, state, items, audio_s: float, out: Path, batch: int, repeats: int) -> dict:
    from systems.onnx_iemocap import OnnxScorer, export_method, torch_posteriors
    model = method.build_model()
    model.load_state_dict(state)
    model.eval()
    path = out / f"{name}.onnx"
    rec = export_method(method, state, path, record={"system": name, "classes": [0, 1, 2, 3]})
    ref1 = torch_posteriors(method, model, items, 1)
    row = {"model": name, "utts": len(items), "audio_s": audio_s, "opset": rec["opset"]}
    for threads, label in ((1, "1 thread"), (os.cpu_count(), f"{os.cpu_count()} threads")):
        torch.set_num_threads(threads)
        onnx = OnnxScorer(path, threads=threads)
        row["runtime"] = onnx.runtime
        row[f"torch RTF {label}"] = timed(lambda: torch_posteriors(method, model, items, batch), repeats) / audio_s
        row[f"onnx RTF {label}"] = timed(lambda: onnx.scores(method, items, batch), repeats) / audio_s
    for size in (1, 16):
        row[f"max|diff| b{size}"] = float(np.abs(onnx.scores(method, items, size) - ref1).max())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True, help="a finished demo run's Models/ folder (MDREA_*, stm_*)")
    ap.add_argument("--root", type=Path, required=True, help="the IEMOCAP demo corpus of the MDRE runs")
    ap.add_argument("--stm-root", type=Path, help="the corpus of the speech+text+mocap runs (default --root)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/onnx_iemocap"), help="folder for the exported graphs (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=16, help="the padded batch size compared with one by one (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timing rounds, the best counts (default: %(default)s)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in sorted(args.models.glob("MDREA_*")) + sorted(args.models.glob("stm_speech+text+mocap_*")):
        stm = run.name.startswith("stm_")
        setup = stm_setup(run, args.stm_root or args.root) if stm else mdre_setup(run, args.root)
        rows.append(bench("stm_speech+text+mocap" if stm else run.name.split("_")[0], *setup, args.out,
                          args.batch, args.repeats))
    keys = list(rows[0]) if rows else []
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
