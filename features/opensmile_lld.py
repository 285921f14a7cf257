"""The chunk-level attention LSTM's input features: openSMILE IS13 ComParE frame-level LLDs + deltas, 130-d.

32 ms window / 16 ms hop (62.5 frames/s), through the `opensmile` Python package, in memory.

Columns: the 65 LLDs then their 65 delta-regression coefficients, in openSMILE's concatenation order
(`LLD_NAMES`; the reference sheet's order, which the published v1.6 NormTerm statistics follow).

Configuration. The package ships `is09-13/IS13_ComParE.conf` with the stock framing (60 ms / 10 ms for the
pitch / voice-quality / ZCR framer `is13_frame60`, 20 ms / 10 ms for the energy / spectral / MFCC framer
`is13_frame25`). The original author ran a copy with both framers set to frameSize 0.032 / frameStep 0.016.
openSMILE's config files are under audEERING's research licence (non-commercial; modified copies may only be
passed on under the same terms and marked as modified), so this repository does not carry a copy: the edited
config is generated at run time from the installed package's own files into a cache folder
(`$SER_OPENSMILE_CACHE`, else `$XDG_CACHE_HOME/ser-toolkit/opensmile`, else `~/.cache/...`, else the temp
folder), with string edits that must each match exactly once:
  * both framers: frameSize = 0.032, frameStep = 0.016 (nothing else in the LLD part changes; the package's
    backward-compatibility settings `zeroPadSymmetric = 0` and `useBrokenJitterThresh = 1` stay, as in the
    openSMILE 2.3.0 the author used);
  * the `../shared/*.conf.inc` include defaults and the two core includes get absolute paths into the package;
  * two files are written: `IS13_ComParE_32ms.conf` (the plain edited copy, functionals included, as the
    author's), and `IS13_ComParE_32ms_lld.conf`, which the extractor runs: the functionals include and their
    concatenation are dropped (they only read the LLD levels, so the LLDs are bit-identical, and the run is
    ~20-25 % cheaper), and one cVectorConcat joins the `lld` and `lld_de` levels into a level `lld_lldde`, so a
    single openSMILE run yields all 130 columns. openSMILE's reader stops at the shorter level (`lld_de` has
    2 more end-of-input rows than `lld`), i.e. the two are aligned by truncating to the common length — the
    same numbers as two plain calls (`feature_level='lld'` and `'lld_de'`) cut to the shorter one
    (tests/test_opensmile_lld.py checks this).

Frames: T = floor((N - 512) / 256) + 2 for N >= 512 samples (measured with opensmile 2.6.0: one row more than
the "full frames" count floor((N-512)/256)+1; the last row is openSMILE's end-of-input row). Shorter input
gives no frame; `min_seconds` = 0.032 makes the runner list it as too short.

Deltas: cDeltaRegression with deltawin 2 (HTK regression, sum_k k (x[t+k]-x[t-k]) / 10, edge frames repeated).
For the 6 "nz" LLDs (F0final, voicingFinalUnclipped, jitterLocal, jitterDDP, shimmerLocal, logHNR) the config
sets onlyInSegments=1: pairs touching a zero are skipped, and openSMILE (the same code in older releases) then
divides by a normaliser that keeps growing over the run, so those 6 delta columns shrink towards 0 over an
utterance.
That is what the published features contain too; it is kept, not fixed.

Input: 16 kHz mono float32 in [-1, 1). The package converts to int16 as int16(x * 32768) (truncation), which
recovers a 16-bit WAV's samples exactly: a PCM-16 16 kHz file reaches openSMILE as the same int16 samples that
SMILExtract would read from it. Samples at or beyond full scale (e.g. after resampling) are clipped first: the
package's conversion would wrap them around.

Output dtype: float32, (T, 130) per waveform. openSMILE computes and hands out float32 (FLOAT_DMEM), so
float64 would only double the store; float32 holds the largest values (spectral variance ~1e6) with 7
significant digits. Never store these as float16 (max 65504).

mat_time_column: True. `mat_io.py export` writes the author's `Audio_data` (T, 131) layout with column 0 the
frame start time k * 0.016 s, like openSMILE's ARFF `frameTime` (openSMILE itself labels its end-of-input row
with the previous row's time; every reader drops column 0, so this does not matter).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SR = 16000
FRAME_SIZE = 0.032  # seconds: 512 samples
FRAME_STEP = 0.016  # seconds: 256 samples -> 62.5 frames/s
SOURCE_CONFIG = "is09-13/IS13_ComParE.conf"
SOURCE_LLD_INC = "is09-13/IS13_ComParE_core.lld.conf.inc"
SOURCE_FUNC_INC = "is09-13/IS13_ComParE_core.func.conf.inc"
FRAMERS = ("is13_frame60", "is13_frame25")
CONFIG_FILE = "IS13_ComParE_32ms_lld.conf"  # what the extractor runs
PLAIN_CONFIG_FILE = "IS13_ComParE_32ms.conf"  # the plain edited copy (functionals included), for comparisons
LEVEL = "lld_lldde"  # our concatenation of openSMILE's `lld` and `lld_de` levels
_GENERATOR_VERSION = "1"  # bump when the edits below change

LLD_BASE = (
    ["F0final_sma", "voicingFinalUnclipped_sma", "jitterLocal_sma", "jitterDDP_sma", "shimmerLocal_sma",
     "logHNR_sma", "audspec_lengthL1norm_sma", "audspecRasta_lengthL1norm_sma", "pcm_RMSenergy_sma",
     "pcm_zcr_sma"]
    + [f"audSpec_Rfilt_sma[{i}]" for i in range(26)]
    + ["pcm_fftMag_fband250-650_sma", "pcm_fftMag_fband1000-4000_sma"]
    + [f"pcm_fftMag_spectralRollOff{p}_sma" for p in ("25.0", "50.0", "75.0", "90.0")]
    + [f"pcm_fftMag_{s}_sma" for s in ("spectralFlux", "spectralCentroid", "spectralEntropy", "spectralVariance",
                                       "spectralSkewness", "spectralKurtosis", "spectralSlope", "psySharpness",
                                       "spectralHarmonicity")]
    + [f"mfcc_sma[{i}]" for i in range(1, 15)]
)


def delta_name(name: str) -> str:
    """openSMILE's name of a delta column: 'x_sma' -> 'x_sma_de', 'mfcc_sma[3]' -> 'mfcc_sma_de[3]'."""
    base, bracket, rest = name.partition("[")
    return f"{base}_de{bracket}{rest}"


