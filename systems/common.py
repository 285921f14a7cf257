"""What the MSP-Podcast systems share beyond the loop: inputs, items, flags and result writers.

Chunked batches from a store, the labelled items of a split, the command-line flags that say where the corpus,
the store and the NormTerm are, and the per-utterance CSV + result JSON writers (write_scores, write_class_scores)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engine.results import WRITTEN, machine, run_identity, write_result  # noqa: F401 - re-exported
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


# the corpora a dimensional system's --corpus takes (EmoBox is accepted and refused with the reason:
# refuse_categorical); the testing scripts also score IEMOCAP (cross-corpus testing)
DIMENSIONAL_KINDS = ("msp-podcast", "manifest", "emobox")
TESTING_KINDS = ("msp-podcast", "iemocap", "manifest", "emobox")


def refuse_categorical(kind: str) -> None:
    """UserError for a corpus kind whose rows carry no dimensional labels (EmoBox), before any work."""
    if kind == "emobox":
        from engine.cli import UserError
        raise UserError("--corpus emobox: EmoBox rows carry no arousal/dominance/valence labels (categorical "
                        "emotions only), so this dimensional system cannot train or be scored on them; give "
                        "--corpus msp-podcast, or --corpus manifest with arousal/dominance/valence columns")


def read_split(kind: str, root: Path, split: str, *, fold: int | None = None):
    """The labels of one split of any corpus (corpora.Corpus; the audio need not exist). The one place a
    (kind, root, split, fold) becomes records for the dimensional systems.

    "iemocap": corpora.iemocap.iemocap_split (all, session1..session5, comma lists). The other kinds go
    through corpora.read_corpus(labels_only=True) with their own split aliases; where a manifest or EmoBox fold
    has no split `test1` (MSP-Podcast's test set, the scripts' default) its `test` split is read instead (said on
    stderr): MSP-Podcast already reads `test` as `test1`, so the default test split means the same everywhere."""
    import sys

    from corpora import CorpusError, read_corpus
    if kind == "iemocap":
        from corpora.iemocap import iemocap_split
        return iemocap_split(root, split)
    try:
        return read_corpus(kind, root, split, fold=fold, labels_only=True)
    except CorpusError as first:
        if kind == "msp-podcast" or split.strip().lower() != "test1":
            raise
        try:
            data = read_corpus(kind, root, "test", fold=fold, labels_only=True)
        except CorpusError:
            raise first from None
    print(f"note: {root} has no split test1: its test split is scored", file=sys.stderr)
    return data


def require_dimensional_labels(data, kind: str, split: str, attributes) -> None:
    """UserError when no row of a manifest's split has every one of `attributes` (act, dom, val): the manifest
    lacks those columns, or the split is unlabelled (other kinds: their rows are listed one by one instead)."""
    if kind != "manifest" or not data.records or any(all(a in r.labels for a in attributes) for r in data.records):
        return
    from corpora.manifest import DIMENSIONS
    from engine.cli import UserError
    columns = [c for c, a in DIMENSIONS.items() if a in attributes]
    raise UserError(f"{data.root}: no row of split {split} has {' and '.join(columns)} label(s): a dimensional "
                    f"system needs the manifest's {', '.join(columns)} column(s), on the scale its sidecar JSON "
                    "declares")


def split_items(data, kind: str, split: str, attribute: str, store: FeatureStore) -> list[tuple[str, float]]:
    """(utterance, label on the 1-7 scale) of a split read by read_split, listing (never silently dropping)
    utterances without label or features. IEMOCAP's 1-5 labels are rescaled here (corpora.iemocap.msp_scale);
    a manifest's are on 1-7 already (its reader rescales the declared scale). A manifest split none of whose
    rows has the attribute is refused: its manifest lacks the column, or the split is unlabelled."""
    if kind == "iemocap":
        from corpora.iemocap import msp_scale
        scale, what = msp_scale, f"IEMOCAP {split}"
    else:
        scale, what = float, split
    data.report()
    require_dimensional_labels(data, kind, split, (attribute,))
    recs = with_features(_with_label(data.records, attribute, what), store, what)
    return [(r.utt_id, scale(r.labels[attribute])) for r in recs]


def labelled_items(root: Path, split: str, attribute: str, store: FeatureStore,
                   corpus: str = "msp-podcast", *, fold: int | None = None) -> list[tuple[str, float]]:
    """(utterance, label) of a split of any corpus kind (read_split, then split_items): raw 1-7 labels of
    MSP-Podcast and of a manifest (rescaled from its declared scale by the reader), IEMOCAP's 1-5 labels
    rescaled to MSP-Podcast's 1-7. Reads labels only: the audio need not exist, the features come from the store."""
    refuse_categorical(corpus)
    return split_items(read_split(corpus, root, split, fold=fold), corpus, split, attribute, store)


