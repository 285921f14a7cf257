"""Reads the benchmark's config: corpora, systems with their variants and cross-corpus pairs, checked whole.

A small YAML or JSON file naming the corpora, the systems with their variants, and the cross-corpus pairs. Read
once, checked whole: an unknown system, key or corpus is an error naming the
file and the key, before anything runs. Paths are relative to the working directory, as on every CLI."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SYSTEMS = ("chunk-lstm", "deep-emo-cluster", "audio-text", "mdre", "speech-text-mocap")
MSP_STYLE = ("chunk-lstm", "deep-emo-cluster", "audio-text")  # CCC of Act / Dom / Val (dimensional labels)
IEMOCAP_STYLE = ("mdre", "speech-text-mocap")  # WA / UA / macro-F1 of a corpus's classes
# the corpus kinds each style of system trains on: dimensional labels (a manifest's are rescaled to 1-7 by its
# reader) or categorical ones; EmoBox rows are categorical only
DIMENSIONAL_KINDS = ("msp-podcast", "manifest")
# the splits a system trains, validates and tests on, per corpus kind with named splits (the readers' names:
# MSP-Podcast's test1, a manifest's or an EmoBox fold's test); a corpus's `splits` overrides them
DEFAULT_SPLITS = {"msp-podcast": {"train": "train", "dev": "dev", "test": "test1"},
                  "manifest": {"train": "train", "dev": "dev", "test": "test"},
                  "emobox": {"train": "train", "dev": "dev", "test": "test"}}
SPLIT_ROLES = ("train", "dev", "test")
# cross-corpus scoring: system -> the corpus kind its models are scored on (MSP-Podcast's dimensional models on
# IEMOCAP's ratings with their testing scripts; IEMOCAP's four-class models on MSP-Podcast's categories with
# cross_corpus.py) and the default split there
CROSS_CORPUS = {"chunk-lstm": ("iemocap", "all"), "deep-emo-cluster": ("iemocap", "all"),
                "mdre": ("msp-podcast", "test1"), "speech-text-mocap": ("msp-podcast", "test1")}

# the speech-text-mocap configurations a variant trains when it names none: on IEMOCAP, and on any other corpus
# (motion capture is read from IEMOCAP's MOCAP_rotated/head/hand files only)
STM_CONFIGS = ["speech", "text", "mocap", "speech+text", "speech+mocap", "text+mocap", "speech+text+mocap"]
STM_SPLIT_CONFIGS = ["speech", "text", "speech+text"]

# the missing-data protocols of a fusion system (the evaluation scripts' flags of the same names: --protocols,
# --rates, --sweep-kinds, --sim-seeds, --bootstrap, --ci-method); on the system entry, or on a variant (mdre,
# speech-text-mocap: each variant is its own command), the variant's value winning
PROTOCOL_KEYS = {"protocols", "rates", "sweep_kinds", "sim_seeds", "bootstrap", "ci_method"}
# the keys a system's entry and each of its variants may hold (values checked by the scripts themselves)
SYSTEM_KEYS = {
    "chunk-lstm": {"attributes"},
    "deep-emo-cluster": {"attributes"},
    # missing_rates / missing_conditions: the older rate sweep of evaluate_missing.py (--rates, --conditions),
    # still run, as its protocol "conditions"; `protocols` are the literature's protocols
    "audio-text": {"speech_model", "text_model", "missing_rates", "missing_conditions"} | PROTOCOL_KEYS,
    "mdre": {"protocol", "folds"} | PROTOCOL_KEYS,
    "speech-text-mocap": {"speech_model", "text_model", "loso"} | PROTOCOL_KEYS,
}
# any system: its seed (or `seeds`, the training seeds a variant is run with, each its own run), and the config's
# deterministic flag overridden
COMMON_KEYS = {"seed", "seeds", "deterministic"}
VARIANT_KEYS = {
    "chunk-lstm": {"atten", "iterations", "batch", "lr", "val_every", "extra", "seeds"},
    "deep-emo-cluster": {"mt", "epochs", "batch", "clusters", "unlabelled", "unlabelled_split", "extra", "seeds"},
    "audio-text": {"chunking", "iterations", "batch", "lr", "val_every", "train_missing", "extra", "seeds"},
    "mdre": {"model", "iterations", "batch", "lr", "val_every", "patience", "missing", "extra", "seeds"}
    | PROTOCOL_KEYS,
    "speech-text-mocap": {"configs", "iterations", "batch", "lr", "val_every", "patience", "dev_share", "d_model",
                          "heads", "layers", "ff", "fusion_hidden", "missing", "extra", "seeds"} | PROTOCOL_KEYS,
}


class ConfigError(ValueError):
    pass


@dataclass
class Corpus:
    name: str
    kind: str  # one of corpora.KINDS
    root: Path  # the corpus folder; a manifest's file; EmoBox's data/<corpus> folder
    synthetic: dict | None  # {n, seed}: made by make_demo_corpus.py when absent
    fold: int | None = None  # EmoBox: the fold read
    splits: dict = field(default_factory=dict)  # train / dev / test -> the corpus's split name (None: not passed)

    @property
    def home(self) -> Path:
        """The folder the corpus's derived data go in (feature stores, NormTerms, the demo generator's summary):
        the scripts' own rule (features.extract.corpus_folder: a manifest's folder, else the root)."""
        from features.extract import corpus_folder
        return corpus_folder(self.kind, self.root)

    @property
    def features(self) -> Path:
        """Where the corpus's feature stores go (features.extract.features_folder, every script's default)."""
        from features.extract import features_folder
        return features_folder(self.kind, self.root)

    def flags(self, default: str | None = None) -> list:
        """The flags a script reads the corpus with: --corpus KIND --root ROOT [--fold N]; --corpus left out when
        KIND is the script's `default` (so a command on the corpus it was written for reads as it always did)."""
        return [*(["--corpus", self.kind] if self.kind != default else []), "--root", self.root,
                *(["--fold", self.fold] if self.fold is not None else [])]

    def split_flags(self, **flags: str) -> list:
        """The flags naming the splits a script uses ({role: flag}, role train / dev / test), e.g.
        split_flags(train="--train-split", dev="--val-split"); a role whose split is None is left out, and so is
        MSP-Podcast's default split for it (every script's default: train, dev, test1)."""
        msp = DEFAULT_SPLITS["msp-podcast"]
        return [x for role, flag in flags.items() for x in (flag, self.splits.get(role))
                if self.splits.get(role) is not None and not (self.kind == "msp-podcast" and self.splits[role] == msp[role])]


