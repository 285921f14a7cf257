"""The MDRE text side: tokeniser, word vocabulary, GloVe / random embedding matrices.

Reference: `shared/reference/mdre.md` sections 5 (text), 10 and 12 (quirks 9 and 16).

Tokenisation (`tokenize`)
    The original runs NLTK's `word_tokenize` on the raw transcript and lower-cases the tokens. `word_tokenize`
    is two steps: Punkt sentence splitting with the pretrained English model (`punkt_tab` data), then NLTK's
    Treebank-style word tokenizer on every sentence. The Punkt data is a separate download that this toolkit
    cannot assume, so the sentence step runs NLTK's own `PunktSentenceTokenizer` with three of the four tables
    of the English model built in below (abbreviations, collocations, sentence starters; copied from
    `nltk_data/tokenizers/punkt_tab/english/`, checked against the upstream files' SHA-256) and an empty fourth
    table, the orthographic context (236 KB of per-word capitalisation statistics).

    Why the sentence step matters: the word tokenizer splits off only the LAST period of its input, so
    without it "Yeah. I know." gives `yeah.` (one token) instead of `yeah` `.`; every mid-utterance sentence end
    of IEMOCAP would create a second vocabulary entry for the word before it.

    Exact difference from `word_tokenize` with the real model: Punkt consults the orthographic table only for a
    period after (a) one of its abbreviations (mr, mrs, dr, st, ok, vs, ...), (b) a single-letter initial
    ("J.", "A."), (c) a number ("25."). With the table empty, here:
      * (a) + a capitalised word: a sentence break only when that word is one of Punkt's 39 sentence starters
        (I, The, But, He, It, ...). The real model also breaks before a word it has seen in lower case but never
        capitalised mid-sentence: "Ok. Let's go." may give `ok` `.` `let` there, gives `ok.` `let` here
        ("OK. I know." -> `ok` `.` `i` in both; "Mr. Smith" -> `mr.` `smith` in both);
      * (b) + a capitalised word: never a break here; the real model may break (rare);
      * (b) or (c) + a lower-case word: never a break here; the real model breaks before a word it has seen in
        lower case at a sentence start and never capitalised (rare).
    Everything else (every other period, ?, !, ellipses, quotes, brackets, contractions) is identical: the
    sentence splitter is the same algorithm on the same tables, and the word tokenizer is the one
    `word_tokenize` calls. `tests/test_vocab.py` checks the wiring against `nltk.word_tokenize` itself running
    on a `punkt_tab` folder holding these tables.

    The original ran some NLTK of 2018 (Python 2.7, NLTK <= 3.4); which one is not recorded. Releases differ in
    a few word-tokenizer rules; the one visible on IEMOCAP-like text is a leading apostrophe before a word,
    split by current NLTK (`'cause` -> `'` `cause`) and possibly not by the original's.

Vocabulary (`Vocabulary`, `build_vocabulary`)
    Index 0 = `_PAD_`, 1 = `_UNK_`, then the tokens in order of first appearance over the texts given. The
    original's order was Python-2 dict iteration order, reproducible only from its `dic.pkl` (quirk 16); the
    order decides only which embedding row (and so which random initial vector) a token gets. By default the
    vocabulary is built from the TRAINING texts only (the original built it from all 10,039 transcripts, test
    and non-4-class ones included: quirk 9); `faithful=True` (the scripts' `--faithful-vocab`) restores that.

Embeddings (`load_glove`, `random_embedding`)
    GloVe rows as the original: the vector of the token where the file has it (case-sensitive lookup of the
    lower-cased token), zeros for `_PAD_`, i.i.d. Uniform(-0.25, 0.25) for every other row the file lacks
    (`_UNK_` included). Without GloVe: 100-d N(0, 0.01) as the sheet writes it.
"""
from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD, UNK = "_PAD_", "_UNK_"
PAD_ID, UNK_ID = 0, 1
MAX_LEN = 128  # the original's N_SEQ_MAX_NLP; its longest utterance has exactly 128 tokens
GLOVE_DIM = 300
RANDOM_DIM = 100
GLOVE_UNIFORM = 0.25  # missing rows ~ Uniform(-0.25, 0.25)
RANDOM_STD = 0.01

