"""System 5 model (models/multimodal_transformer.py): every ablation configuration runs forward and backward,
padding invariance, absent modalities (learned vectors, no leakage), all-False masks, pooling, errors,
checkpoints without the positional table and seeded construction. Tiny sizes keep the file fast on a CPU."""

import pytest
import torch
import torch.nn.functional as F

from models.multimodal_transformer import ModalityEncoder, MultimodalTransformer, sinusoidal_table

WIDTHS = {"speech": 24, "text": 20, "mocap": 189, "face": 165, "head": 6, "hand": 18}
FRAMES = {"speech": 13, "text": 7, "mocap": 10, "face": 9, "head": 11, "hand": 8}  # T differs per modality
CONFIGS = [["speech"], ["text"], ["mocap"], ["face"], ["head"], ["hand"],
           ["speech", "text"], ["speech", "mocap"], ["text", "mocap"], ["speech", "text", "mocap"]]
TINY = dict(d_model=16, heads=2, layers=1, ff=32, fusion_hidden=24)
TRI = ["speech", "text", "mocap"]


def make(names, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {**TINY, **kw}
    kw.setdefault("pooling", {n: "first" if n == "text" else "mean" for n in names})  # text = BERT [CLS] first
    return MultimodalTransformer(inputs={n: WIDTHS[n] for n in names}, **kw)


def batch(names, b=4, seed=1, lengths=None, junk=50.0):
    """Random left-aligned inputs; each row its own length; padded positions hold large random junk."""
    g = torch.Generator().manual_seed(seed)
    x, mask = {}, {}
    for n in names:
        t = FRAMES[n]
        lens = lengths[n] if lengths and n in lengths else torch.randint(1, t + 1, (b,), generator=g).tolist()
        mask[n] = torch.arange(t)[None, :] < torch.tensor(lens)[:, None]                     # (B, T)
        x[n] = torch.where(mask[n][:, :, None], torch.randn(b, t, WIDTHS[n], generator=g),
                           torch.randn(b, t, WIDTHS[n], generator=g) * junk)
    return x, mask


@pytest.mark.parametrize("names", CONFIGS, ids=["+".join(c) for c in CONFIGS])
def test_every_configuration_forward_backward(names):
    m = make(names).train()
    last = names[-1]
    x, mask = batch(names, b=5, lengths={last: [FRAMES[last], 0, 3, 1, 5]})  # row 1 lacks the last modality
    y = m(x, mask)
    assert y.shape == (5, 4) and torch.isfinite(y).all()
    F.cross_entropy(y, torch.tensor([0, 1, 2, 3, 1])).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.startswith("absent."):  # only the vector of the modality some row lacks is used
            assert (p.grad.abs().sum() > 0) == (name == f"absent.{last}"), name
        else:
            assert p.grad.abs().sum() > 0, name
    assert m.modalities == tuple(names) and m.fusion[0].in_features == 16 * len(names)


def test_padding_invariance():
    m = make(TRI).eval()
    lengths = {"speech": [13, 4, 9], "text": [2, 7, 5], "mocap": [10, 10, 1]}
    x, mask = batch(TRI, b=3, lengths=lengths)
    x["speech"][1, 6] = float("nan")                                      # even NaN padding does not leak
    g = torch.Generator().manual_seed(9)
    longer_x = {n: torch.cat([x[n], torch.randn(3, 5, WIDTHS[n], generator=g) * 100], 1) for n in TRI}
    longer_mask = {n: torch.cat([mask[n], torch.zeros(3, 5, dtype=torch.bool)], 1) for n in TRI}
    with torch.no_grad():
        y = m(x, mask)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(m(longer_x, longer_mask), y, rtol=0, atol=1e-5)
        for i in range(3):
            alone_x = {n: x[n][i:i + 1, :lengths[n][i]] for n in TRI}
            alone_mask = {n: mask[n][i:i + 1, :lengths[n][i]] for n in TRI}
            torch.testing.assert_close(m(alone_x, alone_mask), y[i:i + 1], rtol=0, atol=1e-5)


def test_missing_speech_leaves_the_other_encodings_alone():
    m = make(TRI).eval()
    x, mask = batch(TRI, b=4)
    off = torch.tensor([[False, True, True]] * 4)
    other = dict(x, speech=torch.randn(4, FRAMES["speech"], WIDTHS["speech"]) * 7)
    nan = dict(x, speech=torch.full_like(x["speech"], float("nan")))
    no_speech = dict(mask, speech=torch.zeros_like(mask["speech"]))
    drop = {n: v for n, v in x.items() if n != "speech"}
    drop_mask = {n: v for n, v in mask.items() if n != "speech"}
    with torch.no_grad():
        ref = m.encode(x, mask)
        variants = [m.encode(x, mask, off), m.encode(x, no_speech), m.encode(other, mask), m.encode(drop, drop_mask)]
        for v in variants:
            for n in ("text", "mocap"):
                assert torch.equal(v[n], ref[n]), n
        absent = m.absent["speech"].expand(4, -1)
        for v in (variants[0], variants[1], variants[3]):
            assert torch.equal(v["speech"], absent)
        assert not torch.allclose(ref["speech"], absent) and not torch.allclose(variants[2]["speech"], ref["speech"])
        # speech absent by `present`: its input values (even NaN) cannot reach the logits
        y = m(x, mask, off)
        assert torch.equal(m(other, mask, off), y) and torch.equal(m(nan, mask, off), y)
        assert torch.equal(m(drop, drop_mask), y)                          # a missing key = absent in every row
        assert not torch.allclose(m(x, mask), y)                           # present speech does matter
        # `present` is AND-ed with the mask rule: present=True cannot revive an all-False mask
        assert torch.equal(m(x, no_speech, torch.ones(4, 3, dtype=torch.bool)), y)


def test_all_false_mask_row_is_finite_and_equals_absent():
    m = make(TRI).eval()
    x, mask = batch(TRI, b=3)
    mask["speech"][1] = False
    present = torch.ones(3, 3, dtype=torch.bool)
    present[1, 0] = False
    with torch.no_grad():
        v = m.encoders["speech"](x["speech"], mask["speech"])              # the dummy computation: finite
        assert torch.isfinite(v).all()
        alone = m.encoders["speech"](x["speech"][[0, 2]], mask["speech"][[0, 2]])
        torch.testing.assert_close(v[[0, 2]], alone, rtol=0, atol=1e-6)   # it does not disturb the other rows
        y = m(x, mask)
        assert torch.isfinite(y).all()
        unmasked = dict(mask, speech=mask["speech"].clone())
        unmasked["speech"][1, :3] = True
        torch.testing.assert_close(y, m(x, unmasked, present), rtol=0, atol=1e-6)
        # empty sequences (T = 0) work as well
        e = m.encoders["mocap"](x["mocap"][:, :0], mask["mocap"][:, :0])
        assert e.shape == (3, 16) and torch.isfinite(e).all()
    m.train()
    m(x, mask).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_pooling_first_and_mean_against_manual_encoder():
    torch.manual_seed(0)
    first = ModalityEncoder(in_dim=6, d_model=16, heads=2, layers=2, ff=32, pooling="first").eval()
    mean = ModalityEncoder(in_dim=6, d_model=16, heads=2, layers=2, ff=32, pooling="mean").eval()
    mean.load_state_dict(first.state_dict())
    g = torch.Generator().manual_seed(2)
    x, lens = torch.randn(3, 9, 6, generator=g), [9, 4, 1]
    mask = torch.arange(9)[None, :] < torch.tensor(lens)[:, None]
    with torch.no_grad():
        h = first.proj(x * mask[:, :, None]) + first.pe[:9]
        h = first.norm(first.encoder(h, src_key_padding_mask=~mask))     # (B, T, D), layers as given
        torch.testing.assert_close(first(x, mask), h[:, 0], rtol=0, atol=1e-6)
        want = torch.stack([h[i, :n].mean(0) for i, n in enumerate(lens)])
        torch.testing.assert_close(mean(x, mask), want, rtol=0, atol=1e-6)
        assert not torch.allclose(first(x, mask), want)
    pe = sinusoidal_table(7, 16)
    torch.testing.assert_close(pe[:, 0], torch.sin(torch.arange(7.0)))
    torch.testing.assert_close(pe[:, 1], torch.cos(torch.arange(7.0)))
    assert sinusoidal_table(5, 15).shape == (5, 15)
    with pytest.raises(ValueError, match="position 0"):                 # "first" needs [CLS] at position 0
        first(x, torch.roll(mask, 1, dims=1))


def test_errors_name_the_offender():
    with pytest.raises(ValueError, match="'max'"):
        ModalityEncoder(in_dim=4, pooling="max")
    with pytest.raises(ValueError, match="'max'"):
        make(TRI, pooling={"speech": "mean", "text": "max", "mocap": "mean"})
    with pytest.raises(ValueError, match="inputs is empty"):
        MultimodalTransformer(inputs={})
    with pytest.raises(ValueError, match="mocap"):
        make(TRI, max_len={"speech": 16, "text": 16})                     # a dict missing a modality
    m = make(TRI, max_len={"speech": 12, "text": 16, "mocap": 16})
    x, mask = batch(TRI, b=2)
    with pytest.raises(ValueError, match=r"'speech'.*T = 13 > max_len = 12"):
        m(x, mask)
    m = make(["speech", "text"])
    x, mask = batch(TRI, b=2)
    with pytest.raises(ValueError, match="mocap"):                         # the wrong configuration's inputs
        m(x, mask)
    x, mask = batch(["speech", "text"], b=2)
    with pytest.raises(ValueError, match=r"'text'.*mask \(2, 6\)"):
        m(x, dict(mask, text=mask["text"][:, :6]))
    with pytest.raises(ValueError, match="no input"):
        m({}, {})
    with pytest.raises(ValueError, match="present"):
        m(x, mask, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch sizes"):
        m(dict(x, text=x["text"][:1]), dict(mask, text=mask["text"][:1]))


def test_state_dict_round_trip_without_positional_table():
    m = make(TRI, max_len=32).eval()
    sd = m.state_dict()
    assert not any(k.endswith(".pe") for k in sd) and "encoders.speech.pe" in dict(m.named_buffers())
    assert set(sd) >= {"absent.speech", "absent.text", "absent.mocap"}
    fresh = make(TRI, seed=5, max_len=64).eval()                          # another max_len loads strictly
    x, mask = batch(TRI, b=3)
    with torch.no_grad():
        assert not torch.allclose(fresh(x, mask), m(x, mask))
        fresh.load_state_dict(sd)
        assert torch.equal(fresh(x, mask), m(x, mask))


def test_seeded_construction_and_absent_init():
    a, b, c = make(TRI, seed=0), make(TRI, seed=0), make(TRI, seed=1)
    pa, pb, pc = dict(a.named_parameters()), dict(b.named_parameters()), dict(c.named_parameters())
    assert list(pa) == list(pb) and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)
    big = MultimodalTransformer(inputs={"speech": 1024, "text": 768, "mocap": 189})
    vec = torch.cat([big.absent[n] for n in big.modalities])
    assert vec.shape == (192,) and 0.014 < vec.std().item() < 0.026
    assert sum(p.numel() for p in big.parameters()) == 353_604
