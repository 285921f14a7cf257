"""Classification metrics of utils.py: confusion matrix, WA, UA, confusion CSV/PNG."""
import numpy as np
import pytest

from utils import confusion_matrix, unweighted_accuracy, weighted_accuracy, write_confusion

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["angry", "happy", "sad", "neutral"]

# 12 items, supports 6 / 2 / 3 / 1
TRUE = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3]
PRED = [0, 0, 0, 0, 0, 1, 0, 1, 2, 2, 3, 0]
# rows = true, columns = predicted:
#   angry   5 1 0 0     recall 5/6
#   happy   1 1 0 0     recall 1/2
#   sad     0 0 2 1     recall 2/3
#   neutral 1 0 0 0     recall 0/1
# WA = (5 + 1 + 2 + 0) / 12 = 2/3;  UA = (5/6 + 1/2 + 2/3 + 0) / 4 = (5 + 3 + 4 + 0) / 6 / 4 = 2 / 4 = 1/2
HAND_CM = [[5, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 1], [1, 0, 0, 0]]


def test_hand_computed_four_class_example():
    cm = confusion_matrix(TRUE, PRED, 4)
    assert cm.dtype == np.int64 and cm.shape == (4, 4)
    assert cm.tolist() == HAND_CM
    assert weighted_accuracy(TRUE, PRED) == pytest.approx(2 / 3)
    assert unweighted_accuracy(TRUE, PRED, 4) == pytest.approx(1 / 2)


def test_perfect_and_all_wrong():
    true = np.array([0, 1, 2, 3, 3, 2, 1, 0, 0])
    assert confusion_matrix(true, true, 4).tolist() == np.diag([3, 2, 2, 2]).tolist()
    assert weighted_accuracy(true, true) == 1.0
    assert unweighted_accuracy(true, true, 4) == 1.0
    wrong = (true + 1) % 4
    cm = confusion_matrix(true, wrong, 4)
    assert np.trace(cm) == 0 and cm.sum() == len(true)
    assert cm[0, 1] == 3 and cm[3, 0] == 2  # 0 -> 1 three times, 3 -> 0 twice
    assert weighted_accuracy(true, wrong) == 0.0
    assert unweighted_accuracy(true, wrong, 4) == 0.0


def test_class_absent_from_the_truth_is_left_out_of_ua():
    true = [0, 0, 1, 1, 2, 2]
    pred = [0, 3, 1, 1, 2, 0]  # class 3 predicted once, never true
    cm = confusion_matrix(true, pred, 4)
    assert cm.tolist() == [[1, 0, 0, 1], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    # recalls 1/2, 2/2, 1/2 over the three present classes; counting class 3 as 0 would give 0.5
    assert unweighted_accuracy(true, pred, 4) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert weighted_accuracy(true, pred) == pytest.approx(4 / 6)


def test_label_types_and_bad_inputs():
    assert confusion_matrix(np.array([0.0, 1.0]), [1, 1], 2).tolist() == [[0, 1], [0, 1]]  # integral floats ok
    assert confusion_matrix([], [], 3).tolist() == [[0] * 3] * 3
    with pytest.raises(ValueError, match="length"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix([0, 4], [0, 1], 4)
    with pytest.raises(ValueError, match=">= 0"):
        weighted_accuracy([0, -1], [0, 1])
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix([0.5, 1], [0, 1], 2)
    with pytest.raises(ValueError, match="1-D"):
        confusion_matrix([[0, 1]], [[0, 1]], 2)
    with pytest.raises(ValueError, match="no items"):
        weighted_accuracy([], [])
    with pytest.raises(ValueError, match="no items"):
        unweighted_accuracy([], [], 4)


def test_write_confusion_csv_exact_and_png(tmp_path):
    stem = tmp_path / "out" / "fold1.test"  # the dot in the stem is kept
    csv_path, png_path = write_confusion(stem, confusion_matrix(TRUE, PRED, 4), CLASSES, title="MDRE fold 1")
    assert csv_path == tmp_path / "out" / "fold1.test.csv" and png_path == tmp_path / "out" / "fold1.test.png"
    assert csv_path.read_bytes() == (b"true\\pred,angry,happy,sad,neutral\r\n"
                                     b"angry,5,1,0,0\r\n"
                                     b"happy,1,1,0,0\r\n"
                                     b"sad,0,0,2,1\r\n"
                                     b"neutral,1,0,0,0\r\n")
    png = png_path.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["fold1.test.csv", "fold1.test.png"]  # no .tmp


def test_write_confusion_empty_row_and_checks(tmp_path):
    cm = confusion_matrix([0, 0, 1], [0, 2, 1], 3)  # class 2 never true: its row prints '-' shares
    csv_path, png_path = write_confusion(tmp_path / "cm", cm, ["a", "b", "c"])
    assert csv_path.read_text().splitlines() == ["true\\pred,a,b,c", "a,1,0,1", "b,0,1,0", "c,0,0,0"]
    assert png_path.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="shape"):
        write_confusion(tmp_path / "bad", cm, ["a", "b"])
    with pytest.raises(ValueError, match="non-negative integer"):
        write_confusion(tmp_path / "bad", -cm, ["a", "b", "c"])
    assert not list(tmp_path.glob("bad*"))


# ------------------------------------------------------------------ metrics.py: intervals, tests, summaries

import metrics  # noqa: E402


def test_moved_metrics_still_importable_from_utils():
    import utils
    for name in ("ccc", "weighted_accuracy", "unweighted_accuracy", "confusion_matrix", "_class_labels"):
        assert getattr(utils, name) is getattr(metrics, name)


def _coverage(metric: str, method: str, truth: float, draw, sets: int = 200) -> float:
    rng = np.random.default_rng(123)
    hits = 0
    for k in range(sets):
        labels, preds = draw(rng)
        s = metrics.score(metric, labels, preds, n_classes=4, method=method, seed=k)
        hits += s.lo <= truth <= s.hi
    return hits / sets


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_ccc_interval_covers_the_true_value_at_the_nominal_rate(method):
    rho = 0.6  # equal means and variances: CCC = rho

    def draw(rng):
        xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=100)
        return xy[:, 0], xy[:, 1]
    assert _coverage("CCC", method, rho, draw) >= 0.93


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_wa_interval_covers_the_true_value_at_the_nominal_rate(method):
    p = 0.7  # each prediction right with probability p: WA = p

    def draw(rng):
        y = rng.integers(0, 4, 100)
        return y, np.where(rng.random(100) < p, y, (y + 1) % 4)
    assert _coverage("WA", method, p, draw) >= 0.93


