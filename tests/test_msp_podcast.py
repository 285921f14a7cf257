"""MSP-Podcast reader on generated corpora of every release layout, its aliases and its bad-input handling."""
import csv
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr

from conftest import tree_digest
from corpora.msp_podcast import canonical_split, read_msp_podcast, read_transcript
from corpora.records import CorpusError
from corpora.synth import rules
from corpora.synth.msp_podcast import RELEASES, write_msp_podcast
from corpora.textgrid import read_textgrid, read_words
from features.audio import load_audio


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release_corpus(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"msp{request.param}")
    write_msp_podcast(root, n=24, seed=3, release=request.param, progress=False)
    return request.param, root


def test_every_release_layout_reads(release_corpus):
    release, root = release_corpus
    lay = RELEASES[release]
    assert (root / lay["audio"]).is_dir() and (root / "Labels" / lay["labels"]).is_file()
    corpus = read_msp_podcast(root)
    assert len(corpus) == 24 and corpus.skipped == []
    expected = {canonical_split(s) for s in lay["splits"]}
    assert {r.split for r in corpus.records} == expected
    for r in corpus.records:
        assert r.audio_path.is_file() and r.alignment_path.is_file() and r.transcript_path.is_file()
        if r.split == "test3":  # unlabelled partition
            assert r.labels == {} and r.category is None
        else:
            assert set(r.labels) == {"act", "dom", "val"}
            assert all(1 <= v <= 7 for v in r.labels.values())


def test_split_aliases_work_on_every_release(release_corpus):
    release, root = release_corpus
    all_recs = read_msp_podcast(root).records
    for alias, canon in [("dev", "dev"), ("Validation", "dev"), ("development", "dev"), ("test1", "test1"),
                         ("test", "test1"), ("Train", "train")]:
        got = read_msp_podcast(root, split=alias).records
        assert got and [r.utt_id for r in got] == [r.utt_id for r in all_recs if r.split == canon]
    with pytest.raises(CorpusError, match="unknown split 'heldout'"):
        read_msp_podcast(root, split="heldout")


def test_speakers_are_disjoint_across_splits(msp_corpus):
    recs = read_msp_podcast(msp_corpus).records
    by_split = {}
    for r in recs:
        by_split.setdefault(r.split, set()).add(r.speaker)
    splits = list(by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            assert not by_split[a] & by_split[b], (a, b)


def test_transcripts_and_textgrid_words_agree(msp_corpus):
    for r in read_msp_podcast(msp_corpus).records[:10]:
        text = read_transcript(r)
        tiers = read_textgrid(r.alignment_path)
        assert list(tiers)[0] == "words"
        words = [w.text.lower() for w in read_words(r.alignment_path)]
        assert words == [t.strip(".,").lower() for t in text.split()]


def test_word_boundaries_are_true_boundaries(msp_corpus):
    """Energy inside word intervals is far above energy in the gaps between them."""
    inside, outside = [], []
    for r in read_msp_podcast(msp_corpus).records[:10]:
        x = load_audio(r.audio_path)
        mask = np.zeros(len(x), bool)
        for w in read_words(r.alignment_path):
            mask[int(w.start * 16000): int(w.end * 16000)] = True
        inside.append(np.mean(x[mask] ** 2))
        outside.append(np.mean(x[~mask] ** 2))
    assert np.median(inside) > 30 * np.median(outside)


def test_short_format_textgrid(tmp_path):
    p = tmp_path / "s.TextGrid"
    p.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n1.5\n<exists>\n2\n"IntervalTier"\n'
                 '"words"\n0\n1.5\n3\n0\n0.4\n""\n0.4\n1.0\n"hello ""you"""\n1.0\n1.5\n"sil"\n'
                 '"IntervalTier"\n"phones"\n0\n1.5\n1\n0\n1.5\n"h"\n')
    tiers = read_textgrid(p)
    assert list(tiers) == ["words", "phones"]
    # only empty marks are silence, as the originals read tier 0: "sil" is a word unless asked otherwise
    assert [(w.start, w.end, w.text) for w in read_words(p)] == [(0.4, 1.0, 'hello "you"'), (1.0, 1.5, "sil")]
    assert [w.text for w in read_words(p, drop_silence_marks=True)] == ['hello "you"']
    (tmp_path / "bad.TextGrid").write_text("not a textgrid")
    with pytest.raises(CorpusError, match="bad.TextGrid"):
        read_textgrid(tmp_path / "bad.TextGrid")


