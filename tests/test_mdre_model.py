"""MDRE family model (ARE / TRE / MDRE / MDREA): shapes, parameter counts, scalar biases, TF-like GRU init,
length handling (padding invariance, last-valid-step state, length 0, the 750-frame cap), MDREA attention,
dropout, the embedding and gradient flow."""

import pytest
import torch
from torch import nn

from models.mdre import KINDS, MDRE, ScalarBiasLinear

V, E = 50, 16  # small vocabulary for the behavioural tests
# the sheet's TF counts (V = 3,747, E = 300, H = 200) + 600 per nn.GRU (separate input and hidden biases)
COUNTS = {"ARE": 144_941 + 600, "TRE": 1_425_501 + 600, "MDRE": 1_617_066 + 1_200, "MDREA": 1_617_302 + 1_200}


def make(kind, **kw):
    torch.manual_seed(0)
    kw.setdefault("vocab_size", V)
    kw.setdefault("embed_dim", E)
    return MDRE(kind=kind, **kw)


def batch(b=5, t_a=30, t_t=12, seed=1, audio_len=None, text_len=None):
    g = torch.Generator().manual_seed(seed)
    a_len = torch.randint(1, t_a + 1, (b,), generator=g) if audio_len is None else torch.tensor(audio_len)
    t_len = torch.randint(1, t_t + 1, (b,), generator=g) if text_len is None else torch.tensor(text_len)
    mfcc = torch.randn(b, t_a, 39, generator=g)
    tokens = torch.randint(2, V, (b, t_t), generator=g)
    for i in range(b):  # padding as in the data: zero frames, _PAD_ = 0 ids
        mfcc[i, a_len[i]:] = 0
        tokens[i, t_len[i]:] = 0
    return dict(mfcc=mfcc, mfcc_len=a_len, prosody=torch.randn(b, 35, generator=g) * 10,
                tokens=tokens, token_len=t_len)


def only_needed(kind, inputs):
    keep = {"ARE": ("mfcc", "mfcc_len", "prosody"), "TRE": ("tokens", "token_len")}.get(kind, tuple(inputs))
    return {k: v for k, v in inputs.items() if k in keep}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("b", [1, 5])
def test_output_shapes(kind, b):
    m = make(kind).eval()
    with torch.no_grad():
        y = m(**only_needed(kind, batch(b=b)))
    assert y.shape == (b, 4) and torch.isfinite(y).all()


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_counts(kind):
    m = MDRE(kind=kind, vocab_size=3747, embed_dim=300)
    n = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert n == COUNTS[kind]
    assert sum(m.parameter_breakdown().values()) == n
    grus = [mod for mod in m.modules() if isinstance(mod, nn.GRU)]
    assert len(grus) == {"ARE": 1, "TRE": 1, "MDRE": 2, "MDREA": 2}[kind]
    # the TF count: one gate-bias block and one candidate bias per GRU instead of PyTorch's two bias vectors
    assert n - sum(g.bias_hh_l0.numel() for g in grus) == COUNTS[kind] - 600 * len(grus)
    if kind != "ARE":
        assert m.parameter_breakdown()["embedding"] == 3747 * 300


@pytest.mark.parametrize("kind", KINDS)
def test_scalar_bias_projections(kind):
    m = make(kind)
    shapes = {name: tuple(mod.weight.shape) for name, mod in m.named_modules() if isinstance(mod, ScalarBiasLinear)}
    assert shapes == {"ARE": {"head": (235, 4)}, "TRE": {"head": (200, 4)},
                      "MDRE": {"proj_audio": (235, 117), "proj_text": (200, 100), "head": (217, 4)},
                      "MDREA": {"proj_query": (235, 200), "head": (400, 4)}}[kind]
    for mod in m.modules():
        if isinstance(mod, ScalarBiasLinear):
            assert mod.bias.shape == (1,) and mod.bias.item() == 0.0
            assert mod.weight.abs().max() <= 0.25 and mod.weight.std() > 0.1  # U(-0.25, 0.25): std 0.144
    # the scalar bias shifts all logits alike (quirk 2): argmax unchanged
    m.eval()
    x = only_needed(kind, batch())
    with torch.no_grad():
        y0 = m(**x)
        m.head.bias.fill_(3.0)
        y1 = m(**x)
    torch.testing.assert_close(y1, y0 + 3.0)


