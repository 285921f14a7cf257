"""The comparison report built from small hand-written result files (no training): intervals in every metric
cell, paired comparisons, baselines and class support, anchors only beside what they fit, protocol tables, seeds,
plots that do not mislead, and a page that stays whole when copied elsewhere (issue 20 items 8, 10-13)."""
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

INTERVAL = r"-?\d\.\d{4} \[-?\d\.\d{2}, -?\d\.\d{2}\]"
CLASSES = ["ang", "hap", "sad", "neu"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def ccc_result(folder: Path, name: str, corpus: Path, utts, labels, preds, **extra) -> Path:
    from metrics import ccc
    write_csv(folder / f"{name}.csv", ["utterance", "prediction", "label"], list(zip(utts, preds, labels)))
    doc = {"metric": "CCC", "value": float(ccc(np.asarray(preds), np.asarray(labels))), "utterances": len(utts),
           "per_utterance_csv": f"{name}.csv", "corpus": str(corpus), "split": "test1", "seed": 0,
           "command": f"python testing.py --csv {name}.csv", **extra}
    (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder / f"{name}.json"


def class_result(folder: Path, name: str, corpus: Path, utts, labels, preds, **extra) -> Path:
    from metrics import macro_f1, unweighted_accuracy, weighted_accuracy
    write_csv(folder / f"{name}.csv", ["utterance", "label", "prediction"],
              [[u, CLASSES[y], CLASSES[p]] for u, y, p in zip(utts, labels, preds)])
    doc = {"metric": "WA/UA", "WA": float(weighted_accuracy(labels, preds)),
           "UA": float(unweighted_accuracy(labels, preds, 4)), "macro_F1": float(macro_f1(labels, preds, 4)),
           "utterances": len(utts), "classes": CLASSES,
           "per_utterance_csv": f"{name}.csv", "corpus": str(corpus), "protocol": "loso", "fold": 5,
           "split": "fold 5 test", "seed": 0, "command": f"python mdre.py --results {folder}", **extra}
    (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder / f"{name}.json"


def protocol_result(folder: Path, name: str, utts, labels, protocol: str) -> Path:
    """A result of engine.robustness (contract section 2) with its long per-utterance CSV, written by hand: the
    complete condition right on 90 % of the utterances, the degraded ones on fewer."""
    n = len(utts)
    rng = np.random.default_rng(1)
    right = {"complete": 0.9, "present:audio": 0.5, "random-missing:0.3": 0.7, "random-missing:0.6": 0.45}
    conds = ["complete", "present:audio"] if protocol == "fixed" else ["complete", "random-missing:0.3",
                                                                        "random-missing:0.6"]
    long, rows = [], []
    for cond in conds:
        seeds = [0] if cond in ("complete", "present:audio") else [0, 1]
        for s in seeds:
            preds = np.where(rng.random(n) < right[cond], labels, (labels + 1) % 4)
            long += [["Session 5", cond, s, u, "audio+text", CLASSES[y], CLASSES[p]]
                     for u, y, p in zip(utts, labels, preds)]
        rate = None if ":" not in cond or cond.startswith("present") else float(cond.split(":")[1])
        rows.append({"series": "Session 5", "condition": cond, "kind": cond.split(":")[0], "rate": rate,
                     "WA": right[cond], "WA_ci": [right[cond] - 0.1, right[cond] + 0.05], "WA_sd": None,
                     "UA": right[cond] - 0.05, "UA_ci": [right[cond] - 0.15, right[cond]], "UA_sd": None,
                     "present": {"audio": 1.0, "text": 0.0 if cond == "present:audio" else 1.0}, "utterances": n})
    write_csv(folder / f"{name}_per_utterance.csv",
              ["series", "condition", "sim_seed", "utterance", "present", "label", "prediction"], long)
    summary = ({"mean": {"WA": 0.7, "WA_ci": [0.6, 0.8], "UA": 0.65, "UA_ci": [0.55, 0.75]},
                "pooled": {"WA": 0.71, "WA_ci": [0.62, 0.79], "UA": 0.66, "UA_ci": [0.56, 0.74]}}
               if protocol == "fixed" else
               {"random-missing": {"WA": {"auc_norm": 0.8123, "rate_at_10pct_drop": 0.2},
                                   "UA": {"auc_norm": 0.7956, "rate_at_10pct_drop": None}}})
    doc = {"metric": "WA/UA", "protocol": protocol, "rows": rows, "summary": summary, "classes": CLASSES,
           "interval": {"method": "bca", "resamples": 1000, "level": 0.95, "seed": 0, "unit": "test utterance"},
           "sim_seeds": [0, 1], "per_utterance_csv": f"{name}_per_utterance.csv", "corpus": "iemocap",
           "command": f"python speech_text_mocap.py --protocols {protocol}"}
    (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder / f"{name}.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report over hand-written results: two dimensional systems on the same 40 utterances (one far better
    than the other: a planted difference), an old-style file without intervals, two MDRE models on one fold,
    a variant over two training seeds, and a fixed and a random protocol."""
    from report.build import build
    from report.config import Config, Corpus
    from report.recipes import Job, Result
    d = tmp_path_factory.mktemp("report")
    res = d / "data" / "results"
    res.mkdir(parents=True)
    corpus = d / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    utts = [f"u{k:02d}" for k in range(40)]
    y = rng.normal(4, 1, 40)
    good = ccc_result(res, "good_Act", corpus, utts, y, y + rng.normal(0, 0.3, 40))
    bad = ccc_result(res, "bad_Act", corpus, utts, y, rng.normal(4, 1, 40))
    labels = np.array([0] * 6 + [1] * 14 + [2] * 2 + [3] * 8)
    cutts = [f"c{k:02d}" for k in range(30)]
    are = class_result(res, "ARE_fold5", corpus, cutts, labels, np.where(rng.random(30) < 0.4, labels, 1))
    tre = class_result(res, "TRE_fold5", corpus, cutts, labels, np.where(rng.random(30) < 0.8, labels, 1),
                       present={"audio": 1.0, "text": 0.5})
    seeds = [class_result(res, f"MDREA_seed{s}_fold5", corpus, cutts, labels,
                          np.where(rng.random(30) < 0.6, labels, 1), seed=s) for s in (0, 1)]
    fixed = protocol_result(res, "stm_fixed", cutts, labels, "fixed")
    rand = protocol_result(res, "stm_random", cutts, labels, "random")
    results = [Result("ccc", "chunk-lstm", "RnnAttenVec", good, {"attribute": "Act"}),
               Result("ccc", "deep-emo-cluster", "Temp-GRU", bad, {"attribute": "Act"}),
               Result("class", "mdre", "ARE", are, {"fold": 5}), Result("class", "mdre", "TRE", tre, {"fold": 5}),
               *[Result("class", "mdre", "MDREA", p, {"fold": 5, "seed": s}) for s, p in enumerate(seeds)],
               Result("protocol", "speech-text-mocap", "ablation", fixed, {"protocol": "fixed", "metric": "WA/UA"}),
               Result("protocol", "speech-text-mocap", "ablation", rand, {"protocol": "random", "metric": "WA/UA"})]
    cfg_file = d / "c.yaml"
    cfg_file.write_text("name: t\n")
    cfg = Config(cfg_file, "t", d / "data", d / "report", True, False,
                 {"iem": Corpus("iem", "iemocap", corpus, None)}, [])
    md, page = build(cfg, [Job("all", [], results)], [])
    return d, md.read_text(), page.read_text()


def rows_of(md: str, start: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith(start)]


def test_every_metric_cell_carries_its_interval_and_the_method_is_stated_once(built):
    _, md, _ = built
    (good,) = rows_of(md, "| chunk LSTM | RnnAttenVec |")
    assert re.fullmatch(INTERVAL, good[2]), good  # the file has no interval: bootstrapped from its CSV
    for row in rows_of(md, "| MDRE family | ARE |") + rows_of(md, "| MDRE family | TRE |"):
        assert all(re.fullmatch(INTERVAL, cell) for cell in row[3:6]), row  # WA, UA, macro-F1
    assert md.count("bootstrap interval over the test utterances (1,000 resamples, seed 0)") == 1
    # protocol tables: intervals too, the fixed protocol's two averages named for what they are
    fixed = md[md.index("Fixed-condition protocol"):]
    assert re.search(r"\| Session 5 \| present:audio \|\s+\| " + INTERVAL, fixed)
    assert "| *mean of the per-condition scores* |" in fixed and "MMIN's \"average\"" in fixed
    assert "audio 100 %, text 0 %" in fixed  # the share of test utterances that had each modality


def test_training_seeds_show_each_seed_and_their_mean_and_sd(built):
    _, md, _ = built
    assert len(rows_of(md, "| MDRE family | MDREA, seed ")) == 2
    (mean,) = rows_of(md, "| MDRE family | MDREA: mean ± sd over 2 training seeds |")
    assert re.fullmatch(r"\d\.\d{4} ± \d\.\d{4} \(2 seeds\)", mean[3]), mean


def test_baseline_rows_give_chance_majority_and_class_support(built):
    _, md, page = built
    (row,) = rows_of(md, "| *MDRE family* | *baselines: chance, majority class* |")
    assert row[3] == "*chance 0.2500, majority 0.4667*"  # 14 of 30 are the second class
    assert row[4] == "*chance 0.2500, majority 0.2500*" and row[7] == "*ang 6, hap 14, sad 2, neu 8*"
    assert "class='baseline'" in page
    (tre,) = rows_of(md, "| MDRE family | TRE |")
    assert tre[8] == "audio 100 %, text 50 %"  # the share of test utterances that had each modality
    assert "a constant prediction (e.g. the training mean) scores CCC 0" in md


def test_comparisons_test_the_planted_difference_in_the_right_direction(built):
    _, md, _ = built
    (row,) = rows_of(md, "| chunk LSTM RnnAttenVec vs DeepEmoCluster Temp-GRU |")
    diff, p, effect = row[5], float(row[6].replace("< ", "")), float(row[7])
    assert diff.startswith("-") and p < 0.01 and effect < -2  # B (no skill) below A (skilled)
    assert row[8] == "40"
    (wa,) = [r for r in rows_of(md, "| MDRE family: ARE vs TRE |") if r[2] == "WA"]
    assert wa[5].startswith("+")
    (f1,) = [r for r in rows_of(md, "| MDRE family: ARE vs TRE |") if r[2] == "macro_F1"]
    assert f1[5].startswith("+")  # TRE (80 % right) above ARE (40 %) in macro-F1 too
    # complete vs each missing condition, recomputed from the long per-utterance CSV
    cond = rows_of(md, "| Session 5: complete vs present:audio |")
    assert {r[2] for r in cond} == {"WA", "UA"}
    assert all(float(r[6].replace("< ", "")) < 0.05 and r[5].startswith("-") for r in cond)
    assert rows_of(md, "| Session 5: complete vs random-missing:0.6 |")


def test_the_random_protocol_has_its_robustness_summary_and_curve(built):
    d, md, _ = built
    summary = rows_of(md, "| random-missing | WA |")
    assert summary and summary[0][2] == "0.8123" and summary[0][3] == "0.2000"
    assert rows_of(md, "| random-missing | UA |")[0][3] == "never (within the rates)"
    assert (d / "report" / "figures" / "protocol_stm_random.png").is_file()


def test_anchors_stand_beside_only_what_they_fit(built):
    from report.anchors import ANCHORS
    from report.build import anchor_fits
    _, md, _ = built
    assert "should land" not in md
    published = md[md.index("### Published figures (not comparable", md.index("Categorical systems")):]
    assert "5 random folds over all sessions" in published and "not leave-one-session-out" in published
    (mdre,) = ANCHORS["mdre"]
    real_loso, real_random = {"corpus": "/data/IEMOCAP", "protocol": "loso"}, {"corpus": "/x", "protocol": "random5"}
    assert not anchor_fits(mdre, [real_loso]) and anchor_fits(mdre, [real_random])
    assert not any(anchor_fits(a, [real_random]) for a in ANCHORS["speech-text-mocap"])


def test_the_page_is_whole_when_copied_and_its_tables_scroll(built, tmp_path):
    d, md, page = built
    tables = page.count("<table>")
    assert tables >= 5 and page.count("<div class='scroll'><table>") == tables
    hrefs = re.findall(r"href=['\"]([^'\"]+)", page)
    assert hrefs and all(h.startswith("#") for h in hrefs), [h for h in hrefs if not h.startswith("#")]
    for ref in set(re.findall(r"href='#(R\d+)'", page)):
        assert f"<details class='ref' id='{ref}'>" in page  # every reference resolves inside the page
    assert re.findall(r"<img [^>]*src='([^']+)'", page) and all(
        s.startswith("data:image/png;base64,") for s in re.findall(r"<img [^>]*src='([^']+)'", page))
    assert "python mdre.py --results" in page  # the command, in the page
    assert "(../" not in md and "](/" not in md  # the Markdown links stay in its folder too
    for target in re.findall(r"\]\(([^)#]+)\)", md):
        assert (d / "report" / target).is_file(), target


def test_cross_corpus_means_only_within_one_models_folds():
    from systems.cross_corpus import summary_table
    rows = [("MDREA_random5_fold1", 50, 0.5, 0.4), ("MDREA_random5_fold2", 50, 0.7, 0.6),
            ("ARE_random5_fold1", 50, 0.1, 0.1), ("stm_speech+text+mocap_s5_dev0.2", 50, 0.3, 0.3)]
    out = summary_table(rows, "test1")
    assert "| mean of MDREA_random5's 2 folds | | 0.6000 | 0.5000 |" in out
    assert out.count("mean of") == 1  # never one mean over different models


def test_real_msp_podcast_root_gets_its_release_and_size(tmp_path):
    from report.build import corpus_version
    root = tmp_path / "MSP-PODCAST-Publish-1.10"
    (root / "Labels").mkdir(parents=True)
    write_csv(root / "Labels" / "labels_consensus.csv", ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom",
                                                         "SpkrID", "Gender", "Split_Set"],
              [["a.wav", "N", 4, 4, 4, 1, "Male", "Train"], ["b.wav", "H", 5, 5, 4, 2, "Female", "Development"],
               ["c.wav", "A", 6, 2, 5, 3, "Male", "Test1"]])
    version, size = corpus_version("msp-podcast", root)
    assert "v1.10 or later" in version and "MSP-PODCAST-Publish-1.10" in version and size == 3


def test_a_manifest_corpus_is_named_with_its_splits_and_classes(manifest_corpus, tmp_path):
    from report.build import corpus_version
    version, size = corpus_version("manifest", manifest_corpus)
    assert version.startswith("SynthManifest, manifest corpus.csv; splits train 15, dev 15, test 15, test2 15; "
                              "classes angry, sad, happy, neutral") and size == 60
    version, size = corpus_version("manifest", tmp_path / "gone.csv")
    assert "not readable" in version and "gone.csv" in version and size is None


def test_curves_have_bands_and_axes_from_a_stated_baseline(tmp_path):
    from matplotlib.collections import PolyCollection

    from engine.plots import bar_chart, line_figure, missing_figure
    rows = [{"series": "s", "condition": "complete", "rate": 0.0, "UA": 0.61, "UA_ci": [0.55, 0.66]},
            {"series": "s", "condition": "frames", "rate": 0.5, "UA": 0.60, "UA_ci": [0.54, 0.65]}]
    fig = missing_figure(rows, ["UA"], baselines={"UA": (0.25, "chance")})
    ax = fig.axes[0]
    assert any(isinstance(c, PolyCollection) for c in ax.collections)  # the interval band
    assert 0.23 < ax.get_ylim()[0] <= 0.25 and ax.get_ylim()[1] >= 1.0  # 0.01 apart stays 0.01 apart
    assert ax.get_ylabel() == "UA (axis from chance 0.25)"
    assert "chance" in [line.get_label() for line in ax.get_lines()]
    path = bar_chart(["a", "b"], {"WA": [0.5, 0.6]}, tmp_path / "b.png", intervals={"WA": [(0.4, 0.62), None]})
    assert path.read_bytes()[:4] == b"\x89PNG"
    # training curves: each run's best (lowest) validation loss starred, the first of equal ones
    fig = line_figure({"run": ([1, 2, 3, 4], [0.9, 0.5, 0.5, 0.7])}, best="min")
    stars = [line for line in fig.axes[0].get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [2] and list(stars[0].get_ydata()) == [0.5]


def test_a_protocol_file_of_several_folds_shows_each_folds_summary():
    # engine.robustness writes {"by_series": {fold: summary}} when one file holds several models (mdre.py: folds)
    from report.build import _protocol_table, _summary_table
    one = {"random-missing": {"WA": {"auc_norm": 0.9, "rate_at_10pct_drop": 0.5}}}
    other = {"random-missing": {"WA": {"auc_norm": 0.7, "rate_at_10pct_drop": 0.1}}}
    d = {"metric": "WA/UA", "rows": [], "summary": {"by_series": {"fold 1": one, "fold 2": other}}}
    table = _summary_table(d, ["WA"])
    assert table.header[0] == "series"
    assert [r[0] for r in table.rows] == ["fold 1", "fold 2"] and [r[3] for r in table.rows] == [0.9, 0.7]
    fixed = {"rows": [], "summary": {"by_series": {"fold 1": {"mean": {"WA": 0.5}, "pooled": {"WA": 0.5}},
                                                   "fold 2": {"mean": {"WA": 0.6}, "pooled": {"WA": 0.6}}}}}
    rows = _protocol_table(fixed, ["WA"], "[R1]").rows
    assert [(r[0], r[1][:4]) for r in rows] == [("fold 1", "mean"), ("fold 1", "pool"), ("fold 2", "mean"),
                                                ("fold 2", "pool")]
    flat = _summary_table({"metric": "WA/UA", "summary": one}, ["WA"])
    assert flat.header[0] == "kind" and flat.rows[0][:2] == ["random-missing", "WA"]
