"""IEMOCAP reader, mocap loader, 4-class mappings and folds, on a corpus generated in the release layout."""
import random
import re
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import spearmanr

from conftest import tree_digest
from corpora.iemocap import (FOUR_CLASS, MOCAP_STREAMS, _read_mocap_file, four_class, load_mocap, loso_folds,
                             mdre_random_folds, mocap_path, read_iemocap, resample_mocap, session5_split)
from corpora.records import CorpusError
from corpora.synth.iemocap import MIN_UTTERANCES, MOCAP_FPS, format_table, write_iemocap

N, SEED = 40, 11
WIDTHS = {"rotated": 165, "head": 6, "hand": 18}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    summary = write_iemocap(root, n=N, seed=SEED, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def corpus(generated):
    return read_iemocap(generated[0])


def editable_copy(root, tmp_path):
    """A copy without the (large, here unused) mocap files, for tests that damage the corpus."""
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("MOCAP_*"))
    return copy


def grid_times_between(start, end):
    """The 4-decimal Time values of a 120 fps grid from 0 that lie strictly inside (start, end)."""
    t = np.round(np.arange(int(end * MOCAP_FPS) + 2) / MOCAP_FPS, 4)
    return t[(t > start) & (t < end)]


# ------------------------------------------------------------------------------------------- writer


def test_files_follow_the_release_formats(generated):
    root, summary = generated
    emo = (root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").read_text()
    lines = emo.split("\n")
    assert lines[0].startswith("% [START_TIME - END_TIME] TURN_NAME EMOTION") and lines[1] == ""
    assert emo.endswith("\n\n")  # every block, the last included, ends with a blank line
    blocks = emo.strip("\n").split("\n\n")[1:]
    assert len(blocks) == sum(u["dialog"] == "Ses01F_impro01" for u in summary["utterances"].values())
    for block in blocks:
        head, *rest = block.split("\n")
        fields = head.split("\t")
        assert len(fields) == 4 and re.fullmatch(r"\[\d+\.\d{4} - \d+\.\d{4}\]", fields[0])
        assert re.fullmatch(r"\[\d\.\d{4}, \d\.\d{4}, \d\.\d{4}\]", fields[3])
        assert any(x.startswith("C-E1:\t") and x.endswith(";\t()") for x in rest)
        ratings = [re.fullmatch(r"A-E\d:\tval (\d); act (\d); dom (\d);\t\(\)", x) for x in rest if x[:2] == "A-"]
        assert len(ratings) == 3 and all(ratings)
        vad = [float(v) for v in fields[3].strip("[]").split(", ")]
        means = np.mean([[int(g) for g in m.groups()] for m in ratings], axis=0)
        np.testing.assert_allclose(means, vad, atol=1e-4)  # the A-E lines are the evaluators behind V/A/D

    trans = (root / "Session1/dialog/transcriptions/Ses01F_impro01.txt").read_text().splitlines()
    assert all(re.fullmatch(r"Ses01F_impro01_[FM](\d{3}|XX\d) \[\d{3}\.\d{4}-\d{3}\.\d{4}\]: .+", x) for x in trans)
    assert sum("XX" in x.split(" ")[0] for x in trans) == 1

    info = sf.info(str(next((root / "Session1/sentences/wav/Ses01F_impro01").glob("*.wav"))))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")

    for stream, width in WIDTHS.items():
        with open(root / f"Session1/dialog/MOCAP_{stream}/Ses01F_impro01.txt") as f:
            header, axes, first, second = (f.readline().split() for _ in range(4))
        assert header[:2] == ["Frame#", "Time"] and len(axes) == width + 2
        assert first[:2] == ["1", "0.0000"] and second[:2] == ["2", "0.0083"] and len(first) == width + 2
        assert all(re.fullmatch(r"-?\d+\.\d{3}|NaN", v) for v in first[2:])
    for sub in ("Categorical", "Attribute", "Self-evaluation"):  # decoys the reader must not glob
        assert len(list((root / "Session1/dialog/EmoEvaluation" / sub).glob("*.txt"))) == 1


def test_utterance_wav_is_its_span_of_the_dialog_wav(corpus, generated):
    for r in corpus.records[::7]:
        dialog_audio, _ = sf.read(str(r.audio_path.parents[3] / "dialog/wav" / f"{r.dialog}.wav"), dtype="int16")
        utt_audio, _ = sf.read(str(r.audio_path), dtype="int16")
        a, b = round(r.start * 16000), round(r.end * 16000)
        np.testing.assert_array_equal(dialog_audio[a:b], utt_audio)


def test_summary_counts(generated):
    _, summary = generated
    assert summary["n"] == N and summary["sessions"] == [1, 2, 3, 4, 5]
    assert sum(summary["categories"].values()) == N
    assert summary["categories"] == dict(Counter(u["category"] for u in summary["utterances"].values()))
    assert 0 < summary["seconds"] < summary["dialog_seconds"]
    with pytest.raises(ValueError, match="at least"):
        write_iemocap("/nonexistent", n=MIN_UTTERANCES - 1, seed=0)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = (tmp_path / x for x in "abc")
    write_iemocap(a, n=MIN_UTTERANCES, seed=5, progress=False)
    write_iemocap(b, n=MIN_UTTERANCES, seed=5, progress=False)
    write_iemocap(c, n=MIN_UTTERANCES, seed=6, progress=False)
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)