@dataclass
class System:
    system: str
    corpus: str
    settings: dict
    variants: list[dict]  # each with a unique "name"


@dataclass
class Config:
    path: Path
    name: str
    data: Path  # models in <data>/Models, results in <data>/results
    report: Path
    deterministic: bool
    fresh_on_conflict: bool  # a run folder started with other settings is started over instead of refused
    corpora: dict[str, Corpus]
    systems: list[System]
    cross_corpus: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    @property
    def models(self) -> Path:
        return self.data / "Models"

    @property
    def results(self) -> Path:
        return self.data / "results"


def _load(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as e:  # the parser's own message says where
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the config must be a mapping with corpora and systems")
    return doc


def _unknown(path: Path, where: str, got: dict, allowed: set) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise ConfigError(f"{path}: {where}: unknown key(s) {', '.join(extra)} (allowed: {', '.join(sorted(allowed))})")


def _whole(low: int):
    def check(v) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= low
        return None if ok else f"a whole number >= {low}"
    return check


def _number(low: float, high: float | None = None, *, open_low: bool = True):
    def check(v) -> str | None:
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
              and (v > low if open_low else v >= low) and (high is None or v < high))
        return None if ok else (f"a number {'>' if open_low else '>='} {low}" + (f" and < {high}" if high else ""))
    return check


