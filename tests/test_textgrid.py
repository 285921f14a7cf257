"""corpora.textgrid on real-format TextGrid files: Praat long/short text formats, UTF-16/UTF-8-BOM/Latin-1/CRLF,
point tiers, MFA output, empty tiers, malformed and truncated files; the tier-0 and empty-mark rules."""
import re

import pytest
import textgrid

import corpora.textgrid as ctg
from corpora.records import CorpusError
from corpora.textgrid import Interval, MalformedTextGrid, read_textgrid, read_words, write_textgrid

# As Praat writes it ("Save as text file"): trailing spaces, item/interval labels, full-precision times.
PRAAT_LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0 
xmax = 2.5 
tiers? <exists> 
size = 2 
item []: 
    item [1]:
        class = "IntervalTier" 
        name = "words" 
        xmin = 0 
        xmax = 2.5 
        intervals: size = 5 
        intervals [1]:
            xmin = 0 
            xmax = 0.123456789 
            text = "" 
        intervals [2]:
            xmin = 0.123456789 
            xmax = 0.9 
            text = "say ""hi""" 
        intervals [3]:
            xmin = 0.9 
            xmax = 1.2 
            text = "sp" 
        intervals [4]:
            xmin = 1.2 
            xmax = 2 
            text = "<unk>" 
        intervals [5]:
            xmin = 2 
            xmax = 2.5 
            text = "" 
    item [2]:
        class = "IntervalTier" 
        name = "phones" 
        xmin = 0 
        xmax = 2.5 
        intervals: size = 1 
        intervals [1]:
            xmin = 0 
            xmax = 2.5 
            text = "s" 
'''

# The same TextGrid in Praat's short text format ("Save as short text file").
PRAAT_SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
2
"IntervalTier"
"words"
0
2.5
5
0
0.123456789
""
0.123456789
0.9
"say ""hi"""
0.9
1.2
"sp"
1.2
2
"<unk>"
2
2.5
""
"IntervalTier"
"phones"
0
2.5
1
0
2.5
"s"
'''

EXPECTED_WORDS = [(0.0, 0.12346, ""), (0.12346, 0.9, 'say "hi"'), (0.9, 1.2, "sp"), (1.2, 2.0, "<unk>"),
                  (2.0, 2.5, "")]

# Montreal Forced Aligner output (written through praatio): long format, "words" then "phones", empty silences.
MFA = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0.0 
xmax = 1.31 
tiers? <exists> 
size = 2 
item []:
    item [1]:
        class = "IntervalTier" 
        name = "words" 
        xmin = 0.0 
        xmax = 1.31 
        intervals: size = 4 
        intervals [1]:
            xmin = 0.0 
            xmax = 0.27 
            text = "" 
        intervals [2]:
            xmin = 0.27 
            xmax = 0.61 
            text = "hello" 
        intervals [3]:
            xmin = 0.61 
            xmax = 1.05 
            text = "world" 
        intervals [4]:
            xmin = 1.05 
            xmax = 1.31 
            text = "" 
    item [2]:
        class = "IntervalTier" 
        name = "phones" 
        xmin = 0.0 
        xmax = 1.31 
        intervals: size = 6 
        intervals [1]:
            xmin = 0.0 
            xmax = 0.27 
            text = "sil" 
        intervals [2]:
            xmin = 0.27 
            xmax = 0.4 
            text = "HH" 
        intervals [3]:
            xmin = 0.4 
            xmax = 0.61 
            text = "AH0" 
        intervals [4]:
            xmin = 0.61 
            xmax = 0.8 
            text = "W" 
        intervals [5]:
            xmin = 0.8 
            xmax = 1.05 
            text = "ER1" 
        intervals [6]:
            xmin = 1.05 
            xmax = 1.31 
            text = "sp" 
'''

LONG_POINT_TIER = '''    item [{i}]:
        class = "TextTier" 
        name = "tones" 
        xmin = 0 
        xmax = 2.5 
        points: size = 2 
        points [1]:
            number = 0.5 
            mark = "H*" 
        points [2]:
            number = 1.5 
            mark = "L%" 