def test_format_table_matches_printf():
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1e4, (500, 9)) * rng.choice([1e-4, 1.0], size=(500, 9))
    table[rng.random(table.shape) < 0.05] = np.nan
    table[:3] = 0.0
    decimals = [0, 4, 3, 3, 2, 5, 1, 3, 0]
    expected = "".join(" ".join("%.*f" % (d, v) for d, v in zip(decimals, row)) + "\n" for row in table.tolist())
    expected = re.sub(r"-(0\.?0*)(?=[ \n])", r"\1", expected.replace("nan", "NaN"))  # no '-0.000'
    assert format_table(table, decimals, rows_per_block=64).decode() == expected


# ------------------------------------------------------------------------------------------- reader


def test_reader_returns_every_utterance_with_its_fields(corpus, generated):
    root, summary = generated
    truth = summary["utterances"]
    assert corpus.name == "IEMOCAP" and len(corpus) == N and corpus.skipped == []
    assert sorted(r.utt_id for r in corpus.records) == sorted(truth)
    for r in corpus.records:
        t = truth[r.utt_id]
        gender = r.utt_id.split("_")[-1][0]
        assert r.audio_path == root / f"Session{t['session']}/sentences/wav/{t['dialog']}/{r.utt_id}.wav"
        assert r.audio_path.is_file()
        assert (r.session, r.gender, r.speaker) == (t["session"], gender, f"Ses0{t['session']}{gender}")
        assert r.dialog == t["dialog"] and r.category == t["category"] and r.transcript == t["text"]
        assert r.start == pytest.approx(t["start"], abs=1e-9) and r.end == pytest.approx(t["end"], abs=1e-9)
        assert r.labels == pytest.approx(t["labels"]) and set(r.labels) == {"val", "act", "dom"}
        assert all(1.0 <= v <= 5.0 for v in r.labels.values())
        assert (r.corpus, r.split) == ("IEMOCAP", None)
    assert {r.speaker for r in corpus.records} == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}


def test_records_are_in_mdre_global_order(corpus):
    ids = [r.utt_id for r in corpus.records]
    assert ids == sorted(ids, key=lambda u: (f"Session{u[4]}/{u.rsplit('_', 1)[0]}", u))
    # the files list blocks in time order (F000, M000, F001 ...): the order above is the reader's doing
    by_time = [r.utt_id for r in sorted(corpus.records, key=lambda r: (r.dialog, r.start))]
    assert by_time != ids