def _one_of(*choices):
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


def _rate(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
    return None if ok else "a rate in [0, 1]"


def _flag(v) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _text(v) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _strings(v) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "a list of strings"


def _condition(v) -> str | None:
    from features.missing import parse_condition
    try:
        parse_condition(v)
    except ValueError as e:
        return str(e)
    return None


def _conditions(v) -> str | None:
    return _strings(v) or next((why for why in map(_condition, v) if why), None)


def _distinct(check, what: str):
    """A non-empty list of distinct values each passing `check` (None when fine, else why not)."""
    def checks(v) -> str | None:
        if not isinstance(v, list) or not v or len({repr(x) for x in v}) < len(v):
            return f"a non-empty list of distinct {what}"
        return next((f"{x!r} is not {why}" for x in v for why in [check(x)] if why), None)
    return checks


def sweep_kinds() -> tuple:
    """The condition kinds a rate sweep can vary (those with a rate, but random-missing: the random protocol)."""
    from features.missing import KIND_STREAMS
    return tuple(k for k in KIND_STREAMS if KIND_STREAMS[k] and not k.endswith("-absent"))


def _choices() -> dict:
    """Value checks per key (imported here: the systems' own lists of models and strategies)."""
    from features.missing import PROTOCOLS
    from models.chunk_lstm import ATTENTIONS
    from models.deep_emo_cluster import VARIANTS
    from systems.audio_text import STRATEGIES
    from systems.mdre import KINDS
    from systems.speech_text_mocap import CONFIGURATIONS
    return {
        "seed": _whole(0), "deterministic": _flag, "loso": _flag,
        "protocol": lambda v: None if v in ("random5", "loso") else "one of random5, loso (MDRE's folds" + (
            "; the missing-data protocols go in `protocols: [...]`)" if v in PROTOCOLS else ")"),
        "seeds": _distinct(_whole(0), "training seeds (whole numbers >= 0)"),
        "protocols": _distinct(_one_of(*PROTOCOLS), "protocols, each one of " + ", ".join(PROTOCOLS)),
        "rates": _distinct(_rate, "rates in [0, 1]"),
        "sweep_kinds": _distinct(_one_of(*sweep_kinds()), "condition kinds, each one of " + ", ".join(sweep_kinds())),
        "sim_seeds": _whole(1), "bootstrap": _whole(0), "ci_method": _one_of("bca", "percentile"),
        "attributes": lambda v: None if isinstance(v, list) and v and set(v) <= {"Act", "Dom", "Val"}
        else "a non-empty list of Act, Dom, Val",
        "folds": lambda v: None if (isinstance(v, list) and v and len(set(v)) == len(v)
                                    and all(_whole(1)(k) is None and k <= 5 for k in v))
        else "a list of distinct fold numbers 1..5 (both protocols have five folds)",
        "speech_model": _text, "text_model": _text,
        "missing_rates": lambda v: None if isinstance(v, list) and v and all(_rate(r) is None for r in v)
        else "a list of rates in [0, 1]",
        "missing_conditions": lambda v: _strings(v) or next(
            (f"{k!r} is not one of frames, bursts, words, words+audio" for k in v
             if k not in ("frames", "bursts", "words", "words+audio")), None),
        "atten": _one_of(*ATTENTIONS), "mt": _one_of(*VARIANTS), "chunking": _one_of(*STRATEGIES),
        "model": _one_of(*KINDS), "configs": lambda v: _strings(v) or next(
            (f"{c!r} is not one of {', '.join(CONFIGURATIONS)}" for c in v if c not in CONFIGURATIONS), None)
        or (None if v else "at least one configuration"),
        "iterations": _whole(1), "epochs": _whole(1), "batch": _whole(2), "clusters": _whole(2),
        "unlabelled": _whole(0), "unlabelled_split": _text, "lr": _number(0), "val_every": _whole(1),
        "patience": _whole(0), "dev_share": _number(0, 1), "d_model": _whole(4), "heads": _whole(1),
        "layers": _whole(1), "ff": _whole(1), "fusion_hidden": _whole(1), "train_missing": _condition,
        "missing": _conditions, "extra": _strings,
    }


def _check_values(path: Path, where: str, entry: dict) -> None:
    checks = _choices()
    for key, value in entry.items():
        why = checks[key](value) if key in checks else None
        if why:
            raise ConfigError(f"{path}: {where}: {key}: {value!r} is not valid ({why})")


def _check_applies(path: Path, where: str, system: str, v: dict) -> None:
    """Missing-data conditions the model has a stream for (a condition without one would print complete-data
    numbers as a measurement)."""
    from features.missing import parse_condition
    conds = [("missing", c) for c in v.get("missing") or []]
    conds += [("train_missing", v["train_missing"])] if v.get("train_missing") else []
    for key, text in conds:
        kind = parse_condition(text).kind
        if system == "mdre":
            from features.missing import KIND_STREAMS
            from systems.mdre import USES_AUDIO, USES_TEXT
            model = v.get("model", "MDREA")
            audio, words = "audio" in KIND_STREAMS[kind], "text" in KIND_STREAMS[kind]
            why = ("needs word timings, which IEMOCAP's reader does not give" if kind == "words+audio"
                   else "MDRE models have no motion capture" if kind == "mocap-absent"
                   else f"{model} reads no audio" if audio and model not in USES_AUDIO
                   else f"{model} reads no text" if words and model not in USES_TEXT else None)
        else:
            from systems.speech_text_mocap import CONDITION_KINDS
            why = None if kind in CONDITION_KINDS else f"not available for speech-text-mocap ({', '.join(CONDITION_KINDS)})"
        if why:
            raise ConfigError(f"{path}: {where}: {key}: {text!r}: {why}")


def protocol_options(settings: dict, v: dict) -> dict:
    """The protocol keys of a variant: the system entry's, each overridden by the variant's own."""
    return {k: val for k, val in {**settings, **v}.items() if k in PROTOCOL_KEYS}


def training_seeds(settings: dict, v: dict) -> list[int]:
    """The training seeds a variant runs with: its `seeds`, else the system's `seeds`, else [the system's seed]."""
    return list(v.get("seeds") or settings.get("seeds") or [settings.get("seed", 0)])


def _protocol_model(system: str, v: dict) -> tuple[str, set, tuple, dict]:
    """(the model the protocols score, the streams it reads, the condition kinds the system simulates, why some
    kinds are refused): the scripts' own lists."""
    if system == "mdre":
        from systems.mdre import CONDITION_KINDS, REFUSED_KINDS, streams
        model = v.get("model", "MDREA")
        return model, streams(model), CONDITION_KINDS, REFUSED_KINDS
    if system == "speech-text-mocap":  # the widest configuration the variant trains (speech_text_mocap.py runs
        # each protocol on every configuration it applies to)
        from systems.speech_text_mocap import CONDITION_KINDS, REFUSED_KINDS, streams
        widest = max(v.get("configs", STM_CONFIGS), key=lambda c: len(streams(c)))
        return f"configuration {widest}", streams(widest), CONDITION_KINDS, REFUSED_KINDS
    from features.missing import KINDS
    from systems.audio_text import MODALITIES
    return "the audio-text model", set(MODALITIES), KINDS, {}


def _check_protocols(path: Path, where: str, system: str, settings: dict, v: dict) -> None:
    """The protocol keys fit together and the model: rates only with a rated protocol, sweep kinds only with a
    sweep, each protocol's conditions ones the model has the streams for (engine.cli.check_conditions, the
    scripts' own check), so a config never reaches a refused command."""
    from engine.cli import UserError, check_conditions
    from features.missing import protocol_conditions
    opts = protocol_options(settings, v)
    protocols = opts.get("protocols") or []
    listed = bool(v.get("missing") or any(settings.get(k) is not None for k in ("missing_rates", "missing_conditions")))
    uses = {"rates": bool({"random", "sweep"} & set(protocols)), "sweep_kinds": "sweep" in protocols,
            **{k: bool(protocols) or listed for k in ("sim_seeds", "bootstrap", "ci_method")}}
    for key, used in uses.items():
        if key in opts and not used:
            rated = key in ("rates", "sweep_kinds")
            raise ConfigError(f"{path}: {where}: {key} is set but no protocol uses it (protocols: "
                              f"{', '.join(protocols) or 'none'}{'' if rated else ', no missing'})")
    if "rates" in opts and settings.get("missing_rates") is not None:
        raise ConfigError(f"{path}: {where}: rates and missing_rates: one --rates flag scores both; give rates only")
    if not protocols:
        return
    model, streams, kinds, why = _protocol_model(system, v)
    for protocol in protocols:
        try:
            conds = protocol_conditions(protocol, sorted(streams), rates=opts.get("rates", [0.5]),
                                        kinds=opts.get("sweep_kinds", ()))
            check_conditions(conds, "protocols", model, streams, kinds, why)
        except (ValueError, UserError) as e:
            key = "sweep_kinds" if protocol == "sweep" else "protocols"
            raise ConfigError(f"{path}: {where}: {key}: {protocol}: {e}") from None


def variant_name(system: str, v: dict) -> str:
    """A variant's name when the config gives none: the setting that tells the variants apart."""
    key = {"chunk-lstm": "atten", "deep-emo-cluster": "mt", "audio-text": "chunking", "mdre": "model"}.get(system)
    if key and key in v:
        return str(v[key]) + (f"-{v['train_missing']}" if v.get("train_missing") else "")
    return "default"


def load_config(path: str | Path) -> Config:
    """The benchmark config at `path`, every key and value checked (ConfigError naming the place otherwise)."""
    path = Path(path)
    doc = _load(path)
    _unknown(path, "top level", doc, {"name", "data", "report", "deterministic", "fresh_on_conflict", "corpora",
                                       "systems", "cross_corpus"})
    for key, check in (("deterministic", _flag), ("fresh_on_conflict", _flag), ("name", _text), ("data", _text),
                       ("report", _text)):
        if key in doc and check(doc[key]):
            raise ConfigError(f"{path}: top level: {key}: {doc[key]!r} is not valid ({check(doc[key])})")
    corpora = _corpora(path, doc)
    systems, seen = _systems(path, doc, corpora)
    cross = _cross_corpus(path, doc, corpora, systems, seen)
    for c in corpora.values():  # after the keys and values: paths last
        _check_root(path, c)
    data = Path(doc.get("data", "benchmark"))
    return Config(path=path, name=str(doc.get("name", path.stem)), data=data,
                  report=Path(doc.get("report", data / "report")), deterministic=bool(doc.get("deterministic", False)),
                  fresh_on_conflict=bool(doc.get("fresh_on_conflict", False)), corpora=corpora, systems=systems,
                  cross_corpus=cross, raw=doc)


def _corpora(path: Path, doc: dict) -> dict:
    """{name: Corpus} of the config's corpora, keys and values checked (the roots are checked last)."""
    from corpora import KINDS
    corpora = {}
    for name, c in (doc.get("corpora") or {}).items():
        if not isinstance(c, dict) or c.get("kind") not in KINDS or "root" not in c:
            raise ConfigError(f"{path}: corpus {name!r} needs kind (one of {', '.join(KINDS)}) and root")
        kind = c["kind"]
        _unknown(path, f"corpus {name!r}", c, {"kind", "root", "synthetic", "fold", "splits"})
        synthetic = c.get("synthetic")
        if synthetic is not None:
            if kind == "emobox":
                raise ConfigError(f"{path}: corpus {name!r}: synthetic: there is no synthetic EmoBox corpus "
                                  "(make_demo_corpus.py writes msp-podcast, iemocap and manifest corpora)")
            if not isinstance(synthetic, dict):
                raise ConfigError(f"{path}: corpus {name!r}: synthetic: a mapping with n and seed")
            _unknown(path, f"corpus {name!r} synthetic", synthetic, {"n", "seed"})
            for key, low in (("n", 20), ("seed", 0)):
                if key in synthetic and _whole(low)(synthetic[key]):
                    raise ConfigError(f"{path}: corpus {name!r}: synthetic.{key}: {synthetic[key]!r} is not valid "
                                      f"({_whole(low)(synthetic[key])})")
            if kind == "manifest":
                from corpora.synth.manifest import MANIFEST
                if Path(c["root"]).name != MANIFEST:
                    raise ConfigError(f"{path}: corpus {name!r}: root {c['root']}: a synthetic manifest corpus is "
                                      f"written as <folder>/{MANIFEST}; give that path")
        fold = c.get("fold")
        if (fold is None) != (kind != "emobox"):
            raise ConfigError(f"{path}: corpus {name!r}: fold: " + (
                "an EmoBox corpus needs the fold it is read with (fold: 1, ...)" if kind == "emobox"
                else f"only EmoBox corpora have folds (this is {kind})"))
        if fold is not None and _whole(1)(fold):
            raise ConfigError(f"{path}: corpus {name!r}: fold: {fold!r} is not valid ({_whole(1)(fold)})")
        corpora[name] = Corpus(name, kind, Path(c["root"]), synthetic, fold, _splits(path, name, kind, c))
    return corpora


def _splits(path: Path, name: str, kind: str, c: dict) -> dict:
    """The corpus's train / dev / test split names: its kind's defaults (DEFAULT_SPLITS), each overridden by the
    config's `splits` (a name, or null: that flag not passed, so the script's own default applies)."""
    given = c.get("splits")
    if given is None:
        return dict(DEFAULT_SPLITS.get(kind, {}))
    if kind not in DEFAULT_SPLITS:
        raise ConfigError(f"{path}: corpus {name!r}: splits: {kind} has no named splits (its folds are computed)")
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: corpus {name!r}: splits: a mapping of train, dev, test to split names")
    _unknown(path, f"corpus {name!r} splits", given, set(SPLIT_ROLES))
    for role, value in given.items():
        if value is not None and _text(value):
            raise ConfigError(f"{path}: corpus {name!r}: splits.{role}: {value!r} is not valid (a split name, or "
                              "null for the script's default)")
    return {**DEFAULT_SPLITS[kind], **given}


def _check_root(path: Path, c: Corpus) -> None:
    """The corpus is where the config says (a manifest's file, every other kind's folder; an EmoBox fold's files,
    without whose valid file the dev split is not passed unless the config names one)."""
    if c.synthetic:
        return
    if c.kind == "manifest":
        if not c.root.is_file():
            raise ConfigError(f"{path}: corpus {c.name!r}: root {c.root} is not a file (a manifest corpus's root is "
                              "its CSV or JSONL manifest, or give synthetic: {n, seed} for a demo corpus made there)")
        return
    if not c.root.is_dir():
        raise ConfigError(f"{path}: corpus {c.name!r}: root {c.root} is not a folder (give the corpus's folder, "
                          "or synthetic: {n, seed} for a demo corpus made there)")
    if c.kind == "emobox":
        from corpora.emobox import find_fold_files
        from corpora.records import CorpusError
        try:
            files = find_fold_files(c.root, c.fold)
        except CorpusError as e:
            raise ConfigError(f"{path}: corpus {c.name!r}: {e}") from None
        if c.splits.get("dev") == "dev" and "dev" not in files:
            c.splits["dev"] = None  # EmoBox gives this fold no validation part: the scripts' own choice


def _systems(path: Path, doc: dict, corpora: dict) -> tuple[list, set]:
    """(the config's Systems, the (system, variant name) pairs they hold), every setting checked."""
    systems, seen = [], set()
    for k, s in enumerate(doc.get("systems") or []):
        where = f"systems[{k}]"
        if not isinstance(s, dict) or s.get("system") not in SYSTEMS:
            raise ConfigError(f"{path}: {where}: system must be one of {', '.join(SYSTEMS)}, got "
                              f"{s.get('system') if isinstance(s, dict) else s!r}")
        name = s["system"]
        _unknown(path, where, s, {"system", "corpus", "variants"} | SYSTEM_KEYS[name] | COMMON_KEYS)
        _check_values(path, f"{where} ({name})", {k2: v2 for k2, v2 in s.items() if k2 not in ("system", "corpus",
                                                                                             "variants")})
        if "seed" in s and "seeds" in s:
            raise ConfigError(f"{path}: {where} ({name}): seed and seeds: give one (seeds: [0, 1, 2] runs each)")
        _check_corpus(path, f"{where} ({name})", name, s, corpora)
        variants = [_variant(path, f"{where}.variants[{j}]", name, s, _without_mocap(path, f"{where}.variants[{j}]",
                                                                                  name, corpora[s["corpus"]], v), seen)
                    for j, v in enumerate(s.get("variants") or [{}])]
        settings = {k2: v2 for k2, v2 in s.items() if k2 not in ("system", "corpus", "variants")}
        systems.append(System(name, s["corpus"], settings, variants))
    if not systems:
        raise ConfigError(f"{path}: no systems to run")
    return systems, seen


def _check_corpus(path: Path, where: str, name: str, s: dict, corpora: dict) -> None:
    """The system's corpus is one of the config's and has the labels the system learns: dimensional ones for
    the CCC systems (MSP-Podcast, a manifest), classes for the categorical ones (any kind); IEMOCAP's fold
    protocols only on IEMOCAP (a corpus with named splits is one fold: its train, dev and test splits)."""
    corpus = corpora.get(s.get("corpus"))
    if corpus is None:
        raise ConfigError(f"{path}: {where}: corpus must name a corpus of the config ({', '.join(corpora) or 'none'}),"
                          f" got {s.get('corpus')!r}")
    if name in MSP_STYLE and corpus.kind not in DIMENSIONAL_KINDS:
        why = ("EmoBox rows are categorical only (no arousal / dominance / valence labels)" if corpus.kind == "emobox"
               else "IEMOCAP's dimensional ratings serve cross-corpus scoring (cross_corpus:), not training")
        raise ConfigError(f"{path}: {where}: corpus {corpus.name!r} is {corpus.kind}: {name} learns dimensional "
                          f"labels, from a {' or '.join(DIMENSIONAL_KINDS)} corpus; {why}")
    fold_keys = [k for k in ("protocol", "folds") if k in s] + (["loso"] if s.get("loso") else [])
    if corpus.kind != "iemocap" and fold_keys:
        raise ConfigError(f"{path}: {where}: {', '.join(fold_keys)}: IEMOCAP's fold protocols; corpus "
                          f"{corpus.name!r} ({corpus.kind}) is one fold: its train, dev and test splits")


def _without_mocap(path: Path, where: str, name: str, corpus: Corpus, v):
    """A speech-text-mocap variant on a corpus other than IEMOCAP: its configurations default to those without
    motion capture (STM_SPLIT_CONFIGS), and one that names a motion-capture configuration is refused."""
    if name != "speech-text-mocap" or corpus.kind == "iemocap" or not isinstance(v, dict):
        return v
    if "configs" not in v:
        return {**v, "configs": list(STM_SPLIT_CONFIGS)}
    from systems.speech_text_mocap import CONFIGURATIONS, streams
    mocap = [c for c in v["configs"] if c in CONFIGURATIONS and "mocap" in streams(c)] if isinstance(
        v["configs"], list) else []
    if mocap:
        raise ConfigError(f"{path}: {where} ({name}): configs: {', '.join(mocap)}: motion capture is read from "
                          f"IEMOCAP's files only; corpus {corpus.name!r} is {corpus.kind} (use "
                          f"{', '.join(STM_SPLIT_CONFIGS)})")
    return v


def _variant(path: Path, where: str, name: str, s: dict, v, seen: set) -> dict:
    """One variant of system `name` checked and named (`seen` gets its (system, name); a second one is refused)."""
    if not isinstance(v, dict):
        raise ConfigError(f"{path}: {where} ({name}): a mapping of settings, got {v!r}")
    _unknown(path, where, v, {"name"} | VARIANT_KEYS[name])
    vwhere = f"{where} ({name} {v.get('name') or variant_name(name, v)})"
    _check_values(path, vwhere, v)
    _check_applies(path, vwhere, name, v)
    _check_protocols(path, vwhere, name, s, v)
    v = {**v, "name": str(v.get("name") or variant_name(name, v))}
    if (name, v["name"]) in seen:
        raise ConfigError(f"{path}: {where.rsplit('.', 1)[0]}: two variants of {name} named {v['name']!r}; give each "
                          "a name")
    seen.add((name, v["name"]))
    return v


def _cross_corpus(path: Path, doc: dict, corpora: dict, systems: list, seen: set) -> list[dict]:
    """The config's cross-corpus entries, each naming a trained variant and a corpus of the other kind."""
    cross = []
    for k, c in enumerate(doc.get("cross_corpus") or []):
        where = f"cross_corpus[{k}]"
        _unknown(path, where, c, {"system", "variant", "corpus", "split", "configuration"})
        if c.get("system") not in CROSS_CORPUS:
            raise ConfigError(f"{path}: {where}: cross-corpus scoring exists for {', '.join(CROSS_CORPUS)}, "
                              f"got {c.get('system')!r}")
        if (c["system"], str(c.get("variant"))) not in seen:
            raise ConfigError(f"{path}: {where}: no variant {c.get('variant')!r} of {c['system']} in systems")
        kind, split = CROSS_CORPUS[c["system"]]
        (trained,) = [corpora[x.corpus] for x in systems if x.system == c["system"]]
        if c["system"] in IEMOCAP_STYLE and trained.kind != "iemocap":
            raise ConfigError(f"{path}: {where}: {c['system']} is trained on {trained.name!r} ({trained.kind}): "
                              "cross-corpus scoring maps IEMOCAP's four classes onto MSP-Podcast's categories, so "
                              "it needs a model trained on an iemocap corpus")
        if c.get("corpus") not in corpora or corpora[c["corpus"]].kind != kind:
            raise ConfigError(f"{path}: {where}: corpus must name an {kind} corpus of the config ({c['system']} "
                              f"models are scored on {kind})")
        c = {**c, "variant": str(c["variant"]), "split": str(c.get("split", split))}
        if c["system"] == "speech-text-mocap":
            (s,) = [x for x in systems if x.system == c["system"]]
            (v,) = [x for x in s.variants if x["name"] == c["variant"]]
            conf = c.setdefault("configuration", "speech+text+mocap")
            if conf not in v.get("configs", STM_CONFIGS) or conf in ("mocap", "face", "head", "hand"):
                raise ConfigError(f"{path}: {where}: configuration {conf!r}: one the variant trains, with speech "
                                  "or text (MSP-Podcast has no motion capture)")
        elif "configuration" in c:
            raise ConfigError(f"{path}: {where}: configuration is for speech-text-mocap only")
        cross.append(c)
    return cross
