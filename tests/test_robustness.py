"""engine.robustness.evaluate_conditions with a fake predict (no model): which conditions are scored how often,
the per-utterance CSV, the table, the result JSON, the paired tests, the present shares and the summaries."""
import csv
import json

import numpy as np
import pytest

import metrics
from engine.robustness import Draw, evaluate_conditions
from features.missing import parse_condition, protocol_conditions

CLASSES = ["angry", "happy", "sad", "neutral"]


def _class_predict(calls, n=30, shuffle=True):
    rng = np.random.default_rng(0)
    utts = [f"utt{i:02d}" for i in range(n)]
    y = rng.integers(0, 4, n)

    def predict(cond, seed):
        calls.append((str(cond), seed))
        r = np.random.default_rng([seed, len(calls)])
        right = 0.9 if cond.kind == "none" else 0.5
        p = np.where(r.random(n) < right, y, (y + 1) % 4)
        kept = "audio+text" if cond.kind == "none" else "+".join(cond.modalities) if cond.kind == "present" else (
            "audio")
        present = [kept if i % 3 else kept.replace("text", "").strip("+") or kept for i in range(n)]
        order = np.arange(n)[::-1] if shuffle else np.arange(n)  # any order: aligned by utterance
        return Draw([utts[i] for i in order], y[order], p[order], [present[i] for i in order],
                    {"realised_wer": 0.1 + seed})
    return predict, utts, y


def test_deterministic_conditions_once_seeded_ones_per_seed_and_outputs(tmp_path, capsys):
    calls = []
    predict, utts, y = _class_predict(calls)
    conds = [parse_condition(c) for c in ("none", "text-absent", "present:audio", "random-missing:0.3")]
    out = tmp_path / "res" / "stm_conditions"
    rows = evaluate_conditions(predict, conds, sim_seeds=3, metric="WA/UA", classes=CLASSES, protocol="conditions",
                               out=out, result={"system": "speech-text-mocap", "fold": 1}, series="s1",
                               resamples=200)
    assert calls == [("none", 0), ("text-absent", 0), ("present:audio", 0), ("random-missing:0.3", 0),
                     ("random-missing:0.3", 1), ("random-missing:0.3", 2)]
    assert [r["condition"] for r in rows] == ["complete", "text-absent", "present:audio", "random-missing:0.3"]
    assert [r["rate"] for r in rows] == [0.0, None, None, 0.3]
    complete, _, _, rand = rows
    assert complete["WA_p"] is None and complete["UA_diff"] is None and complete["WA_sd"] is None
    assert rand["WA_sd"] is not None and rand["WA_p"] < 0.05 and rand["WA_diff"] < 0  # 0.9 vs 0.5 right
    assert complete["WA_ci"][0] <= complete["WA"] <= complete["WA_ci"][1]
    assert rand["realised_wer"] == pytest.approx(1.1)  # mean of 0.1, 1.1, 2.1
    # every third utterance lacked the text: shares of the test utterances that had each modality
    assert complete["present"] == {"audio": 1.0, "text": pytest.approx(20 / 30)}
    assert rows[2]["present"] == {"audio": 1.0, "text": 0.0}

    per_utt = list(csv.DictReader(open(tmp_path / "res" / "stm_conditions_per_utterance.csv")))
    assert len(per_utt) == 30 * (1 + 1 + 1 + 3)
    assert list(per_utt[0]) == ["series", "condition", "sim_seed", "utterance", "present", "label", "prediction"]
    first = per_utt[0]
    # in the order the complete data's predict gave (here reversed), labels by class name
    assert (first["series"], first["condition"], first["sim_seed"], first["utterance"]) == ("s1", "complete", "0",
                                                                                           "utt29")
    assert first["label"] == CLASSES[y[29]]
    df = metrics.read_per_utterance(tmp_path / "res" / "stm_conditions_per_utterance.csv")
    rand_df = df[df["condition"] == "random-missing:0.3"]
    assert sorted(set(rand_df["sim_seed"])) == [0, 1, 2]
    # the row's interval and paired test are metrics.score / metrics.paired_test on these predictions
    index = {c: i for i, c in enumerate(CLASSES)}
    lab = df[df["condition"] == "complete"]["label"].map(index).to_numpy()
    p0 = df[df["condition"] == "complete"]["prediction"].map(index).to_numpy()
    pr = np.stack([rand_df[rand_df["sim_seed"] == s]["prediction"].map(index).to_numpy() for s in range(3)])
    ua = metrics.score("UA", lab, pr, n_classes=4, resamples=200)
    assert (rand["UA"], rand["UA_ci"]) == (ua.value, [ua.lo, ua.hi])
    test = metrics.paired_test("WA", lab, p0, pr, n_classes=4, resamples=200)
    assert (rand["WA_diff"], rand["WA_p"], rand["WA_effect"]) == pytest.approx((test["diff"], test["p"],
                                                                                 test["effect"]))

    res = json.loads((tmp_path / "res" / "stm_conditions.json").read_text())
    assert res["metric"] == "WA/UA" and res["protocol"] == "conditions" and res["fold"] == 1
    assert res["sim_seeds"] == [0, 1, 2] and res["per_utterance_csv"] == "stm_conditions_per_utterance.csv"
    assert res["interval"]["method"] == "bca" and res["interval"]["resamples"] == 200
    assert res["rows"][3]["WA"] == pytest.approx(rand["WA"]) and res["baselines"]["support"] == np.bincount(
        y, minlength=4).tolist()
    assert "random-missing" in res["summary"]
    assert (tmp_path / "res" / "stm_conditions.png").stat().st_size > 0
    table = list(csv.DictReader(open(tmp_path / "res" / "stm_conditions.csv")))
    assert table[0]["WA"] == metrics.Scored(complete["WA"], *complete["WA_ci"]).text()
    printed = capsys.readouterr().out
    assert metrics.Scored(rand["UA"], *rand["UA_ci"]).text() in printed


