"""A file scored alone and scored in a padded batch with files of very different lengths gets the same score
(issue 22, item 3; begun with the three MSP-Podcast predictors on feature arrays, without ONNX yet). The chunk
LSTM and DeepEmoCluster cut every utterance into fixed-length chunks, so no utterance's frames meet another's;
the audio-text model pads chunks and tokens and masks them; all are in eval mode (no batch statistics, no
dropout)."""
from pathlib import Path

import numpy as np
import pytest
import torch

# short (below one chunk: zero-padded), about one chunk, long, very long: 7 frames to 48 s at 16 ms
LENGTHS = [7, 40, 62, 63, 64, 100, 250, 500, 900, 3000]
BATCHES = (2, 5, 16)
SHIPPED = Path(__file__).resolve().parents[1] / "trained_models"


def one_by_one_and_batched(predict, arrays) -> dict[int, float]:
    """{batch size: largest |batched - one at a time|} over the arrays."""
    alone = np.array([predict([a], 1)[0] for a in arrays])
    return {b: float(np.abs(predict(arrays, b) - alone).max()) for b in BATCHES}


@pytest.mark.parametrize("atten", ["RnnAttenVec", "SelfAttenVec"])
def test_chunk_lstm_scores_do_not_depend_on_the_batch(atten):
    from systems.chunk_lstm import Predictor
    p = Predictor.load(SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_{atten}_Val")
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(n, p.config["model"]["input_dim"])).astype(np.float32) for n in LENGTHS]
    gaps = one_by_one_and_batched(lambda xs, b: p.predict(xs, batch_size=b), arrays)
    assert max(gaps.values()) < 1e-5, gaps  # on the 1-7 scale


@pytest.mark.parametrize("variant", ["Temp-GRU", "Temp-CNN", "Temp-Trans", "Temp-Triplet"])
def test_deep_emo_cluster_scores_do_not_depend_on_the_batch(variant):
    from features.normterm import NormTerm
    from models.deep_emo_cluster import DeepEmoCluster
    from systems.deep_emo_cluster import Predictor
    torch.manual_seed(0)
    nt = NormTerm(np.zeros(128, np.float32), np.ones(128, np.float32), {"act": (4.0, 1.0)})
    p = Predictor(DeepEmoCluster(variant=variant, num_clusters=10), nt, "act", {})
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(n, 128)).astype(np.float32) for n in LENGTHS]
    scores = p.predict(arrays)
    assert np.ptp(scores) > 1e-4  # the inputs give different scores: the comparison below can fail
    gaps = one_by_one_and_batched(lambda xs, b: p.predict(xs, batch_size=b), arrays)
    assert max(gaps.values()) < 1e-5, gaps


@pytest.mark.parametrize("strategy", ["multiscale", "fixed"])
def test_audio_text_scores_do_not_depend_on_the_batch(strategy):
    """Padded audio chunks and text tokens are masked in every attention layer and pooling: a file's score is
    the same next to much longer or shorter files, with a stream absent or not."""
    from features.normterm import NormTerm
    from models.audio_text_coatten import AudioTextCoAttention
    from systems.audio_text import Predictor
    A, T = 32, 48  # wav2vec2-like frames (the model reads 7 pooled statistics of each) and text rows
    torch.manual_seed(0)
    model = AudioTextCoAttention(audio_dim=7 * A, text_dim=T)
    labels = {a: (4.0, 1.0) for a in ("act", "dom", "val")}
    p = Predictor(model, NormTerm(np.zeros(A, np.float32), np.ones(A, np.float32), labels),
                  NormTerm(np.zeros(T, np.float32), np.ones(T, np.float32), {}),
                  {"chunking": {"strategy": strategy}, "features": {"audio": {"frame_rate": 50.0}}})
    rng = np.random.default_rng(2)
    # (audio frames at 50 / s, text tokens, words): 0.4 s to 60 s, and one file without text, one without audio
    shapes = [(20, 3, 2), (50, 5, 4), (120, 12, 8), (400, 30, 25), (1000, 60, 50), (3000, 120, 100), (60, None, 5),
              (None, 10, 8)]
    inputs = [(None if a is None else rng.normal(size=(a, A)).astype(np.float32),
               None if t is None else rng.normal(size=(t, T)).astype(np.float32), w) for a, t, w in shapes]
    assert np.ptp(p.predict(inputs)) > 1e-2
    gaps = one_by_one_and_batched(lambda xs, b: p.predict(xs, batch_size=b), inputs)
    assert max(gaps.values()) < 1e-5, gaps