# ------------------------------------------------------------------------------------------ tokenisation

# Tables of NLTK's pretrained English Punkt model (nltk_data, tokenizers/punkt_tab/english/), verbatim.
# abbrev_types.txt (619 bytes, sha256 92a3e070f43d9b4c5534758ca40ad7343b04e7e29bfe0c2eb658a39445a4f779);
# the entry ". . " is in the upstream file as well.
_PUNKT_ABBREVIATIONS = (
    "ct m.j t a.c n.h ms p.a.m dr pa p.m u.k st dec u.s.a lt g.k adm p h.m ga tenn yr sen n.c j.j d.h s.g inc vs "
    "s.p.a a.t n feb sr jan s.a.y n.y col g.f c.o.m.b d ft va r.k e.f chg r.i a.g minn a.h k n.j m l.f f.j gen "
    "i.m.s s.a aug j.p okla m.d.c ltd oct s vt r.a j.c ariz w.w b.v ore h w.r e.h mrs cie corp w n.v a.d r.j ok "
    "e.m w.c ill nov u.s prof conn u.s.s.r mg f.g ph.d g calif messrs h.f wash tues sw bros u.n l wis mr sep d.c "
    "ave e.l co s.s reps c r.t h.c r wed a.s v fla jr r.h c.v m.b.a rep a.a e c.i.t l.a b.f j.b d.w j.k ala f "
    "w.va sept mich n.m j.r l.p s.c colo fri a.m g.d kan maj ky a.m.e n.d t.j cos nev").split() + [". . "]
# sent_starters.txt (241 bytes, sha256 f3f8535483e1dba487241b764945168123bca3209a9645e59acd1225dc76edac)
_PUNKT_SENT_STARTERS = (
    "most he since so both these it nevertheless this indeed however instead under similarly some though while "
    "when in despite although nonetheless thus there if the nor separately moreover but they yet many according "
    "sales among meanwhile even i").split()
# collocations.tab (594 bytes, sha256 8e2da1225e4dd2cc9dba261ee231ccb134859e21b46006e7f472c5ee269af0cf)
_PUNKT_COLLOCATIONS = [tuple(pair.split("/")) for pair in (
    "##number##/international ##number##/rj ##number##/commodities ##number##/cooper b/stewart "
    "##number##/genentech ##number##/wedgestone i/toussie ##number##/pepper j/fialka o/ludcke ##number##/insider "
    "##number##/aes i/magnin ##number##/credit ##number##/corrections ##number##/financing ##number##/henley "
    "##number##/business ##number##/pay-fone b/wigton b/edelman b/levine ##number##/leisure b/smith j/walter "
    "##number##/pegasus ##number##/dividend j/aron ##number##/review ##number##/abreast ##number##/who "
    "##number##/letters ##number##/colgate ##number##/cbot ##number##/notable ##number##/zimmer").split()]


@functools.lru_cache(maxsize=1)
def _tokenizers():
    """(sentence splitter, word tokenizer), built once. NLTK is imported here, not at module import."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(_PUNKT_ABBREVIATIONS)
    params.sent_starters = set(_PUNKT_SENT_STARTERS)
    params.collocations = set(_PUNKT_COLLOCATIONS)
    # params.ortho_context stays empty: the one documented difference from the real model
    return PunktSentenceTokenizer(params), NLTKWordTokenizer()


def split_sentences(text: str) -> list[str]:
    """The sentence step of `word_tokenize` (Punkt, English tables built in; see the module docstring)."""
    return _tokenizers()[0].tokenize(text)


def tokenize(text: str) -> list[str]:
    """MDRE tokens of one transcript: NLTK `word_tokenize` (sentence split, then the Treebank-style word
    tokenizer per sentence), then lower-casing. `[LAUGHTER]` -> `[`, `laughter`, `]`; punctuation is kept;
    `don't` -> `do`, `n't`; double quotes become `` and ''. An empty or blank text gives []."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize needs a str, got {type(text).__name__}")
    sentences, words = _tokenizers()
    return [tok.lower() for sent in sentences.tokenize(text) for tok in words.tokenize(sent)]


