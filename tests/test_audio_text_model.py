"""Audio-text co-attention Transformer (ICMI 2023): sizes, the original's state_dict layout, the positional
encoding, the intermediate masking (sheet quirks 5, 6), a re-statement of the equations with functional ops,
checkpoint round trip and dropout."""

import math

import pytest
import torch
from torch.nn import functional as F

from models.audio_text_coatten import (LAYER_NAMES, AudioTextCoAttention, MaskedAttenLayer,
                                       from_original_state_dict)

SMALL = dict(audio_dim=24, text_dim=12, hidden=16, heads=4, max_len=10, ffn=32)
L = 8


def small_model(seed: int = 0) -> AudioTextCoAttention:
    torch.manual_seed(seed)
    m = AudioTextCoAttention(**SMALL)
    with torch.no_grad():  # make the LayerNorm affine parameters matter (default init is 1 / 0)
        for name, p in m.named_parameters():
            if ".norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return m


def masks_from_lengths(lengths, length: int = L) -> torch.Tensor:
    return torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None]  # (B, L) True = pad


def small_inputs(b: int, seed: int = 1, lengths_a=None, lengths_t=None):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(b, L, SMALL["audio_dim"], generator=g)
    text = torch.randn(b, L, SMALL["text_dim"], generator=g)
    lengths_a = lengths_a or [L - 3 * (i % 2) for i in range(b)]
    lengths_t = lengths_t or [L - 1 - 2 * (i % 3) for i in range(b)]
    ma, mt = masks_from_lengths(lengths_a), masks_from_lengths(lengths_t)
    return audio.masked_fill(ma[..., None], 0.0), text.masked_fill(mt[..., None], 0.0), ma, mt


def sheet_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """The 114 keys and shapes of the reference sheet, section 7."""
    shapes = {"proj_sph.weight": (256, 7168), "proj_txt.weight": (256, 768)}
    layers = [f"trans.{n}_sph_sph" for n in ("l1", "l2", "l3")] + [f"trans.{n}_sph_txt" for n in ("l4", "l5")] \
        + [f"trans.{n}_txt_txt" for n in ("l1", "l2", "l3")] + [f"trans.{n}_txt_sph" for n in ("l4", "l5")]
    for p in layers:
        shapes.update({f"{p}.self_attn.in_proj_weight": (768, 256), f"{p}.self_attn.in_proj_bias": (768,),
                       f"{p}.self_attn.out_proj.weight": (256, 256), f"{p}.self_attn.out_proj.bias": (256,),
                       f"{p}.linear1.weight": (512, 256), f"{p}.linear2.weight": (256, 512),
                       f"{p}.norm1.weight": (256,), f"{p}.norm1.bias": (256,),
                       f"{p}.norm2.weight": (256,), f"{p}.norm2.bias": (256,)})
    for t in ("act", "dom", "val"):
        shapes.update({f"top_layer_{t}.0.weight": (256, 512), f"top_layer_{t}.0.bias": (256,),
                       f"top_layer_{t}.2.weight": (1, 256), f"top_layer_{t}.2.bias": (1,)})
    return shapes


@pytest.fixture(scope="module")
def default_model():
    torch.manual_seed(0)
    return AudioTextCoAttention()


@pytest.mark.parametrize("b", [1, 3])
def test_output_shapes(b):
    m = small_model().eval()
    out = m(*small_inputs(b))
    assert sorted(out) == ["act", "dom", "val"]
    for v in out.values():
        assert v.shape == (b,) and v.dtype == torch.float32 and torch.isfinite(v).all()
    assert m.embed(*small_inputs(b)).shape == (b, 2 * SMALL["hidden"])
    assert not torch.equal(out["act"], out["val"])  # three separate heads


