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


def _with_label(records: list, attribute: str, what: str) -> list:
    """The records with a numeric `attribute` label; the others are listed on stderr, never silently dropped."""
    import math
    import sys
    missing = [r.utt_id for r in records if attribute not in r.labels or math.isnan(r.labels[attribute])]
    if missing:
        print(f"warning: {len(missing)} {what} utterance(s) have no {attribute} label and are left out: "
              f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}", file=sys.stderr)
    left_out = set(missing)
    return [r for r in records if r.utt_id not in left_out]


def labelled_items(root: Path, split: str, attribute: str, store: FeatureStore,
                   corpus: str = "msp-podcast") -> list[tuple[str, float]]:
    """(utterance, label) of a split, listing (never silently dropping) utterances without label or features.

    `corpus` "msp-podcast": raw 1-7 labels of an MSP-Podcast split. "iemocap" (cross-corpus testing): the
    records of an IEMOCAP split (all, session1..session5, session4,session5, ...: corpora.iemocap.iemocap_split)
    with their 1-5 labels rescaled to MSP-Podcast's 1-7 (corpora.iemocap.msp_scale).
    Reads labels only: the audio folder need not exist, the features come from the store."""
    if corpus == "iemocap":
        from corpora.iemocap import iemocap_split, msp_scale
        data, scale, what = iemocap_split(root, split), msp_scale, f"IEMOCAP {split}"
    else:
        from corpora.msp_podcast import read_msp_podcast
        data, scale, what = read_msp_podcast(root, split=split, require_audio=False), float, split
    data.report()
    recs = with_features(_with_label(data.records, attribute, what), store, what)
    return [(r.utt_id, scale(r.labels[attribute])) for r in recs]


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
    msp = getattr(args, "corpus", "msp-podcast") == "msp-podcast"  # testing scripts may score IEMOCAP
    if args.root is None:
        if not msp:
            from engine.cli import UserError
            raise UserError("--corpus iemocap needs --root: the IEMOCAP folder holding Session1..Session5 "
                            "(MSP_PODCAST_ROOT and demo_data/msp-podcast are MSP-Podcast defaults)")
        args.root = Path(os.environ.get("MSP_PODCAST_ROOT", "demo_data/msp-podcast"))
    if args.store is None:
        args.store = args.root / "Features" / store_name
    args.normterm_given = args.normterm is not None
    if args.normterm is None:  # never an IEMOCAP NormTerm for an MSP-Podcast model
        args.normterm = args.root / "NormTerm" if msp and (args.root / "NormTerm").is_dir() else Path("NormTerm")
    args.device = resolve_device(args.device)
    args.attribute = ATTRIBUTE_CODES[args.emo_attr]


def add_training_args(ap, seed_help: str) -> None:
    """The flags every training script shares: where the run goes, the seed, the splits, resume, determinism."""
    ap.add_argument("--out", type=Path, default=Path("Models"), help="parent folder of the run folder")
    ap.add_argument("--seed", type=int, default=0, help=seed_help)
    ap.add_argument("--train-split", default="train", help="split to train on (a name or alias)")
    ap.add_argument("--val-split", default="dev", help="split that picks the best checkpoint")
    ap.add_argument("--no-resume", action="store_true",
                    help="start over, discarding what the run folder holds (without it, a re-run resumes, and "
                         "refuses a run folder started with other settings)")
    ap.add_argument("--deterministic", action="store_true",
                    help="one CPU thread and deterministic kernels: a seeded run gives identical weights under any "
                         "load and on any number of cores (1.8x slower per chunk-LSTM step on 2 cores; see README)")


def load_training_data(args) -> tuple[FeatureStore, NormTerm, list, list, Path]:
    """(store, NormTerm, train items, validation items, run folder) for a training script, or a clear error."""
    from engine.cli import UserError
    from utils import writable_dir
    try:
        store, nt = FeatureStore(args.store), NormTerm.load(args.normterm)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    if args.attribute not in nt.labels or nt.feat_mean is None or len(nt.feat_mean) != store.dims:
        raise UserError(f"{args.normterm} lacks {args.attribute} label or {store.dims}-d feature statistics")
    train_items = labelled_items(args.root, args.train_split, args.attribute, store)
    val_items = labelled_items(args.root, args.val_split, args.attribute, store)
    return store, nt, train_items, val_items, writable_dir(args.out / args.name)


def split_names(args) -> dict:
    """LoopConfig's names of the training and validation sets, for its messages."""
    return {"train_name": f"{args.train_split} split (with {args.emo_attr} labels and features)",
            "val_name": f"{args.val_split} split (with {args.emo_attr} labels and features)"}


