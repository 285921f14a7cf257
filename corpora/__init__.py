"""Corpus readers: MSP-Podcast (v1.6-v1.12, 2.0), IEMOCAP, any corpus described by a manifest (corpora.manifest)
and EmoBox's data preparation (corpora.emobox), plus the synthetic demo corpora in `corpora.synth`.

Readers return plain `Utterance` records and a list of `Skipped` rows; they never compute features and never
drop a row without saying so. `read_corpus` is the one entry every script uses (--corpus KIND --root R
[--split S] [--fold N]); `class_labels` turns a corpus's categorical labels into the class indices the
categorical systems train on.
"""
from corpora.records import CorpusError, Corpus, Skipped, Utterance  # noqa: F401

KINDS = ("msp-podcast", "iemocap", "manifest", "emobox")
SPLIT_KINDS = ("msp-podcast", "manifest", "emobox")  # corpora with named splits (IEMOCAP's folds are computed)


def read_corpus(kind: str, root, split: str | None = None, *, fold: int | None = None,
                labels_only: bool = False) -> Corpus:
    """`kind` is one of KINDS. `root`: the corpus folder; the manifest file (CSV or JSONL) for 'manifest'; EmoBox's
    `data/<corpus>` folder for 'emobox'. `split` takes each reader's aliases (MSP-Podcast: SPLIT_ALIASES;
    manifest: train/training, dev/valid/validation, test); `fold` (EmoBox only) reads that fold's files.
    `labels_only`: the audio need not exist (scripts that read features from a store and labels from the corpus),
    so no row is skipped for missing audio."""
    if fold is not None and kind != "emobox":
        raise CorpusError(f"{kind} has no EmoBox folds: fold= is for --corpus emobox")
    if kind == "msp-podcast":
        from corpora.msp_podcast import read_msp_podcast
        return read_msp_podcast(root, split=split, require_audio=not labels_only)
    if kind == "iemocap":
        if split is not None:
            raise CorpusError("IEMOCAP has no fixed splits: choose folds with corpora.iemocap (loso_folds, ...)")
        from corpora.iemocap import read_iemocap
        return read_iemocap(root)
    if kind == "manifest":
        from corpora.manifest import read_manifest
        return read_manifest(root, split=split, check_audio=not labels_only)
    if kind == "emobox":
        from corpora.emobox import read_emobox
        return read_emobox(root, fold=fold, split=split, check_audio=not labels_only)
    raise CorpusError(f"unknown corpus kind {kind!r} ({', '.join(KINDS)})")


def class_labels(corpus: Corpus, kind: str) -> tuple[tuple[str, ...], list[tuple[Utterance, int]], list[Skipped]]:
    """(classes, [(record, class index)], records left out with the reason) of a corpus with categorical labels.

    The classes are the corpus's declared ones in their declared order (Corpus.classes): a manifest's class map,
    EmoBox's label_map.json, MSP-Podcast's eight primary emotions (EmoClass letters mapped by
    msp_podcast.CATEGORIES; O and X are left out as the Interspeech 2025 challenge did). A record without a
    categorical label is left out with its reason, never silently. IEMOCAP's class sets are protocol-specific:
    corpora.iemocap.four_class."""
    if kind == "iemocap":
        raise CorpusError("IEMOCAP's classes depend on the system's protocol: use corpora.iemocap.four_class")
    if not corpus.classes:
        raise CorpusError(f"{corpus.root}: {corpus.name} declares no classes (a manifest needs a label column and "
                          "a class map in its sidecar JSON)")
    index = {c: i for i, c in enumerate(corpus.classes)}
    pairs, left_out = [], []
    for r in corpus.records:
        cls = r.category
        if kind == "msp-podcast" and cls is not None:
            from corpora.msp_podcast import CATEGORIES, NO_CLASS
            if cls in NO_CLASS:
                left_out.append(Skipped(r.utt_id, str(corpus.root), f"no class: EmoClass {cls} ({NO_CLASS[cls]}) "
                                        "is not one of the eight primary emotions"))
                continue
            cls = CATEGORIES.get(cls, cls)
        if cls is None:
            left_out.append(Skipped(r.utt_id, str(corpus.root), "no categorical label"))
        elif cls not in index:
            left_out.append(Skipped(r.utt_id, str(corpus.root), f"unknown class: {cls!r}"))
        else:
            pairs.append((r, index[cls]))
    return corpus.classes, pairs, left_out