# ------------------------------------------------------------------------------------------ vocabulary


class TruncationWarning(UserWarning):
    """A token sequence was longer than the index matrix's width and lost its tail."""


def _as_tokens(text: str | Sequence[str]) -> list[str]:
    """A str is tokenised with `tokenize`; a sequence of str is taken as tokens already."""
    if isinstance(text, str):
        return tokenize(text)
    tokens = list(text)
    if not all(isinstance(t, str) for t in tokens):
        raise TypeError("expected a transcript (str) or a sequence of tokens (str)")
    return tokens


class Vocabulary:
    """Token <-> index map: 0 = `_PAD_`, 1 = `_UNK_`, then the tokens in a fixed order.

    `Vocabulary(tokens)` takes the full list as `to_json` gives it (specials first); `Vocabulary.build(texts)`
    makes one from transcripts. Immutable once made.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r} (got {tokens[:2]!r})")
        if not all(isinstance(t, str) for t in tokens):
            raise ValueError("vocabulary entries must be strings")
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            dup = next(t for i, t in enumerate(tokens) if index[t] != i)
            raise ValueError(f"duplicate vocabulary entry {dup!r}")
        self._tokens = tokens
        self._index = index

    @classmethod
    def build(cls, texts: Iterable[str | Sequence[str]]) -> "Vocabulary":
        """Every distinct token of `texts` (transcripts, or token lists) in order of first appearance."""
        seen = {PAD: None, UNK: None}  # dicts keep insertion order
        for text in texts:
            for tok in _as_tokens(text):
                seen.setdefault(tok, None)
        return cls(list(seen))

    # -- lookups
    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __getitem__(self, index: int) -> str:
        return self._tokens[index]

    def __iter__(self):
        return iter(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other._tokens == self._tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries: {self._tokens[2:7]!r}...)"

    @property
    def tokens(self) -> list[str]:
        """All entries in index order (a copy)."""
        return list(self._tokens)

    def index(self, token: str) -> int:
        """The token's index; `UNK_ID` (1) for a token not in the vocabulary."""
        return self._index.get(token, UNK_ID)

    # -- encoding
    def encode(self, tokens: str | Sequence[str], max_len: int = MAX_LEN) -> np.ndarray:
        """(max_len,) int64: the indices left-aligned, 0 (`_PAD_`) after; unknown tokens -> 1 (`_UNK_`).

        A str is tokenised first. A sequence longer than `max_len` keeps its first `max_len` tokens and raises
        a `TruncationWarning` naming both lengths. The sequence length the models use is the position of the
        first 0 (`max_len` if none), i.e. min(len(tokens), max_len); `encode_batch` returns it.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1 (got {max_len})")
        tokens = _as_tokens(tokens)
        if len(tokens) > max_len:
            warnings.warn(f"{len(tokens)} tokens cut to {max_len}: {' '.join(tokens[:8])} ...",
                          TruncationWarning, stacklevel=2)
        out = np.zeros(max_len, dtype=np.int64)
        ids = [self._index.get(t, UNK_ID) for t in tokens[:max_len]]
        out[: len(ids)] = ids
        return out

    def encode_batch(self, texts: Iterable[str | Sequence[str]],
                     max_len: int = MAX_LEN) -> tuple[np.ndarray, np.ndarray]:
        """((N, max_len) int64 index matrix, (N,) int64 lengths = min(tokens, max_len)); one
        `TruncationWarning` for the whole batch if any row was cut."""
        rows, lengths, cut = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            for i, text in enumerate(texts):
                tokens = _as_tokens(text)
                rows.append(self.encode(tokens, max_len))
                lengths.append(min(len(tokens), max_len))
                if len(tokens) > max_len:
                    cut.append((i, len(tokens)))
        if cut:
            warnings.warn(f"{len(cut)} of {len(rows)} sequence(s) cut to {max_len} tokens "
                          f"(first: row {cut[0][0]}, {cut[0][1]} tokens)", TruncationWarning, stacklevel=2)
        matrix = np.stack(rows) if rows else np.zeros((0, max_len), dtype=np.int64)
        return matrix, np.asarray(lengths, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of an index row, stopping at the first `_PAD_`."""
        out = []
        for i in ids:
            if int(i) == PAD_ID:
                break
            out.append(self._tokens[int(i)])
        return out

    # -- (de)serialisation
    def to_json(self) -> list[str]:
        """The entries in index order, a JSON-ready list (put it in a checkpoint's config as is)."""
        return list(self._tokens)

    @classmethod
    def from_json(cls, data: str | Sequence[str]) -> "Vocabulary":
        """Inverse of `to_json`; also takes that list serialised as a JSON string."""
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, list):
            raise ValueError(f"a vocabulary is stored as a JSON list of tokens (got {type(data).__name__})")
        return cls(data)