def corpus_args(args) -> tuple[str, int | None]:
    """(--corpus, --fold) of a script's flags; scripts without them read MSP-Podcast."""
    return getattr(args, "corpus", "msp-podcast"), getattr(args, "fold", None)


def run_corpus(args) -> dict | None:
    """What a training run's config records of its corpus beside corpus_version: kind, name (and fold). None for
    MSP-Podcast, the corpus every run trained on before --corpus existed, so those runs keep their identity and
    resume."""
    kind, fold = corpus_args(args)
    if kind == "msp-podcast":
        return None
    return {"kind": kind, "name": getattr(args, "corpus_name", None), **({"fold": fold} if fold is not None else {})}


# ------------------------------------------------------------------------------------------ default inputs
# Where each system's inputs lie when no flag names them: the names `make demo` writes (report/recipes.py) and the
# originals' names, first that exists wins. One table for every script, so a seed's command finds what the demo
# made. Store names are folders under <root>/Features; NormTerm names folders under <root> (then the current
# folder, where the originals' norm_para.py wrote them; the chunk LSTM's last resort is the shipped v1.6 NormTerm).
REPO = Path(__file__).resolve().parents[1]
DEMO_ROOT = Path("demo_data/msp-podcast")
DEFAULT_STORES = {"chunk-lstm": ("OpenSmile_lld_IS13ComParE",), "deep-emo-cluster": ("Mel_Spec128",),
                  "audio-text audio": ("Wav2Vec1024", "Wav2Vec32"), "audio-text text": ("RoBERTa768", "MiniLM384")}
DEFAULT_NORMTERMS = {"chunk-lstm": ("NormTerm",), "deep-emo-cluster": ("NormTerm_Mel128", "NormTerm"),
                     "audio-text audio": ("NormTerm_{store}", "NormTerm_Speech"),
                     "audio-text text": ("NormTerm_{store}", "NormTerm_Text")}
# the script that makes each kind of input, for the message when none is found
MAKERS = {"chunk-lstm": "feat_opensmile.py", "deep-emo-cluster": "feat_mel.py", "audio-text audio": "feat_wav2vec2.py",
          "audio-text text": "feat_roberta.py"}


def default_root(given: Path | None, notes: list[str]) -> Path:
    """--root when given, else $MSP_PODCAST_ROOT, else the demo corpus when it exists (said in `notes`); a
    UserError naming what was tried otherwise."""
    from engine.cli import UserError
    if given is not None:
        return given
    env = os.environ.get("MSP_PODCAST_ROOT")
    if env:
        notes.append(f"--root {env} (from $MSP_PODCAST_ROOT)")
        return Path(env)
    if DEMO_ROOT.is_dir():
        notes.append(f"--root {DEMO_ROOT} (the demo corpus; $MSP_PODCAST_ROOT is unset)")
        return DEMO_ROOT
    raise UserError(f"--root: no MSP-Podcast corpus given; $MSP_PODCAST_ROOT is unset and the default {DEMO_ROOT} "
                    "(made by `make demo`) does not exist; give --root, the folder holding Labels/")