def test_scored_text_value_and_bootstrap_details():
    rng = np.random.default_rng(0)
    t = rng.normal(size=67)
    p = t + rng.normal(size=67)
    s = metrics.score("CCC", t, p)
    assert s.value == metrics.ccc(p, t) and s.lo < s.value < s.hi and s.method == "bca"
    assert s.text() == f"{s.value:.4f} [{s.lo:.2f}, {s.hi:.2f}]"
    assert metrics.score("CCC", t, p) == s  # seeded
    assert metrics.score("CCC", t, p, seed=1) != s
    bare = metrics.score("CCC", t, p, resamples=0)
    assert (bare.lo, bare.hi) == (None, None) and bare.text() == f"{s.value:.4f}"
    assert metrics.interval_fields("Val", s) == {"Val": s.value, "Val_ci": [s.lo, s.hi]}
    assert metrics.interval_fields("WA", bare) == {"WA": s.value, "WA_ci": None}
    # S simulation draws: the mean of the per-draw values
    draws = np.stack([p, p + 1.0])
    assert metrics.score("CCC", t, draws).value == pytest.approx((metrics.ccc(p, t) + metrics.ccc(p + 1, t)) / 2)
    # every resample equal (all predictions right): BCa is undefined, the percentile interval [1, 1] is used
    y = np.array([0, 1, 2, 3] * 5)
    s = metrics.score("UA", y, y, n_classes=4)
    assert (s.value, s.lo, s.hi, s.method) == (1.0, 1.0, 1.0, "percentile")
    with pytest.raises(ValueError, match="metric"):
        metrics.score("F1", y, y)
    with pytest.raises(ValueError, match="method"):
        metrics.score("WA", y, y, method="basic")


def test_moment_formulas_equal_the_metric_on_resamples_and_leave_one_out():
    """The fast paths (sums of per-utterance columns) against the plain metrics, with 3 simulation draws."""
    rng = np.random.default_rng(3)
    t, p = rng.normal(size=25), rng.normal(size=(3, 25))
    y, q = rng.integers(0, 3, 25), rng.integers(0, 3, (3, 25))
    for metric, lab, pred, fn in (("CCC", t, p, lambda a, b: metrics.ccc(b, a)),
                                  ("WA", y, q, metrics.weighted_accuracy),
                                  ("UA", y, q, lambda a, b: metrics.unweighted_accuracy(a, b, 3))):
        st, _ = metrics._stat(metric, lab, pred, 3)
        loo = [np.mean([fn(np.delete(lab, i), np.delete(d, i)) for d in pred]) for i in range(25)]
        assert metrics._jackknife(st) == pytest.approx(loo, abs=1e-12)
        idx = rng.integers(0, 25, 25)
        counts = np.bincount(idx, minlength=25).astype(float)[None, :]
        assert st.fn(counts @ st.cols, 25)[0] == pytest.approx(np.mean([fn(lab[idx], d[idx]) for d in pred]),
                                                                abs=1e-12)


