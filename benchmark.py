#!/usr/bin/env python
"""Compare the systems on one roof: run every system and variant a config names (extraction, NormTerm,
training, testing, missing-data evaluation, cross-corpus scoring; each step an existing command line), then
write report.md and a self-contained report.html from the result files those commands wrote.

    python benchmark.py                                   # configs/demo.yaml: all five systems on the demo corpora
    python benchmark.py --config my_corpora.yaml          # your corpora, systems, variants (see configs/demo.yaml)
    python benchmark.py --config C --only mdre,audio-text # some systems (cross-corpus pairs need theirs)
    python benchmark.py --config C --report-only          # aggregate what is there, run nothing
    python benchmark.py --config C --jobs 4               # four systems at once (one process each)
    python benchmark.py --config configs/demo_manifest.yaml  # two systems on a corpus described by a manifest

A config's corpora may be of any kind the readers know (corpora.KINDS): `{kind: msp-podcast, root: R}`,
`{kind: iemocap, root: R}`, `{kind: manifest, root: path/to/corpus.csv}` (CSV or JSONL) or `{kind: emobox, root:
EmoBox/data/<corpus>, fold: N}`, each command reading it with --corpus KIND --root ROOT [--fold N]. The dimensional
systems need dimensional labels (MSP-Podcast, a manifest); the categorical ones train on any corpus's classes (a
corpus with named splits is one fold: train, dev, test; `splits: {train: T, dev: D, test: E}` names others).

A config can run a variant over several training seeds (`seeds: [0, 1, 2]`: each its own runs, mean +- sd in the
report) and the fusion systems under the robustness literature's missing-data protocols (`protocols: [fixed,
random, sweep]`, `rates`, `sweep_kinds`, `sim_seeds`, `bootstrap`, `ci_method`: the evaluation scripts' flags).

Resumable: a finished step leaves a done-marker in <report>/steps/ and is skipped while its command and its
corpus are unchanged (a second run only re-writes the report); a killed run continues where it stopped, as
training resumes from its last validation. A failing step stops its own system only; the others still run,
the report lists what failed, and the exit status is 1.
"""
import sys
from pathlib import Path

from engine.cli import UserError, entry, int_at_least, parser

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def load(path: Path, only: str | None):
    """(config, jobs) for the systems asked, or a clear error."""
    from report.config import SYSTEMS, ConfigError, load_config
    from report.recipes import plan
    try:
        cfg = load_config(path)
    except ConfigError as e:
        raise UserError(str(e)) from None
    if only:
        wanted = [s.strip() for s in only.split(",") if s.strip()]
        bad = [s for s in wanted if s not in SYSTEMS]
        if bad:
            raise UserError(f"--only {only}: unknown system(s) {', '.join(bad)} (choose from {', '.join(SYSTEMS)})")
        cfg.systems = [s for s in cfg.systems if s.system in wanted]
        cfg.cross_corpus = [c for c in cfg.cross_corpus if c["system"] in wanted]
        if not cfg.systems:
            raise UserError(f"--only {only}: {path} configures none of these")
    try:  # the plan names every step's outputs (the scripts' own parsers check their flags): still before any work
        return cfg, plan(cfg)
    except ConfigError as e:
        raise UserError(str(e)) from None


def run(cfg, jobs, *, force: bool = False, progress: bool = False, report_only: bool = False,
        workers: int = 1) -> tuple[bool, Path]:
    """Run the jobs (unless report_only; `workers` systems at once), then write the report; (all succeeded,
    report.html)."""
    from report.build import build
    from report.runner import Runner
    from utils import writable_dir
    writable_dir(cfg.report)
    runner = Runner(cfg, force=force, progress=progress)
    ok = True if report_only else runner.run(jobs, workers)
    md, page = build(cfg, jobs, runner.failures)
    print(f"\nreport: {md} and {page}")
    return ok, page


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML or JSON benchmark config")
    ap.add_argument("--only", help="comma-separated systems of the config to run (default: all)")
    ap.add_argument("--report-only", action="store_true", help="run nothing; write the report from the results there")
    ap.add_argument("--force", action="store_true",
                    help="ignore the done-markers: run every step's command again (the commands themselves still "
                         "reuse stores and finished trainings)")
    ap.add_argument("--jobs", type=int_at_least(1), default=1,
                    help="systems run at once, each in its own process (shared stores are made first; each lane's "
                         "output goes to <report>/logs/); with --deterministic steps one core each")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    args = ap.parse_args(argv)
    cfg, jobs = load(args.config, args.only)
    ok, _ = run(cfg, jobs, force=args.force, progress=not args.no_progress and sys.stderr.isatty() and args.jobs == 1,
                report_only=args.report_only, workers=args.jobs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
