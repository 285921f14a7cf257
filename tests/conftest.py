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


@pytest.fixture(scope="session")
def mel_setup(msp_corpus, tmp_path_factory):
    """(corpus root, folder with a `mel` store of the whole corpus and its Train NormTerm `NT`)."""
    import feat_mel
    import norm_para
    root = tmp_path_factory.mktemp("melrun")
    assert feat_mel.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--store", str(root / "mel"),
                          "--no-progress"]) == 0
    assert norm_para.main(["--store", str(root / "mel"), "--root", str(msp_corpus), "--out", str(root / "NT"),
                           "--no-progress"]) == 0
    return msp_corpus, root


@pytest.fixture(scope="session")
def at_setup(msp_corpus, tmp_path_factory):
    """(corpus root, folder with a tiny random wav2vec2 `audio` store, an offline MiniLM `text` store and their
    Train NormTerms `NT_S` / `NT_T`) for the audio-text system; shared by every test of a run."""
    import feat_roberta
    import feat_wav2vec2
    import norm_para
    from features.wav2vec2 import save_tiny_random
    d = tmp_path_factory.mktemp("at")
    w2v = save_tiny_random(d / "tiny_w2v")
    assert feat_wav2vec2.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--model", str(w2v),
                               "--store", str(d / "audio"), "--no-progress"]) == 0
    assert feat_roberta.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--model", "minilm",
                              "--store", str(d / "text"), "--no-progress"]) == 0
    for store, nt in (("audio", "NT_S"), ("text", "NT_T")):
        assert norm_para.main(["--store", str(d / store), "--root", str(msp_corpus), "--out", str(d / nt),
                               "--no-progress"]) == 0
    return msp_corpus, d


def write_odd_wavs(folder: Path, speech) -> dict[str, str]:
    """WAVs a user's folder may hold: a good 16 kHz file, 44.1 kHz stereo, 8-bit, and three broken ones.

    Returns name -> 'ok' or the start of the reason the tools must give."""
    import numpy as np
    import soundfile as sf
    import soxr

    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "good.wav", speech, 16000, subtype="PCM_16")
    st = soxr.resample(speech, 16000, 44100)
    sf.write(folder / "stereo44k.wav", np.stack([st, 0.5 * st], axis=1), 44100, subtype="PCM_24")
    sf.write(folder / "eightbit.wav", speech, 16000, subtype="PCM_U8")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(50)))
    sf.write(folder / "silent.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    sf.write(folder / "short.wav", speech[:150], 16000, subtype="PCM_16")  # 9 ms: shorter than one frame
    return {"good": "ok", "stereo44k": "ok", "eightbit": "ok", "empty": "empty file",
            "corrupt": "unreadable audio", "silent": "silent", "short": "too short"}


def unwritable_folders(tmp_path: Path) -> list[Path]:
    """Output folders no file can be written in: below a regular file (any user), and a read-only folder
    (only where permissions bind, i.e. not as root)."""
    import os
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = [blocker / "results"]
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):
        out.append(ro)
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """A module's runs on one intra-op thread (what --deterministic does anyway): on a loaded 2-core machine, two
    OpenMP threads beside the loop's prefetch thread make a step several times slower. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def manifest_corpus(tmp_path_factory):
    """A 60-utterance synthetic corpus in the manifest format (corpora.synth.manifest): the manifest CSV's path.
    Splits train, dev, test, test2; arousal/dominance/valence on a declared 1-5 scale; classes angry, sad, happy,
    neutral (X rows unlabelled)."""
    from corpora.synth.manifest import write_manifest_corpus

    out = tmp_path_factory.mktemp("manifest")
    return Path(write_manifest_corpus(out, n=60, seed=7, progress=False)["manifest"])
