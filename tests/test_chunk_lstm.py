"""Chunk-level attention LSTM: the faithful model (parameter counts, keys, the original's forward), the
chunker, CCC, the shared training loop (resume, determinism, DDP) and the published checkpoints."""

import numpy as np
import pytest
import torch

from conftest import PRETRAINED
from models.chunk_lstm import ChunkLSTM
from utils import ccc, ccc_loss, dynamic_chunks, gather_chunks

V16 = PRETRAINED / "chunk_attention_lstm_v1.6"
COUNTS = {"NonAtten": (289_901, 17), "GatedVec": (290_032, 19), "RnnAttenVec": (374_661, 23),
          "SelfAttenVec": (893_199, 29)}


@pytest.mark.parametrize("atten", sorted(COUNTS))
def test_parameter_counts_and_keys(atten):
    m = ChunkLSTM(atten=atten)
    params, entries = COUNTS[atten]
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == params
    assert len(m.state_dict()) == entries
    assert m.state_dict()["lstm.weight_ih_l0"].shape == (520, 130)


def original_forward(model: ChunkLSTM, x: torch.Tensor) -> torch.Tensor:
    """The published forward as the reference sheet describes it, one group of 11 rows at a time."""
    h, _ = model.lstm(x)
    h = model.bn(h[:, -1])
    outs = []
    for i in range(0, len(h), 11):
        z = h[i: i + 11]
        if model.atten == "NonAtten":
            v = z.mean(0)
        elif model.atten == "GatedVec":
            v = (torch.sigmoid(model.attn[0](z)) * z).sum(0) / 11
        elif model.atten == "RnnAttenVec":
            e, _ = model.attn.attn_rnn(z.unsqueeze(0))
            e = e[0]
            s = model.attn.attn_dnn_score(e) @ e[-1]
            ctx = (torch.softmax(s, 0)[:, None] * e).sum(0)
            v = torch.tanh(model.attn.attn_dnn_out(torch.cat([ctx, e[-1]])))
        else:  # the encoder layer called on (1, 11, 130) with batch_first=False
            v = model.attn(z.unsqueeze(0))[0].mean(0)
        outs.append(model.fc2(torch.relu(model.fc1(v))))
    return torch.cat(outs)


@pytest.mark.parametrize("atten", sorted(COUNTS))
def test_batched_forward_equals_original_forward(atten):
    torch.manual_seed(0)
    m = ChunkLSTM(atten=atten).eval()
    with torch.no_grad():
        m.bn.running_var.uniform_(0.5, 2)  # make BN matter
        x = torch.randn(4 * 11, 62, 130)
        torch.testing.assert_close(m(x), original_forward(m, x), rtol=1e-5, atol=1e-5)


def test_self_atten_attends_only_to_itself_and_cross_variant_does_not():
    torch.manual_seed(0)
    z = torch.randn(2, 11, 130)
    for atten, alone in (("SelfAttenVec", True), ("SelfAttenVecCross", False)):
        m = ChunkLSTM(atten=atten).eval()
        with torch.no_grad():
            pooled = m.pool(z)
            z2 = z.clone()
            z2[0, 3] += 1.0  # change one chunk of utterance 0
            per_chunk_change = (m.attn(z2[0, 3].reshape(1, 1, 130)) - m.attn(z[0, 3].reshape(1, 1, 130))).reshape(130)
            diff = m.pool(z2)[0] - pooled[0]
        assert torch.allclose(diff, per_chunk_change / 11, atol=1e-5) == alone
        torch.testing.assert_close(m.pool(z2)[1], pooled[1])  # utterances never mix


@pytest.mark.parametrize("n", [2, 3])
def test_chunk_scale_factor_n_works(n):
    m = ChunkLSTM(atten="RnnAttenVec", chunks_per_utt=11 * n).eval()
    arrays = [np.random.default_rng(i).normal(size=(t, 130)).astype(np.float32) for i, t in enumerate((300, 90, 700))]
    starts = dynamic_chunks([len(a) for a in arrays], m=62, C=11, n=n)
    assert starts.shape == (3, 11 * n)
    with torch.no_grad():
        assert m(torch.from_numpy(gather_chunks(arrays, starts, 62))).shape == (3,)


