#!/usr/bin/env python
"""Convert a published chunk-LSTM `.pth.tar` (+ its NormTerm folder) into our checkpoint format.

    python convert_legacy.py --pth LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act.pth.tar \\
        --normterm NormTerm --out trained_models/LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act

The result (model.safetensors + config.json with the NormTerm values, the feature set and its parameters,
the attribute and chunking, and its model card README.md) reproduces the original's outputs exactly (tests/test_chunk_lstm.py). The legacy
file is read with torch.load(weights_only=True): no code in it can run.
"""
import json
import re
import sys
from pathlib import Path

from engine.checkpoint import save_checkpoint
from engine.cli import entry, parser
from engine.model_card import write_card
from systems.chunk_lstm import Predictor
from utils import writable_dir


def convert(pth: Path, normterm: Path, out: Path, corpus_version: str = "MSP-Podcast v1.6") -> Path:
    from features.opensmile_lld import OpenSmileLLD
    pred = Predictor.load(pth, normterm=normterm)
    lld = OpenSmileLLD()
    cfg = {**{k: v for k, v in pred.config.items() if k != "source"}, "corpus_version": corpus_version,
           "features": {"name": lld.name, "extractor": type(lld).__name__, "params": lld.params, "dims": lld.dims,
                        "frame_rate": lld.frame_rate},
           "origin": "published v1.6 checkpoint of the chunk-level attention LSTM (Lin & Busso, TAFFC 2021), MIT"}
    save_checkpoint(out, pred.model.state_dict(), cfg)
    write_card(out, published=published_card(out, pth.name))
    return out


def published_card(folder: Path, legacy_file: str | None = None) -> dict:
    """What the model card of a converted published model says instead of a training record (engine.model_card
    `published`): the authors' training, the command that converted it, their reported test CCC (no interval:
    the per-utterance predictions are not published) and their MIT licence. Only config.json is read."""
    from report.anchors import ANCHORS
    cfg = json.loads((Path(folder) / "config.json").read_text())
    atten, attr = cfg["model"]["atten"], cfg["attribute"].capitalize()
    legacy_file = legacy_file or cfg.get("legacy_file", "?")
    reported = [{"corpus": a["corpus"].removesuffix(" test"), "split": "test set", "value": a["values"][attr],
                 "metric": f"CCC ({cfg['attribute']})", "source": "reported by the authors (their README)"}
                for a in ANCHORS["chunk-lstm"] if a["label"] == f"LSTM-{atten} (PyTorch), published checkpoints"]
    schedule = re.search(r"_iter(\d+)_batch(\d+)_", legacy_file)
    schedule = f"{schedule[1]} iterations of batch {schedule[2]}, as its name says; " if schedule else ""
    return {
        "corpus": f"{cfg['corpus_version']}: the authors' training split (Train), their development split for model "
                  "selection; real podcast speech with crowd-sourced attribute labels",
        "training": f"Trained by the authors (`{legacy_file}`: {schedule}the checkpoint they published); "
                    "converted here with its values unchanged, not retrained",
        "command": f"python convert_legacy.py --pth {legacy_file} --normterm NormTerm --out trained_models/"
                   f"{Path(folder).resolve().name}",
        "scores": reported,
        "scores_note": ("Reported by the authors, not measured here: no interval is available, since the "
                        "per-utterance predictions are not published." if reported else
                        "The authors publish no test score for this model."),
        "licence": "Weights: MIT, as the authors publish them (`trained_models/LICENSE`, copyright 2023 Wei-Cheng "
                   "(Winston) Lin). They were trained on MSP-Podcast v1.6, a licensed corpus (The University of Texas "
                   "at Dallas, MSP lab) that is not distributed here.",
    }


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--pth", type=Path, required=True, nargs="+", help="published LSTM_*.pth.tar file(s)")
    ap.add_argument("--normterm", type=Path, required=True, help="the NormTerm folder they were trained with")
    ap.add_argument("--out", type=Path, required=True, help="output folder (parent folder when several --pth)")
    ap.add_argument("--corpus-version", default="MSP-Podcast v1.6", help="recorded in config.json")
    args = ap.parse_args(argv)
    writable_dir(args.out)
    for p in args.pth:
        out = args.out / p.name.removesuffix(".pth.tar") if len(args.pth) > 1 else args.out
        try:
            convert(p, args.normterm, out, args.corpus_version)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{p} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