def test_generator_is_deterministic(tmp_path):
    a, b, c = (tmp_path / s for s in "abc")
    write_msp_podcast(a, n=12, seed=5, progress=False)
    write_msp_podcast(b, n=12, seed=5, progress=False)
    write_msp_podcast(c, n=12, seed=6, progress=False)
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)


def test_resume_keeps_finished_files_and_completes(tmp_path):
    root = tmp_path / "c"
    write_msp_podcast(root, n=10, seed=1, progress=False)
    ref = tree_digest(root)
    victims = sorted((root / "Audios").glob("*.wav"))[5:]
    for v in victims:  # as if the run had been killed half-way
        v.unlink()
    (root / "Labels" / "labels_consensus.csv").unlink()
    write_msp_podcast(root, n=10, seed=1, progress=False)
    assert tree_digest(root) == ref


def _loudness_db(x):
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    e = (frames ** 2).mean(axis=1)
    speech = e[e > 1e-3 * e.max()]  # speech frames only: pauses would measure speaking rate, not loudness
    return 10 * np.log10(speech.mean())


def test_demo_labels_follow_documented_rules(msp_corpus):
    recs = [r for r in read_msp_podcast(msp_corpus).records if r.labels]
    act = np.array([r.labels["act"] for r in recs])
    dom = np.array([r.labels["dom"] for r in recs])
    val = np.array([r.labels["val"] for r in recs])
    loud = np.array([_loudness_db(load_audio(r.audio_path)) for r in recs])
    rate = []
    for r in recs:
        words = read_words(r.alignment_path)
        rate.append(len(words) / (words[-1].end - words[0].start))
    sentiment = np.array([rules.lexical_sentiment(read_transcript(r)) for r in recs])
    # arousal rises with measured speaking rate and loudness; dominance with loudness; valence with the words
    assert spearmanr(act, rate).statistic > 0.3
    assert spearmanr(act, loud).statistic > 0.3
    assert spearmanr(dom, loud).statistic > 0.4
    assert spearmanr(val, sentiment).statistic > 0.8
    # and text says little about arousal, audio loudness little about valence (modalities carry different things)
    assert abs(spearmanr(act, sentiment).statistic) < 0.35
    assert abs(spearmanr(val, loud).statistic) < 0.35


# ---------------------------------------------------------------- bad input

def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rewrite_labels(root, edit):
    path = root / "Labels" / "labels_consensus.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_missing_folder_and_files_name_the_path(msp_corpus, tmp_path):
    with pytest.raises(CorpusError, match="nowhere"):
        read_msp_podcast(tmp_path / "nowhere")
    root = _copy(msp_corpus, tmp_path / "c1")
    shutil.rmtree(root / "Audios")
    with pytest.raises(CorpusError, match="no audio folder"):
        read_msp_podcast(root)
    root = _copy(msp_corpus, tmp_path / "c2")
    (root / "Labels" / "labels_consensus.csv").unlink()
    with pytest.raises(CorpusError, match="labels_concensus.csv"):
        read_msp_podcast(root)


def test_missing_column_is_named(msp_corpus, tmp_path):
    root = _copy(msp_corpus, tmp_path / "c")
    path = _rewrite_labels(root, lambda rows: [[v for i, v in enumerate(r) if i != 3] for r in rows])  # EmoVal
    with pytest.raises(CorpusError, match=r"labels_consensus.csv: missing column\(s\) EmoVal"):
        read_msp_podcast(root)
    assert path.is_file()