def test_rejects_unequal_lengths_and_bad_masks():
    m = small_model().eval()
    audio, text, ma, mt = small_inputs(2)
    with pytest.raises(AssertionError, match="same L"):
        m(audio, text[:, :-1], ma, mt[:, :-1])
    with pytest.raises(AssertionError, match="bool"):
        m(audio, text, ma.float(), mt)
    long_ = torch.zeros(2, SMALL["max_len"] + 1, SMALL["audio_dim"]), torch.zeros(2, SMALL["max_len"] + 1, 12)
    with pytest.raises(AssertionError, match="positional encoding"):
        m(*long_, masks_from_lengths([3, 3], 11), masks_from_lengths([3, 3], 11))


def test_default_parameter_count_and_breakdown(default_model):
    m = default_model
    assert sum(p.numel() for p in m.parameters()) == 7_689_731
    assert all(p.requires_grad for p in m.parameters())
    bd = m.parameter_breakdown()
    assert bd["proj_sph"] == 1_835_008 and bd["proj_txt"] == 196_608
    assert [bd[f"trans.{n}"] for n in LAYER_NAMES] == [526_336] * 10
    assert [bd[f"top_layer_{t}"] for t in ("act", "dom", "val")] == [131_585] * 3
    assert sum(bd.values()) == 7_689_731
    attn = m.trans.l1_sph_sph.self_attn
    assert sum(p.numel() for p in attn.parameters()) == 263_168
    assert m.trans.l4_sph_txt.linear1.bias is None and m.trans.l4_sph_txt.linear2.bias is None
    assert m.proj_sph.bias is None and m.proj_txt.bias is None
    assert m.trans.l1_txt_txt.norm1.eps == 1e-5 and m.trans.l1_txt_txt.activation.approximate == "none"
    assert m.top_layer_act[1].inplace


def test_state_dict_keys_and_shapes_equal_the_sheet(default_model):
    sd = default_model.state_dict()
    expected = sheet_state_dict_shapes()
    assert len(expected) == 114 and len(sd) == 114
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    # a checkpoint built from the sheet's list alone (bare, as torch.save(model.state_dict())) loads strictly
    torch.manual_seed(3)
    fake = {k: torch.randn(s) for k, s in expected.items()}
    m = from_original_state_dict(fake)
    assert torch.equal(m.state_dict()["trans.l5_txt_sph.linear2.weight"], fake["trans.l5_txt_sph.linear2.weight"])
    assert (m.audio_dim, m.text_dim, m.hidden, m.max_len) == (7168, 768, 256, 128)
    bad = dict(fake)
    del bad["trans.l3_txt_txt.norm2.bias"]
    with pytest.raises(RuntimeError, match="Missing key"):
        from_original_state_dict(bad)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        from_original_state_dict({**fake, "PE.P": torch.zeros(1, 128, 256)})


def test_positional_encoding_values_and_not_in_state_dict(default_model):
    m = default_model
    pe = m.pe
    assert pe.shape == (128, 256) and pe.dtype == torch.float32
    pos = torch.arange(128, dtype=torch.float64)[:, None]
    i = torch.arange(128, dtype=torch.float64)[None, :]
    ang = pos / 10000 ** (2 * i / 256)
    torch.testing.assert_close(pe[:, 0::2].double(), torch.sin(ang), rtol=0, atol=2e-5)
    torch.testing.assert_close(pe[:, 1::2].double(), torch.cos(ang), rtol=0, atol=2e-5)
    assert pe[0, 0] == 0 and pe[0, 1] == 1 and abs(pe[1, 0].item() - math.sin(1.0)) < 1e-7
    assert "pe" not in m.state_dict() and len(m.state_dict()) == 114
    assert "pe" in dict(m.named_buffers())
    small = small_model().double()  # a non-persistent buffer still follows .to()
    assert small.pe.dtype == torch.float64


def test_pe_is_added_after_projection_and_shared():
    m = small_model().eval()
    x = torch.randn(2, L, SMALL["hidden"])
    torch.testing.assert_close(m.add_pe(x), x + m.pe[:L])
    m.train()
    torch.manual_seed(0)
    y = m.add_pe(x)
    assert (y == 0).float().mean() > 0.02  # Dropout(0.1) after the addition