def add_testing_args(ap, trainer: str, default_checkpoint: str, batch_default: int) -> None:
    from engine.cli import int_at_least
    ap.add_argument("--checkpoint", type=Path,
                    help=f"our checkpoint folder or an original .pth.tar (default: {default_checkpoint})")
    ap.add_argument("--models-dir", type=Path, default=Path("Models"), help=f"where {trainer} put its run folders")
    ap.add_argument("--corpus", choices=("msp-podcast", "iemocap"), default="msp-podcast",
                    help="corpus whose labels score the model (default: msp-podcast); iemocap (cross-corpus "
                         "testing): --root is then the IEMOCAP folder holding Session1..Session5 (required), "
                         "--store its features (same extractor as the model's, at <root>/Features/... unless "
                         "given), --split all, session1 ... session5 or a comma list such as session4,session5, "
                         "and IEMOCAP's 1-5 labels are rescaled to MSP-Podcast's 1-7 (y7 = 1 + (y5 - 1) * 6/4)")
    ap.add_argument("--split", default=None,
                    help="split to score (default: test1 for msp-podcast, the original's Test1/Test; all for "
                         "iemocap); msp-podcast takes a split name or alias, iemocap all, sessionN or a comma list")
    ap.add_argument("--csv", type=Path, help="per-utterance output (default: results/<run name>_<split>.csv, "
                                              "results/<run name>_iemocap_<split>.csv for iemocap)")
    ap.add_argument("--batch-eval", type=int_at_least(1), default=batch_default, help="utterances per forward pass")


def load_our_checkpoint(path: Path, system: str) -> tuple[dict, dict, NormTerm]:
    """(state_dict, config, NormTerm) of one of our checkpoint folders of `system`."""
    from engine.checkpoint import load_checkpoint
    sd, cfg = load_checkpoint(path)
    if cfg.get("system") != system:
        raise ValueError(f"{path}: a {cfg.get('system')!r} checkpoint, not {system}")
    return sd, {**cfg, "source": str(path)}, NormTerm.from_json(cfg["normterm"], cfg["attribute"])


def machine() -> str:
    """What ran it, for the record: CPU model and cores, the GPU if torch sees one, torch's version."""
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}"


def write_result(path: Path, fields: dict) -> None:
    """One result file in the shared format (every test / evaluation script writes one beside its CSV; the
    comparison report aggregates them): `fields` (metric, system, corpus, split or protocol, checkpoint, seed,
    the numbers, ...) plus the provenance: code version, the command line that re-creates it, machine, date."""
    import datetime
    import json
    import sys

    from engine.checkpoint import git_commit
    from utils import atomic_write_text
    prov = {"code_version": git_commit(), "command": " ".join(["python", *sys.argv]), "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    atomic_write_text(path, json.dumps({**fields, **{k: v for k, v in prov.items() if k not in fields}},
                                       indent=1, default=str))


def write_scores(out: Path, items: list, scores, *, result: dict) -> float:
    """The per-utterance CSV (utterance, prediction, label) and, beside it, <out>.json: one result file in one
    format for every system (metric, system, corpus, split, checkpoint, ...), for comparison reports."""
    from utils import atomic_path, ccc
    labels = np.array([v for _, v in items])
    value = ccc(scores, labels)
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write("utterance,prediction,label\n")
        f.writelines(f"{u},{p:.6f},{y:.6f}\n" for (u, y), p in zip(items, scores))
    write_result(out.with_suffix(".json"), {"metric": "CCC", "value": value, "utterances": len(items),
                                            "per_utterance_csv": out.name, **result})
    return value


def testing_inputs(args, also_in: tuple[Path, ...] = ()) -> tuple[Path, Path, FeatureStore, list]:
    """(per-utterance CSV path, checkpoint, store, labelled items) for a testing script: the output folder is
    checked first, the checkpoint is --checkpoint or <models-dir>/<run name> (else in `also_in`)."""
    from engine.cli import UserError
    from utils import writable_dir
    kind = getattr(args, "corpus", "msp-podcast")
    if args.split is None:  # the default depends on the corpus: MSP-Podcast's Test1, every IEMOCAP session
        args.split = "all" if kind == "iemocap" else "test1"
    tag = f"iemocap_{args.split.replace(',', '+')}" if kind == "iemocap" else args.split
    out = args.csv or Path("results") / f"{args.name}_{tag}.csv"
    writable_dir(out.parent)
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = next((d / args.name for d in (args.models_dir, *also_in) if (d / args.name).is_dir()), None)
        if ckpt is None:
            where = " or ".join(f"{d}/" for d in (args.models_dir, *also_in))
            raise UserError(f"no checkpoint {args.name} in {where}; train it first or give --checkpoint")
    elif not ckpt.exists():
        raise UserError(f"{ckpt}: no such checkpoint")
    store = FeatureStore(args.store)
    held, expected = store.meta.get("corpus"), "IEMOCAP" if kind == "iemocap" else "MSP-Podcast"
    if held not in (None, expected):  # None: a store made from a WAV folder
        raise UserError(f"{args.store} holds {held} features, but --corpus is {kind}: give --store the features "
                        f"of {expected} (extracted with the same extractor as the model's training features)")
    items = labelled_items(args.root, args.split, args.attribute, store, kind)
    if not items:
        what = f"IEMOCAP {args.split}" if kind == "iemocap" else args.split
        raise UserError(f"no {what} utterance with {args.emo_attr} labels and features in {args.store}")
    return out, ckpt, store, items