@pytest.mark.parametrize("kind", ["ARE", "MDREA"])
def test_gru_initialised_like_tf(kind):
    m = make(kind)
    for enc in [getattr(m, n) for n in ("audio_encoder", "text_encoder") if hasattr(m, n)]:
        g, h = enc.gru, enc.hidden
        assert torch.equal(g.bias_ih_l0[: 2 * h], torch.ones(2 * h))        # r, z gate bias 1.0
        assert torch.equal(g.bias_ih_l0[2 * h:], torch.zeros(h))
        assert torch.equal(g.bias_hh_l0, torch.zeros(3 * h))
        kernel = torch.cat([g.weight_ih_l0, g.weight_hh_l0], dim=1).t()      # (in + H, 3H) as TF's [x; h] layout
        for block in (kernel[:, : 2 * h], kernel[:, 2 * h:]):               # gates kernel, candidate kernel
            # orthonormal columns, or rows when the kernel is wide (TF's and PyTorch's orthogonal initialisers)
            gram = block.t() @ block if block.shape[0] >= block.shape[1] else block @ block.t()
            torch.testing.assert_close(gram, torch.eye(len(gram)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_invariance(kind):
    m = make(kind).eval()
    x = batch(b=4, t_a=25, t_t=9)
    g = torch.Generator().manual_seed(5)
    longer = dict(x, mfcc=torch.cat([x["mfcc"], torch.randn(4, 17, 39, generator=g) * 50], dim=1),
                  tokens=torch.cat([x["tokens"], torch.randint(0, V, (4, 6), generator=g)], dim=1))
    garbage = dict(x)  # change every padded value inside the original width too
    garbage["mfcc"], garbage["tokens"] = x["mfcc"].clone(), x["tokens"].clone()
    for i in range(4):
        garbage["mfcc"][i, x["mfcc_len"][i]:] = 99.0
        garbage["tokens"][i, x["token_len"][i]:] = 7
    with torch.no_grad():
        y = m(**only_needed(kind, x))
        for other in (longer, garbage):
            torch.testing.assert_close(m(**only_needed(kind, other)), y, rtol=1e-5, atol=1e-6)


def test_mdrea_attention_zero_on_padding_and_sums_to_one():
    m = make("MDREA").eval()
    x = batch(b=5, t_t=11, text_len=[11, 1, 4, 7, 2])
    with torch.no_grad():
        y, alpha = m(**x, return_attention=True)
        torch.testing.assert_close(y, m(**x))
    assert alpha.shape == (5, 11)
    for i, n in enumerate(x["token_len"].tolist()):
        assert torch.all(alpha[i, n:] == 0)
        assert torch.all(alpha[i, :n] > 0)
    torch.testing.assert_close(alpha.sum(1), torch.ones(5))
    assert alpha[1, 0] == 1.0
    # the same in training mode (the padded outputs are 0 and stay 0 after dropout)
    m.train()
    _, alpha_tr = m(**x, return_attention=True)
    for i, n in enumerate(x["token_len"].tolist()):
        assert torch.all(alpha_tr[i, n:] == 0)
    torch.testing.assert_close(alpha_tr.sum(1), torch.ones(5))
    # manual attention: softmax over the valid positions of o . q, context, [H ; q] head
    m.eval()
    with torch.no_grad():
        q = m.proj_query(m.encode_audio(x["mfcc"], x["mfcc_len"], x["prosody"]))
        o, _ = m.encode_text(x["tokens"], x["token_len"])
        for i, n in enumerate(x["token_len"].tolist()):
            a = torch.softmax(o[i, :n] @ q[i], dim=0)
            torch.testing.assert_close(alpha[i, :n], a)
            ctx = a @ o[i, :n]
            torch.testing.assert_close(y[i], torch.cat([ctx, q[i]]) @ m.head.weight + m.head.bias)


def test_return_attention_only_for_mdrea():
    for kind in ("ARE", "TRE", "MDRE"):
        with pytest.raises(ValueError, match="attention"):
            make(kind)(**only_needed(kind, batch()), return_attention=True)


@pytest.mark.parametrize("kind", KINDS)
def test_final_state_is_last_valid_step(kind):
    m = make(kind).eval()
    x = batch(b=4, t_a=20, t_t=10, audio_len=[20, 3, 11, 1], text_len=[2, 10, 1, 6])
    with torch.no_grad():
        y = m(**only_needed(kind, x))
        for i in range(4):
            na, nt = int(x["mfcc_len"][i]), int(x["token_len"][i])
            alone = dict(mfcc=x["mfcc"][i: i + 1, :na], mfcc_len=torch.tensor([na]), prosody=x["prosody"][i: i + 1],
                         tokens=x["tokens"][i: i + 1, :nt], token_len=torch.tensor([nt]))
            torch.testing.assert_close(m(**only_needed(kind, alone)), y[i: i + 1], rtol=1e-5, atol=1e-6)
        if m.uses_audio:  # the encoder's final state equals a plain nn.GRU run on the unpadded frames
            e = m.encode_audio(x["mfcc"], x["mfcc_len"], x["prosody"])
            for i in range(4):
                na = int(x["mfcc_len"][i])
                out, h = m.audio_encoder.gru(x["mfcc"][i: i + 1, :na])
                torch.testing.assert_close(e[i, :200], h[0, 0], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(e[i, :200], out[0, -1], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(e[i, 200:], x["prosody"][i])
        if m.uses_text:  # per-step outputs are 0 past the length
            o, h_t = m.encode_text(x["tokens"], x["token_len"])
            for i, n in enumerate(x["token_len"].tolist()):
                assert torch.all(o[i, n:] == 0) and torch.all(o[i, n - 1] == h_t[i])


def test_audio_capped_at_750_frames():
    m = make("ARE").eval()
    g = torch.Generator().manual_seed(3)
    mfcc = torch.randn(2, 800, 39, generator=g)
    prosody = torch.randn(2, 35, generator=g)
    with torch.no_grad():
        y_long = m(mfcc=mfcc, mfcc_len=torch.tensor([800, 1000]), prosody=prosody)  # uncapped seqN (quirk 10)
        y_cap = m(mfcc=mfcc[:, :750], mfcc_len=torch.tensor([750, 750]), prosody=prosody)
    torch.testing.assert_close(y_long, y_cap)
    with pytest.raises(ValueError, match="frames given"):
        m(mfcc=mfcc[:, :100], mfcc_len=torch.tensor([200, 50]), prosody=prosody)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_train_varies_eval_deterministic(kind):
    m = make(kind)
    x = only_needed(kind, batch())
    m.train()
    torch.manual_seed(11)
    y1 = m(**x)
    y2 = m(**x)
    assert not torch.allclose(y1, y2)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(**x), m(**x), rtol=0, atol=0)
    # drop rates as given; zero drop rates make training mode deterministic
    m0 = make(kind, audio_dropout=0.0, text_dropout=0.0).train()
    torch.testing.assert_close(m0(**x), m0(**x), rtol=0, atol=0)
    rates = {n: mod.p for n, mod in make(kind).named_modules() if isinstance(mod, nn.Dropout)}
    assert rates == {**({"audio_encoder.input_dropout": 0.3, "audio_encoder.output_dropout": 0.3}
                        if kind != "TRE" else {}),
                     **({"text_encoder.input_dropout": 0.7, "text_encoder.output_dropout": 0.7}
                        if kind != "ARE" else {})}


def test_dropout_never_hits_the_final_state():
    m = make("TRE").train()
    x = batch()
    torch.manual_seed(2)
    o, h = m.encode_text(x["tokens"], x["token_len"])
    # output dropout zeros ~70% of the per-step outputs and scales the rest by 1/0.3; the final state is intact
    frac_zero = (o[0, : x["token_len"][0]] == 0).float().mean()
    assert frac_zero > 0.4
    assert (h == 0).float().mean() < 0.05
    assert h.abs().max() <= 1.0  # a GRU state (tanh range), not scaled by 1/keep


def test_embedding_from_given_matrix():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(30, 300, generator=g)
    m = MDRE(kind="TRE", embedding=w)
    assert m.embedding.weight.shape == (30, 300) and m.embed_dim == 300 and m.vocab_size == 30
    assert torch.equal(m.embedding.weight, w)
    assert m.embedding.weight.requires_grad                                  # trainable
    assert m.embedding.weight.data_ptr() != w.data_ptr()                     # a copy
    assert m.text_encoder.gru.input_size == 300
    tokens = torch.tensor([[3, 5, 0]])
    m(tokens=tokens, token_len=torch.tensor([2])).sum().backward()
    assert m.embedding.weight.grad[[3, 5]].abs().sum() > 0
    assert m.embedding.weight.grad[0].abs().sum() == 0                       # padding never reached the GRU
    torch.testing.assert_close(MDRE(kind="MDREA", embedding=w.double().numpy()).embedding.weight, w)
    with pytest.raises(ValueError, match="vocab_size"):
        MDRE(kind="TRE", embedding=w, vocab_size=31)
    with pytest.raises(ValueError, match="embed_dim"):
        MDRE(kind="TRE", embedding=w, embed_dim=100)
    # without a matrix: E = 100, N(0, 0.01^2), V = 3,747 by default
    torch.manual_seed(0)
    d = MDRE(kind="TRE").embedding.weight
    assert d.shape == (3747, 100)
    assert abs(d.std().item() - 0.01) < 5e-4 and abs(d.mean().item()) < 5e-4


@pytest.mark.parametrize("kind", KINDS)
def test_zero_length_is_an_empty_sequence(kind):
    """Documented: length 0 = TF dynamic_rnn with sequence_length 0 -> zero final state, zero outputs; MDREA gives
    such a row all-zero attention weights. Its logits do not depend on the (padding) values present."""
    m = make(kind).eval()
    x = batch(b=3, audio_len=[0, 5, 30], text_len=[4, 0, 0])
    with torch.no_grad():
        y = m(**only_needed(kind, x))
        assert y.shape == (3, 4) and torch.isfinite(y).all()
        other = dict(x, mfcc=x["mfcc"].clone(), tokens=x["tokens"].clone())  # new values in the empty rows only
        other["mfcc"][0] = torch.randn(30, 39) * 9
        other["tokens"][1:] = torch.randint(1, V, (2, 12))
        torch.testing.assert_close(m(**only_needed(kind, other)), y)
        if m.uses_audio:
            e = m.encode_audio(x["mfcc"], x["mfcc_len"], x["prosody"])
            assert torch.all(e[0, :200] == 0)
            if kind == "ARE":
                torch.testing.assert_close(y[0], e[0] @ m.head.weight + m.head.bias)
        if m.uses_text:
            o, h_t = m.encode_text(x["tokens"], x["token_len"])
            assert torch.all(o[1:] == 0) and torch.all(h_t[1:] == 0)
        if kind == "MDREA":
            _, alpha = m(**x, return_attention=True)
            assert torch.all(alpha[1:] == 0)
            torch.testing.assert_close(alpha[0].sum(), torch.tensor(1.0))
        # empty tensors (T = 0) are accepted too
        empty = dict(x, mfcc=x["mfcc"][:, :0], mfcc_len=torch.zeros(3, dtype=torch.long),
                     tokens=x["tokens"][:, :0], token_len=torch.zeros(3, dtype=torch.long))
        assert torch.isfinite(m(**only_needed(kind, empty))).all()
    # and training through a batch holding an empty row works
    m.train()
    m(**only_needed(kind, x)).sum().backward()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="kind"):
        MDRE(kind="MDREB")
    with pytest.raises(ValueError, match="DROP rate"):
        MDRE(kind="ARE", audio_dropout=1.0)
    m = make("MDRE")
    x = batch()
    with pytest.raises(ValueError, match="needs tokens"):
        m(mfcc=x["mfcc"], mfcc_len=x["mfcc_len"], prosody=x["prosody"])
    with pytest.raises(ValueError, match="negative"):
        m(**dict(x, token_len=-x["token_len"]))
    with pytest.raises(ValueError, match="tokens given"):
        m(**dict(x, token_len=x["token_len"] + 100))


def test_gradient_reaches_every_parameter_mdrea():
    m = make("MDREA").train()
    x = batch()
    target = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(m(**x), target)  # the original's sigmoid CE
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_unmasked_attention_is_the_2018_softmax_over_128_positions():
    """masked_attention=False (issue 19.31): the paper's code, where every padded position of the original's
    128-token rows (GRU output 0, score 0) takes e^0 of the softmax; independent of the batch's own padding."""
    m = make("MDREA", masked_attention=False).eval()
    masked = make("MDREA").eval()  # the same weights (same seed), masked
    x = batch(b=4, t_t=9, text_len=[9, 1, 4, 0])
    with torch.no_grad():
        y, alpha = m(**x, return_attention=True)
        q = m.proj_query(m.encode_audio(x["mfcc"], x["mfcc_len"], x["prosody"]))
        o, _ = m.encode_text(x["tokens"], x["token_len"])
        for i, n in enumerate(x["token_len"].tolist()):
            scores = torch.cat([o[i, :n] @ q[i], torch.zeros(128 - n)])  # the original's fixed 128 positions
            a = torch.softmax(scores, dim=0)[:n]
            torch.testing.assert_close(alpha[i, :n], a)
            torch.testing.assert_close(y[i], torch.cat([a @ o[i, :n], q[i]]) @ m.head.weight + m.head.bias)
        assert (alpha.sum(1)[:3] < 1).all()  # padding took weight
        assert not torch.allclose(y[:3], masked(**x)[:3])
        # more padding in the batch (tokens padded to 20) changes nothing: the padding is counted up to 128
        wide = dict(x, tokens=torch.cat([x["tokens"], torch.zeros(4, 11, dtype=torch.long)], dim=1))
        torch.testing.assert_close(m(**wide), y)
    with pytest.raises(ValueError, match="MDREA only"):
        make("MDRE", masked_attention=False)


def test_unmasked_attention_recorded_in_the_checkpoint_config():
    """The method records masked_attention in config.json and method_from_config (testing, cross_corpus.py)
    rebuilds the same model; a config that predates the option is the masked model."""
    import numpy as np

    from systems.mdre import MDREMethod, method_from_config
    ids = {"u1": np.array([2, 3], np.int64)}
    cfg = MDREMethod("MDREA", None, None, ids, ["_PAD_", "_UNK_", "a", "b"], masked_attention=False).config()
    assert cfg["model"]["masked_attention"] is False
    assert method_from_config(cfg, None, None, ids).build_model().masked_attention is False
    del cfg["model"]["masked_attention"]
    assert method_from_config(cfg, None, None, ids).build_model().masked_attention is True
