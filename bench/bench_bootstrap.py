#!/usr/bin/env python
"""The cost of the uncertainty: bootstrap intervals and engine.robustness' bookkeeping.

metrics.score with 1,000 bootstrap resamples, and engine.robustness'
bookkeeping (per-condition intervals, paired tests, CSVs, JSON, figure) around a model's predictions.

    python bench/bench_bootstrap.py [--sizes 67,1000,30000] [--resamples 1000] [--rounds 3]

Part 1: CPU seconds per metrics.score call (best of --rounds) for CCC, WA and UA on n test utterances, BCa and
percentile, one prediction per utterance and S = 3 simulation draws. Part 2: CPU seconds of evaluate_conditions with
an instant fake predict (so only the bookkeeping is timed), for the fixed-condition protocol of a three-modality
model (7 conditions, WA/UA) and the random-missing protocol (7 rates x 3 simulation seeds, CCC of 3 attributes),
with --resamples and with 0 resamples (no intervals, no tests): the difference is the bootstrap's share.

Baseline of part 1, measured in the same run: the textbook percentile bootstrap of the same statistic (CCC, WA or
UA; the mean over the draws, each resample taking the same utterances in every draw) with the same number of
resamples on the same data, in plain numpy: an index matrix rng.integers(0, n, (B, n)), the statistic of each
row, np.percentile (`plain_bootstrap` below). Timed the same way (CPU seconds, best of --rounds), once per size,
metric and draw count; each row gets the ratio metrics.score seconds / baseline seconds. The baseline runs with
numpy's huge pages for its large arrays on, as plain numpy does (the engine turns them off, engine/allocator.py).
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import metrics  # noqa: E402
from engine import allocator  # noqa: E402
from engine.cli import parser  # noqa: E402


def best(f, rounds: int) -> float:
    """The least CPU seconds of this process (all its threads) over `rounds` calls, after one warm-up call:
    CPU time, not wall time, so other work on a shared machine does not inflate it."""
    f()  # warm-up: imports, caches
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return min(times)


def plain_bootstrap(metric: str, labels: np.ndarray, preds: np.ndarray, resamples: int, n_classes: int = 4,
                    level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The baseline: a percentile bootstrap interval as a researcher would write it in numpy (preds (n,) or (S, n):
    the statistic is the mean over the S draws of the same resampled utterances)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    idx = rng.integers(0, n, (resamples, n))  # one resample per row
    t = labels[idx]
    stats = []
    for p in np.atleast_2d(preds):
        q = p[idx]
        if metric == "CCC":  # Lin's CCC of each row, population moments
            mt, mq = t.mean(axis=1), q.mean(axis=1)
            cov = ((t - mt[:, None]) * (q - mq[:, None])).mean(axis=1)
            stats.append(2 * cov / (t.var(axis=1) + q.var(axis=1) + (mt - mq) ** 2))
        elif metric == "WA":  # accuracy of each row
            stats.append((q == t).mean(axis=1))
        else:  # UA: mean recall over the classes present in each row
            with np.errstate(divide="ignore", invalid="ignore"):
                recall = [((q == t) & (t == k)).sum(axis=1) / (t == k).sum(axis=1) for k in range(n_classes)]
            stats.append(np.nanmean(recall, axis=0))
    boot = np.mean(stats, axis=0)
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def score_table(sizes: list[int], resamples: int, rounds: int) -> list[tuple]:
    """(n, metric, method, metrics.score seconds for 1 and 3 draws, baseline seconds for 1 and 3 draws) rows."""
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        t = rng.normal(size=n)
        draws = t + rng.normal(size=(3, n))
        y = rng.integers(0, 4, n)
        q = np.where(rng.random((3, n)) < 0.6, y, rng.integers(0, 4, (3, n)))
        for metric, labels, one, three in (("CCC", t, draws[0], draws), ("WA", y, q[0], q), ("UA", y, q[0], q)):
            was = allocator.numpy_hugepages(True)  # the baseline as plain numpy runs it: its huge pages on
            try:
                base = [best(lambda p=p: plain_bootstrap(metric, labels, p, resamples), rounds) for p in (one, three)]
            finally:
                allocator.numpy_hugepages(was)
            for method in ("bca", "percentile"):
                secs = [best(lambda p=p: metrics.score(metric, labels, p, n_classes=4, resamples=resamples,
                                                       method=method), rounds) for p in (one, three)]
                rows.append((n, metric, method, *secs, *base))
    return rows


def fake_predict(n: int, metric: str):
    from engine.robustness import Draw
    rng = np.random.default_rng(1)
    utts = [f"utt{i:05d}" for i in range(n)]
    labels = rng.integers(0, 4, n) if metric == "WA/UA" else rng.uniform(1, 7, (n, 3))

    def predict(cond, seed):
        r = np.random.default_rng([seed, len(str(cond))])
        if metric == "WA/UA":
            preds = np.where(r.random(n) < 0.6, labels, r.integers(0, 4, n))
        else:
            preds = labels + r.normal(size=labels.shape)
        return Draw(utts, labels, preds, ["audio+text+mocap"] * n, {})
    return predict


def robustness_table(sizes: list[int], resamples: int, rounds: int) -> list[tuple]:
    import contextlib
    import io

    from engine.robustness import evaluate_conditions
    from features.missing import protocol_conditions
    rows = []
    rates = (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    setups = (("fixed", "WA/UA", protocol_conditions("fixed", ["audio", "text", "mocap"]), {"classes": list("abcd")}),
              ("random", "CCC", protocol_conditions("random", ["audio", "text"], rates=rates),
               {"attributes": ["Act", "Dom", "Val"]}))
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for protocol, metric, conds, names in setups:
                def run(b, n=n, protocol=protocol, metric=metric, conds=conds, names=names):
                    with contextlib.redirect_stdout(io.StringIO()):
                        evaluate_conditions(fake_predict(n, metric), conds, sim_seeds=3, metric=metric,
                                            protocol=protocol, out=Path(tmp) / f"{protocol}_{n}", result={},
                                            resamples=b, **names)
                rows.append((n, protocol, len(conds), *(best(lambda b=b: run(b), rounds) for b in (resamples, 0))))
    return rows


def ratio(secs: float, base: float) -> str:
    return f"{secs / base:.2f}" if base > 0 else "n/a"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sizes", default="67,1000,30000", help="test-set sizes (utterances), comma-separated")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds per score call (best is reported)")
    ap.add_argument("--skip-robustness", action="store_true", help="time metrics.score only")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"metrics.score, {args.resamples} resamples, best of {args.rounds} (CPU seconds per call); baseline: the "
          f"plain-numpy percentile bootstrap of the same statistic, same resamples and data (index matrix (B, n)); "
          f"ratio = metrics.score / baseline")
    print(f"{'n':>6}  {'metric':6}  {'method':10}  {'1 draw':>8}  {'3 draws':>8}  {'baseline 1':>10}  "
          f"{'baseline 3':>10}  {'ratio 1':>7}  {'ratio 3':>7}")
    for n, metric, method, one, three, base1, base3 in score_table(sizes, args.resamples, args.rounds):
        print(f"{n:>6}  {metric:6}  {method:10}  {one:8.3f}  {three:8.3f}  {base1:10.3f}  {base3:10.3f}  "
              f"{ratio(one, base1):>7}  {ratio(three, base3):>7}")
    if args.skip_robustness:
        return
    print("\nengine.robustness.evaluate_conditions with an instant predict (3 simulation seeds; CPU seconds, "
          "outputs written)")
    print(f"{'n':>6}  {'protocol':8}  {'conditions':>10}  {f'{args.resamples} resamples':>15}  {'no intervals':>12}")
    for n, protocol, k, with_b, without in robustness_table(sizes, args.resamples, max(1, args.rounds - 1)):
        print(f"{n:>6}  {protocol:8}  {k:>10}  {with_b:15.2f}  {without:12.2f}")


if __name__ == "__main__":
    main()
