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


def _pure_stage(model, stage, device: str, clip_value: float, prep: list) -> list[float]:
    """Seconds of each optimisation step of `stage` (forward, loss, backward, clipping, optimiser step), each
    batch collated and moved to the device before its clock starts: the step's compute and nothing else. The CPU
    seconds of each batch's preparation (what the loop's loader thread does) are appended to `prep`."""
    import time

    import torch

    from engine.loop import to_device
    collate, out = stage.collate, []
    for idx in stage.batches:
        c0 = time.thread_time()
        batch = to_device(collate([stage.items[i] for i in idx]), device)
        prep.append(time.thread_time() - c0)
        t0 = time.perf_counter()
        model.train()
        loss = stage.loss(model, batch)
        for o in stage.optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if clip_value > 0:
            torch.nn.utils.clip_grad_value_(model.parameters(), clip_value)
        for o in stage.optimizers:
            o.step()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def pure_training_seconds(method, items: list, cfg, steps: int | None = None) -> list[float]:
    """Per-step seconds of pure_training (below)."""
    return pure_training(method, items, cfg, steps)[0]


class StepSeconds(list):
    """Per-step seconds of a pure-compute baseline, with `.prep`: the CPU seconds of preparing each batch."""
    prep: list


def pure_training(method, items: list, cfg, steps: int | None = None):
    """The pure-compute baseline of an engine.loop run with `cfg` (issue 25's project/pure): the same seeded model,
    optimisers and batches (iteration mode: the loop's Sampler with cfg.seed, `steps` batches; epoch mode: one
    epoch of the method's stages, each stage's preparation untimed), trained in a plain loop with no loader thread,
    no resource monitor, no progress bar, no validation and no saving. (per-step seconds, the trained model): the
    sum is compared with LoopResult.train_seconds of the loop's run, which likewise leaves out validation, saving
    and preparation; the model shows that the baseline did the loop's work (tests/test_pure_baseline.py)."""
    import torch

    from engine.loop import Context, Sampler, Stage, deterministic_mode
    from utils import seed_everything
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model = method.build_model().to(device)
    optimizers = (method.optimizers(model) if hasattr(method, "optimizers")
                  else {"adam": torch.optim.Adam(model.parameters(), lr=cfg.lr)})
    if cfg.epochs:
        ctx = Context(device, 0, 1, cfg.eval_batch_size, False, precision=cfg.precision)
        stages = method.epoch_stages(model, 0, ctx, items)
    else:
        sampler = Sampler(len(items), cfg.batch_size, cfg.seed)
        stages = [Stage("train", [sampler.next() for _ in range(steps or cfg.iterations)], items, method.loss,
                        list(optimizers.values()), collate=getattr(method, "train_collate", None))]
    seconds = StepSeconds()
    seconds.prep = []
    with deterministic_mode(cfg.deterministic):
        for st in stages:
            if st.prepare is not None:
                st.prepare(st)
            st.collate = st.collate or method.collate
            seconds += _pure_stage(model, st, cfg.device, cfg.clip_value, seconds.prep)
    return seconds, model


def loop_and_pure(method, items: list, val_items: list, cfg, warmup_steps: int = 2, rounds: int = 1):
    """(LoopResult, per-step pure seconds, project/pure of every round): an engine.loop run with `cfg` and its
    pure-compute baseline on the same batches, `rounds` times, the order alternating (loop first, then baseline
    first) so that drift and the process's one-off costs do not always fall on the same side; a round's ratio is
    the loop's LoopResult.train_seconds over the baseline's summed steps. Iteration mode first runs `warmup_steps`
    untimed pure steps (oneDNN kernel creation, first page faults); an epoch-mode method's preparation
    (DeepEmoCluster's embedding pass) warms up both. The first two values are the last round's."""
    from dataclasses import replace

    from engine.loop import train
    if not cfg.epochs and warmup_steps:
        pure_training_seconds(method, items, cfg, steps=warmup_steps)
    ratios = []
    for r in range(rounds):
        run = replace(cfg, resume=False)
        if r % 2:
            pure = pure_training_seconds(method, items, cfg, steps=cfg.iterations or None)
            res = train(method, items, val_items, run)
        else:
            res = train(method, items, val_items, run)
            pure = pure_training_seconds(method, items, cfg, steps=res.steps_run)
        ratios.append(res.train_seconds / sum(pure))
    return res, pure, ratios


def project_pure_line(res, pure: list[float], ratios: list[float] | None = None) -> str:
    """The printed comparison of a loop run (LoopResult) with its pure-compute baseline (pure_training_seconds);
    with `ratios` (loop_and_pure's, one per round) their median and range."""
    import numpy as np
    steps = res.steps_run or len(pure)
    prep = getattr(pure, "prep", None)
    prep = (f"; batch preparation {1000 * float(np.median(prep)):.0f} CPU-ms per batch (median; "
            f"{100 * float(np.median(prep)) / float(np.median(pure)):.1f}% of a pure step)" if prep else "")
    return (f"loop {1000 * res.train_seconds / steps:.0f} ms/step in its training stages "
            f"({1000 * res.data_seconds / steps:.0f} ms of it waiting for data), pure compute of the same batches "
            f"{1000 * sum(pure) / len(pure):.0f} ms/step (median {1000 * float(np.median(pure)):.0f}): "
            f"project/pure {ratio_text(ratios or [res.train_seconds / sum(pure)])}{prep}; "
            f"{res.seconds - res.train_seconds:.1f} s outside the training steps (validation, saving, a stage's "
            f"preparation)")


def plain_is13_smiles(sampling_rate: int = 16000) -> dict:
    """{"lld": Smile, "lld_de": Smile}: the plain openSMILE calls a user needs for the 130 IS13 LLD columns (our
    edited config with functionals, one call per level): the library baseline of the LLD and prediction rows."""
    import opensmile

    from features.opensmile_lld import edited_config
    plain = str(edited_config(plain=True))
    return {level: opensmile.Smile(feature_set=plain, feature_level=level, sampling_rate=sampling_rate, loglevel=0)
            for level in ("lld", "lld_de")}


def pure_forward_seconds(forward, batches: list) -> float:
    """Seconds of `forward(batch)` over batches prepared beforehand, under inference_mode: the pure-compute
    baseline of a testing or prediction row (whatever reads, normalises, chunks and collates is left out)."""
    import time

    import torch
    with torch.inference_mode():
        forward(batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            forward(b)
    return time.perf_counter() - t0


def ratio_text(ratios: list[float]) -> str:
    """'1.031' for one ratio, '1.031 (median of 3 rounds: 0.998-1.052)' for several."""
    import numpy as np
    if len(ratios) == 1:
        return f"{ratios[0]:.3f}"
    return f"{float(np.median(ratios)):.3f} (median of {len(ratios)} rounds: {min(ratios):.3f}-{max(ratios):.3f})"