def test_bad_rows_are_listed_and_the_rest_is_read(msp_corpus, tmp_path):
    root = _copy(msp_corpus, tmp_path / "c")
    names = {}

    def edit(rows):
        header, body = rows[0], rows[1:]
        names["range"], names["nan"], names["split"] = body[0][0][:-4], body[1][0][:-4], body[2][0][:-4]
        body[0][2] = "8.5"       # EmoAct outside 1-7
        body[1][4] = ""          # EmoDom missing
        body[2][7] = "Heldout"   # unknown split value
        return [header] + body

    _rewrite_labels(root, edit)
    gone = sorted((root / "Audios").glob("*.wav"))[-2:]
    for g in gone:
        g.unlink()
    corpus = read_msp_podcast(root)
    reasons = {s.utt_id: s.reason for s in corpus.skipped}
    assert reasons[names["range"]].startswith("label outside 1-7: EmoAct=8.5")
    assert reasons[names["nan"]].startswith("missing label: EmoDom")
    assert reasons[names["split"]] == "unknown split: 'Heldout'"
    for g in gone:
        assert reasons[g.stem] == "audio file missing"
    assert len(corpus) == 60 - 5 and len(corpus.skipped) == 5

    import io
    out = io.StringIO()
    corpus.report(stream=out)
    assert "skipped 5 row(s)" in out.getvalue() and "2 x audio file missing" in out.getvalue()
    corpus.write_skipped(tmp_path / "skipped.csv")
    assert len(list(csv.reader(open(tmp_path / "skipped.csv")))) == 6


def test_missing_transcript_is_named(msp_corpus, tmp_path):
    root = _copy(msp_corpus, tmp_path / "c")
    r = read_msp_podcast(root).records[0]
    r.transcript_path.unlink()
    with pytest.raises(CorpusError, match=r.utt_id):
        read_transcript(r)


class _TextLengths:
    """The smallest text extractor: one row per transcript holding its length (no model needed)."""
    name, input, dims, frame_rate, params, norm_pooling = "Len1", "text", 1, None, {}, "utterance-mean"

    def __call__(self, texts):
        return [np.array([[len(t)]], np.float32) for t in texts]


def test_transcript_not_utf8_is_listed_never_mangled(msp_corpus, tmp_path):
    """Issue 19 item 12: Latin-1 or binary transcripts were decoded with errors="replace" and used as mangled
    text. Now the reader names the file, line and byte, and extraction lists the utterance in the store's errors."""
    from features.extract import Item, extract_to_store
    from features.store import FeatureStore
    root = _copy(msp_corpus, tmp_path / "c")
    good, latin, binary = read_msp_podcast(root).records[:3]
    latin.transcript_path.write_bytes("Café naïve\nsecond line".encode("latin-1"))
    binary.transcript_path.write_bytes(b"ok line\n\x00\xff\xfe\x80 garbage")
    with pytest.raises(CorpusError, match=rf"{latin.transcript_path}: line 1: not valid UTF-8 text \(byte 0xe9 at "
                                          r"column 4\)"):
        read_transcript(latin)
    with pytest.raises(CorpusError, match=r"line 2: not valid UTF-8 text \(byte 0xff at column 2\)"):
        read_transcript(binary)
    store = FeatureStore.create(tmp_path / "s", name="Len1", extractor="Len", params={}, dims=1, frame_rate=None)
    summary = extract_to_store(_TextLengths(), [Item.from_record(r) for r in (good, latin, binary)], store,
                               progress=False)
    assert summary.errors == 2 and list(store.keys()) == [good.utt_id]
    errors = {e["utterance"]: e for e in store.errors()}
    assert errors[latin.utt_id]["file"] == str(latin.transcript_path)
    assert errors[latin.utt_id]["reason"].startswith("line 1: not valid UTF-8 text (byte 0xe9")
    assert errors[binary.utt_id]["reason"].startswith("line 2: not valid UTF-8 text (byte 0xff")


def test_corpus_info_cli(msp_corpus, capsys):
    import corpus_info
    assert corpus_info.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--split", "dev"]) == 0
    assert "splits: dev:" in capsys.readouterr().out
    assert corpus_info.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--split", "nope"]) == 1


def _column(rows, name):
    return rows[0].index(name)


