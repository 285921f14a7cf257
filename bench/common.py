"""Shared by the bench scripts: the synthetic MSP-Podcast corpus they time on."""
from pathlib import Path

BENCH_CORPUS = Path("/tmp/bench_msp")


def corpus_wavs(n: int) -> list[Path]:
    """The first `n` WAVs of a 100+ utterance demo corpus in /tmp/bench_msp (written on first use)."""
    if not (BENCH_CORPUS / "synth_summary.json").is_file():
        from corpora.synth.msp_podcast import write_msp_podcast
        write_msp_podcast(BENCH_CORPUS, n=max(n, 100), seed=0, progress=False)
    return sorted((BENCH_CORPUS / "Audios").glob("*.wav"))[:n]