def test_self_attention_padded_rows_equal_norm2_bias():
    torch.manual_seed(0)
    layer = MaskedAttenLayer(d_model=16, heads=4, ffn=32, dropout=0.3).eval()
    with torch.no_grad():
        layer.norm2.bias.normal_()
        layer.norm2.weight.normal_()
    x = torch.randn(3, L, 16)
    mask = masks_from_lengths([8, 5, 2])
    with torch.no_grad():
        y = layer(x, mask)
    bias = layer.norm2.bias.expand(int(mask.sum()), 16)
    torch.testing.assert_close(y[mask], bias, rtol=0, atol=1e-6)
    assert (y[~mask] - layer.norm2.bias).abs().amax(dim=1).min() > 1e-2  # valid rows are not the bias


def test_padded_input_content_does_not_change_outputs():
    """After each stream's first self-attention layer, its padded rows are norm2.bias whatever the input, and
    padded keys never reach valid rows, so what the padded input rows of either stream hold does not matter."""
    m = small_model().eval()
    audio, text, ma, mt = small_inputs(3)
    with torch.no_grad():
        ref = m(audio, text, ma, mt)
        a2 = torch.where(ma[..., None], 50 * torch.randn_like(audio), audio)
        t2 = torch.where(mt[..., None], 50 * torch.randn_like(text), text)
        got = m(a2, t2, ma, mt)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-6)
        # ... while a valid position other than the global token does change them
        a3 = audio.clone()
        a3[:, 1] += 1.0
        changed = m(a3, text, ma, mt)
    assert all((changed[k] - ref[k]).abs().max() > 1e-4 for k in ref)


def test_coattention_padded_queries_of_the_other_stream_leak_into_valid_rows():
    """Quirk 5: the other stream's padded query rows are not masked; they write into own valid rows."""
    torch.manual_seed(0)
    layer = MaskedAttenLayer(d_model=16, heads=4, ffn=32, dropout=0.3).eval()
    own, other = torch.randn(1, L, 16), torch.randn(1, L, 16)
    own_mask = masks_from_lengths([L])           # own stream fully valid
    other_valid = 4                              # other stream padded from row 4 on (its mask is never passed)
    other2 = other.clone()
    other2[:, other_valid:] = torch.randn(1, L - other_valid, 16)
    with torch.no_grad():
        y1 = layer(own, own_mask, other=other)
        y2 = layer(own, own_mask, other=other2)
    torch.testing.assert_close(y1[:, :other_valid], y2[:, :other_valid], rtol=0, atol=1e-6)
    assert (y1[:, other_valid:] - y2[:, other_valid:]).abs().amax() > 1e-2