def test_bad_rows_are_reported_not_dropped(generated, tmp_path):
    root = editable_copy(generated[0], tmp_path)
    records = read_iemocap(root).records
    lost_wav, lost_line, bad_summary, colon = records[0], records[10], records[20], records[30]
    assert len({r.dialog for r in (lost_wav, lost_line, bad_summary, colon)}) == 4

    lost_wav.audio_path.unlink()
    trans = root / f"Session{lost_line.session}/dialog/transcriptions/{lost_line.dialog}.txt"
    trans.write_text("".join(x for x in trans.read_text().splitlines(True) if not x.startswith(lost_line.utt_id)))
    emo = root / f"Session{bad_summary.session}/dialog/EmoEvaluation/{bad_summary.dialog}.txt"
    emo.write_text(re.sub(rf"(\t{bad_summary.utt_id}\t\w+\t)\[[^\]]*\]", r"\1[2.5000, 3.0000]", emo.read_text()))
    trans_colon = root / f"Session{colon.session}/dialog/transcriptions/{colon.dialog}.txt"
    trans_colon.write_text(trans_colon.read_text().replace(colon.transcript, "Note: it says [LAUGHTER] 9]: ok"))

    damaged = read_iemocap(root)
    assert len(damaged) == N - 3
    skipped = {s.utt_id: s for s in damaged.skipped}
    assert set(skipped) == {lost_wav.utt_id, lost_line.utt_id, bad_summary.utt_id}
    assert skipped[lost_wav.utt_id].file == str(lost_wav.audio_path) and "wav" in skipped[lost_wav.utt_id].reason
    assert skipped[lost_line.utt_id].file == str(trans) and "transcript" in skipped[lost_line.utt_id].reason
    assert skipped[bad_summary.utt_id].file == str(emo) and "malformed" in skipped[bad_summary.utt_id].reason
    assert damaged.by_id()[colon.utt_id].transcript == "Note: it says [LAUGHTER] 9]: ok"
    kept = [r.utt_id for r in records if r.utt_id not in skipped]
    assert [r.utt_id for r in damaged.records] == kept

    (root / f"Session{colon.session}/dialog/transcriptions/{colon.dialog}.txt").unlink()
    no_file = read_iemocap(root)
    missing = [s for s in no_file.skipped if s.reason == "transcript file missing"]
    assert {s.utt_id for s in missing} == {r.utt_id for r in records if r.dialog == colon.dialog}


def _summary_line(emo_text, utt_id):
    return next(x for x in emo_text.splitlines() if f"\t{utt_id}\t" in x)


def test_repeated_evaluation_ids_conflicts_use_neither_identical_merge(generated, tmp_path):
    """Issue 19 item 9: an id listed twice with other labels used to keep the first label silently."""
    root = editable_copy(generated[0], tmp_path)
    records = read_iemocap(root).records
    conflict, same = records[0], next(r for r in records[1:] if r.dialog == records[0].dialog)
    emo = root / f"Session{conflict.session}/dialog/EmoEvaluation/{conflict.dialog}.txt"
    text = emo.read_text()
    head = _summary_line(text, conflict.utt_id)
    other = re.sub(r"\[[^\]]*\]$", "[1.0000, 5.0000, 2.5000]", head)
    assert other != head
    emo.write_text(text + f"{other}\n\n{_summary_line(text, same.utt_id)}\n\n")

    read = read_iemocap(root)
    ids = {r.utt_id for r in read.records}
    assert conflict.utt_id not in ids and same.utt_id in ids and len(read) == N - 1
    assert read.by_id()[same.utt_id].labels == same.labels
    why = {s.utt_id: s for s in read.skipped}
    assert why[conflict.utt_id].file == str(emo)
    assert re.fullmatch(r"duplicate id with conflicting values: lines \d+, \d+ differ \(val, act, dom\); none is "
                        r"used", why[conflict.utt_id].reason)
    assert re.fullmatch(r"duplicate id: lines (\d+), \d+ are identical; line \1 is used", why[same.utt_id].reason)


