"""The README and docs/ as a newcomer follows them: every relative link opens an existing page (and heading), every
command line names an existing script and flags that script's --help lists, every `ser.` name the Python
examples use exists, and each demo table lives on exactly one page (where demo.py's check finds it)."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """A page without its fenced code blocks (a `[x](y)` there is code, not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", prose(page.read_text(encoding="utf-8")), re.M)}


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text(encoding="utf-8"))) if not re.match(r"\w+:", t)]


def test_every_page_is_linked_from_the_readme():
    linked = {(ROOT / t.split("#")[0]).resolve() for t in links(ROOT / "README.md")}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_open_an_existing_page_and_heading(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert broken == []


def command_lines(page: Path) -> list[str]:
    """The `python X.py ...` and `torchrun ... X.py ...` lines of a page: its shell blocks (continuation lines
    joined) and its inline code."""
    text = page.read_text(encoding="utf-8")
    lines = [line for lang, body in FENCE.findall(text) if lang in ("", "sh", "bash")
             for line in body.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`([^`\n]+)`", prose(text))
    return [line.split("#")[0] for line in lines if re.match(r"(python|torchrun)\s+\S", line.strip())]


def script_and_flags(line: str) -> tuple[str, list[str]]:
    """('training.py', ['-iter', '-batch', ...]) of a command line; flags before the script are torchrun's."""
    words = line.split()
    i = next(i for i, w in enumerate(words) if w.endswith(".py"))
    flags = [w.strip("[]").split("=")[0] for w in words[i + 1:]]
    return words[i], [f for f in flags if re.fullmatch(r"--?[A-Za-z][\w-]*", f)]


def commands() -> dict[str, set[str]]:
    """{script: flags} over every command line of the README and docs/."""
    out = {}
    for page in PAGES:
        for line in command_lines(page):
            script, flags = script_and_flags(line)
            out.setdefault(script, set()).update(flags)
    return out


def test_the_quick_start_names_the_seed_commands():
    lines = command_lines(ROOT / "README.md")
    for script in ("prediction_process.py", "feat_opensmile.py", "norm_para.py", "training.py", "testing.py",
                   "main.py", "mdre.py", "speech_text_mocap.py", "benchmark.py"):
        assert any(script_and_flags(line)[0] == script for line in lines), script
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = re.findall(r"^make (\w+)", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    assert sorted(targets) == ["demo", "test"] and all(re.search(rf"^{t}:", makefile, re.M) for t in targets)


HELP = """import contextlib, io, json, runpy, sys
out = {}
for script in sys.argv[1:]:
    text = io.StringIO()
    sys.argv, sys.path[0] = [script, "--help"], str(__import__("pathlib").Path(script).resolve().parent)
    with contextlib.redirect_stdout(text):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            code = e.code
        else:
            code = "no exit"
    out[script] = [code, text.getvalue()]
print(json.dumps(out))
"""


def test_every_command_names_an_existing_script_and_its_flags():
    """Each script's own `--help` (run as `python X.py --help` runs it; all in one process, so torch is imported
    once) lists every flag the pages give it."""
    wanted = commands()
    assert [s for s in wanted if not (ROOT / s).is_file()] == []
    done = subprocess.run([sys.executable, "-c", HELP, *wanted], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    helps = json.loads(done.stdout.splitlines()[-1])
    assert {s: code for s, (code, _) in helps.items() if code not in (0, None)} == {}
    unknown = [f"{script} {flag}" for script, flags in wanted.items() for flag in sorted(flags)
               if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[script][1])]
    assert unknown == []


def test_the_python_examples_use_names_ser_has():
    used = {name for page in PAGES for lang, body in FENCE.findall(page.read_text(encoding="utf-8"))
            if lang == "python" for name in re.findall(r"\bser\.(\w+)", body)}
    assert used, "the README shows the Python API"
    tree = ast.parse((ROOT / "ser.py").read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    defined |= {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert sorted(used - defined) == []


def test_each_demo_table_lives_on_one_page_where_the_demo_check_finds_it():
    from demo import figure_page, readme_mismatches
    sections = ("Demo results", "Demo missing data", "Demo IEMOCAP", "Demo speech text mocap", "Demo cross-corpus",
                "Demo reverse cross-corpus")
    for section in sections:
        holding = [p.name for p in PAGES if f"**{section}**" in p.read_text(encoding="utf-8")]
        assert holding == ["results.md"], (section, holding)
        assert figure_page(section) == ROOT / "docs" / "results.md"
        assert readme_mismatches(section, {"no such row": "x"}) == ["no such row: missing -> x"]


def test_the_readme_python_example_runs_as_written(tmp_path):
    """The README's Python example, unchanged, in a folder laid out as `make demo` leaves it (a small demo
    MSP-Podcast corpus with its IS13 store, a few of its WAVs to predict): it predicts and trains."""
    import feat_opensmile
    from corpora.synth.msp_podcast import write_msp_podcast
    corpus = tmp_path / "demo_data" / "msp-podcast"
    write_msp_podcast(corpus, n=40, seed=0, release="1.10", progress=False)
    assert feat_opensmile.main(["--corpus", "msp-podcast", "--root", str(corpus), "--no-progress"]) == 0
    wavs = tmp_path / "demo_data" / "wavs_to_predict"
    wavs.mkdir()
    for wav in sorted((corpus / "Audios").glob("*.wav"))[:4]:
        shutil.copy(wav, wavs / wav.name)
    code = "\n".join(body for lang, body in FENCE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
                     if lang == "python")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "python training.py" in done.stdout and "MSP-PODCAST_" in done.stdout
    assert (tmp_path / "models_demo" / "LSTM_iter20_batch8_ChunkSeq2One_GatedVec_Act" / "model.safetensors").is_file()
