"""What every script's command line shares: the help format, argument checks, and one way to fail clearly.

A script builds its parser with `parser(__doc__)`, checks numbers with `int_at_least(n)` / `positive_float`,
and wraps its `main` in `@entry`: a UserError, CorpusError, StoreError or OutputError raised anywhere below
becomes one line `error: <file or flag>: <problem>` on stderr and exit code 1, never a traceback.
"""
from __future__ import annotations

import argparse
import functools
import sys

from corpora.records import CorpusError
from features.store import StoreError
from utils import OutputError, UserError, _number, int_at_least  # noqa: F401 (below features, re-exported)


CLEAR_ERRORS = (UserError, CorpusError, StoreError, OutputError)


def entry(main):
    """Decorate a script's `main(argv) -> int`: clear errors -> `error: ...` on stderr and return 1."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            configure_allocator()
            return main(argv)
        except CLEAR_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return wrapped


def configure_allocator() -> None:
    """The memory mode of this process (engine.allocator: SER_ALLOCATOR, default thp), set before a script's work;
    an unknown mode is a UserError naming the variable."""
    from engine import allocator
    try:
        allocator.configure()
    except ValueError as e:
        raise UserError(str(e)) from None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the module docstring's layout and appends each option's default where its help does not say it."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.required or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.default is None or not (action.option_strings or action.nargs in ("?", "*")):
            return text
        if isinstance(action.default, (list, tuple)):
            shown = " ".join(map(str, action.default)).replace("%", "%%")
            return f"{text} (default: {shown})"
        return f"{text} (default: %(default)s)"


def parser(doc: str | None, **kw) -> argparse.ArgumentParser:
    return _Parser(description=doc, formatter_class=HelpFormatter, **kw)


def positive_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} must be greater than 0")
    return v


from utils import PRECISIONS  # noqa: E402 - one list for the scripts and the extractors


def add_precision_arg(ap) -> None:
    """--precision: the one flag of every training and inference script (engine.loop.autocast applies it)."""
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="arithmetic of the forward passes and losses: fp32 (the reference), or bf16 / fp16 under "
                         "autocast (weights and optimiser stay fp32); fp16 uses a grad scaler and needs CUDA; bf16 "
                         "also works on CPU; a run's precision is recorded in its config.json and result files, and "
                         "a run folder of another precision is never resumed (see docs/speed.md \"Precision and "
                         "GPUs\")")


def precision_tag(precision: str) -> str:
    """'' for fp32, else '_precisionbf16' (settings_suffix's spelling of --precision): what a run folder and a result
    file of another precision carry in their names, so that they never stand where fp32's would."""
    return "" if precision == "fp32" else f"_precision{precision}"


def check_precision(precision: str, device: str) -> None:
    """UserError for a precision the device cannot run (features.extract.check_extraction_precision, the one
    rule: an unknown name, or fp16 anywhere but on CUDA); `device` "auto" is the device it would choose."""
    from features.extract import check_extraction_precision
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        check_extraction_precision(precision, device)
    except ValueError as e:
        raise UserError(f"--{e} (--device {device})") from None


# What --deterministic (one thread, deterministic kernels) costs per training step of each system against the
# default (all cores, OpenMP threads sleeping while they wait), measured by `python bench/bench_threads.py --steps 2`
# (tiny synthetic trainings on a 2-core CPU, 2026-12-06, with other jobs running: load 0.5-6 for the first three,
# 8-19 for MDREA and speech+text+mocap; noisy, re-measure on yours: docs/speed.md "Speed under load").
DETERMINISTIC_COST = {
    "chunk-lstm": "chunk LSTM: 1.5x the time per step alone, 2.1x beside a second training",
    "deep-emo-cluster": "DeepEmoCluster: 0.9x the time per step alone, 0.9x beside a second training",
    "audio-text": "audio-text: 1.0x the time per step alone, 1.4x beside a second training",
    "mdre": "MDREA: 1.1x the time per step alone, 2.0x beside a second training",
    "speech-text-mocap": "speech+text+mocap: 0.9x the time per step alone, 1.8x beside a second training",
}


def deterministic_help(system: str | None = None) -> str:
    """--deterministic's help: what it guarantees and what it costs `system` (DETERMINISTIC_COST)."""
    cost = DETERMINISTIC_COST.get(system)
    return ("one CPU thread and deterministic kernels: a seeded run gives identical weights under any load and on "
            f"any number of cores{f' ({cost}; bench_threads.py, loaded 2-core CPU, 2026-12-06)' if cost else ''}; see docs/speed.md "
            "\"Determinism\"")


def add_run_output_args(ap, system: str | None = None) -> None:
    """--out, --results, --device, --deterministic, --no-resume, --no-progress: the same flags, defaults and help
    for every script that trains and tests over folds or configurations (mdre.py, speech_text_mocap.py)."""
    from pathlib import Path
    ap.add_argument("--out", type=Path, default=Path("Models"), help="folder of the run folders")
    ap.add_argument("--results", type=Path, default=Path("results"), help="folder of the result files")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    add_precision_arg(ap)
    ap.add_argument("--deterministic", action="store_true", help=deterministic_help(system))
    ap.add_argument("--no-resume", action="store_true", help="start every run over")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")


# options that say where a run reads or writes, where it runs or how it is shown, not what it computes: never part
# of a name (a run may be resumed with other values of these, as the loop's NOT_IDENTITY allows)
NOT_NAMED = frozenset({"help", "root", "out", "results", "device", "no_resume", "no_progress", "threads",
                       "num_workers"})


def _name_value(value) -> str:
    """A setting's value as it can stand in a file name: a path by its last part (a model or store folder's
    name), a value longer than 24 characters by its start and a short hash of the whole."""
    import hashlib
    import re
    from pathlib import Path
    text = str(value)
    if "/" in text:
        text = Path(text).name or text
    if len(text) > 24:
        text = f"{text[:16]}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"
    return re.sub(r"[^A-Za-z0-9_.+-]", "", text.replace(",", "+"))


def settings_suffix(args, ap: argparse.ArgumentParser, *, skip=(), only=None) -> str:
    """'_lr0.0005_iter6_deterministic': every option of `ap` whose value in `args` differs from its default, in
    the parser's order, named by its first flag (a switch by its flag alone). Run folders and result files carry
    it, so runs with different settings never share a name; `skip` leaves out settings a name shows otherwise,
    `only` keeps just these. A suffix longer than 150 characters keeps its first settings and a hash of the
    whole (file names stay far below the file systems' 255)."""
    import hashlib
    parts = []
    for action in ap._actions:
        dest = action.dest
        if (not action.option_strings or dest in NOT_NAMED or dest in skip
                or (only is not None and dest not in only)):
            continue
        value = getattr(args, dest, action.default)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[0].lstrip("-")
        parts.append(flag if value is True else f"{flag}{_name_value(value)}")
    text = "_".join(parts)
    if len(text) > 150:
        kept = text[:130].rsplit("_", 1)[0]
        text = f"{kept}_h{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return f"_{text}" if text else ""


class _Parsed(BaseException):
    """Raised by a parser's parse_args inside parsed_arguments: carries what it parsed, and stops the script."""

    def __init__(self, parsed, ap):
        super().__init__()
        self.parsed, self.ap = parsed, ap  # not .args: BaseException's own


class _Parser(argparse.ArgumentParser):
    dry_run = False  # set by parsed_arguments

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if _Parser.dry_run:
            raise _Parsed(parsed, self)
        return parsed


def parsed_arguments(main, argv: list[str]) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """(arguments, parser) of a script's `main(argv)` without running it: main stops at its parse_args (the
    scripts do nothing before it but import). The benchmark names a step's outputs with the script's own parser
    and naming function this way, extra flags included. A rejected argv raises UserError with argparse's
    message."""
    import contextlib
    import io
    err = io.StringIO()
    _Parser.dry_run = True
    try:
        with contextlib.redirect_stderr(err):
            main(argv)
    except _Parsed as p:
        return p.parsed, p.ap
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        why = lines[-1].split(" error: ", 1)[-1] if lines else "arguments rejected"  # argparse's, without the prog
        raise UserError(why) from None
    finally:
        _Parser.dry_run = False
    raise UserError(f"{getattr(main, '__module__', main)}: main did not parse its arguments")


def add_allow_unfinished_arg(ap) -> None:
    """--allow-unfinished: the one flag by which a scoring script accepts the best checkpoint of a run whose
    training has not finished (engine.checkpoint.require_finished); its result file records how far it trained."""
    ap.add_argument("--allow-unfinished", action="store_true",
                    help="score a run whose training has not finished (killed, or still running); refused "
                         "without it; the result file records the steps it trained")


# ------------------------------------------------------------------ shared argument checks (issue 19.27, 19.8)

def float_at_least(low: float, why: str | None = None):
    """argparse type: a finite number >= low (e.g. `float_at_least(0, "0 is off")` for --clip)."""
    def check(text: str) -> float:
        v = _number(text, float, "a number")
        if not low <= v < float("inf"):  # also refuses NaN
            raise argparse.ArgumentTypeError(f"{v} is out of range (at least {low:g}{': ' + why if why else ''})")
        return v
    check.__name__ = f"number >= {low:g}"
    return check


def fraction(low: float = 0.0, high: float = 1.0, *, low_open: bool = True, high_open: bool = True,
             why: str | None = None):
    """argparse type: a number in the interval from low to high (open or closed at each end); the message
    says the interval, e.g. "0.99 is outside (0, 0.5]"."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(text: str) -> float:
        v = _number(text, float, f"a number in {shown}")
        inside = (low < v if low_open else low <= v) and (v < high if high_open else v <= high)
        if not inside:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"{v:g} is outside {shown}{': ' + why if why else ''}")
        return v
    check.__name__ = f"number in {shown}"
    return check


def comma_ints(low: int = 1):
    """argparse type: comma-separated whole numbers >= low, each listed once ("1,4,5" -> [1, 4, 5]); an empty
    entry ("1,,2") or a repeat ("1,1", which would count one fold twice) is refused."""
    def check(text: str) -> list[int]:
        values = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                raise argparse.ArgumentTypeError(f"{text!r} has an empty entry (write e.g. 1,2)")
            try:
                v = int(part)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{part!r} in {text!r} is not a whole number") from None
            if v < low:
                raise argparse.ArgumentTypeError(f"{v} in {text!r} is too small (at least {low})")
            if v in values:
                raise argparse.ArgumentTypeError(f"{v} is listed twice in {text!r}")
            values.append(v)
        return values
    check.__name__ = "comma-separated whole numbers"
    return check


def condition(text: str):
    """argparse type: one missing-data condition ("frames:0.2"), with features.missing's message when malformed."""
    from features.missing import parse_condition
    try:
        return parse_condition(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


condition.__name__ = "missing-data condition"


def parse_conditions(text: str | None, flag: str) -> list:
    """Comma-separated missing-data conditions of `flag` -> [Condition]; UserError naming the flag on a malformed,
    empty or repeated entry. None or "" -> []."""
    from features.missing import parse_condition
    if not text:
        return []
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise UserError(f"{flag} {text}: an empty entry (write e.g. frames:0.3,text-absent)")
        try:
            cond = parse_condition(part)
        except ValueError as e:
            raise UserError(f"{flag}: {e}") from None
        if cond in out:
            raise UserError(f"{flag} {text}: {cond} is listed twice")
        out.append(cond)
    return out


def check_conditions(conditions, flag: str, model: str, streams, kinds, why: dict | None = None,
                     training: bool = False) -> None:
    """Refuse (UserError naming the flag, the condition and the model) a missing-data condition the system does not
    simulate (`kinds`; `why` says why for some kinds) or that degrades a stream `model` does not read (`streams`,
    e.g. {"audio"} for an audio-only model): its scores would be the complete data's, reported as a measurement.
    `training` (a --train-missing condition, applied to every training utterance): also refuse an absent stream
    that leaves the model nothing to learn from. None entries (an unset flag) are skipped. Call before any work."""
    from features.missing import KIND_STREAMS
    streams = set(streams)
    for cond in conditions:
        if cond is None:
            continue
        if cond.kind not in kinds:
            reason = (why or {}).get(cond.kind, "this system does not simulate it")
            raise UserError(f"{flag} {cond}: not available for {model}: {reason} (choose from "
                            f"{', '.join(k for k in kinds if k != 'none')})")
        lacking = [s for s in KIND_STREAMS[cond.kind] if s not in streams]
        if lacking:
            fits = [k for k in kinds if k != "none" and set(KIND_STREAMS[k]) <= streams]
            raise UserError(f"{flag} {cond}: {model} has no {' or '.join(lacking)} stream (it reads "
                            f"{' + '.join(sorted(streams))}), so the condition changes nothing; conditions that "
                            f"apply: {', '.join(fits)}")
        if cond.kind == "present" and (not set(cond.modalities) <= streams or set(cond.modalities) == streams):
            raise UserError(f"{flag} {cond}: {model} reads {' + '.join(sorted(streams))}; present: names a "
                            "non-empty proper subset of those (the others absent)")
        if cond.kind == "random-missing" and len(streams) < 2:
            raise UserError(f"{flag} {cond}: {model} reads {' + '.join(sorted(streams)) or 'nothing'} only; "
                            "random-missing needs two or more modalities (one is always kept)")
        if training and cond.kind.endswith("-absent") and not streams - set(KIND_STREAMS[cond.kind]):
            raise UserError(f"{flag} {cond}: {model} reads {' + '.join(sorted(streams))} only, and {cond} would "
                            "remove it from every training utterance: nothing left to learn from")


# ------------------------------------------------------------------ the literature's missing-data protocols
PROTOCOL_RATES = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7"  # GCNet's missing rates (features.missing.RATES)


def add_protocol_args(ap, default_protocols: str = "") -> None:
    """The flags every fusion evaluation takes (issue 20, contract section 4): --protocols, --rates,
    --sweep-kinds, --sim-seeds, --bootstrap, --ci-method; `protocol_plan` checks them before any work."""
    from features.missing import PROTOCOLS, SWEEP_KINDS
    g = ap.add_argument_group("missing-data protocols and intervals")
    g.add_argument("--protocols", default=default_protocols,
                   help=f"comma-separated subset of {','.join(PROTOCOLS)}: fixed = every non-empty proper subset of "
                        "the modalities present (MMIN), random = each modality of each utterance missing with "
                        "probability p at every rate (GCNet), sweep = each --sweep-kinds kind at every rate; each "
                        f"writes <name>_<protocol>.* (default: {default_protocols or 'none'})")
    g.add_argument("--rates", default=PROTOCOL_RATES,
                   help=f"comma-separated rates of the random and sweep protocols (default {PROTOCOL_RATES})")
    g.add_argument("--sweep-kinds", default=",".join(SWEEP_KINDS),
                   help=f"kinds of the sweep (default {','.join(SWEEP_KINDS)}; only those the model's inputs allow)")
    g.add_argument("--sim-seeds", type=int_at_least(1), default=3,
                   help="simulation seeds averaged per condition, with their spread (default 3)")
    g.add_argument("--bootstrap", type=int_at_least(0), default=1000,
                   help="bootstrap resamples over test utterances for the 95%% intervals (default 1000; 0 = none)")
    g.add_argument("--ci-method", choices=("bca", "percentile"), default="bca",
                   help="bootstrap interval: bca (bias-corrected and accelerated, default) or percentile")


def protocol_plan(args, model: str, streams, kinds, why: dict | None = None) -> dict:
    """{protocol: [Condition], complete data first} of the `add_protocol_args` flags for a model reading
    `streams` and simulating `kinds`; UserError naming the flag on an unknown protocol, a bad or repeated rate, a
    kind the model cannot take. Call before any work."""
    from features.missing import PROTOCOLS, protocol_conditions
    protocols = [p.strip() for p in (args.protocols or "").split(",") if p.strip()]
    for p in protocols:
        if p not in PROTOCOLS:
            raise UserError(f"--protocols {args.protocols}: unknown protocol {p!r} (choose from "
                            f"{', '.join(PROTOCOLS)})")
    if len(set(protocols)) < len(protocols):
        raise UserError(f"--protocols {args.protocols}: a protocol is listed twice")
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        raise UserError(f"--rates {args.rates}: comma-separated numbers in [0, 1], e.g. 0,0.3,0.6") from None
    if any(not 0 <= r <= 1 for r in rates) or len(set(rates)) < len(rates):
        raise UserError(f"--rates {args.rates}: distinct numbers in [0, 1]")
    sweep_kinds = [k.strip().lower() for k in args.sweep_kinds.split(",") if k.strip()]
    if "sweep" in protocols:
        if not sweep_kinds or len(set(sweep_kinds)) < len(sweep_kinds):
            raise UserError(f"--sweep-kinds {args.sweep_kinds}: distinct kinds, e.g. frames,bursts,words,wer")
        check_conditions(parse_conditions(",".join(f"{k}:0.5" for k in sweep_kinds), "--sweep-kinds"), "--sweep-kinds",
                         model, streams, kinds, why)
    plan = {}
    for p in protocols:
        try:
            plan[p] = protocol_conditions(p, streams, rates=sorted(rates), kinds=sweep_kinds if p == "sweep" else ())
        except ValueError as e:
            raise UserError(f"--protocols {p}: {e}") from None
        check_conditions(plan[p], "--sweep-kinds" if p == "sweep" else "--protocols", model, streams, kinds, why)
    return plan