def test_transcripts_not_utf8_are_listed_never_mangled(generated, tmp_path):
    """Issue 19 item 12: a Latin-1 transcription line was read with errors="replace" (caf\ufffd entered the MDRE
    vocabulary). The undecodable line's utterance is skipped with the file, line and byte; the rest are read."""
    root = editable_copy(generated[0], tmp_path)
    records = read_iemocap(root).records
    victim = records[5]
    trans = root / f"Session{victim.session}/dialog/transcriptions/{victim.dialog}.txt"
    raw = trans.read_bytes().splitlines(keepends=True)
    k = next(i for i, x in enumerate(raw) if x.startswith(victim.utt_id.encode()))
    raw[k] = raw[k].rstrip(b"\n") + " Café naïve\n".encode("latin-1")
    trans.write_bytes(b"".join(raw))
    read = read_iemocap(root)
    assert victim.utt_id not in read.by_id() and len(read) == N - 1
    assert not any("\ufffd" in r.transcript for r in read.records)
    (skip,) = [s for s in read.skipped if s.utt_id == victim.utt_id]
    assert skip.file == str(trans)
    assert skip.reason.startswith(f"transcript line {k + 1}: not valid UTF-8 text (byte 0xe9 at column")
    same_dialog = [r for r in records if r.dialog == victim.dialog and r.utt_id != victim.utt_id]
    assert all(read.by_id()[r.utt_id].transcript == r.transcript for r in same_dialog)


def test_missing_folders_raise_naming_the_path(generated, tmp_path):
    root = editable_copy(generated[0], tmp_path)
    for s in (1, 3, 4):
        shutil.rmtree(root / f"Session{s}")
    subset = read_iemocap(root)
    assert {r.session for r in subset.records} == {2, 5} and len(loso_folds(subset.records)) == 2

    emo_dir = root / "Session2/dialog/EmoEvaluation"
    shutil.rmtree(emo_dir)
    with pytest.raises(CorpusError, match=re.escape(str(emo_dir))):
        read_iemocap(root)
    with pytest.raises(CorpusError, match=re.escape(str(tmp_path / "empty"))):
        read_iemocap(tmp_path / "empty")


# ------------------------------------------------------------------------------------- labels and folds


def test_four_class_mappings(corpus):
    codes = Counter(r.category for r in corpus.records)
    assert codes["hap"] and codes["exc"]  # the seed must exercise the merge / the drop
    mdre = four_class(corpus.records, "mdre")
    assert len(mdre) == codes["ang"] + codes["hap"] + codes["exc"] + codes["sad"] + codes["neu"]
    assert Counter(y for _, y in mdre) == {k: v for k, v in {0: codes["ang"], 1: codes["hap"] + codes["exc"],
                                                              2: codes["sad"], 3: codes["neu"]}.items() if v}
    assert FOUR_CLASS["mdre"].classes == ("angry", "happy", "sad", "neutral")
    prml = four_class(corpus.records, "prml")
    assert len(prml) == codes["ang"] + codes["exc"] + codes["neu"] + codes["sad"]
    assert all(FOUR_CLASS["prml"].classes[y] == r.category for r, y in prml)
    assert [r.utt_id for r, _ in prml] == [r.utt_id for r in corpus.records if r.category in FOUR_CLASS["prml"].codes]
    with pytest.raises(ValueError):
        four_class(corpus.records, "iemocap6")


def test_loso_and_session5_split(corpus):
    pairs = four_class(corpus.records, "mdre")
    for items in (corpus.records, pairs):
        folds = loso_folds(items)
        assert len(folds) == 5
        for s, (train, test) in enumerate(folds, 1):
            sess = lambda xs: {(x if hasattr(x, "session") else x[0]).session for x in xs}  # noqa: E731
            assert sess(test) == {s} and s not in sess(train) and len(train) + len(test) == len(items)
    train, test = session5_split(corpus.records)
    assert {r.session for r in train} == {1, 2, 3, 4} and {r.session for r in test} == {5}
    assert [r.utt_id for r in train + test] == sorted(r.utt_id for r in corpus.records)


def test_mdre_folds_reproduce_the_published_sizes():
    sizes = [tuple(len(part) for part in fold) for fold in mdre_random_folds([f"u{i:05d}" for i in range(5531)])]
    assert sizes == [(4445, 313, 773), (4374, 386, 771), (4399, 353, 779), (4432, 343, 756), (4474, 307, 750)]


