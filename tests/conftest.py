import hashlib
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
PRETRAINED = SHARED / "pretrained"


def tree_digest(root: Path) -> str:
    """One hash over every file's relative path and bytes (ignores nothing: generated corpora must match)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def msp_corpus(tmp_path_factory):
    """A 60-utterance synthetic MSP-Podcast v1.10 corpus shared by the tests of a run."""
    from corpora.synth.msp_podcast import write_msp_podcast

    root = tmp_path_factory.mktemp("msp") / "MSP-PODCAST-Publish-1.10"
    write_msp_podcast(root, n=60, seed=7, release="1.10", progress=False)
    return root