def test_duplicate_filenames_are_never_read_twice(msp_corpus, tmp_path):
    root = _copy(msp_corpus, tmp_path / "c")
    got = {}

    def edit(rows):
        header, body = rows[0], rows[1:]
        act, split = _column(rows, "EmoAct"), _column(rows, "Split_Set")
        train = [r for r in body if r[split] == "Train"]
        same, clash, moved = train[0], train[1], train[2]
        got.update(same=same[0][:-4], clash=clash[0][:-4], moved=moved[0][:-4],
                   rows={n: 2 + body.index(r) for n, r in (("same", same), ("clash", clash), ("moved", moved))})
        repeat = list(same)
        repeat[0] = same[0][:-4]  # the same utterance, written without .wav
        changed = list(clash)
        changed[act] = "6.5" if clash[act] != "6.5" else "1.5"
        elsewhere = list(moved)
        elsewhere[split] = "Test2"  # a repeat in another split than the one asked for
        return [header] + body + [repeat, changed, elsewhere]

    _rewrite_labels(root, edit)
    rows = got["rows"]
    corpus = read_msp_podcast(root)
    ids = [r.utt_id for r in corpus.records]
    assert len(ids) == len(set(ids)) == 60 - 2
    assert got["same"] in ids and got["clash"] not in ids and got["moved"] not in ids
    reasons = {}
    for s in corpus.skipped:
        reasons.setdefault(s.utt_id, []).append(s.reason)
        assert s.file.endswith("labels_consensus.csv")
    assert reasons[got["same"]] == [f"duplicate FileName: rows {rows['same']} and 62 of labels_consensus.csv "
                                    f"are identical; row {rows['same']} is used"]
    assert reasons[got["clash"]] == 2 * [f"duplicate FileName with conflicting values: rows {rows['clash']} and 63 "
                                         "of labels_consensus.csv differ in EmoAct; none is used"]
    assert reasons[got["moved"]] == 2 * [f"duplicate FileName with conflicting values: rows {rows['moved']} and 64 "
                                         "of labels_consensus.csv differ in Split_Set; none is used"]
    assert len(corpus.skipped) == 5
    for split in ("train", "test2"):  # detected over the whole file, whichever split is asked for
        part = read_msp_podcast(root, split=split)
        assert got["moved"] not in {r.utt_id for r in part.records}
        assert [s.utt_id for s in part.skipped].count(got["moved"]) == 2
    assert got["clash"] not in {s.utt_id for s in read_msp_podcast(root, split="test2").skipped}
    assert [r.utt_id for r in read_msp_podcast(root, split="train").records].count(got["same"]) == 1


