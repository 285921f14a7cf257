"""What the MSP-Podcast systems share beyond the loop: chunked batches from a store, the labelled items of a
split, and the command-line flags that say where the corpus, the store and the NormTerm are."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from features.normterm import NormTerm
from features.store import FeatureStore, with_features
from utils import dynamic_chunks, gather_chunks, resolve_device

ATTRIBUTE_NAMES = {"act": "Act", "dom": "Dom", "val": "Val"}
ATTRIBUTE_CODES = {v: k for k, v in ATTRIBUTE_NAMES.items()}


def chunk_batch(arrays: list[np.ndarray], nt: NormTerm, m: int, C: int, n: int = 1) -> torch.Tensor:
    """Raw (T, F) feature arrays -> (B * n*C, m, F) float32 chunks of the z-normalised frames (utterance-major;
    utterances shorter than m frames are zero-padded, see utils.dynamic_chunks)."""
    normed = [nt.features(x) for x in arrays]
    starts = dynamic_chunks([len(x) for x in normed], m=m, C=C, n=n)
    return torch.from_numpy(gather_chunks(normed, starts, m))


def labelled_items(root: Path, split: str, attribute: str, store: FeatureStore) -> list[tuple[str, float]]:
    """(utterance, raw label) of a split, listing (never silently dropping) utterances without features.

    Reads labels only: the audio folder need not exist, the features come from the store."""
    from corpora.msp_podcast import read_msp_podcast
    corpus = read_msp_podcast(root, split=split, require_audio=False)
    corpus.report()
    recs = with_features([r for r in corpus.records if attribute in r.labels], store, split)
    return [(r.utt_id, r.labels[attribute]) for r in recs]


def add_data_args(ap, store_name: str, normterm_note: str) -> None:
    """--root, --store, --normterm, --device, --no-progress, with the same defaults for every system."""
    ap.add_argument("--root", type=Path, default=None,
                    help="MSP-Podcast root, the folder holding Labels/ (default: $MSP_PODCAST_ROOT, else "
                         "demo_data/msp-podcast); audio is not needed once the features are in the store")
    ap.add_argument("--store", type=Path, help=f"feature store (default: <root>/Features/{store_name})")
    ap.add_argument("--normterm", type=Path, help="NormTerm folder (training default: <root>/NormTerm if present, "
                    f"else NormTerm/; {normterm_note})")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (a GPU when one is visible)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def resolve_data_paths(args, store_name: str) -> None:
    if args.root is None:
        args.root = Path(os.environ.get("MSP_PODCAST_ROOT", "demo_data/msp-podcast"))
    if args.store is None:
        args.store = args.root / "Features" / store_name
    args.normterm_given = args.normterm is not None
    if args.normterm is None:
        args.normterm = args.root / "NormTerm" if (args.root / "NormTerm").is_dir() else Path("NormTerm")
    args.device = resolve_device(args.device)
    args.attribute = ATTRIBUTE_CODES[args.emo_attr]
