"""Corpus readers: MSP-Podcast (v1.6-v1.12), IEMOCAP, any corpus described by a manifest (corpora.manifest) and
EmoBox's data preparation (corpora.emobox), plus the synthetic demo corpora in `corpora.synth`.

Readers return plain `Utterance` records and a list of `Skipped` rows; they never compute features and never
drop a row without saying so.
"""
from corpora.records import CorpusError, Corpus, Skipped, Utterance  # noqa: F401

KINDS = ("msp-podcast", "iemocap", "manifest", "emobox")


def read_corpus(kind: str, root, split: str | None = None, *, fold: int | None = None) -> Corpus:
    """`kind` is one of KINDS. `root`: the corpus folder; the manifest file (CSV or JSONL) for 'manifest'; EmoBox's
    `data/<corpus>` folder for 'emobox'. `split` takes each reader's aliases (MSP-Podcast: SPLIT_ALIASES;
    manifest: train/training, dev/valid/validation, test); `fold` (EmoBox only) reads that fold's files."""
    if fold is not None and kind != "emobox":
        raise CorpusError(f"{kind} has no EmoBox folds: fold= is for --corpus emobox")
    if kind == "msp-podcast":
        from corpora.msp_podcast import read_msp_podcast
        return read_msp_podcast(root, split=split)
    if kind == "iemocap":
        if split is not None:
            raise CorpusError("IEMOCAP has no fixed splits: choose folds with corpora.iemocap (loso_folds, ...)")
        from corpora.iemocap import read_iemocap
        return read_iemocap(root)
    if kind == "manifest":
        from corpora.manifest import read_manifest
        return read_manifest(root, split=split)
    if kind == "emobox":
        from corpora.emobox import read_emobox
        return read_emobox(root, fold=fold, split=split)
    raise CorpusError(f"unknown corpus kind {kind!r} ({', '.join(KINDS)})")
