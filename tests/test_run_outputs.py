"""What a run's figures and output names show: loss.png's panels (one kind of number per axis, whole-number
epochs, the best epoch marked), the missing-data figure's legend (full, distinct names, outside the axes),
and evaluate_missing.py keeping the user's --out name as given (issue 19, items 32 and 33)."""
import json
import shutil

import numpy as np

# the columns of a DeepEmoCluster log.csv (main.py -ep ... -unlabel ...), values of the scale they have
DEC_ROW = {"steps": 8, "unlabelled_loss": 1.1, "labelled_loss": 3.1, "val_loss": 1.0, "best_val": 1.0,
           "unlabelled_embed_seconds": 3.7, "unlabelled_kmeans_objective": 0.014, "unlabelled_empty_clusters": 0,
           "labelled_kmeans_objective": 0.02, "labelled_empty_clusters": 2, "nmi": 0.3,
           "labelled_train_seconds": 24.7, "seconds": 63.9}


def dec_log(val_losses):
    return [{"epoch": e + 1, **DEC_ROW, "val_loss": v, "labelled_loss": 3.0 - 0.1 * e} for e, v in enumerate(val_losses)]


def test_loss_png_gives_each_kind_of_curve_its_own_axis_and_marks_the_best_epoch():
    from engine.plots import training_figure
    fig = training_figure(dec_log([0.9, 0.7, 0.75, 0.7, 0.8]), "run")
    fig.draw_without_rendering()  # ticks as saved
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert set(axes) == {"unlabelled loss (training)", "labelled loss (training)", "validation loss",
                         "kmeans objective", "NMI (cluster assignments vs previous epoch)"}
    curves = {t: [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("best")]
              for t, ax in axes.items()}
    assert curves["validation loss"] == ["val loss"] and curves["labelled loss (training)"] == ["labelled loss"]
    assert curves["kmeans objective"] == ["unlabelled kmeans objective", "labelled kmeans objective"]
    for ax in fig.axes:  # every panel: the best epoch (2: the first of the two lowest) marked, whole-number ticks
        best = [ln for ln in ax.get_lines() if ln.get_label().startswith("best validation")]
        assert len(best) == 1 and list(best[0].get_xdata()) == [2, 2] and "epoch 2" in best[0].get_label()
        assert all(float(t).is_integer() for t in ax.get_xticks()), ax.get_xticks()
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel()
    star = [ln for ln in axes["validation loss"].get_lines() if ln.get_label() == "best 0.7000"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [2] and list(star[0].get_ydata()) == [0.7]


def test_missing_data_legend_shows_full_distinct_names_below_the_axes(tmp_path):
    from engine.plots import distinct_names, missing_curves, missing_figure
    runs = [tmp_path / "lab_a" / ("AudioText_iter3000_batch32_MultiRslParymidPool_MTL_lr0.0005_" + "x" * 30),
            tmp_path / "lab_b" / ("AudioText_iter3000_batch32_MultiRslParymidPool_MTL_lr0.0005_" + "x" * 30)]
    names = distinct_names(runs)
    assert names == [f"lab_a/{runs[0].name}", f"lab_b/{runs[1].name}"]
    rows = [{"series": n, "condition": c, "rate": r, "Act": v} for n in names
            for c, r, v in (("complete", 0.0, 0.6), ("frames", 0.5, 0.4), ("audio-absent", "", 0.2))]
    fig = missing_figure(rows, ["Act"])
    assert not fig.axes[0].get_legend()  # nothing drawn over the data
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [f"{n} {c}" for n in names for c in ("frames", "audio-absent")]
    fig.draw_without_rendering()  # lays the figure out as saving does
    box, axes_box = legend.get_window_extent(), fig.axes[0].get_window_extent()
    assert box.y1 <= axes_box.y0 and box.x0 >= 0 and box.x1 <= fig.bbox.x1  # below the axes, inside the figure
    assert missing_curves(rows, ["Act"], tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_missing_keeps_the_out_name_and_tells_checkpoints_apart(at_setup, tmp_path, capsys, monkeypatch):
    import evaluate_missing
    import main
    corpus, d = at_setup
    monkeypatch.chdir(tmp_path)
    assert main.main(["--root", str(corpus), "--audio-store", str(d / "audio"), "--text-store", str(d / "text"),
                      "--normterm-audio", str(d / "NT_S"), "--normterm-text", str(d / "NT_T"), "-iter", "2",
                      "-batch", "4", "--val-every", "2", "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    (run_a,) = (tmp_path / "a").iterdir()
    run_b = tmp_path / "b" / run_a.name  # the same run name in another folder
    shutil.copytree(run_a, run_b)
    args = ["--checkpoints", str(run_a), str(run_b), "--root", str(corpus), "--audio-store", str(d / "audio"),
            "--text-store", str(d / "text"), "--rates", "0,0.5", "--conditions", "frames", "--no-absent",
            "--out", str(tmp_path / "res" / "run_lr0.5e-3")]
    capsys.readouterr()
    assert evaluate_missing.main(args) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [  # issue 20: <out>_<protocol>.*
        "run_lr0.5e-3_conditions.csv", "run_lr0.5e-3_conditions.json", "run_lr0.5e-3_conditions.png",
        "run_lr0.5e-3_conditions_per_utterance.csv"]
    result = json.loads((tmp_path / "res" / "run_lr0.5e-3_conditions.json").read_text())
    names = [f"a/{run_a.name}", f"b/{run_a.name}"]  # whole, and which is which
    assert all(n in out for n in names), out
    rows = result["rows"]
    assert [r["series"] for r in rows] == [names[0]] * 2 + [names[1]] * 2
    assert result["series"] == {names[0]: str(run_a), names[1]: str(run_b)}
    training = result["training"]
    assert training[str(run_a)]["finished"] is True and training[str(run_a)]["planned"] == 2
    # a checkpoint whose training has not finished is refused before anything is scored or written
    record = json.loads((run_b / "run.json").read_text())
    record["training"].update(done=1, finished=False)
    (run_b / "run.json").write_text(json.dumps(record))
    shutil.rmtree(tmp_path / "res")
    assert evaluate_missing.main(args) == 1
    assert f"{run_b}: its training has not finished (iteration 1 of 2" in capsys.readouterr().err
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())
    assert np.isfinite([r["Act"] for r in rows]).all()
