"""Runs the benchmark's steps, each an existing script's main(argv) in this process, skipping what is done.

A step leaves a done-marker (<report>/steps/<key>.json: its command, the corpus fingerprint, wall time and peak
memory) and is skipped while the marker matches. Once a step of a job runs, the job's later steps run too
(their inputs changed). A failing step fails its job only: the other jobs still run, and the failures are
listed at the end and in the report.

With workers > 1 (`benchmark.py --jobs N`): the shared steps (corpora, stores, NormTerms) run first, here; then
the systems' lanes (a lane = one system's jobs, in order) in N processes at once, each lane's output in
<report>/logs/<lane>.log and one line per step on the console; then the cross-corpus lane, which scores their
models. Each step is the same command as in a sequential run, so the numbers are the same."""
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


def corpus_fingerprint(c) -> str:
    """What identifies the corpus (a report.config.Corpus) a step read: the demo generator's summary when there is
    one, else the size and time of its label files (a changed label file re-runs everything made from it): a
    manifest and its sidecar, an EmoBox corpus's label map and fold files, MSP-Podcast's Labels/*.csv, IEMOCAP's
    EmoEvaluation files."""
    from corpora.synth.msp_podcast import SUMMARY
    if (c.home / SUMMARY).is_file():
        return hashlib.sha256((c.home / SUMMARY).read_bytes()).hexdigest()[:16]
    root = c.home
    files = {"msp-podcast": lambda: sorted(root.glob("Labels/*.csv")),
             "iemocap": lambda: sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt")),
             "manifest": lambda: [p for p in (c.root, c.root.with_suffix(".json")) if p.is_file()],
             "emobox": lambda: sorted([*root.glob("*.json*"), *root.glob(f"fold_{c.fold}/*.jsonl"),
                                       *root.glob(f"fold{c.fold}/*.jsonl")])}[c.kind]()
    stamp = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16] if stamp else "absent"


def checkpoint_stamp(run: Path) -> str:
    """Size and modification time of a run folder's weights ('absent' before it is trained)."""
    try:
        st = (Path(run) / "model.safetensors").stat()
    except OSError:
        return "absent"
    return f"{st.st_size}:{st.st_mtime_ns}"


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def output_key(path) -> str:
    """How a step's marker names a file it wrote: the absolute path (the scripts may get relative ones)."""
    return str(Path(path).resolve())


def changed_outputs(marker: dict) -> list[str]:
    """The files a step's marker records that are gone or hold other bytes now (another run overwrote them)."""
    return [p for p, digest in (marker.get("outputs") or {}).items() if file_sha256(Path(p)) != digest]


def result_problems(cfg: Config, jobs: list[Job]) -> dict[Path, str]:
    """Result files the report must not show, with why: not written by the step that should write it (per its
    done-marker), or changed since (overwritten by another config or run)."""
    steps = {s.key: s for j in jobs for s in j.steps}
    problems = {}
    for r in (r for j in jobs for r in j.results if r.step):
        marker = read_marker(marker_path(cfg, steps[r.step])) or {}
        recorded = (marker.get("outputs") or {}).get(output_key(r.path))
        if recorded is None:
            problems[r.path] = f"not among the files its step '{steps[r.step].title}' wrote"
        elif file_sha256(r.path) != recorded:
            problems[r.path] = f"changed since its step '{steps[r.step].title}' wrote it (another run overwrote it)"
    return problems


def marker_path(cfg: Config, step: Step) -> Path:
    return cfg.report / "steps" / (re.sub(r"[^A-Za-z0-9_.+-]+", "_", step.key) + ".json")


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


SHARED = ("corpus/", "features/", "normterm/")  # steps several jobs may need: run once, before the lanes


def _lane(cfg: Config, force: bool, jobs: list[Job], status: dict, numbers: dict, log: Path,
          threads: int) -> tuple[dict, list]:
    """One lane in a worker process, on `threads` cores (the machine's share of one worker: more would make the
    lanes fight over the cores); its output to `log`, one line per step to the console; returns (the status of
    the steps it ran or reused, its failures)."""
    import os

    import torch
    torch.set_num_threads(threads)
    saved = os.dup(1), os.dup(2)  # a worker runs several lanes: give the console back after each
    console = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "w", buffering=1) as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            sys.stdout.reconfigure(line_buffering=True)
            runner = Runner(cfg, force=force, console=console, name=jobs[0].lane)
            runner.status, runner.numbers = dict(status), numbers
            runner.run_jobs(jobs)
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        console.close()
    return {k: v for k, v in runner.status.items() if k not in status}, runner.failures


