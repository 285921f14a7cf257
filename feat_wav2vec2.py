#!/usr/bin/env python
"""Frame-level wav2vec2 features (default: wav2vec2-large-robust last_hidden_state, 1024-d, 50 frames/s,
the original feat_wav2vec2.py) for a corpus or a WAV folder -> feature store.

    python feat_wav2vec2.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.10
    python feat_wav2vec2.py --wav-dir my_wavs --store Features/Wav2Vec1024 --device cuda --precision bf16
    python feat_wav2vec2.py --corpus msp-podcast --root ROOT --layers 12,18,24 --combine mean

--model takes a hub id, a local folder (save_pretrained), or `tiny-random-wav2vec2`: the demo's tiny randomly
initialised wav2vec2 (32-d), built on first use in $SER_MODEL_CACHE or demo_data/ and needing no model hub:

    python feat_wav2vec2.py --corpus msp-podcast --root ROOT --model tiny-random-wav2vec2      # offline

Resumable, shardable (--shard i/N or torchrun), bad inputs listed in <store>/errors-*.csv.
"""
import argparse
import sys

from engine.cli import UserError, entry, parser
from features.extract import add_io_args, add_precision_arg, run_cli
from features.text import load_failure
from features.wav2vec2 import DEFAULT_MODEL, EPS_ORIGINAL


def parse_layers(spec: str):
    if spec.strip().lower() == "last":
        return "last"
    try:
        return tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: 'last' or comma-separated hidden_states indices, e.g. 12,24")


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_io_args(ap)
    m = ap.add_argument_group("model")
    m.add_argument("--model", default=DEFAULT_MODEL,
                   help="hub id, local folder, or tiny-random-wav2vec2 (a tiny random local model, offline)")
    m.add_argument("--layers", type=parse_layers, default="last",
                   help="'last' = last_hidden_state (default, as the original), or hidden_states indices "
                        "'i,j,...' (0 = Transformer input, i = output of layer i, negative from the end)")
    m.add_argument("--combine", choices=("concat", "mean"), default="concat", help="how several --layers are joined")
    m.add_argument("--eps", type=float, default=EPS_ORIGINAL,
                   help="waveform standardisation eps: 1e-5 as the original (default), 1e-7 as current transformers")
    m.add_argument("--no-normalise", action="store_true", help="feed the raw waveform (no standardisation)")
    m.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    add_precision_arg(m)
    m.add_argument("--fp16", action="store_true", help="deprecated: the same as --precision fp16")
    m.add_argument("--max-batch-seconds", type=float, default=None,
                   help="padded audio per forward pass (default 160 on GPU, 0 = one utterance per pass on CPU)")
    m.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="stored values: float32 (default) or float16 (half the disk; see docs/corpora.md)")
    m.add_argument("--fp16-store", action="store_true", help="the same as --dtype float16 (older name)")
    args = ap.parse_args(argv)
    from engine.cli import check_precision
    from features.wav2vec2 import Wav2Vec2Features

    if args.fp16:
        if args.precision not in ("fp32", "fp16"):
            raise UserError(f"--fp16 (deprecated: --precision fp16) contradicts --precision {args.precision}")
        print("warning: --fp16 is deprecated; use --precision fp16", file=sys.stderr)
        args.precision = "fp16"
    check_precision(args.precision, args.device)
    try:
        ex = Wav2Vec2Features(args.model, layers=args.layers, combine=args.combine, device=args.device,
                              precision=args.precision, normalise=not args.no_normalise, eps=args.eps,
                              max_batch_seconds=args.max_batch_seconds)
    except OSError as e:  # no network / no such hub id or folder
        raise UserError(load_failure("--model", args.model, e)) from None
    return run_cli(ex, args, dtype="float16" if args.fp16_store else args.dtype)


if __name__ == "__main__":
    sys.exit(main())
