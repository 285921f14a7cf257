#!/usr/bin/env python
"""Convert a published chunk-LSTM `.pth.tar` (+ its NormTerm folder) into our checkpoint format.

    python convert_legacy.py --pth LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act.pth.tar \\
        --normterm NormTerm --out trained_models/LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act

The result (model.safetensors + config.json with the NormTerm values, the feature set and its parameters,
the attribute and chunking) reproduces the original's outputs exactly (tests/test_chunk_lstm.py). The legacy
file is read with torch.load(weights_only=True): no code in it can run.
"""
import sys
from pathlib import Path

from engine.checkpoint import save_checkpoint
from engine.cli import entry, parser
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
    return out


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