def corpus_fields(args) -> dict:
    """What a testing script's result file says about the scored corpus: root, kind, split, and for IEMOCAP
    the label scale (its 1-5 labels rescaled to MSP-Podcast's 1-7)."""
    kind = getattr(args, "corpus", "msp-podcast")
    fields = {"corpus": str(args.root), "corpus_kind": kind, "split": args.split}
    if kind == "iemocap":
        from corpora.iemocap import MSP_LABEL_SCALE
        fields["label_scale"] = MSP_LABEL_SCALE
    return fields


def write_class_scores(out: Path, utts: list[str], labels, logits, classes, *, result: dict) -> tuple[float, float]:
    """The classification counterpart of write_scores (Systems 4 and 5): per-utterance CSV (utterance, label,
    prediction, one logit per class), the confusion matrix as <stem>_confusion.csv/.png, and <out>.json with
    WA, UA and the matrix in the shared result format. Returns (WA, UA)."""
    from utils import atomic_path, confusion_matrix, unweighted_accuracy, weighted_accuracy, write_confusion
    labels = np.asarray(labels, np.int64)
    logits = np.asarray(logits, np.float64)
    pred = logits.argmax(1)
    wa, ua = weighted_accuracy(labels, pred), unweighted_accuracy(labels, pred, len(classes))
    cm = confusion_matrix(labels, pred, len(classes))
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write("utterance,label,prediction," + ",".join(f"logit_{c}" for c in classes) + "\n")
        f.writelines(f"{u},{classes[y]},{classes[p]}," + ",".join(f"{v:.5f}" for v in row) + "\n"
                     for u, y, p, row in zip(utts, labels, pred, logits))
    stem = out.with_name(out.stem + "_confusion")
    write_confusion(stem, cm, list(classes), title=result.get("title"))
    write_result(out.with_suffix(".json"), {"metric": "WA/UA", "WA": wa, "UA": ua, "utterances": len(utts),
                                            "classes": list(classes), "confusion": cm.tolist(),
                                            "per_utterance_csv": out.name, "confusion_png": stem.name + ".png",
                                            **result})
    return wa, ua


def store_with(extractor_factory, records, path: Path, model: str, progress: bool, what: str,
               corpus: str | None = None):
    """The store at `path`, extracting what it lacks with the extractor `extractor_factory()` loads only when
    something is missing; a store made from another model is refused. `corpus` names a new store's corpus."""
    from engine.cli import UserError
    from features.extract import ensure_store
    from features.store import StoreError
    if path.is_dir():
        try:
            store = FeatureStore(path)
        except StoreError as e:
            raise UserError(str(e)) from None
        made_by = store.meta.get("params", {}).get("model")
        if made_by is not None and str(made_by) != str(model) and not Path(str(model)).resolve() == Path(str(made_by)).resolve():
            raise UserError(f"{path}: {what} store made with model {made_by}, not {model}; give --{what}-store "
                            f"another folder or the matching --{what}-model")
        if all(r.utt_id in store for r in records):
            return store
    try:
        ext = extractor_factory()
    except OSError as e:
        raise UserError(f"cannot load the {what} model {model!r}: {e}\n(offline? give a local folder made "
                        "with save_pretrained)") from None
    try:
        return ensure_store(ext, records, path, progress=progress, corpus=corpus)
    except StoreError as e:
        raise UserError(str(e)) from None


# what may differ between a model's training features and another corpus's without changing the features: where
# the pretrained model lies, and library versions
_SAME_FEATURES_EXCEPT = {"model", "transformers", "opensmile_version"}


def check_same_features(recorded: dict | None, store: FeatureStore, what: str, checkpoint: Path) -> None:
    """UserError naming the store, the checkpoint and what differs, unless `store` holds the features the
    checkpoint was trained on (`recorded`: its config's store description) - same extractor, width and
    parameters - so a model is never scored on other features than it learnt from."""
    from engine.cli import UserError
    if not recorded:
        return
    here = store.describe()
    diff = [k for k in ("extractor", "dims") if recorded.get(k) != here.get(k)]
    a, b = recorded.get("params") or {}, here.get("params") or {}
    diff += [f"params.{k}" for k in sorted(set(a) | set(b)) if k not in _SAME_FEATURES_EXCEPT and a.get(k) != b.get(k)]
    if diff:
        raise UserError(f"{store.root}: the {what} features differ from those {checkpoint} was trained on "
                        f"({', '.join(diff)}); give a store made with the same extractor and settings")