def _paired_sets(planted: bool, sets: int = 100):
    rng = np.random.default_rng(7)
    for _ in range(sets):
        t = rng.normal(size=80)
        a = t + rng.normal(size=80)
        b = t + rng.normal(size=80) * (0.5 if planted else 1.0)  # exchangeable with a on the null
        yield t, a, b


def test_paired_test_rejects_a_planted_difference():
    results = [metrics.paired_test("CCC", t, a, b, seed=k) for k, (t, a, b) in enumerate(_paired_sets(True))]
    assert np.mean([r["p"] < 0.05 for r in results]) >= 0.9
    r = results[0]
    assert r["diff"] > 0 and r["diff_ci"][0] < r["diff"] < r["diff_ci"][1] and r["effect"] > 0
    assert "paired bootstrap" in r["method"]


def test_paired_test_on_a_null_rejects_at_about_the_stated_rate():
    results = [metrics.paired_test("CCC", t, a, b, seed=k) for k, (t, a, b) in enumerate(_paired_sets(False))]
    assert np.mean([r["p"] < 0.05 for r in results]) <= 0.08
    same = metrics.paired_test("WA", [0, 1, 2, 1], [0, 1, 1, 1], [0, 1, 1, 1])
    assert same["diff"] == 0 and same["p"] == 1.0 and same["effect"] is None


def test_baselines_hand_made():
    b = metrics.baselines([0, 0, 0, 1, 2, 2], 4)
    assert b == {"chance_WA": 0.25, "majority_WA": 0.5, "chance_UA": 0.25, "majority_UA": pytest.approx(1 / 3),
                 "support": [3, 1, 2, 0]}