def build_vocabulary(train_texts: Iterable[str | Sequence[str]],
                     all_texts: Iterable[str | Sequence[str]] | None = None,
                     faithful: bool = False) -> Vocabulary:
    """The vocabulary of a fold.

    Default: from `train_texts` only, so no test word gets an index of its own (test words unseen in
    training map to `_UNK_`); `all_texts` is then ignored. `faithful=True` (`--faithful-vocab`): as the
    original, from `all_texts`, every transcript of the corpus (quirk 9); the training texts are read after
    them, so a training token missing from `all_texts` is still added at the end.
    """
    if not faithful:
        return Vocabulary.build(train_texts)
    if all_texts is None:
        raise ValueError("faithful=True builds the vocabulary from every transcript: pass all_texts")
    return Vocabulary.build([*all_texts, *train_texts])


# ------------------------------------------------------------------------------------------ embeddings


class EmbeddingFileError(ValueError):
    """A word-vector file that cannot be read as GloVe text; the message names the file (and line)."""


@dataclass(frozen=True)
class GloveCoverage:
    """How many vocabulary tokens (the two specials not counted) the vector file had. The sheet's "423 of
    3,747 entries not in GloVe" is counted over all entries; whether its 423 includes the two specials is not
    stated."""
    path: str
    found: int
    tokens: int  # len(vocab) - 2
    missing: tuple[str, ...]  # in index order

    @property
    def ratio(self) -> float:
        return self.found / self.tokens if self.tokens else 1.0

    def __str__(self) -> str:
        return (f"{self.path}: {self.found} of {self.tokens} vocabulary tokens found ({100 * self.ratio:.1f}%), "
                f"{len(self.missing)} random")


def _float_row(fields: list[bytes], path: Path, lineno: int) -> np.ndarray:
    try:
        row = np.array([float(x) for x in fields], dtype=np.float32)
    except ValueError:
        bad = next(x for x in fields if not _is_float(x))
        raise EmbeddingFileError(f"{path}: line {lineno}: {bad[:40]!r} is not a number") from None
    if not np.isfinite(row).all():
        raise EmbeddingFileError(f"{path}: line {lineno}: non-finite value in the vector")
    return row


def _is_float(x: bytes) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True