class Runner:
    def __init__(self, cfg: Config, *, force: bool = False, progress: bool = False, console=None, name: str = ""):
        self.cfg, self.force, self.progress = cfg, force, progress
        self.status: dict[str, str] = {}  # step key -> ran | reused | failed: <why>
        self.failures: list[tuple[str, str]] = []  # (job, reason)
        self.last_resources: dict = {}  # the last step's wall time and memory (engine.resources), for its marker
        self.numbers: dict[str, int] = {}  # step key -> its number in the whole benchmark, for the messages
        self.console, self.name = console, name  # in a lane: the console for one line per step
        self.dirty = self.stale_results = False  # of the job being run (see run_jobs)
        self.expected: dict[str, list[Path]] = {}  # step key -> the result files it must write
        self.written: list[Path] = []  # the result files the last step's script wrote (systems.common.WRITTEN)

    def _say(self, text: str) -> None:
        if self.console is not None:
            print(f"[{self.name}] {text}", file=self.console, flush=True)

    def identity(self, step: Step) -> dict:
        c = self.cfg.corpora[step.corpus]
        ident = {"command": step.command(), "corpus": corpus_fingerprint(c)}
        if step.inputs:  # the checkpoints it scores: a retrained model (new weights) is scored again
            ident["checkpoints"] = {str(p): checkpoint_stamp(p) for p in step.inputs}
        return ident

    def _call(self, step: Step, argv: list[str]) -> int:
        """The script's main(argv) with sys.argv set to its own command line, so the result files it writes record
        the command that re-creates them (not the benchmark's)."""
        from engine.resources import ResourceMonitor
        from systems.common import WRITTEN
        module = importlib.import_module(step.script)
        saved = sys.argv
        sys.argv = [f"{step.script}.py", *argv]
        WRITTEN.clear()
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
            self.written = list(WRITTEN)

    def run_step(self, step: Step) -> bool:
        k, n = self.numbers[step.key], len(self.numbers)
        if step.key in self.status:  # shared by an earlier job this session
            return not self.status[step.key].startswith("failed")
        marker = marker_path(self.cfg, step)
        ident = self.identity(step)
        old = read_marker(marker)
        own = not step.key.startswith(("corpus/", "features/", "normterm/"))
        outputs_intact = old is not None and not changed_outputs(old) and all(
            output_key(p) in (old.get("outputs") or {}) for p in self.expected.get(step.key, []))
        if (not self.force and not self.dirty and not (own and self.stale_results) and old is not None
                and old.get("identity") == ident and old.get("rc") == 0 and outputs_intact):
            self.status[step.key] = "reused"
            print(f"[{k}/{n}] {step.title}: done earlier ({old.get('date')}), skipped", flush=True)
            self._say(f"[{k}/{n}] {step.title}: done earlier, skipped")
            return True
        self.dirty = True
        argv = [resolve_model(self.cfg, a) if isinstance(a, Model) else str(a) for a in step.argv]
        if not self.progress and step.script not in NO_PROGRESS_FLAG:
            argv.append("--no-progress")
        print(f"\n== [{k}/{n}] {step.title}: python {step.script}.py {' '.join(argv)}", flush=True)
        self._say(f"[{k}/{n}] {step.title} ...")
        t0 = time.time()
        try:
            rc = self._call(step, argv)
            if rc and step.retry_fresh and "--no-resume" not in argv:
                print("   (retrying with --no-resume: the config allows starting its own run folders over)", flush=True)
                rc = self._call(step, [*argv, "--no-resume"])
            why = f"exit status {rc}" if rc else self._unwritten(step)
            rc = rc or int(bool(why))
        except Exception as e:  # a bug or an unexpected input: this job stops, the others go on
            traceback.print_exc()
            rc, why = 1, f"{type(e).__name__}: {e}"
        seconds = time.time() - t0
        print(f"   ({seconds:.1f} s)", flush=True)
        self._say(f"[{k}/{n}] {step.title}: {'FAILED, ' + why if rc else 'done'} ({seconds:.1f} s)")
        if rc:
            self.status[step.key] = f"failed: {why}"
            marker.unlink(missing_ok=True)
            return False
        self.status[step.key] = "ran"
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, json.dumps({
            "identity": self.identity(step), "rc": 0,  # identity after the step: a corpus step made its corpus
            "outputs": {output_key(p): file_sha256(p) for p in dict.fromkeys(self.written)},
            "seconds": round(seconds, 2), "resources": self.last_resources,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python", f"{step.script}.py", *argv])}, indent=1))
        return True

    def _unwritten(self, step: Step) -> str:
        """Why a step that exited 0 failed anyway: a result file the report expects of it that it did not write
        (it wrote other names: the report would show another model's numbers); '' when all are there."""
        wrote = {output_key(p) for p in self.written}
        lacking = [str(p) for p in self.expected.get(step.key, []) if output_key(p) not in wrote]
        if not lacking:
            return ""
        return (f"expected it to write {', '.join(lacking)}, but it wrote "
                f"{', '.join(map(str, self.written)) or 'no result file'}")

    def _expect(self, jobs: list[Job]) -> None:
        for r in (r for j in jobs for r in j.results if r.step):
            mine = self.expected.setdefault(r.step, [])
            if r.path not in mine:
                mine.append(r.path)

    def run(self, jobs: list[Job], workers: int = 1) -> bool:
        """Every job's steps (in `workers` processes at once when > 1); True when all succeeded."""
        self.numbers = {}
        self._expect(jobs)
        for s in (s for j in jobs for s in j.steps):
            self.numbers.setdefault(s.key, len(self.numbers) + 1)
        lanes = list(dict.fromkeys(j.lane for j in jobs))
        if workers > 1 and len(lanes) > 1:
            self._parallel(jobs, lanes, workers)
        else:
            self.run_jobs(jobs)
        for job, why in self.failures:
            print(f"FAILED {job}: {why}", file=sys.stderr)
        return not self.failures

    def run_jobs(self, jobs: list[Job]) -> None:
        from tqdm import tqdm
        bar = tqdm(total=len({s.key for j in jobs for s in j.steps}), desc="benchmark steps", unit="step",
                   disable=not self.progress)
        self._expect(jobs)
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
                if not self.run_step(step):
                    why = self.status[step.key]
                    self.failures.append((job.name, f"{step.title}: {why}"))
                    print(f"   {job.name}: stopped at '{step.title}' ({why}); the other jobs go on", file=sys.stderr)
                    break
            missing = [r.path for r in job.results if not r.path.is_file()]
            if missing and not any(f[0] == job.name for f in self.failures):
                self.failures.append((job.name, "result file(s) not written: " + ", ".join(map(str, missing))))
        bar.close()

    def _parallel(self, jobs: list[Job], lanes: list[str], workers: int) -> None:
        """Shared steps here, the systems' lanes in worker processes, then the cross-corpus lane here."""
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        from report.recipes import CROSS_LANE
        print(f"shared steps (corpora, stores, NormTerms), then {len(lanes)} lanes, {workers} at once; each lane's "
              f"output in {self.cfg.report / 'logs'}/<lane>.log", flush=True)
        for job in jobs:  # as in a sequential run: a shared step made anew makes the job's later ones run
            self.dirty = self.stale_results = False
            for step in (s for s in job.steps if s.key.startswith(SHARED)):
                self.dirty |= self.status.get(step.key) == "ran"
                self.run_step(step)  # a failure stops the jobs that need the step, when their lane reaches it
        own = [lane for lane in lanes if lane != CROSS_LANE]
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch / OpenMP state
        workers = min(workers, len(own))
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {lane: pool.submit(_lane, self.cfg, self.force, [j for j in jobs if j.lane == lane],
                                         self.status, self.numbers, self.cfg.report / "logs" / f"{lane}.log", threads)
                       for lane in own}
            for lane, fut in futures.items():
                log = self.cfg.report / "logs" / f"{lane}.log"
                try:
                    status, failures = fut.result()
                except Exception as e:  # the worker died (killed, out of memory): its lane's jobs failed
                    status, failures = {}, [(j.name, f"lane {lane} stopped: {type(e).__name__}: {e}")
                                            for j in jobs if j.lane == lane]
                self.status.update(status)
                self.failures += [(job, f"{why} (see {log})") for job, why in failures]
        self.run_jobs([j for j in jobs if j.lane == CROSS_LANE])