def test_dynamic_chunks_follow_the_original_rule():
    s = dynamic_chunks([300, 1000, 688, 72, 62, 71], m=62, C=11, n=1)
    assert s[0, :3].tolist() == [0, 23, 46] and s[0, -1] == 230  # the sheet's worked example
    assert s[1, 1] == 93 and s[2, 1] == 62 and s[3].tolist() == list(range(11))
    assert (s[4] == 0).all() and (s[5] == 0).all()  # step 0: eleven copies of frames [0, 62)
    x = np.arange(300 * 2, dtype=np.float32).reshape(300, 2)
    chunks = gather_chunks([x], s[:1], 62)
    np.testing.assert_array_equal(chunks[1], x[23:85])
    # shorter than m: defined behaviour (the original crashes): start 0, zero-padded at the end
    short = np.ones((40, 2), np.float32)
    c = gather_chunks([short], dynamic_chunks([40]), 62)
    assert c.shape == (11, 62, 2) and (c[:, :40] == 1).all() and (c[:, 40:] == 0).all()


def test_ccc_against_hand_computed_values():
    p, t = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 4.0, 5.0])
    # means 2.5 / 3.25, population variances 1.25 / 1.6875, covariance 1.375
    assert ccc(p, t) == pytest.approx(2 * 1.375 / (1.25 + 1.6875 + 0.75 ** 2))
    assert ccc(t, t) == pytest.approx(1.0)
    tp, tt = torch.tensor(p), torch.tensor(t)
    assert float(ccc_loss(tp, tt, unbiased_var=False)) == pytest.approx(1 - ccc(p, t))
    # the published loss: unbiased variances (4/3 x population) in the denominator
    assert float(ccc_loss(tp, tt)) == pytest.approx(1 - 2 * 1.375 / (1.25 * 4 / 3 + 1.6875 * 4 / 3 + 0.75 ** 2))
    with pytest.raises(ValueError):
        ccc_loss(tp[:1], tt[:1])


@pytest.mark.skipif(not V16.is_dir(), reason="../shared/pretrained absent")
@pytest.mark.parametrize("name", ["RnnAttenVec_Act", "SelfAttenVec_Val"])
def test_published_checkpoints_load_and_converted_copies_give_identical_outputs(name, tmp_path):
    from convert_legacy import convert
    from systems.chunk_lstm import Predictor
    pth = V16 / f"LSTM_iter5000_batch128_ChunkSeq2One_{name}.pth.tar"
    legacy = Predictor.load(pth, normterm=V16 / "NormTerm")
    ours = Predictor.load(convert(pth, V16 / "NormTerm", tmp_path / "conv"))
    rng = np.random.default_rng(0)
    nt = legacy.normterm
    arrays = [(nt.feat_mean + nt.feat_std * rng.normal(size=(t, 130))) for t in (170, 400, 686)]
    a, b = legacy.predict(arrays), ours.predict(arrays)
    np.testing.assert_array_equal(a, b)
    # and both equal the original forward, utterance by utterance, de-normalised with the v1.6 label stats
    for x, score in zip(arrays, a):
        chunks = torch.from_numpy(gather_chunks([nt.features(x)], dynamic_chunks([len(x)]), 62))
        with torch.no_grad():
            ref = original_forward(legacy.model, chunks).item()
        assert score == pytest.approx(nt.denorm(ref, legacy.attribute), abs=1e-5)
    assert ours.config["normterm"]["label_mean"] == pytest.approx(nt.labels[legacy.attribute][0])


SHIPPED = ["RnnAttenVec_Act", "RnnAttenVec_Dom", "RnnAttenVec_Val", "SelfAttenVec_Act", "SelfAttenVec_Dom",
           "SelfAttenVec_Val"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_reproduce_the_published_files(name):
    from pathlib import Path
    from systems.chunk_lstm import Predictor
    folder = Path(__file__).resolve().parents[1] / "trained_models" / f"LSTM_iter5000_batch128_ChunkSeq2One_{name}"
    ours = Predictor.load(folder)
    assert ours.config["features"]["name"] == "OpenSmile_lld_IS13ComParE"
    assert ours.config["features"]["params"]["frame_step_s"] == 0.016
    pth = V16 / f"{folder.name}.pth.tar"
    if not pth.is_file():
        pytest.skip("../shared/pretrained absent: only checked that the shipped model loads")
    legacy = Predictor.load(pth, normterm=V16 / "NormTerm")
    for k, v in legacy.model.state_dict().items():
        torch.testing.assert_close(ours.model.state_dict()[k], v, rtol=0, atol=0)
    rng = np.random.default_rng(1)
    arrays = [legacy.normterm.feat_mean + legacy.normterm.feat_std * rng.normal(size=(t, 130)) for t in (200, 500)]
    np.testing.assert_array_equal(ours.predict(arrays), legacy.predict(arrays))