def corpus_flag(kind: str) -> str:
    """'--corpus KIND ' for the commands an error message suggests ('' for MSP-Podcast, the scripts' default)."""
    return "" if kind == "msp-podcast" else f"--corpus {kind} "


def default_store(flag: str, given: Path | None, root: Path, system: str, notes: list[str],
                  kind: str = "msp-podcast") -> Path:
    """The store `flag` names, else the first of `system`'s default store names in the corpus's features folder
    (features.extract.features_folder: <root>/Features, for a manifest beside the file) that exists; a
    UserError naming the default paths tried and the flag otherwise."""
    from engine.cli import UserError
    from features.extract import features_folder
    if given is not None:
        return given
    tried = [features_folder(kind, root) / name for name in DEFAULT_STORES[system]]
    found = next((p for p in tried if (p / "meta.json").is_file() or p.is_dir()), None)
    if found is None:
        raise UserError(f"{flag}: no feature store at the default {' or '.join(map(str, tried))}; make it with "
                        f"{MAKERS[system]} {corpus_flag(kind)}--root {root}, or give {flag}")
    notes.append(f"{flag} {found}")
    return found


def default_normterm(flag: str, given: Path | None, root: Path, system: str, store: Path, notes: list[str],
                     kind: str = "msp-podcast") -> Path:
    """The NormTerm `flag` names, else the first default folder (<corpus folder>/<name>, then ./<name>; the
    corpus folder is features.extract.corpus_folder: <root>, for a manifest the file's folder) holding feature
    statistics as wide as `store`'s features; a UserError naming the folders tried (and why each was passed over)
    and the flag otherwise."""
    from engine.cli import UserError
    from features.extract import corpus_folder
    if given is not None:
        return given
    names = [n.format(store=store.name) for n in DEFAULT_NORMTERMS[system]]
    folder = corpus_folder(kind, root)
    tried = list(dict.fromkeys([*(folder / n for n in names), *(Path(n) for n in names),
                                *([REPO / "NormTerm"] if system == "chunk-lstm" else [])]))
    try:
        dims = FeatureStore(store).dims
    except Exception:  # noqa: BLE001 - the store's own loader names its problem later; any width will do here
        dims = None
    why = []
    for p in tried:
        if not p.is_dir():
            continue
        try:
            nt = NormTerm.load(p)
        except (FileNotFoundError, ValueError) as e:
            why.append(str(e))
            continue
        width = None if nt.feat_mean is None else len(nt.feat_mean)
        if dims is None or width == dims:
            notes.append(f"{flag} {p}")
            return p
        why.append(f"{p} holds {width or 'no'}-d feature statistics, not {dims}-d")
    raise UserError(f"{flag}: no NormTerm for {store} at the default {' or '.join(map(str, tried))}"
                    f"{' (' + '; '.join(why) + ')' if why else ''}; make it with norm_para.py --store {store} "
                    f"{corpus_flag(kind)}--root {root} --out {tried[0]}, or give {flag}")


def print_defaults(notes: list[str]) -> None:
    """One line saying which defaults a script chose (stderr: stdout keeps the originals' lines)."""
    import sys
    if notes:
        print("defaults: " + "; ".join(notes), file=sys.stderr)


ROOT_HELP = (f"the corpus: MSP-Podcast's root, the folder holding Labels/ (default: $MSP_PODCAST_ROOT, else {DEMO_ROOT} "
             "when it exists); the manifest file for --corpus manifest, the IEMOCAP folder for --corpus iemocap "
             "(required for both); audio is not needed once the features are in the store")


