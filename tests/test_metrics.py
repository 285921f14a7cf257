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
