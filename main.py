#!/usr/bin/env python
"""Train the temporal-enhanced DeepEmoCluster on 128-mel spectrograms (the seed's command works as written):

    python main.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-Triplet
    python main.py -ep 30 -batch 64 -emo Act -nc 30 -mt Temp-Trans -unlabel 100000 --unlabelled-split test3
    python main.py -ep 30 -batch 64 -emo Dom -nc 30 -mt Temp-GRU -unlabel 5000 --unlabelled-wav-dir my_podcasts
    torchrun --nproc_per_node=2 main.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-CNN

Needs the mel store (feat_mel.py) and its NormTerm (norm_para.py). Each epoch: embeddings of every chunk,
k-means (faiss-cpu, or a torch fallback), a fresh cluster head, cluster-balanced whole-sentence sampling,
then the joint step; with -unlabel U the same clustering + classification pass on U unlabelled sentences
runs first. Writes <out>/TempDeepEmoCluster_epoch<EP>_batch<B>_<K>clusters_<emo>_<mt>_unlabel<U>/:
model.safetensors + config.json (best validation CCC), run.json, state.pt (resume), log.csv (losses, NMI,
k-means objective), loss.png. Re-running resumes.

`python main.py` with none of the flags above is the audio-text system of the seed 000 (System 3): wav2vec2 +
text token stores, multi-scale chunks, co-attention transformer, Act/Dom/Val at once, then the test banner:

    python main.py --root R --normterm-audio R/NormTerm_Speech --normterm-text R/NormTerm_Text
    python main.py --root R --chunking fixed --train-missing bursts:0.2 -iter 2000 -batch 64
"""
import sys

from engine.cli import entry
from engine.experiment import Experiment, run
from systems.deep_emo_cluster import FLAGS


def build_parser(system: str = "audio-text"):
    """The parser of one of main.py's two systems: "audio-text" (System 3, the seed 000's flags) or
    "deep-emo-cluster" (System 2: -ep, -batch, -emo, -nc, -mt, -unlabel)."""
    from systems.audio_text_experiment import audio_text_parser
    from systems.deep_emo_cluster_experiment import deep_emo_cluster_parser
    return deep_emo_cluster_parser(__doc__) if system == "deep-emo-cluster" else audio_text_parser(__doc__)


def describe(argv) -> Experiment:
    """DeepEmoCluster's training run when any of its flags is given, else audio-text's train + test."""
    from systems import audio_text_experiment, deep_emo_cluster_experiment
    if any(a.split("=")[0] in FLAGS for a in argv):
        return deep_emo_cluster_experiment.describe(argv, __doc__)
    return audio_text_experiment.describe(argv, __doc__)


def train_and_report(argv) -> int:
    from engine.loop import ddp_env
    from systems.deep_emo_cluster_experiment import deep_emo_cluster_trained
    exp = describe(argv)
    outcomes = run(exp)
    if exp.system == "deep-emo-cluster" and ddp_env()[0] == 0:
        print(deep_emo_cluster_trained(exp, outcomes[0]))
    return 0


@entry
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not {"-h", "--help"} & set(argv) or any(a.split("=")[0] in FLAGS for a in argv):  # not the two helps
        return train_and_report(argv)
    try:  # --help alone: the audio-text flags (argparse prints them and exits), then DeepEmoCluster's
        return train_and_report(argv)
    finally:
        from systems.deep_emo_cluster_experiment import deep_emo_cluster_parser
        print("\n" + "=" * 20 + " DeepEmoCluster (System 2): main.py with -ep, -batch, -emo, -nc, -mt " + "=" * 20)
        print(deep_emo_cluster_parser(None).format_help())


if __name__ == "__main__":
    sys.exit(main())
