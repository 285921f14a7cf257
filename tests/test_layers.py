"""The packages form layers, and a module imports only its own layer or lower ones (top-level imports and the
imports inside functions alike), so each layer can be read, tested and reused without the ones above it:

    utils, metrics  ->  corpora  ->  features  ->  corpora.synth  ->  models  ->  engine  ->  systems  ->  report
    ->  the scripts and bench/ (anything)

features stands above corpora: corpus readers (plain records, no features) are below the extractors, which
read a corpus to know what to extract (features.extract's corpus input), so that import is downward and stays
where it is. corpora.synth, the synthetic corpus generator of the demo and the tests, is no reader: it writes
its WAVs with features.audio and nothing below the scripts imports it, so it stands just above features.
Imports of a module named in a string (importlib) are not seen here: engine.experiment and report/ load the
scripts that way on purpose."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = [("utils", "metrics"), ("corpora",), ("features",), ("corpora.synth",), ("models",), ("engine",),
          ("systems",), ("report",)]
# today's upward imports that another change must remove (then delete the entry here: a stale one fails too)
KNOWN = {}


def layer(module: str) -> int | None:
    """The layer of a module of ours by its longest matching package; None for the scripts, bench/ and
    third-party modules, which the rule does not constrain."""
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (i, name)
    return None if best is None else best[0]


def shared_modules() -> dict[str, Path]:
    paths = [REPO / "utils.py", REPO / "metrics.py"]
    for package in ("corpora", "features", "models", "engine", "systems", "report"):
        paths += sorted((REPO / package).rglob("*.py"))
    return {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p for p in paths}


def imported(module: str, path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (relative imports resolved against its package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module] if node.module else base))
    return names


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for module, path in shared_modules().items():
        mine = layer(module)
        for name in imported(module, path):
            theirs = layer(name)
            if theirs is not None and theirs > mine:
                found.add((module, name))
    return found


def test_no_module_imports_a_higher_layer():
    found = upward_imports()
    new = sorted(found - KNOWN.keys())
    assert not new, "upward imports (module -> what it imports):\n" + "\n".join(
        f"  {m} (layer {LAYERS[layer(m)][0]}) -> {n} (layer {LAYERS[layer(n)][0]})" for m, n in new)
    assert KNOWN.keys() <= found, f"fixed, remove from KNOWN: {sorted(KNOWN.keys() - found)}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from systems.common import write_result\n    from . import x\n")
    assert imported("engine.m", path) == {"systems.common", "engine"}
    assert layer("corpora.synth.speech") > layer("features.audio") > layer("corpora.iemocap")
