"""Shared by the bench scripts: the synthetic MSP-Podcast corpus they time on, and best-of-rounds timing."""
from pathlib import Path

BENCH_CORPUS = Path("/tmp/bench_msp")


def corpus_wavs(n: int) -> list[Path]:
    """The first `n` WAVs of a 100+ utterance demo corpus in /tmp/bench_msp (written on first use)."""
    if not (BENCH_CORPUS / "synth_summary.json").is_file():
        from corpora.synth.msp_podcast import write_msp_podcast
        write_msp_podcast(BENCH_CORPUS, n=max(n, 100), seed=0, progress=False)
    return sorted((BENCH_CORPUS / "Audios").glob("*.wav"))[:n]


def best_of_rounds(variants: dict, inputs: list, rounds: int) -> dict[str, float]:
    """{name: seconds} of each variant over all `inputs`, the best of `rounds` per input; one warm-up call
    each first (imports, page cache), and the variants' order rotated every round so none is always first."""
    import time

    import numpy as np
    for f in variants.values():
        f(inputs[0])
    best = {k: np.full(len(inputs), np.inf) for k in variants}
    names = list(variants)
    for r in range(rounds):
        for i, x in enumerate(inputs):
            for k in names[r % len(names):] + names[: r % len(names)]:
                t0 = time.perf_counter()
                variants[k](x)
                best[k][i] = min(best[k][i], time.perf_counter() - t0)
    return {k: float(v.sum()) for k, v in best.items()}


def pure_step_seconds(method, items: list, batch_size: int, device: str = "cpu", steps: int = 5,
                      lr: float = 1e-3) -> float:
    """Seconds of one optimisation step (forward, loss, backward, Adam step) on one training batch collated once
    beforehand: what engine.loop does per step without its data pipeline, i.e. the pure-compute baseline a
    training-speed row is divided by (project/pure, issue 25). The best of `steps` timed steps after one warm-up."""
    import time

    import torch

    from engine.loop import to_device
    model = method.build_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    collate = getattr(method, "train_collate", None) or method.collate
    batch = to_device(collate(items[:batch_size]), device)
    best = float("inf")
    for k in range(steps + 1):
        t0 = time.perf_counter()
        model.train()
        loss = method.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if k:  # the first is the warm-up
            best = min(best, time.perf_counter() - t0)
    return best