def test_robustness_summary_hand_made_curves():
    # trapezoids 0.1 * (1 + 0.95) / 2 + 0.1 * (0.95 + 0.8) / 2 = 0.185; / (1 * 0.2) = 0.925
    s = metrics.robustness_summary([0, 0.1, 0.2], [1.0, 0.95, 0.8])
    assert s["auc_norm"] == pytest.approx(0.925)
    assert s["rate_at_10pct_drop"] == pytest.approx(0.1 + 0.1 * (0.95 - 0.9) / (0.95 - 0.8))  # 0.1333
    never = metrics.robustness_summary([0, 0.3, 0.7], [0.5, 0.48, 0.46])
    assert never["rate_at_10pct_drop"] is None and never["auc_norm"] == pytest.approx(
        (0.3 * 0.98 / 2 + 0.4 * 0.94 / 2) / (0.5 * 0.7))
    assert metrics.robustness_summary([0, 0.5], [0.6, 0.54])["rate_at_10pct_drop"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ascend from 0"):
        metrics.robustness_summary([0.1, 0.2], [1, 1])


def test_read_per_utterance(tmp_path):
    path = tmp_path / "x_per_utterance.csv"
    path.write_text("series,condition,sim_seed,utterance,present,label,prediction\n"
                    "m,complete,0,001,audio+text,NA,sad\nm,present:audio,0,002,,sad,sad\n")
    df = metrics.read_per_utterance(path)
    assert df["utterance"].tolist() == ["001", "002"] and df["present"].tolist() == ["audio+text", ""]
    assert df["label"].tolist() == ["NA", "sad"] and df["sim_seed"].tolist() == [0, 0]


def test_result_files_store_intervals_baselines_and_the_method(tmp_path):
    import json

    from systems.common import with_interval, write_class_scores, write_scores
    rng = np.random.default_rng(5)
    items = [(f"u{i}", float(v)) for i, v in enumerate(rng.uniform(1, 7, 40))]
    scores = np.array([v for _, v in items]) + rng.normal(size=40)
    scored = write_scores(tmp_path / "r.csv", items, scores, result={"system": "x"})
    value = scored.value
    res = json.loads((tmp_path / "r.json").read_text())
    want = metrics.score("CCC", [v for _, v in items], scores)
    assert value == res["value"] == want.value and res["value_ci"] == [want.lo, want.hi]
    assert res["interval"] == metrics.interval_record() and res["interval"]["unit"] == "test utterance"
    assert with_interval(scored) == f"{value} [{want.lo:.2f}, {want.hi:.2f}]"

    labels = np.array([0, 0, 0, 1, 1, 2] * 5)
    logits = np.eye(4)[np.where(rng.random(30) < 0.7, labels, 3)]
    wa, ua = write_class_scores(tmp_path / "c.csv", [f"u{i}" for i in range(30)], labels, logits, CLASSES,
                                result={"system": "y"}, ci_method="percentile")
    res = json.loads((tmp_path / "c.json").read_text())
    ws = metrics.score("WA", labels, logits.argmax(1), method="percentile")
    assert (wa, res["WA"], res["WA_ci"]) == (ws.value, ws.value, [ws.lo, ws.hi]) and res["UA"] == ua
    assert res["UA_ci"][0] < ua < res["UA_ci"][1] and res["interval"]["method"] == "percentile"
    assert res["baselines"] == {"chance_WA": 0.25, "majority_WA": 0.5, "chance_UA": 0.25,
                                "majority_UA": pytest.approx(1 / 3), "support": [15, 10, 5, 0]}


# ------------------------------------------------------------------------------------------------ macro-F1
# The module's 4-class example (HAND_CM): per class 2 TP / (support + predicted)
#   angry   2*5 / (6 + 7) = 10/13     happy 2*1 / (2 + 2) = 1/2
#   sad     2*2 / (3 + 2) = 4/5       neutral 2*0 / (1 + 1) = 0
HAND_F1 = (10 / 13 + 1 / 2 + 4 / 5 + 0) / 4


def test_macro_f1_hand_computed_and_sklearn():
    assert metrics.macro_f1(TRUE, PRED, 4) == pytest.approx(HAND_F1)
    assert metrics.macro_f1(TRUE, TRUE, 4) == 1.0
    # a class absent from both true and pred (class 3 of 5, class 4) is left out of the mean
    t, p = [0, 0, 1, 2], [0, 1, 1, 2]  # F1: 2/3, 2/3, 1
    assert metrics.macro_f1(t, p, 5) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # a class predicted but never true counts with F1 0 (its predictions are all false positives)
    t, p = [0, 0, 1, 1], [0, 3, 1, 1]  # F1: 2/3, 1, class 3: 0
    assert metrics.macro_f1(t, p, 4) == pytest.approx((2 / 3 + 1 + 0) / 3)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    for _ in range(50):
        k, n = int(rng.integers(2, 9)), int(rng.integers(1, 30))
        y, q = rng.integers(0, k, n), rng.integers(0, k, n)
        assert metrics.macro_f1(y, q, k) == pytest.approx(sklearn_metrics.f1_score(y, q, average="macro"),
                                                          abs=1e-12)
    with pytest.raises(ValueError, match="no items"):
        metrics.macro_f1([], [], 4)
    with pytest.raises(ValueError, match="out of range"):
        metrics.macro_f1([0, 4], [0, 1], 4)


def test_macro_f1_interval_fast_path_and_paired_test():
    rng = np.random.default_rng(4)
    y, q = rng.integers(0, 4, 25), rng.integers(0, 4, (3, 25))
    st, value = metrics._stat("macro_F1", y, q, 4)
    assert value == pytest.approx(np.mean([metrics.macro_f1(y, d, 4) for d in q]))
    loo = [np.mean([metrics.macro_f1(np.delete(y, i), np.delete(d, i), 4) for d in q]) for i in range(25)]
    assert metrics._jackknife(st) == pytest.approx(loo, abs=1e-12)
    idx = rng.integers(0, 25, 25)
    counts = np.bincount(idx, minlength=25).astype(float)[None, :]
    assert st.fn(counts @ st.cols, 25)[0] == pytest.approx(np.mean([metrics.macro_f1(y[idx], d[idx], 4)
                                                                     for d in q]), abs=1e-12)
    s = metrics.score("macro_F1", TRUE, PRED, n_classes=4)
    assert s.value == pytest.approx(HAND_F1) and s.lo < s.value < s.hi and s.method in metrics.METHODS
    assert metrics.score("macro_F1", TRUE, PRED, n_classes=4) == s  # seeded
    with pytest.raises(ValueError, match="macro_F1 needs n_classes"):
        metrics.score("macro_F1", TRUE, PRED)
    better = np.where(rng.random(200) < 0.8, np.arange(200) % 4, 0)
    worse = np.where(rng.random(200) < 0.4, np.arange(200) % 4, 0)
    r = metrics.paired_test("macro_F1", np.arange(200) % 4, worse, better, n_classes=4)
    assert r["diff"] > 0 and r["p"] < 0.05 and r["diff_ci"][0] > 0


def test_class_result_files_store_macro_f1(tmp_path):
    import json

    from systems.common import write_class_scores
    labels = np.array([0, 0, 0, 1, 1, 2] * 5)
    logits = np.eye(4)[np.where(np.arange(30) % 3 == 0, 3, labels)]
    write_class_scores(tmp_path / "c.csv", [f"u{i}" for i in range(30)], labels, logits, CLASSES,
                       result={"system": "y"})
    res = json.loads((tmp_path / "c.json").read_text())
    want = metrics.score("macro_F1", labels, logits.argmax(1), n_classes=4)
    assert (res["macro_F1"], res["macro_F1_ci"]) == (want.value, [want.lo, want.hi])
    assert res["macro_F1"] == pytest.approx(metrics.macro_f1(labels, logits.argmax(1), 4))