def load_glove(path: str | os.PathLike, vocab: Vocabulary | Sequence[str], dim: int = GLOVE_DIM,
               seed: int = 0, *, progress: bool = False) -> tuple[np.ndarray, GloveCoverage]:
    """(V, dim) float32 matrix aligned with `vocab` (a Vocabulary or its full token list, specials first), and
    the coverage (`str(coverage)` is a one-line report for the log).

    Row i = the file's vector of token i where the file has it (exact, case-sensitive match); `_PAD_` -> zeros;
    every other row (`_UNK_` included) -> i.i.d. Uniform(-0.25, 0.25). The uniform values of all V rows are
    drawn up front from `np.random.default_rng(seed)`, so a row's random vector depends on the seed and its
    index only. The file (GloVe text: a word, then `dim` space-separated numbers per line) is streamed and
    only the vocabulary's vectors are kept, so glove.840B (5.6 GB) costs V x dim floats of memory. A line with
    more than dim + 1 fields is a token containing spaces (glove.840B has some): its last `dim` fields are the
    vector. Every line's field count is checked; the numbers are parsed on the lines that are kept. The first
    occurrence of a duplicated word wins. A word2vec-style header line (`<count> <dim>`) is skipped.

    Errors (EmbeddingFileError, naming the file and the line): fewer than dim + 1 fields, a non-number in a
    kept vector, a file whose vectors are not `dim`-dimensional, a zip archive (unzip it first).
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1 (got {dim})")
    path = Path(path)
    tokens = vocab.tokens if isinstance(vocab, Vocabulary) else Vocabulary(vocab).tokens  # validates the list
    matrix = np.random.default_rng(seed).uniform(-GLOVE_UNIFORM, GLOVE_UNIFORM,
                                                 size=(len(tokens), dim)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    wanted = {t.encode("utf-8"): i for i, t in enumerate(tokens) if i > UNK_ID}
    wanted_first = {t.split(b" ", 1)[0] for t in wanted}  # a line's first field, before the full split
    found: set[int] = set()
    size = path.stat().st_size  # FileNotFoundError names the path
    from tqdm import tqdm

    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=path.name,
                                     disable=not progress) as bar:
        if f.read(4) == b"PK\x03\x04":
            raise EmbeddingFileError(f"{path}: a zip archive; unzip it and pass the .txt file")
        f.seek(0)
        pending = 0  # bytes read since the last bar update (updating per line costs time on 2.2M lines)
        for lineno, raw in enumerate(f, 1):
            pending += len(raw)
            if pending >= 1 << 24:
                bar.update(pending)
                pending = 0
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            n_fields = line.count(b" ") + 1
            if lineno == 1:
                head = line.split(b" ")
                if len(head) == 2 and all(x.isdigit() for x in head):  # word2vec header: count, dim
                    if int(head[1]) != dim:
                        raise EmbeddingFileError(f"{path}: header says {int(head[1])}-d vectors, expected {dim}")
                    continue
                if n_fields != dim + 1 and all(_is_float(x) for x in head[1:]):
                    raise EmbeddingFileError(f"{path}: line 1 holds a {n_fields - 1}-d vector, expected {dim} "
                                             f"(dimension mismatch: pass dim={n_fields - 1} or another file)")
            if n_fields < dim + 1:
                raise EmbeddingFileError(f"{path}: line {lineno}: {n_fields - 1} values after the word, "
                                         f"expected {dim} (malformed line)")
            if line.split(b" ", 1)[0] not in wanted_first:
                continue
            fields = line.split(b" ")
            word = b" ".join(fields[:-dim])
            i = wanted.get(word)
            if i is None or i in found:
                continue
            matrix[i] = _float_row(fields[-dim:], path, lineno)
            found.add(i)
        bar.update(pending)
    missing = tuple(t for i, t in enumerate(tokens) if i > UNK_ID and i not in found)
    return matrix, GloveCoverage(str(path), len(found), max(len(tokens) - 2, 0), missing)


def random_embedding(vocab_size: int, dim: int = RANDOM_DIM, seed: int = 0, *, std: float = RANDOM_STD,
                     zero_pad: bool = True) -> np.ndarray:
    """(vocab_size, dim) float32, i.i.d. N(0, std^2) with std = 0.01: the text encoder's initial embedding
    without GloVe (the sheet's "random N(0, 0.01)", read as TF's `stddev=0.01`).

    The `_PAD_` row is zeroed by default, as in the GloVe matrix; the original's random matrix has no special
    row. It makes no difference to the models: padded positions lie beyond the sequence length, so the GRU
    never reads them and the row gets no gradient.
    """
    if vocab_size < 2 or dim < 1:
        raise ValueError(f"need vocab_size >= 2 (the specials) and dim >= 1 (got {vocab_size}, {dim})")
    out = np.random.default_rng(seed).normal(0.0, std, size=(vocab_size, dim)).astype(np.float32)
    if zero_pad:
        out[PAD_ID] = 0.0
    return out