def add_data_args(ap, store_name: str, normterm_note: str) -> None:
    """--root, --store, --normterm, --device, --no-progress, with the same defaults for every system."""
    ap.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    ap.add_argument("--store", type=Path, help=f"feature store (default: <root>/Features/{store_name}; for a manifest "
                                               f"<the manifest's folder>/Features/{store_name})")
    ap.add_argument("--normterm", type=Path, help=f"NormTerm folder ({normterm_note})")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (a GPU when one is visible)")
    from engine.cli import add_precision_arg
    add_precision_arg(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


ROOT_NEEDED = {"iemocap": "the IEMOCAP folder holding Session1..Session5", "manifest": "the manifest file (CSV or "
               "JSONL, beside its sidecar JSON)", "emobox": "EmoBox's data/<corpus> folder"}


def check_corpus_args(args) -> None:
    """--corpus, --fold and --root checked before any work: EmoBox refused (no dimensional labels), --fold only
    for EmoBox, --root required for every kind but MSP-Podcast (whose default is $MSP_PODCAST_ROOT / the demo)."""
    from engine.cli import UserError
    from features.extract import check_fold
    kind, fold = corpus_args(args)
    refuse_categorical(kind)
    check_fold(kind, fold)
    if args.root is None and kind != "msp-podcast":
        raise UserError(f"--corpus {kind} needs --root: {ROOT_NEEDED[kind]} (MSP_PODCAST_ROOT and {DEMO_ROOT} are "
                        "MSP-Podcast defaults)")


def resolve_data_paths(args, system: str) -> None:
    """Fill in --root, --store and --normterm from the one default table (DEFAULT_STORES, DEFAULT_NORMTERMS) and
    say which defaults were used; `args.normterm_given` records whether the user named a NormTerm."""
    kind, fold = corpus_args(args)
    check_corpus_args(args)
    notes: list[str] = []
    args.root = default_root(args.root, notes)
    args.store = default_store("--store", args.store, args.root, system, notes, kind)
    args.normterm_given = args.normterm is not None
    testing = hasattr(args, "checkpoint")  # only an original .pth.tar reads it there; our checkpoints carry theirs
    if args.normterm is None and kind != "iemocap":  # never an IEMOCAP NormTerm for an MSP-Podcast model
        from engine.cli import UserError
        try:
            args.normterm = default_normterm("--normterm", None, args.root, system, args.store, notes, kind)
        except UserError:
            if not testing:
                raise
            from features.extract import corpus_folder
            args.normterm = corpus_folder(kind, args.root) / DEFAULT_NORMTERMS[system][0]
    elif args.normterm is None:
        args.normterm = Path("NormTerm")
    print_defaults(notes)
    args.device = resolve_device(args.device)
    args.attribute = ATTRIBUTE_CODES[args.emo_attr]


def add_training_args(ap, seed_help: str, system: str | None = None) -> None:
    """The flags every training script shares: where the run goes, the seed, the splits, resume, determinism."""
    ap.add_argument("--out", type=Path, default=Path("Models"), help="parent folder of the run folder")
    ap.add_argument("--seed", type=int, default=0, help=seed_help)
    ap.add_argument("--train-split", default="train", help="split to train on (a name or alias)")
    ap.add_argument("--val-split", default="dev", help="split that picks the best checkpoint")
    from features.extract import add_corpus_args
    add_corpus_args(ap, DIMENSIONAL_KINDS, "msp-podcast", "corpus the splits come from (emobox is refused: its "
                    "rows carry no arousal/dominance/valence labels)")
    ap.add_argument("--no-resume", action="store_true",
                    help="start over, discarding what the run folder holds (without it, a re-run resumes, and "
                         "refuses a run folder started with other settings)")
    from engine.cli import deterministic_help
    ap.add_argument("--deterministic", action="store_true", help=deterministic_help(system))


def normterm_lacks(nt: NormTerm, attributes, dims: int) -> str:
    """What a NormTerm lacks for features of width `dims` and the `attributes`' labels, in words ('' = nothing)."""
    missing = [a for a in attributes if a not in nt.labels]
    width = None if nt.feat_mean is None else len(nt.feat_mean)
    problems = ([f"no {', '.join(missing)} label statistics"] if missing else []) + (
        [] if width == dims else [f"{width}-d feature statistics, the store's features are {dims}-d" if width
                                  else "no feature statistics"])
    return "; ".join(problems)


def load_training_data(args) -> tuple[FeatureStore, NormTerm, list, list, Path]:
    """(store, NormTerm, train items, validation items, run folder) for a training script, or a clear error."""
    from engine.cli import UserError
    from utils import writable_dir
    try:
        store, nt = FeatureStore(args.store), NormTerm.load(args.normterm)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    lacks = normterm_lacks(nt, [args.attribute], store.dims)
    if lacks:
        raise UserError(f"--normterm {args.normterm}: {lacks} (give --normterm the Train statistics of {store.root}, "
                        "made by norm_para.py)")
    kind, fold = corpus_args(args)
    train = read_split(kind, args.root, args.train_split, fold=fold)
    args.corpus_name = train.name
    train_items = split_items(train, kind, args.train_split, args.attribute, store)
    val_items = labelled_items(args.root, args.val_split, args.attribute, store, kind, fold=fold)
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
    from features.extract import add_corpus_args
    add_corpus_args(ap, TESTING_KINDS, "msp-podcast",
                    "corpus whose labels score the model; iemocap (cross-corpus testing): --root is then the "
                    "IEMOCAP folder holding Session1..Session5 (required), --store its features (same extractor as "
                    "the model's, at <root>/Features/... unless given), --split all, session1 ... session5 or a "
                    "comma list such as session4,session5, and IEMOCAP's 1-5 labels are rescaled to MSP-Podcast's "
                    "1-7 (y7 = 1 + (y5 - 1) * 6/4); a manifest's labels are rescaled from its declared scale")
    ap.add_argument("--split", default=None,
                    help="split to score (default: test1 for msp-podcast, the original's Test1/Test; test for "
                         "manifest; all for iemocap); msp-podcast and manifest take a split name or alias (a "
                         "manifest without test1 reads test1 as its test), iemocap all, sessionN or a comma list")
    ap.add_argument("--csv", type=Path, help="per-utterance output (default: results/<run name>_<split>.csv, "
                                              "results/<run name>_<corpus>_<split>.csv for another --corpus than "
                                              "msp-podcast)")
    ap.add_argument("--batch-eval", type=int_at_least(1), default=batch_default, help="utterances per forward pass")
    from engine.cli import add_allow_unfinished_arg
    add_allow_unfinished_arg(ap)


def load_our_checkpoint(path: Path, system: str, allow_unfinished: bool = False) -> tuple[dict, dict, NormTerm]:
    """(state_dict, config, NormTerm) of one of our checkpoint folders of `system` (an unfinished run refused
    unless `allow_unfinished`)."""
    from engine.checkpoint import load_checkpoint
    sd, cfg = load_checkpoint(path, allow_unfinished)
    if cfg.get("system") != system:
        raise ValueError(f"{path}: a {cfg.get('system')!r} checkpoint, not {system}")
    return sd, {**cfg, "source": str(path)}, NormTerm.from_json(cfg["normterm"], cfg["attribute"])


def write_scores(out: Path, items: list, scores, *, result: dict, resamples: int = 1000,
                 ci_method: str = "bca"):
    """The per-utterance CSV (utterance, prediction, label) and, beside it, <out>.json: one result file in one
    format for every system (metric, system, corpus, split, checkpoint, ...), for comparison reports. The JSON
    holds the CCC (`value`), its 95 % bootstrap interval over the test utterances (`value_ci`, None with
    resamples 0) and how it was made (`interval`: metrics.interval_record). Returns the CCC with its interval
    (a metrics.Scored: `.value`, `with_interval` prints it)."""
    from metrics import interval_record, score
    from utils import atomic_path
    labels = np.array([v for _, v in items])
    scored = score("CCC", labels, np.asarray(scores, np.float64), resamples=resamples, method=ci_method)
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write("utterance,prediction,label\n")
        f.writelines(f"{u},{p:.6f},{y:.6f}\n" for (u, y), p in zip(items, scores))
    from utils import output_file
    write_result(output_file(out, ".json"), {"metric": "CCC", "value": scored.value, "value_ci": scored.ci,
                                            "interval": interval_record(resamples, method=ci_method),
                                            "utterances": len(items), "per_utterance_csv": out.name, **result})
    return scored


def with_interval(scored) -> str:
    """A testing script's printed CCC: str() of the value (full precision, as the originals print it) and the 95 %
    interval write_scores stored with it: '0.7677123456 [0.70, 0.82]'."""
    return f"{scored.value} {scored.ci_text()}".rstrip()


def testing_outputs(args) -> dict:
    """What a testing script writes, from its flags alone (it sets the default --split, which depends on
    --corpus): {"name": the run name looked up, "csvs": {emo: per-utterance CSV}, "results": {emo: result JSON}}.
    Results are named after the model scored (--checkpoint, else the run name), never after flags that may
    describe another one: results/<model>_<split>.csv, results/<model>_iemocap_<split>.csv for IEMOCAP."""
    from engine.cli import precision_tag
    from utils import output_file
    kind = getattr(args, "corpus", "msp-podcast")
    if args.split is None:  # the default depends on the corpus: MSP-Podcast's Test1, every IEMOCAP session
        args.split = {"iemocap": "all", "msp-podcast": "test1"}.get(kind, "test")
    tag = args.split if kind == "msp-podcast" else f"{kind}_{args.split.replace(',', '+')}"
    model = checkpoint_name(args.checkpoint) if args.checkpoint is not None else args.name
    precision = precision_tag(getattr(args, "precision", "fp32"))  # scored in bf16: never fp32's file
    model += "" if model.endswith(precision) else precision
    out = args.csv or Path("results") / f"{model}_{tag}.csv"
    return {"name": args.name, "csvs": {args.emo_attr: out}, "results": {args.emo_attr: output_file(out, ".json")}}


def testing_inputs(args, out: Path, also_in: tuple[Path, ...] = ()) -> tuple[Path, Path, FeatureStore, list]:
    """(per-utterance CSV path `out`, checkpoint, store, labelled items) for a testing script: the output folder
    is checked first, the checkpoint is --checkpoint or <models-dir>/<run name> (else in `also_in`)."""
    from engine.cli import UserError
    from utils import writable_dir
    kind, fold = corpus_args(args)
    writable_dir(args.csv.parent if args.csv else Path("results"), "--csv")  # first: fail before anything else
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = next((d / args.name for d in (args.models_dir, *also_in) if (d / args.name).is_dir()), None)
        if ckpt is None:
            where = " or ".join(f"{d}/" for d in (args.models_dir, *also_in))
            raise UserError(f"no checkpoint {args.name} in {where}; train it first or give --checkpoint")
    elif not ckpt.exists():
        raise UserError(f"{ckpt}: no such checkpoint")
    store = FeatureStore(args.store)
    data = read_split(kind, args.root, args.split, fold=fold)
    held, expected = store.meta.get("corpus"), data.name
    if held not in (None, expected):  # None: a store made from a WAV folder
        raise UserError(f"{args.store} holds {held} features, but --corpus is {kind}: give --store the features "
                        f"of {expected} (--root {args.root}; extracted with the same extractor as the model's "
                        "training features)")
    args.corpus_name = data.name
    items = split_items(data, kind, args.split, args.attribute, store)
    if not items:
        what = f"IEMOCAP {args.split}" if kind == "iemocap" else args.split
        raise UserError(f"no {what} utterance with {args.emo_attr} labels and features in {args.store}")
    return out, ckpt, store, items


def checkpoint_name(ckpt: Path) -> str:
    """A checkpoint's name: its folder's, or an original file's without .pth.tar."""
    name = ckpt.name
    return name[: -len(".pth.tar")] if name.endswith(".pth.tar") else name


def normterm_for_checkpoint(args, ckpt: Path, legacy_default: Path | None = None) -> Path | None:
    """The NormTerm folder an original .pth.tar is loaded with (--normterm, else `legacy_default`); None for our
    checkpoint folders, which carry the NormTerm they were trained with. A --normterm given with one of ours is
    not silently ignored: a missing path is refused, an existing one is reported as unused (a warning when its
    statistics differ from the checkpoint's)."""
    import sys

    from engine.cli import UserError
    if ckpt.suffix == ".tar":
        return args.normterm if args.normterm_given or legacy_default is None else legacy_default
    if not args.normterm_given:
        return None
    if not args.normterm.exists():
        raise UserError(f"--normterm {args.normterm}: no such folder (and not needed: {ckpt} carries the NormTerm "
                        "it was trained with; --normterm is for an original .pth.tar)")
    import json

    from engine.checkpoint import CONFIG
    try:
        cfg = json.loads((ckpt / CONFIG).read_text())
        given = NormTerm.load(args.normterm).to_json(cfg["attribute"])
        differs = json_differs(given, cfg["normterm"])
    except (ValueError, KeyError, OSError, AttributeError, TypeError):  # unreadable or incomplete: not the same
        differs = True
    if differs:
        print(f"warning: --normterm {args.normterm} is not used: {ckpt} carries the NormTerm it was trained with, "
              "and --normterm's statistics differ from it", file=sys.stderr)
    else:
        print(f"note: --normterm {args.normterm} is not used ({ckpt} carries the same NormTerm)", file=sys.stderr)
    return None


def json_differs(a, b) -> bool:
    """Whether two JSON-like values differ beyond float rounding."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(json_differs(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(json_differs(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not np.isclose(a, b, rtol=1e-6, atol=0)
    return a != b


def settings_from_checkpoint(ckpt: Path, recorded: dict, given: dict) -> dict:
    """flag -> the value a testing script reports (banner, result file): what the checkpoint records
    (`recorded`, None where it does not), else the command line's value marked as such. A flag whose value
    contradicts the checkpoint is refused, naming every such flag: a banner or result never describes a model
    other than the one scored."""
    from engine.cli import UserError
    clash = [f"{flag} {given[flag]} (the checkpoint: {value})" for flag, value in recorded.items()
             if value is not None and str(value) != str(given[flag])]
    if clash:
        raise UserError(f"{ckpt}: the command line contradicts what this checkpoint is: {'; '.join(clash)}; give "
                        "the checkpoint's values (or another --checkpoint)")
    return {flag: str(value) if value is not None else f"{given[flag]} (from the command line: {ckpt.name} does "
            "not record it)" for flag, value in recorded.items()}


def corpus_fields(args) -> dict:
    """What a testing script's result file says about the scored corpus: root, kind, its name (Corpus.name, as
    testing_inputs read it), split (and EmoBox fold), and for IEMOCAP the label scale (its 1-5 labels rescaled
    to MSP-Podcast's 1-7)."""
    kind, fold = corpus_args(args)
    fields = {"corpus": str(args.root), "corpus_kind": kind, "corpus_name": getattr(args, "corpus_name", None),
              "split": getattr(args, "split", None), **({"fold": fold} if fold is not None else {})}
    if kind == "iemocap":
        from corpora.iemocap import MSP_LABEL_SCALE
        fields["label_scale"] = MSP_LABEL_SCALE
    return fields


def write_class_scores(out: Path, utts: list[str], labels, logits, classes, *, result: dict, resamples: int = 1000,
                       ci_method: str = "bca") -> tuple[float, float]:
    """The classification counterpart of write_scores (Systems 4 and 5): per-utterance CSV (utterance, label,
    prediction, one logit per class), the confusion matrix as <stem>_confusion.csv/.png, and <out>.json with
    WA, UA, macro-F1 (the MSP-Podcast challenge's metric), their 95 % bootstrap intervals over the test utterances
    (`WA_ci`, `UA_ci`, `macro_F1_ci`; `interval` says how),
    the chance / majority-class baselines and per-class support of these test labels (`baselines`) and the
    matrix in the shared result format. Returns (WA, UA)."""
    from metrics import baselines, interval_fields, interval_record, score
    from utils import atomic_path, confusion_matrix, write_confusion
    labels = np.asarray(labels, np.int64)
    logits = np.asarray(logits, np.float64)
    pred = logits.argmax(1)
    opts = {"n_classes": len(classes), "resamples": resamples, "method": ci_method}
    wa_s, ua_s = score("WA", labels, pred, **opts), score("UA", labels, pred, **opts)
    wa, ua = wa_s.value, ua_s.value
    cm = confusion_matrix(labels, pred, len(classes))
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write("utterance,label,prediction," + ",".join(f"logit_{c}" for c in classes) + "\n")
        f.writelines(f"{u},{classes[y]},{classes[p]}," + ",".join(f"{v:.5f}" for v in row) + "\n"
                     for u, y, p, row in zip(utts, labels, pred, logits))
    from utils import output_file
    stem = output_file(out, "_confusion")
    write_confusion(stem, cm, list(classes), title=result.get("title"))
    write_result(output_file(out, ".json"), {"metric": "WA/UA", **interval_fields("WA", wa_s),
                                            **interval_fields("UA", ua_s),
                                            **interval_fields("macro_F1", score("macro_F1", labels, pred, **opts)),
                                            "interval": interval_record(resamples, method=ci_method),
                                            "baselines": baselines(labels, len(classes)), "utterances": len(utts),
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
        if all(r.utt_id in store for r in records) and not store.changed_inputs(records):  # else re-extract
            return store
    try:
        ext = extractor_factory()
    except OSError as e:
        from features.text import load_failure
        raise UserError(load_failure(f"--{what}-model", model, e,
                                     "tiny-random-wav2vec2" if what == "speech" else "tiny-random-bert")) from None
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


# ------------------------------------------------------------------------------ what each system's stores must be
# Every extractor of the toolkit, by the name its stores record: a store made by one of these is refused where
# another is needed; a store made elsewhere (mat_io.py import, a synthetic store) is judged by what it records.
KNOWN_EXTRACTORS = ("OpenSmileLLD", "MelSpectrogram", "Wav2Vec2Features", "TokenFeatures", "WordFeatures",
                    "MdreMfcc", "MdreProsody", "utterance_mocap")
STORE_KINDS = {
    "chunk-lstm": dict(what="frame-level features with frame-pooled NormTerm statistics, e.g. the OpenSmile "
                            "IS13 LLDs of feat_opensmile.py (130-d) or feat_mel.py's mel spectrogram",
                       extractors=("OpenSmileLLD", "MelSpectrogram"), pooling="frames"),
    "mel": dict(what="128-d mel spectrograms (feat_mel.py, MelSpectrogram)", extractors=("MelSpectrogram",),
                dims=128, pooling="frames", frame_level=True),
    "wav2vec2": dict(what="wav2vec2 frame features (feat_wav2vec2.py, Wav2Vec2Features)",
                     extractors=("Wav2Vec2Features",), pooling="utterance-mean", frame_level=True),
    "tokens": dict(what="text token features (feat_roberta.py, TokenFeatures)", extractors=("TokenFeatures",),
                   pooling="utterance-mean", frame_level=False),
    "mfcc": dict(what="39-d MDRE MFCCs (feat_mdre.py, MdreMfcc)", extractors=("MdreMfcc",), dims=39),
    "prosody": dict(what="35-d MDRE prosody (feat_mdre.py, MdreProsody)", extractors=("MdreProsody",), dims=35),
    "mocap": dict(what="motion-capture statistics (feat_mocap.py, utterance_mocap)", extractors=("utterance_mocap",),
                  frame_level=False),
}


def require_store(store: FeatureStore | Path, flag: str, kind: str) -> None:
    """Nothing if the store (or the store folder) holds the `kind` of features (a key of STORE_KINDS) a system
    needs, else a one-line StoreError naming `flag`, what was expected and what was found. Scripts call it
    before any work. A folder that is not a store yet is left to the caller, whose message names its default."""
    if not isinstance(store, FeatureStore):
        if not (Path(store) / "meta.json").is_file():
            return
        store = FeatureStore(store)
    store.require(flag, known=KNOWN_EXTRACTORS, **STORE_KINDS[kind])
