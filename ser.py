"""The Python API: one import for predicting with any of our models and for running any system's experiment.

    import ser
    p = ser.load()                                   # the shipped published chunk-LSTM models (Act, Dom, Val)
    df = p.predict_folder("my_wavs")                 # the columns and values of prediction_process.py's CSV
    row = p.predict(signal, sr)                      # one signal; p.predict_file("a.wav") one file
    track = p.track_file("a.wav", out="tracks")      # per-chunk outputs on the time axis (docs/tracks.md);
                                                     # p.track(signal, sr), p.track_folder("my_wavs", "tracks")
    exp = ser.experiment("mdre", root="IEMOCAP", iterations=50, deterministic=True)
    exp.command, exp.outputs                         # the equivalent command line, every file it will write
    outcomes = ser.run(exp)                          # writes exactly the files of exp.outputs

`load` takes what prediction_process.py's --models takes (checkpoint folders, original .pth.tar files with their
NormTerm folder, a list of them one per attribute, or a folder holding them); `experiment` and `run` take the
scripts' flags as keywords, by their long names (`iterations=50` for -iter / --iterations; a switch is True), so
a run from Python and its script's run write the same files.
"""
from __future__ import annotations

from engine.experiment import SCRIPTS, Experiment, Outcome, describe
from engine.experiment import run as run_experiment
from systems.predict import Predictor, load

__all__ = ["SCRIPTS", "Experiment", "Outcome", "Predictor", "experiment", "load", "run"]


def experiment(name: str, **settings) -> Experiment:
    """The Experiment of a system or script (a key of SCRIPTS: "chunk-lstm", "mdre", ... or "mdre.py") with these
    settings, checked as the script checks its flags; `.command` is the equivalent command line, `.outputs` the
    run folders and result files it will write. Nothing is read or written yet."""
    return describe(name, **settings)


def run(exp: Experiment | str, **settings) -> list[Outcome]:
    """Run an experiment (an Experiment, or a system / script name with its settings, as `experiment` takes
    them): the script's flow, writing the files its `outputs` name; returns each fold's Outcome."""
    if isinstance(exp, str):
        exp = experiment(exp, **settings)
    elif settings:
        raise TypeError("ser.run(exp) takes no settings: they are the experiment's (ser.experiment(name, ...))")
    return run_experiment(exp)