'''
SHORT_POINT_TIER = '"TextTier"\n"tones"\n0\n2.5\n2\n0.5\n"H*"\n1.5\n"L%"\n'
SHORT_HEAD = 'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n2.5\n<exists>\n'
SHORT_WORDS = PRAAT_SHORT[PRAAT_SHORT.index('"IntervalTier"\n"words"'):PRAAT_SHORT.index('"IntervalTier"\n"phones"')]
SHORT_PHONES = PRAAT_SHORT[PRAAT_SHORT.index('"IntervalTier"\n"phones"'):]


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def _triples(ivs):
    return [(iv.start, iv.end, iv.text) for iv in ivs]


def _long_with_point_tier(first: bool) -> str:
    head, items = PRAAT_LONG.split("    item [1]:\n", 1)
    items = "    item [1]:\n" + items
    head = head.replace("size = 2", "size = 3")
    if first:
        items = LONG_POINT_TIER.format(i=1) + items.replace("item [2]", "item [3]").replace("item [1]", "item [2]")
    else:
        items = items + LONG_POINT_TIER.format(i=3)
    return head + items


# --- the formats ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [PRAAT_LONG, PRAAT_SHORT], ids=["long", "short"])
def test_praat_long_and_short_formats(tmp_path, text):
    p = _write(tmp_path, "a.TextGrid", text)
    tiers = read_textgrid(p)
    assert list(tiers) == ["words", "phones"]
    assert _triples(tiers["words"]) == EXPECTED_WORDS  # times rounded to 5 decimals, as the package does
    assert _triples(tiers["phones"]) == [(0.0, 2.5, "s")]
    assert all(isinstance(iv, Interval) for iv in tiers["words"])


def test_long_format_goes_through_the_package(tmp_path, monkeypatch):
    calls = []
    real = textgrid.TextGrid.read

    def spy(self, f, *a, **k):
        calls.append((f, k.get("encoding")))
        return real(self, f, *a, **k)

    monkeypatch.setattr(textgrid.TextGrid, "read", spy)
    # (the strict short-format parser checks every short file first; the values still come from the package)
    for i, text in enumerate([PRAAT_LONG, PRAAT_SHORT, MFA]):
        read_words(_write(tmp_path, f"{i}.TextGrid", text))
    assert [enc for _, enc in calls] == ["utf-8", "utf-8", "utf-8"]


def test_old_short_header(tmp_path):
    text = PRAAT_SHORT.replace('File type = "ooTextFile"\nObject class = "TextGrid"',
                               'File type = "ooTextFile short"\n"TextGrid"')
    assert _triples(read_textgrid(_write(tmp_path, "o.TextGrid", text))["words"]) == EXPECTED_WORDS


def test_montreal_forced_aligner_output(tmp_path):
    p = _write(tmp_path, "mfa.TextGrid", MFA)
    assert list(read_textgrid(p)) == ["words", "phones"]
    assert _triples(read_words(p)) == [(0.27, 0.61, "hello"), (0.61, 1.05, "world")]
    assert [iv.text for iv in read_textgrid(p)["phones"]] == ["sil", "HH", "AH0", "W", "ER1", "sp"]


@pytest.mark.parametrize("bom,codec", [(b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le")], ids=["be", "le"])
@pytest.mark.parametrize("text", [PRAAT_LONG, PRAAT_SHORT], ids=["long", "short"])
def test_utf16_with_bom_as_praat_writes_it(tmp_path, text, bom, codec):
    text = text.replace('"say ""hi"""', '"caf\u00e9 \u4f60\u597d ""hi"""')
    p = _write(tmp_path, "u16.TextGrid", bom + text.encode(codec))
    words = read_words(p)
    assert [w.text for w in words] == ['caf\u00e9 \u4f60\u597d "hi"', "sp", "<unk>"]
    assert words[0].start == 0.12346


def test_utf8_with_bom_latin1_and_crlf(tmp_path):
    text = PRAAT_LONG.replace('"say ""hi"""', '"na\u00efve"')
    p = _write(tmp_path, "bom.TextGrid", b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert [w.text for w in read_words(p)] == ["na\u00efve", "sp", "<unk>"]
    p = _write(tmp_path, "latin1.TextGrid", text.encode("latin-1"))  # the package alone raises UnicodeDecodeError
    assert [w.text for w in read_words(p)] == ["na\u00efve", "sp", "<unk>"]
    for i, t in enumerate([PRAAT_LONG, PRAAT_SHORT]):
        p = _write(tmp_path, f"crlf{i}.TextGrid", t.replace("\n", "\r\n"))
        assert _triples(read_textgrid(p)["words"]) == EXPECTED_WORDS


@pytest.mark.parametrize("text", [PRAAT_LONG, PRAAT_SHORT], ids=["long", "short"])
def test_escaped_quotes_and_multiline_marks(tmp_path, text):
    text = text.replace('"say ""hi"""', '"""quoted"" and\ntwo lines ""x"""').replace('"phones"', '"ph ""x"""')
    tiers = read_textgrid(_write(tmp_path, "q.TextGrid", text))
    assert list(tiers) == ["words", 'ph "x"']
    assert tiers["words"][1].text == '"quoted" and\ntwo lines "x"'


@pytest.mark.parametrize("first", [True, False], ids=["point_tier_first", "point_tier_last"])
def test_long_format_with_point_tier(tmp_path, first):
    p = _write(tmp_path, "pt.TextGrid", _long_with_point_tier(first))
    tiers = read_textgrid(p)
    assert list(tiers) == ["words", "phones"]  # point tiers are left out
    assert _triples(tiers["words"]) == EXPECTED_WORDS
    if first:  # tier 0 is the word tier in the original systems; a point tier there is an error, not a fallback
        with pytest.raises(CorpusError, match=r"pt\.TextGrid.*point tier"):
            read_words(p)
    else:
        assert [w.text for w in read_words(p)] == ['say "hi"', "sp", "<unk>"]


def test_package_cannot_read_short_format_point_tiers(tmp_path):
    """Why `_read_short` is kept: textgrid 1.6.1 fails on short-format files with a TextTier holding points."""
    for i, body in enumerate([SHORT_POINT_TIER + SHORT_WORDS, SHORT_WORDS + SHORT_POINT_TIER]):
        p = _write(tmp_path, f"pkg{i}.TextGrid", SHORT_HEAD + "2\n" + body)
        with pytest.raises(Exception):
            textgrid.TextGrid.fromFile(str(p))


@pytest.mark.parametrize("order", ["point_first", "point_middle", "point_last"])
def test_short_format_with_point_tier(tmp_path, order):
    body = {"point_first": SHORT_POINT_TIER + SHORT_WORDS + SHORT_PHONES,
            "point_middle": SHORT_WORDS + SHORT_POINT_TIER + SHORT_PHONES,
            "point_last": SHORT_WORDS + SHORT_PHONES + SHORT_POINT_TIER}[order]
    p = _write(tmp_path, "spt.TextGrid", SHORT_HEAD + "3\n" + body)
    tiers = read_textgrid(p)
    assert list(tiers) == ["words", "phones"]
    assert _triples(tiers["words"]) == EXPECTED_WORDS  # same result as the package gives without the point tier
    assert _triples(tiers["phones"]) == [(0.0, 2.5, "s")]
    if order == "point_first":
        with pytest.raises(CorpusError, match="point tier"):
            read_words(p)
    else:
        assert [w.text for w in read_words(p)] == ['say "hi"', "sp", "<unk>"]


def test_empty_tiers(tmp_path):
    p = _write(tmp_path, "e1.TextGrid", SHORT_HEAD + '2\n"IntervalTier"\n"words"\n0\n2.5\n0\n"TextTier"\n"p"\n0\n2.5\n0\n')
    assert read_textgrid(p) == {"words": []}
    assert read_words(p) == []
    long_head = 'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0 \nxmax = 1 \n'
    for name, text in [("size0", long_head + "tiers? <exists> \nsize = 0 \nitem []: \n"),
                       ("absent", long_head + "tiers? <absent> \n"),
                       ("short_absent", SHORT_HEAD.replace("<exists>", "<absent>"))]:
        p = _write(tmp_path, f"{name}.TextGrid", text)
        assert read_textgrid(p) == {}
        with pytest.raises(MalformedTextGrid, match=f"{name}.TextGrid: malformed TextGrid: no interval tier"):
            read_words(p)


# --- the rules --------------------------------------------------------------------------------------------------

def test_tier_zero_is_the_word_tier(tmp_path):
    phones_first = SHORT_HEAD + "2\n" + SHORT_PHONES + SHORT_WORDS  # tier 0 is "phones", whatever its name says
    p = _write(tmp_path, "t0.TextGrid", phones_first)
    assert list(read_textgrid(p)) == ["phones", "words"]
    assert _triples(read_words(p)) == [(0.0, 2.5, "s")]


def test_only_empty_marks_are_silence(tmp_path):
    tiers = {"words": [Interval(0.1, 0.2, "sil"), Interval(0.2, 0.3, "sp"), Interval(0.3, 0.4, "<unk>"),
                       Interval(0.4, 0.5, "  "), Interval(0.5, 0.6, "<sil>"), Interval(0.6, 0.7, "{SL}"),
                       Interval(0.7, 0.8, "word"), Interval(0.8, 0.9, "\t")]}
    p = tmp_path / "m.TextGrid"
    write_textgrid(p, tiers, 1.0)
    assert [w.text for w in read_words(p)] == ["sil", "sp", "<unk>", "<sil>", "{SL}", "word"]
    assert [w.text for w in read_words(p, drop_silence_marks=True)] == ["<unk>", "word"]
    every = read_words(p, keep_silence=True)
    assert len(every) == 10 and every[0] == Interval(0.0, 0.1, "") and every[-1] == Interval(0.9, 1.0, "")
    assert [w.text for w in read_words(_write(tmp_path, "l.TextGrid", PRAAT_LONG))] == ['say "hi"', "sp", "<unk>"]


def test_round_trip_with_write_textgrid(tmp_path):
    words = [Interval(0.25, 0.5, 'a "quoted" w\u00f6rd'), Interval(0.5, 0.9, "two"), Interval(1.2, 1.75, "\u4f60")]
    phones = [Interval(0.25, 0.4, "a"), Interval(0.4, 0.5, "b")]
    p = tmp_path / "rt.TextGrid"
    write_textgrid(p, {"words": words, "phones": phones}, 2.0)
    assert read_words(p) == words
    tiers = read_textgrid(p)
    assert list(tiers) == ["words", "phones"]
    assert _triples(tiers["words"]) == [(0.0, 0.25, ""), *_triples(words[:2]), (0.9, 1.2, ""),
                                        _triples(words)[2], (1.75, 2.0, "")]
    assert _triples(tiers["phones"]) == [(0.0, 0.25, ""), *_triples(phones), (0.5, 2.0, "")]
    tg = textgrid.TextGrid.fromFile(str(p))  # what the original systems read
    assert [iv.mark for iv in tg[0] if iv.mark != ""] == [w.text for w in words]


# --- bad files ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,data", [
    ("garbage", b"not a textgrid"),
    ("empty", b""),
    ("binary", b"ooBinaryFile\x08TextGrid\x00\x00\x00\x00\x00\x00\x00\x00"),
    ("chronological", b'"Praat chronological TextGrid text file"\n0 1   ! Time domain.\n1   ! Number of tiers.\n'),
    ("odd_utf16", b"\xff\xfe" + PRAAT_LONG.encode("utf-16-le")[:-1]),
    ("bad_number", PRAAT_LONG.replace("xmax = 0.9", "xmax = abc").encode()),
    ("outside_tier", PRAAT_LONG.replace("xmax = 2.5 \n        intervals: size = 1", "xmax = 2 \n"
                                        "        intervals: size = 1").encode()),
    ("short_bad_count", (SHORT_HEAD + "2\n" + SHORT_POINT_TIER + SHORT_WORDS.replace("\n5\n", "\nfive\n")).encode()),
    ("pointtier_short_outside", (SHORT_HEAD + "2\n" + SHORT_POINT_TIER + SHORT_WORDS.replace("\n2.5\n5", "\n3\n5")
                                 ).encode()),
])
def test_malformed_files_raise_corpus_error(tmp_path, name, data):
    p = _write(tmp_path, f"{name}.TextGrid", data)
    with pytest.raises(MalformedTextGrid, match=rf"{name}\.TextGrid: malformed") as e:
        read_textgrid(p)
    assert not INTERNAL.search(str(e.value)), str(e.value)
    with pytest.raises(CorpusError, match=rf"{name}\.TextGrid"):
        read_words(p)


def _cuts(text):
    """Every truncation that loses at least the last line."""
    lines = text.splitlines(keepends=True)
    return ["".join(lines[:k]) for k in range(1, len(lines))]


@pytest.mark.parametrize("which", ["long", "short", "short_with_point_tier", "mfa"])
def test_truncated_files_raise_corpus_error(tmp_path, which):
    text = {"long": PRAAT_LONG, "short": PRAAT_SHORT, "mfa": MFA,
            "short_with_point_tier": SHORT_HEAD + "2\n" + SHORT_WORDS + SHORT_POINT_TIER}[which]
    cuts = _cuts(text)
    assert len(cuts) > 20
    for k, cut in enumerate(cuts):
        p = _write(tmp_path, f"cut{k}.TextGrid", cut)
        with pytest.raises(MalformedTextGrid, match=rf"cut{k}\.TextGrid: malformed TextGrid: ") as e:
            read_textgrid(p)
        assert not INTERNAL.search(str(e.value)), str(e.value)  # the package's AttributeError etc. before
        assert f"the file ends at line {len(cut.splitlines())}, expected " in str(e.value) or e.value.line is not None


INTERNAL = re.compile(r"(Attribute|Index|Type|Key)Error|NoneType|could not convert|invalid literal")


@pytest.mark.parametrize("name, text, line, problem", [
    ("bad_number", PRAAT_LONG.replace("xmax = 0.9", "xmax = abc"), 21, "expected 'xmax' with a number"),
    ("renamed_key", PRAAT_LONG.replace('text = "sp"', 'txt = "sp"'), 26, "expected 'text' with quoted text"),
    ("garbage_line", PRAAT_LONG.replace("intervals [3]:", "garbage"), 23, "found 'garbage'"),
    ("too_few", PRAAT_LONG.replace("size = 5", "size = 7"), 35, "expected 'intervals [6]'"),
    ("short_count", PRAAT_SHORT.replace("\n5\n", "\nfive\n"), 12, "unexpected text 'five"),
    ("short_text", PRAAT_SHORT.replace('"sp"', "1.5"), 21, "quoted text expected, got 1.5"),
])
def test_malformed_textgrid_names_the_problem_and_its_line(tmp_path, name, text, line, problem):
    """Issue 19 item 25: the package's internal exceptions (AttributeError: 'NoneType' object has no attribute
    'groups') reached the user; now one error type names the file, the line and what is wrong there."""
    p = _write(tmp_path, f"{name}.TextGrid", text)
    with pytest.raises(MalformedTextGrid) as e:
        read_words(p)
    assert e.value.path == str(p) and e.value.line == line and problem in e.value.reason
    assert str(e.value).startswith(f"{p}: malformed TextGrid: line {line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match=r"nope\.TextGrid: cannot read TextGrid"):
        read_words(tmp_path / "nope.TextGrid")


def test_training_lists_malformed_textgrids_apart_from_missing(msp_corpus, tmp_path, capsys):
    """Issue 19 item 25: training said "2 train utterance(s) without TextGrid are left out" for one missing and
    one malformed file, with no path and no reason."""
    import shutil

    import numpy as np

    from corpora.msp_podcast import read_msp_podcast
    from features.store import FeatureStore
    from systems.audio_text import audio_text_items
    root = tmp_path / "c"
    shutil.copytree(msp_corpus, root, ignore=shutil.ignore_patterns("*.wav"))
    train = read_msp_podcast(root, split="train", require_audio=False).records
    gone, broken = train[0], train[1]
    gone.alignment_path.unlink()
    broken.alignment_path.write_text("".join(broken.alignment_path.read_text().splitlines(True)[:12]))
    stores = []
    for name in ("audio", "text"):
        store = FeatureStore.create(tmp_path / name, name=name, extractor="Toy", params={}, dims=2, frame_rate=None)
        with store.writer() as w:
            for r in train:
                w.add(r.utt_id, np.ones((3, 2), np.float32))
        stores.append(store)
    capsys.readouterr()
    items, words, _ = audio_text_items(root, "train", *stores)
    err = capsys.readouterr().err
    assert {u for u, _ in items} == {r.utt_id for r in train[2:]}
    assert f"1 train utterance(s) without TextGrid are left out: {gone.utt_id}\n" in err
    assert (f"1 train utterance(s) with a malformed TextGrid are left out:\n  {broken.alignment_path}: malformed "
            "TextGrid: the file ends at line 12, expected") in err