def test_features_and_labels_without_audio_folder(msp_corpus, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(msp_corpus, root, ignore=shutil.ignore_patterns("Audios"))
    with pytest.raises(CorpusError, match="no audio folder"):  # audio required by default: unchanged
        read_msp_podcast(root)
    for check_audio in (True, False):
        corpus = read_msp_podcast(root, check_audio=check_audio, require_audio=False)
        assert len(corpus) == 60 and corpus.skipped == []
        assert all(r.audio_path == root / "Audios" / f"{r.utt_id}.wav" for r in corpus.records)
        assert corpus.records[0].transcript_path.is_file()
    dev = read_msp_podcast(root, split="dev", require_audio=False)
    assert dev.records and {r.split for r in dev.records} == {"dev"}
    (root / "Audio").mkdir()  # an (empty) older-release audio folder is used for the paths, still nothing skipped
    corpus = read_msp_podcast(root, require_audio=False)
    assert len(corpus) == 60 and corpus.skipped == []
    assert all(r.audio_path == root / "Audio" / f"{r.utt_id}.wav" for r in corpus.records)


def test_mixed_split_spellings_stay_apart(msp_corpus, tmp_path):
    root = _copy(msp_corpus, tmp_path / "c")
    raw = {}

    def mix(old, new):
        def edit(rows):
            split = _column(rows, "Split_Set")
            hit = [r for r in rows[1:] if r[split] == old]
            for r in hit[::2]:
                r[split] = new
            for r in rows[1:]:
                raw[r[0][:-4]] = r[split]
            return rows
        return edit

    _rewrite_labels(root, mix("Test1", "Test"))
    every = read_msp_podcast(root).records
    assert {r.split for r in every} == {"train", "dev", "test1", "test", "test2"}
    assert all(r.split == {"Test": "test", "Test1": "test1"}.get(raw[r.utt_id], r.split) for r in every)
    for request, spelling in [("Test", "Test"), ("test", "Test"), ("Test1", "Test1"), ("TEST1", "Test1")]:
        got = read_msp_podcast(root, split=request).records
        assert got and all(raw[r.utt_id] == spelling for r in got)
        assert len(got) == sum(v == spelling for v in raw.values())
    assert {r.split for r in read_msp_podcast(root, split="dev").records} == {"dev"}  # dev not mixed: alias works

    _rewrite_labels(root, mix("Development", "Validation"))
    every = read_msp_podcast(root).records
    assert {r.split for r in every} == {"train", "dev", "validation", "test1", "test", "test2"}
    for request, spelling, name in [("Validation", "Validation", "validation"), ("validation", "Validation",
                                    "validation"), ("Development", "Development", "dev"),
                                    ("development", "Development", "dev")]:
        got = read_msp_podcast(root, split=request).records
        assert got and all(raw[r.utt_id] == spelling and r.split == name for r in got)
        assert len(got) == sum(v == spelling for v in raw.values())
    for alias in ("dev", "val", "valid", "DEV"):
        with pytest.raises(CorpusError, match=r"labels_consensus.csv: split .* is ambiguous: the file holds both "
                                              r"Development and Validation rows; ask for Development or Validation"):
            read_msp_podcast(root, split=alias)
    assert canonical_split("test") == "test1" and canonical_split("Validation") == "dev"  # no file: as before


def _labels_only_copy(msp_corpus, tmp_path):
    """A copy of the corpus's Labels/ (no audio) and its rows as dicts."""
    root = tmp_path / "MSP-PODCAST-2.0"
    (root / "Labels").mkdir(parents=True)
    with open(msp_corpus / "Labels" / "labels_consensus.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return root, rows


def test_labels_consensus_json_reads_like_the_csv(msp_corpus, tmp_path):
    """v1.12 ships Labels/labels_consensus.json beside the CSV (2.0 is read the same way): keyed by FileName, or a
    list of objects; numbers may be JSON numbers. The records equal those of the CSV."""
    import json
    root, rows = _labels_only_copy(msp_corpus, tmp_path)
    want = [(r.utt_id, r.split, r.labels, r.category, r.speaker)
            for r in read_msp_podcast(msp_corpus, require_audio=False).records]
    as_object = {r["FileName"]: {k: (float(v) if k in ("EmoAct", "EmoVal", "EmoDom") else v)
                                 for k, v in r.items() if k != "FileName"} for r in rows}
    for data in (as_object, rows):
        (root / "Labels" / "labels_consensus.json").write_text(json.dumps(data))
        got = read_msp_podcast(root, require_audio=False)
        assert [(r.utt_id, r.split, r.labels, r.category, r.speaker) for r in got.records] == want
    (root / "Labels" / "labels_consensus.json").write_text("[1, 2]")
    with pytest.raises(CorpusError, match="labels_consensus.json: expected"):
        read_msp_podcast(root, require_audio=False)


def test_categorical_classes_leave_out_other_and_no_agreement(msp_corpus, tmp_path):
    """The categorical systems' MSP-Podcast classes: the eight primary emotions in CATEGORIES order; O (other) and
    X (no agreement) are in no class and are listed with their reason, as the Interspeech 2025 challenge did."""
    from corpora import class_labels, read_corpus
    from corpora.msp_podcast import CATEGORIES
    root, rows = _labels_only_copy(msp_corpus, tmp_path)
    rows[0]["EmoClass"], rows[1]["EmoClass"], rows[2]["EmoClass"] = "O", "U", ""
    with open(root / "Labels" / "labels_consensus.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    corpus = read_corpus("msp-podcast", root, labels_only=True)
    classes, pairs, left_out = class_labels(corpus, "msp-podcast")
    assert classes == ("angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral")
    letter = {r["FileName"].removesuffix(".wav"): r["EmoClass"] for r in rows}
    assert all(classes[y] == CATEGORIES[letter[r.utt_id]] for r, y in pairs)
    why = {s.utt_id: s.reason for s in left_out}
    assert why[rows[0]["FileName"].removesuffix(".wav")] == ("no class: EmoClass O (other) is not one of the eight "
                                                            "primary emotions")
    assert why[rows[2]["FileName"].removesuffix(".wav")] == "no categorical label"
    x_rows = [u for u, c in letter.items() if c == "X"]
    assert x_rows and all("EmoClass X (no agreement)" in why[u] for u in x_rows)
    assert len(pairs) + len(left_out) == len(corpus.records)  # nobody dropped silently
    assert classes[dict((r.utt_id, y) for r, y in pairs)[rows[1]["FileName"].removesuffix(".wav")]] == "surprise"
