"""Synthetic demo corpora in the exact MSP-Podcast and IEMOCAP layouts, spoken by espeak-ng.

`rules` holds the documented label rules (what makes the demo learnable); `espeak` the synthesiser;
`msp_podcast` and `iemocap` the writers. `make_demo_corpus.py` is the command line.
"""