def test_mdre_folds_partition_and_leave_global_random_alone(corpus):
    items = four_class(corpus.records, "mdre")
    random.seed(1)
    expected_next = random.random()
    random.seed(1)
    folds = mdre_random_folds(items)
    assert random.random() == expected_next
    held_out = [x[0].utt_id for _, dev, test in folds for x in dev + test]
    assert sorted(held_out) == sorted(r.utt_id for r, _ in items)  # every item held out exactly once
    for train, dev, test in folds:
        assert len(train) + len(dev) + len(test) == len(items)
        order = {r.utt_id: i for i, (r, _) in enumerate(items)}
        for part in (train, dev, test):
            assert [order[r.utt_id] for r, _ in part] == sorted(order[r.utt_id] for r, _ in part)


# ------------------------------------------------------------------------------------------------ mocap


def test_mocap_rows_shapes_and_names(corpus, generated):
    root, _ = generated
    for r in corpus.records[::5]:
        for stream in MOCAP_STREAMS:
            frames, names = load_mocap(r, stream)
            assert frames.dtype == np.float32 and frames.shape == (len(grid_times_between(r.start, r.end)),
                                                                    WIDTHS[stream])
            assert len(names) == WIDTHS[stream]
            again, _ = load_mocap(r, stream, root=root)
            np.testing.assert_array_equal(frames, again)
    frames, names = load_mocap(corpus.records[0], "rotated")
    assert names[:4] == ["CH1_X", "CH1_Y", "CH1_Z", "CH2_X"] and np.isnan(frames).any()
    assert load_mocap(corpus.records[0], "head")[1] == ["pitch", "roll", "yaw", "tra_x", "tra_y", "tra_z"]
    with pytest.raises(ValueError):
        load_mocap(corpus.records[0], "face")


def test_mocap_dialog_rename_and_missing_file(corpus, tmp_path):
    odd = [r for r in corpus.records if r.dialog == "Ses05M_script01_1b"]
    assert odd
    path = mocap_path(odd[0], "hand")
    assert path.name == "Ses05M_script01_1.txt" and path.is_file()
    assert not path.with_name("Ses05M_script01_1b.txt").exists()
    assert load_mocap(odd[0], "hand")[0].shape[1] == 18
    with pytest.raises(CorpusError, match=re.escape(str(tmp_path / "Session5/dialog/MOCAP_hand"))):
        load_mocap(odd[0], "hand", root=tmp_path)


def test_mocap_dialog_file_parsed_once(corpus):
    dialog = corpus.records[0].dialog
    _read_mocap_file.cache_clear()
    for r in corpus.records:
        if r.dialog == dialog:
            load_mocap(r, "rotated")
    assert _read_mocap_file.cache_info().misses == 1


def test_motion_energy_follows_arousal(corpus):
    arousal = [r.labels["act"] for r in corpus.records]
    for stream in MOCAP_STREAMS:
        energy = [np.nanmean(np.abs(np.diff(load_mocap(r, stream)[0], axis=0))) for r in corpus.records]
        rho = spearmanr(energy, arousal)[0]
        assert rho > 0.5, (stream, rho)


def test_resample_mocap_block_means(corpus):
    frames, _ = load_mocap(corpus.records[0], "rotated")
    assert resample_mocap(frames).shape == (200, 165)
    rows = np.arange(1001 * 2, dtype=np.float32).reshape(1001, 2)
    out = resample_mocap(rows)
    # 1001 rows in 200 chunks: the first one holds 6 rows (0..5), the others 5
    np.testing.assert_allclose(out[0], rows[:6].mean(axis=0))
    np.testing.assert_allclose(out[-1], rows[-5:].mean(axis=0))
    short = resample_mocap(rows[:50], n=200)
    assert short.shape == (200, 2) and np.isnan(short).all(axis=1).sum() == 150
    with_nan = rows[:400].copy()
    with_nan[0, 0] = np.nan
    assert np.isnan(resample_mocap(with_nan)[0, 0]) and not np.isnan(resample_mocap(with_nan)[0, 1])