def test_fixed_protocol_mean_and_pooled_on_a_hand_made_case(tmp_path):
    # complete: perfect predictions (CCC 1); present:audio: a constant 2.5 (CCC 0). mean = 0.5.
    # pooled over the 8 (condition, utterance) pairs: t = 1,2,3,4,1,2,3,4; p = 1,2,3,4,2.5,2.5,2.5,2.5:
    # means 2.5 and 2.5, var_t 1.25, var_p 5/8, cov 5/8 -> CCC = 2 * 0.625 / (0.625 + 1.25) = 2/3
    t = np.array([[1.0], [2.0], [3.0], [4.0]])

    def predict(cond, seed):
        p = t.copy() if cond.kind == "none" else np.full_like(t, 2.5)
        return Draw(["a", "b", "c", "d"], t, p, ["audio+text"] * 4 if cond.kind == "none" else ["audio"] * 4)
    conds = [parse_condition("none"), parse_condition("present:audio")]
    evaluate_conditions(predict, conds, metric="CCC", attributes=["Val"], protocol="fixed", out=tmp_path / "f",
                        result={}, resamples=100)
    summary = json.loads((tmp_path / "f.json").read_text())["summary"]
    assert summary["mean"]["Val"] == pytest.approx(0.5)
    assert summary["pooled"]["Val"] == pytest.approx(2 / 3)
    assert summary["conditions"] == ["complete", "present:audio"]
    table = (tmp_path / "f.csv").read_text()
    assert "MMIN" in table and "mean of the per-condition scores" in table


def test_random_protocol_summary_and_ccc_columns(tmp_path):
    n = 40
    lab = np.column_stack([np.linspace(1, 7, n), np.linspace(7, 1, n) ** 1.1])
    calls = []

    def predict(cond, seed):
        calls.append((str(cond), seed))
        r = np.random.default_rng([seed, int(100 * cond.rate)])
        return Draw([f"u{i}" for i in range(n)], lab, lab + r.normal(size=(n, 2)) * (0.2 + 3 * cond.rate),
                    ["audio+text"] * n)
    conds = protocol_conditions("random", ["audio", "text"], rates=(0, 0.2, 0.4))
    rows = evaluate_conditions(predict, conds, sim_seeds=2, metric="CCC", attributes=["Act", "Val"],
                               protocol="random", out=tmp_path / "r", result={}, resamples=100)
    assert len(calls) == 1 + 2 * 2
    res = json.loads((tmp_path / "r.json").read_text())
    s = res["summary"]["random-missing"]["Act"]
    want = metrics.robustness_summary([0, 0.2, 0.4], [r["Act"] for r in rows])
    assert s == pytest.approx(want)
    header = (tmp_path / "r_per_utterance.csv").read_text().splitlines()[0]
    assert header == "series,condition,sim_seed,utterance,present,label_Act,prediction_Act,label_Val,prediction_Val"


def test_refuses_a_list_without_the_complete_data_and_other_utterances(tmp_path):
    calls = []
    predict, _, _ = _class_predict(calls)
    with pytest.raises(ValueError, match="start with"):
        evaluate_conditions(predict, [parse_condition("present:audio")], metric="WA/UA", classes=CLASSES,
                            protocol="fixed", out=tmp_path / "x", result={})

    def short(cond, seed):
        d = predict(cond, seed)
        return d if cond.kind == "none" else Draw(d.utts[1:], d.labels[1:], d.preds[1:], d.present[1:])
    with pytest.raises(ValueError, match="other utterances"):
        evaluate_conditions(short, [parse_condition("none"), parse_condition("text-absent")], metric="WA/UA",
                            classes=CLASSES, protocol="conditions", out=tmp_path / "x", result={})
    assert not list(tmp_path.iterdir())  # nothing written on refusal


def test_several_series_each_against_its_own_complete_data(tmp_path):
    """A dict of predicts (one model per fold, each on its own test utterances) goes into one set of files."""
    def fold(k):
        utts = [f"f{k}_{i}" for i in range(12)]
        y = np.arange(12) % 4

        def predict(cond, seed):
            p = y.copy() if cond.kind == "none" else (y + (np.arange(12) < 3 * k)) % 4  # fold k: 3k wrong
            return Draw(utts, y, p, ["audio+text"] * 12)
        return predict
    conds = [parse_condition("none"), parse_condition("present:audio")]
    rows = evaluate_conditions({"fold 1": fold(1), "fold 2": fold(2)}, conds, metric="WA/UA", classes=CLASSES,
                               protocol="fixed", out=tmp_path / "m", result={}, resamples=50)
    assert [(r["series"], r["condition"]) for r in rows] == [("fold 1", "complete"), ("fold 1", "present:audio"),
                                                             ("fold 2", "complete"), ("fold 2", "present:audio")]
    assert [r["WA"] for r in rows] == [1.0, 0.75, 1.0, 0.5] and rows[3]["WA_diff"] == -0.5
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["summary"]["by_series"]["fold 2"]["mean"]["WA"] == pytest.approx(0.75)
    assert res["utterances"] == 24 and res["baselines"]["support"] == [6, 6, 6, 6]
    per_utt = metrics.read_per_utterance(tmp_path / "m_per_utterance.csv")
    assert per_utt.groupby("series").size().to_dict() == {"fold 1": 24, "fold 2": 24}
