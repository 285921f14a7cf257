"""Synthetic demo corpora in the exact MSP-Podcast and IEMOCAP layouts, spoken by espeak-ng.

`rules` holds the documented label rules (what makes the demo learnable); `espeak` the synthesiser;
`msp_podcast` and `iemocap` the writers. `make_demo_corpus.py` is the command line.
"""
import hashlib
from pathlib import Path


def generator_version() -> str:
    """A hash of the generator's own code: a corpus written by other code is stale and is written anew."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:12]
