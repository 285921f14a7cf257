"""Corpus readers: MSP-Podcast (v1.6-v1.12) and IEMOCAP, plus the synthetic demo corpora in `corpora.synth`.

Readers return plain `Utterance` records and a list of `Skipped` rows; they never compute features and never
drop a row without saying so.
"""
from corpora.records import CorpusError, Corpus, Skipped, Utterance  # noqa: F401