def manual_layer(layer: MaskedAttenLayer, own, own_mask, other=None):
    """Sheet section 7 re-stated with functional ops (eval mode: no dropout)."""
    q_in = own if other is None else other
    d = own.shape[-1]
    h_n = layer.self_attn.num_heads
    w, b = layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias
    q = F.linear(q_in, w[:d], b[:d])             # queries from the other stream
    k = F.linear(own, w[d:2 * d], b[d:2 * d])    # keys and values from the own stream
    v = F.linear(own, w[2 * d:], b[2 * d:])
    split = lambda t: t.reshape(t.shape[0], t.shape[1], h_n, d // h_n).transpose(1, 2)  # (B, H, L, dh)
    s = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // h_n)
    s = s.masked_fill(own_mask[:, None, None, :], float("-inf"))
    a = (s.softmax(-1) @ split(v)).transpose(1, 2).reshape(own.shape)
    a = F.linear(a, layer.self_attn.out_proj.weight, layer.self_attn.out_proj.bias)
    nonpad = (~own_mask).float()[..., None]
    h = F.layer_norm(own + a * nonpad, (d,), layer.norm1.weight, layer.norm1.bias, 1e-5) * nonpad
    f = F.linear(F.gelu(F.linear(h, layer.linear1.weight)), layer.linear2.weight)
    return F.layer_norm(h + f, (d,), layer.norm2.weight, layer.norm2.bias, 1e-5)


def test_coattention_layer_matches_manual_equations():
    m = small_model().eval()
    layer = m.trans.l4_sph_txt
    g = torch.Generator().manual_seed(5)
    own, other = torch.randn(3, L, 16, generator=g), torch.randn(3, L, 16, generator=g)
    own_mask = masks_from_lengths([8, 6, 3])
    with torch.no_grad():
        got = layer(own, own_mask, other=other)
        want = manual_layer(layer, own, own_mask, other)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        # the roles matter: swapping query and key/value streams gives something else
        assert (manual_layer(layer, other, own_mask, own) - got).abs().max() > 1e-2
        # and the self-attention case is the same layer with other = own
        torch.testing.assert_close(layer(own, own_mask), manual_layer(layer, own, own_mask), rtol=0, atol=1e-6)


def test_full_forward_matches_manual_stack():
    m = small_model().eval()
    audio, text, ma, mt = small_inputs(3)
    t = m.trans
    with torch.no_grad():
        xs = F.linear(audio, m.proj_sph.weight) + m.pe[:L]
        xt = F.linear(text, m.proj_txt.weight) + m.pe[:L]
        for n in ("l1", "l2", "l3"):
            xs = manual_layer(getattr(t, f"{n}_sph_sph"), xs, ma)
            xt = manual_layer(getattr(t, f"{n}_txt_txt"), xt, mt)
        xs1 = manual_layer(t.l4_sph_txt, xs, ma, xt)
        xt1 = manual_layer(t.l4_txt_sph, xt, mt, xs)
        xs2 = manual_layer(t.l5_sph_txt, xs1, ma, xt1)
        xt2 = manual_layer(t.l5_txt_sph, xt1, mt, xs1)
        z = torch.cat([xs2[:, 0], xt2[:, 0]], dim=1)
        out = m(audio, text, ma, mt)
    for k in ("act", "dom", "val"):
        head = getattr(m, f"top_layer_{k}")
        want = F.linear(torch.relu(F.linear(z, head[0].weight, head[0].bias)), head[2].weight, head[2].bias)[:, 0]
        torch.testing.assert_close(out[k], want, rtol=0, atol=1e-5)


def test_original_layout_round_trip(tmp_path):
    m = small_model(seed=4).eval()
    path = tmp_path / "TransformerCoAtten_demo.pth.tar"
    torch.save(m.state_dict(), path)  # bare state_dict, as the original saves it
    sd = torch.load(path, weights_only=True, map_location="cpu")
    assert "pe" not in sd
    inputs = small_inputs(3, seed=9)
    with torch.no_grad():
        ref = m(*inputs)
        for loaded in (from_original_state_dict(sd, max_len=SMALL["max_len"]),
                       from_original_state_dict({"state_dict": sd}, max_len=SMALL["max_len"])):
            loaded.eval()
            assert (loaded.audio_dim, loaded.text_dim, loaded.hidden) == (24, 12, 16)
            assert loaded.trans.l1_sph_sph.linear1.out_features == 32
            got = loaded(*inputs)
            for k in ref:
                assert torch.equal(got[k], ref[k])


def test_dropout_train_mode_differs_eval_mode_identical():
    m = small_model()
    inputs = small_inputs(3)
    m.train()
    torch.manual_seed(0)
    a = m(*inputs)
    b = m(*inputs)
    assert (a["act"] - b["act"]).abs().max() > 1e-4
    torch.manual_seed(0)
    a_again = m(*inputs)
    assert torch.equal(a["act"], a_again["act"])  # same RNG state, same draws
    m.eval()
    with torch.no_grad():
        e1, e2 = m(*inputs), m(*inputs)
    assert all(torch.equal(e1[k], e2[k]) for k in e1)