LLD_NAMES = LLD_BASE + [delta_name(n) for n in LLD_BASE]
assert len(LLD_BASE) == 65 and len(LLD_NAMES) == 130
SEGMENT_DELTA_COLUMNS = tuple(range(65, 71))  # deltas computed with onlyInSegments=1 (see the module docstring)


def frame_count(n_samples: int) -> int:
    """Rows openSMILE returns for `n_samples` at 16 kHz with this config (0 when too short)."""
    n_frame, n_hop = round(FRAME_SIZE * SR), round(FRAME_STEP * SR)
    return (n_samples - n_frame) // n_hop + 2 if n_samples >= n_frame else 0


def frame_times(n_frames: int) -> np.ndarray:
    """Frame start times in seconds, k * 0.016 (the .mat time column)."""
    return np.arange(n_frames, dtype=np.float64) * FRAME_STEP


# ------------------------------------------------------------------------------------------------ config

def package_config_root() -> Path:
    import opensmile

    return Path(opensmile.__file__).resolve().parent / "core" / "config"


def default_cache_dir() -> Path:
    if os.environ.get("SER_OPENSMILE_CACHE"):
        return Path(os.environ["SER_OPENSMILE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ser-toolkit" / "opensmile"


def _sub_once(pattern: str, repl: str, text: str, what: str, flags=re.M) -> str:
    out, n = re.subn(pattern, lambda m: repl, text, flags=flags)
    if n != 1:
        raise RuntimeError(f"editing openSMILE's IS13 ComParE config: expected one {what}, found {n} "
                           "(the installed opensmile package's config differs from the one this code knows)")
    return out


def _set_framer(text: str, section: str) -> str:
    head = f"[{section}:cFramer]"
    start = text.find(head)
    if start < 0 or text.find(head, start + 1) >= 0:
        raise RuntimeError(f"editing openSMILE's IS13 ComParE config: section {head} not found exactly once")
    m = re.compile(r"^\[", re.M).search(text, start + len(head))
    end = m.start() if m else len(text)
    body = text[start:end]
    body = _sub_once(r"^[ \t]*frameSize[ \t]*=.*$", f"frameSize = {FRAME_SIZE}", body, f"frameSize in {head}")
    body = _sub_once(r"^[ \t]*frameStep[ \t]*=.*$", f"frameStep = {FRAME_STEP}", body, f"frameStep in {head}")
    return text[:start] + body + text[end:]


def _notice(source: str, version: str, changes: str) -> str:
    return (f"; MODIFIED COPY, generated by features/opensmile_lld.py from {source} of the opensmile {version}\n"
            f"; Python package (audEERING research licence, see the package's LICENSE). Not the original file.\n"
            f"; Changes: {changes}\n;\n")


def _render(root: Path, out: Path, version: str) -> dict[str, str]:
    """File name -> text of the edited configs for the package config folder `root`, to be written in `out`."""
    shared = (root / "shared").as_posix()
    lld = (root / SOURCE_LLD_INC).read_text(encoding="utf-8")
    for framer in FRAMERS:
        lld = _set_framer(lld, framer)
    lld, n = re.subn(r"\{\.\./shared/", "{" + shared + "/", lld)
    if n == 0:
        raise RuntimeError("editing openSMILE's IS13 ComParE config: no ../shared/ include defaults found")
    lld = _notice(SOURCE_LLD_INC, version, f"{' and '.join(FRAMERS)}: frameSize = {FRAME_SIZE}, frameStep = "
                  f"{FRAME_STEP}; ../shared/ include paths made absolute.") + lld

    main = (root / SOURCE_CONFIG).read_text(encoding="utf-8")
    lld_inc = out / "IS13_ComParE_32ms_core.lld.conf.inc"
    main = _sub_once(r"^\\\{IS13_ComParE_core\.lld\.conf\.inc\}[ \t]*$", "\\{" + lld_inc.as_posix() + "}", main,
                     "LLD include")
    func_line = r"^\\\{IS13_ComParE_core\.func\.conf\.inc\}[ \t]*$"
    plain = _sub_once(func_line, "\\{" + (root / SOURCE_FUNC_INC).as_posix() + "}", main, "functionals include")
    plain = _notice(SOURCE_CONFIG, version, "includes the edited LLD part (32 ms / 16 ms framers); include paths "
                    "made absolute.") + plain

    lean = _sub_once(func_line, "", main, "functionals include")
    lean = _sub_once(r"^instance\[is13_funcconcat\]\.type[ \t]*=[ \t]*cVectorConcat[ \t]*\n", "", lean,
                     "functionals concat instance")
    lean = _sub_once(r"^\[is13_funcconcat:cVectorConcat\][^\[\\]*", "", lean, "functionals concat section")
    joined = (f"[componentInstances:cComponentManager]\ninstance[{LEVEL}_concat].type=cVectorConcat\n\n"
              f"[{LEVEL}_concat:cVectorConcat]\nreader.dmLevel = lld;lld_de\nwriter.dmLevel = {LEVEL}\n"
              "includeSingleElementFields = 1\n\n")
    lean = _sub_once(r"^(?=\\\{\\cm\[sink\{)", joined, lean, "sink include")
    lean = _notice(SOURCE_CONFIG, version, "includes the edited LLD part (32 ms / 16 ms framers); functionals "
                   f"removed; level '{LEVEL}' = lld;lld_de added; include paths made absolute.") + lean
    return {lld_inc.name: lld, PLAIN_CONFIG_FILE: plain, CONFIG_FILE: lean}


def source_digest() -> str:
    """sha256 (16 hex) of the package's IS13 ComParE source config files: the numbers depend on them."""
    root = package_config_root()
    h = hashlib.sha256()
    for rel in (SOURCE_CONFIG, SOURCE_LLD_INC, SOURCE_FUNC_INC):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def edited_config(cache_dir: str | Path | None = None, *, plain: bool = False) -> Path:
    """Path of the generated config (`CONFIG_FILE`, or with plain=True `PLAIN_CONFIG_FILE`), written once into
    a folder of the cache named after the package version and the hash of its sources and of these edits."""
    import opensmile

    root = package_config_root()
    version = getattr(opensmile, "__version__", "unknown")
    key = hashlib.sha256(f"{_GENERATOR_VERSION}|{root}|{source_digest()}".encode()).hexdigest()[:12]
    out = write_to_cache(f"IS13_ComParE_32ms-opensmile{version}-{key}", lambda out: _render(root, out, version),
                         cache_dir)
    return out / (PLAIN_CONFIG_FILE if plain else CONFIG_FILE)


def write_to_cache(folder: str, render, cache_dir: str | Path | None = None) -> Path:
    """<cache>/<folder> holding the files `render(that folder)` returns ({name: text}), each written (atomically:
    parallel shards may generate it at the same time) unless it already holds that text. The cache is
    `cache_dir`, else the first writable of default_cache_dir() and the temp folder."""
    from utils import atomic_write_text

    fallback = Path(tempfile.gettempdir()) / "ser-opensmile"
    candidates = [Path(cache_dir)] if cache_dir else [default_cache_dir(), fallback]
    last_error = None
    for base in candidates:
        out = base / folder
        try:
            for name, text in render(out).items():
                path = out / name
                if not (path.is_file() and path.read_text(encoding="utf-8") == text):
                    atomic_write_text(path, text)
            return out
        except OSError as e:  # e.g. a read-only home: try the next place
            last_error = e
    raise OSError(f"cannot write the openSMILE config {folder} into {candidates}: {last_error}")


# ------------------------------------------------------------------------------------------------ extractor

class OpenSmileLLD:
    """Extractor (see features/extract.py): list of 16 kHz float32 waveforms -> list of (T, 130) float32."""

    name = "OpenSmile_lld_IS13ComParE"
    input = "audio"
    norm_pooling = "frames"  # NormTerm over every Train frame (chunk LSTM)
    dims = 130
    frame_rate = SR / round(FRAME_STEP * SR)  # 62.5 rows per second
    min_seconds = FRAME_SIZE  # openSMILE gives no frame for less than one window
    mat_key = "Audio_data"
    mat_time_column = True  # .mat export: column 0 = frame start time k * 0.016 s, as openSMILE's frameTime
    columns = LLD_NAMES

    def __init__(self, cache_dir: str | Path | None = None, threads: int = 1):
        """`threads` > 1 runs the waveforms of one call in parallel (openSMILE releases the GIL while it runs;
        results are identical and in input order)."""
        import opensmile

        self.config_path = edited_config(cache_dir)
        # built once: construction parses the config to read the column names (each call still runs a
        # fresh openSMILE instance inside the package, which is the plain library cost)
        self._smile = opensmile.Smile(feature_set=str(self.config_path), feature_level=LEVEL, sampling_rate=SR,
                                      loglevel=0)
        names = list(self._smile.feature_names)
        if names != LLD_NAMES:
            bad = [(i, a, b) for i, (a, b) in enumerate(zip(names, LLD_NAMES)) if a != b][:5]
            raise RuntimeError(f"openSMILE config {self.config_path} gives {len(names)} columns that differ from "
                               f"the expected IS13 ComParE LLD order (first differences: {bad})")
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.params = {
            "feature_set": "IS13_ComParE LLD + delta (openSMILE), 65 + 65",
            "source_config": SOURCE_CONFIG,
            "config_file": CONFIG_FILE,
            "edits": f"{', '.join(FRAMERS)}: frameSize {FRAME_SIZE}, frameStep {FRAME_STEP}; functionals removed; "
                     f"level {LEVEL} = lld;lld_de (truncated to the common length)",
            "opensmile_version": getattr(opensmile, "__version__", "unknown"),
            "source_config_sha256": source_digest(),
            "sr": SR, "frame_size_s": FRAME_SIZE, "frame_step_s": FRAME_STEP,
            "frame_size_samples": round(FRAME_SIZE * SR), "frame_step_samples": round(FRAME_STEP * SR),
            "frames": "floor((N - 512) / 256) + 2",
            "delta": "cDeltaRegression deltawin=2 (nz group: onlyInSegments=1)",
            "input_scaling": "int16(clip(x) * 32768)",
            "columns": "LLD_NAMES: 65 LLDs then 65 deltas",
            "mat_time_column": "frame start time k * 0.016 s",
        }

    def one(self, x: np.ndarray) -> np.ndarray:
        """(T, 130) float32 for one 16 kHz mono waveform."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a mono waveform, got shape {x.shape}")
        if len(x) < round(FRAME_SIZE * SR):
            raise ValueError(f"too short for one {FRAME_SIZE * 1000:.0f} ms frame ({len(x)} samples)")
        if x.max(initial=0.0) >= 1.0 or x.min(initial=0.0) < -1.0:
            x = np.clip(x, -1.0, 32767 / 32768)  # the package's int16 conversion would wrap these around
        y = self._smile(x, SR)  # (channels, features, frames) float32
        return np.ascontiguousarray(y[0].T)

    def __call__(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        if self._pool is None or len(batch) < 2:
            return [self.one(x) for x in batch]
        return list(self._pool.map(self.one, batch))
