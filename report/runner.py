"""Runs the benchmark's steps in order, each an existing script's main(argv) in this process, and skips what is
done: a step leaves a done-marker (<report>/steps/<key>.json: its command, the corpus fingerprint, wall time
and peak memory) and is skipped while the marker matches. Once a step of a job runs, the job's later steps run
too (their inputs changed). A failing step fails its job only: the other jobs still run, and the failures are
listed at the end and in the report."""
from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import re
import sys
import time
import traceback
from pathlib import Path

from report.config import Config
from report.recipes import Job, Model, Step, resolve_model
from utils import atomic_write_text


NO_PROGRESS_FLAG = ("make_demo_corpus", "evaluate_missing")  # scripts without bars (and without the flag)


def corpus_fingerprint(kind: str, root: Path) -> str:
    """What identifies the corpus a step read: the demo generator's summary when there is one, else the size and
    time of its label files (a changed label file re-runs everything made from it)."""
    from corpora.synth.msp_podcast import SUMMARY
    if (root / SUMMARY).is_file():
        return hashlib.sha256((root / SUMMARY).read_bytes()).hexdigest()[:16]
    files = (sorted(root.glob("Labels/*.csv")) if kind == "msp-podcast"
             else sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt")))
    stamp = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16] if stamp else "absent"


def checkpoint_stamp(run: Path) -> str:
    """Size and modification time of a run folder's weights ('absent' before it is trained)."""
    try:
        st = (Path(run) / "model.safetensors").stat()
    except OSError:
        return "absent"
    return f"{st.st_size}:{st.st_mtime_ns}"


def marker_path(cfg: Config, step: Step) -> Path:
    return cfg.report / "steps" / (re.sub(r"[^A-Za-z0-9_.+-]+", "_", step.key) + ".json")


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Runner:
    def __init__(self, cfg: Config, *, force: bool = False, progress: bool = False):
        self.cfg, self.force, self.progress = cfg, force, progress
        self.status: dict[str, str] = {}  # step key -> ran | reused | failed: <why>
        self.failures: list[tuple[str, str]] = []  # (job, reason)
        self.last_resources: dict = {}  # the last step's wall time and memory (engine.resources), for its marker

    def identity(self, step: Step) -> dict:
        c = self.cfg.corpora[step.corpus]
        ident = {"command": step.command(), "corpus": corpus_fingerprint(c.kind, c.root)}
        if step.inputs:  # the checkpoints it scores: a retrained model (new weights) is scored again
            ident["checkpoints"] = {str(p): checkpoint_stamp(p) for p in step.inputs}
        return ident

    def _call(self, step: Step, argv: list[str]) -> int:
        """The script's main(argv) with sys.argv set to its own command line, so the result files it writes record
        the command that re-creates them (not the benchmark's)."""
        from engine.resources import ResourceMonitor
        module = importlib.import_module(step.script)
        saved = sys.argv
        sys.argv = [f"{step.script}.py", *argv]
        try:
            with ResourceMonitor() as mon:
                try:
                    rc = module.main(argv)
                except SystemExit as e:  # argparse rejects the arguments
                    rc = e.code if isinstance(e.code, int) else 1
            self.last_resources = mon.as_dict()
            return int(rc or 0)
        finally:
            sys.argv = saved

    def run_step(self, step: Step, k: int, n: int) -> bool:
        if step.key in self.status:  # shared by an earlier job this session
            return not self.status[step.key].startswith("failed")
        marker = marker_path(self.cfg, step)
        ident = self.identity(step)
        old = read_marker(marker)
        own = not step.key.startswith(("corpus/", "features/", "normterm/"))
        if not self.force and not self.dirty and not (own and self.stale_results) and old is not None and old.get("identity") == ident and old.get("rc") == 0:
            self.status[step.key] = "reused"
            print(f"[{k}/{n}] {step.title}: done earlier ({old.get('date')}), skipped", flush=True)
            return True
        self.dirty = True
        argv = [resolve_model(self.cfg, a) if isinstance(a, Model) else str(a) for a in step.argv]
        if not self.progress and step.script not in NO_PROGRESS_FLAG:
            argv.append("--no-progress")
        print(f"\n== [{k}/{n}] {step.title}: python {step.script}.py {' '.join(argv)}", flush=True)
        t0 = time.time()
        try:
            rc = self._call(step, argv)
            if rc and step.retry_fresh and "--no-resume" not in argv:
                print("   (retrying with --no-resume: the config allows starting its own run folders over)", flush=True)
                rc = self._call(step, [*argv, "--no-resume"])
            why = f"exit status {rc}" if rc else ""
        except Exception as e:  # a bug or an unexpected input: this job stops, the others go on
            traceback.print_exc()
            rc, why = 1, f"{type(e).__name__}: {e}"
        seconds = time.time() - t0
        print(f"   ({seconds:.1f} s)", flush=True)
        if rc:
            self.status[step.key] = f"failed: {why}"
            marker.unlink(missing_ok=True)
            return False
        self.status[step.key] = "ran"
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, json.dumps({
            "identity": self.identity(step), "rc": 0,  # after the step: a corpus step made its corpus "seconds": round(seconds, 2), "resources": self.last_resources,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python", f"{step.script}.py", *argv])}, indent=1))
        return True

    def run(self, jobs: list[Job]) -> bool:
        """Every job's steps; True when all succeeded."""
        from tqdm import tqdm
        n = len({s.key for j in jobs for s in j.steps})
        bar = tqdm(total=n, desc="benchmark steps", unit="step", disable=not self.progress)
        seen: set[str] = set()
        for job in jobs:
            # a result file gone (deleted, or a crash between a step and its marker): the job's own steps run again;
            # the CLIs themselves skip the stores and finished trainings
            self.dirty = False
            self.stale_results = any(not r.path.is_file() for r in job.results)
            for step in job.steps:
                if step.key in self.status and self.status[step.key] == "ran":
                    self.dirty = True  # an input of this job was just made anew
                if step.key not in seen:
                    seen.add(step.key)
                    bar.update(1)
                if not self.run_step(step, len(seen), n):
                    why = self.status[step.key]
                    self.failures.append((job.name, f"{step.title}: {why}"))
                    print(f"   {job.name}: stopped at '{step.title}' ({why}); the other jobs go on", file=sys.stderr)
                    break
            missing = [r.path for r in job.results if not r.path.is_file()]
            if missing and not any(f[0] == job.name for f in self.failures):
                self.failures.append((job.name, "result file(s) not written: " + ", ".join(map(str, missing))))
        bar.close()
        for job, why in self.failures:
            print(f"FAILED {job}: {why}", file=sys.stderr)
        return not self.failures
