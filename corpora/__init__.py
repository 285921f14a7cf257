"""Corpus readers: MSP-Podcast (v1.6-v1.12) and IEMOCAP, plus the synthetic demo corpora in `corpora.synth`.

Readers return plain `Utterance` records and a list of `Skipped` rows; they never compute features and never
drop a row without saying so.
"""
from corpora.records import CorpusError, Corpus, Skipped, Utterance  # noqa: F401


def read_corpus(kind: str, root, split: str | None = None) -> Corpus:
    """`kind` is 'msp-podcast' or 'iemocap'; `split` (MSP-Podcast only) takes the aliases of SPLIT_ALIASES."""
    if kind == "msp-podcast":
        from corpora.msp_podcast import read_msp_podcast
        return read_msp_podcast(root, split=split)
    if kind == "iemocap":
        if split is not None:
            raise CorpusError("IEMOCAP has no fixed splits: choose folds with corpora.iemocap (loso_folds, ...)")
        from corpora.iemocap import read_iemocap
        return read_iemocap(root)
    raise CorpusError(f"unknown corpus kind {kind!r} (msp-podcast or iemocap)")
