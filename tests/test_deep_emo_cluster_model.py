"""Temporal-enhanced DeepEmoCluster model: shapes, parameter counts, state_dict keys, initialisation, the
temporal modules against hand-written computations, triplet sampling and loss, and legacy checkpoints."""

import io
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from models.deep_emo_cluster import (CHUNK_FRAMES, CHUNKS, MEL, VARIANTS, DeepEmoCluster, from_legacy_state_dict,
                                     infer_num_clusters, infer_variant, sentence_mean, strip_module,
                                     triplet_embeddings, triplet_indices, triplet_loss)

TOTALS_K10 = {"Temp-GRU": 1_128_427, "Temp-CNN": 832_830, "Temp-Trans": 1_227_755, "Temp-Triplet": 831_979}
TEMPORAL = {"Temp-GRU": 296_448, "Temp-CNN": 851, "Temp-Trans": 395_776, "Temp-Triplet": 0}


def n_params(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def make(variant, k=10, seed=0, **kw) -> DeepEmoCluster:
    torch.manual_seed(seed)
    return DeepEmoCluster(variant=variant, num_clusters=k, **kw)


def chunks_for(b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b * CHUNKS, 1, CHUNK_FRAMES, MEL, generator=g)


def randomise_bn(model):
    """Non-trivial running stats so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


# ---------------------------------------------------------------- shapes, counts, keys
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("b", [2, 3])
def test_output_shapes(variant, b):
    m = make(variant)
    out = m(chunks_for(b))
    n = b * CHUNKS
    assert out["emb"].shape == (n, 256) and out["hidden"].shape == (n, 256)
    assert out["logits"].shape == (n, 10) and out["attri"].shape == (n, 1)
    assert m.embed(chunks_for(b)).shape == (n, 256)
    assert sentence_mean(out["attri"]).shape == (b,)
    m.drop_head()
    assert m(chunks_for(b))["logits"] is None and m.num_clusters is None


def test_rows_must_be_whole_sentences_and_input_shape_checked():
    m = make("Temp-GRU").eval()
    with pytest.raises(AssertionError):
        m(torch.zeros(12, 1, CHUNK_FRAMES, MEL))
    with pytest.raises(AssertionError):
        m(torch.zeros(11, 1, 64, MEL))
    with pytest.raises(ValueError):
        DeepEmoCluster(variant="Temp-LSTM")
    # another chunk count works where nothing is tied to 11
    assert make("Temp-Trans", chunks=5).eval()(torch.zeros(10, 1, CHUNK_FRAMES, MEL))["attri"].shape == (10, 1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("k", [10, 30])
def test_parameter_counts(variant, k):
    m = DeepEmoCluster(variant=variant, num_clusters=k)
    assert n_params(m.cnn_features) == 435_168
    assert n_params(m.cnn_out) == 262_400
    assert n_params(m.temporal_net) == TEMPORAL[variant]
    assert n_params(m) == TOTALS_K10[variant] + (5_140 if k == 30 else 0)
    assert n_params(DeepEmoCluster(variant=variant, num_clusters=None)) == TOTALS_K10[variant] - 2_570


def sheet_keys(variant):
    """The original's checkpoint keys as sheet section 15 lists them, `.module` infix included."""
    keys = []
    for i in range(0, 21, 3):
        keys += [f"cnn_features.module.{i}.weight", f"cnn_features.module.{i}.bias"]
        keys += [f"cnn_features.module.{i + 1}.{s}"
                 for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    keys += ["cnn_out.module.0.weight", "cnn_out.module.0.bias"]
    if variant == "Temp-GRU":
        keys += [f"temporal_net.{w}_{x}_l0{r}" for w in ("weight", "bias") for x in ("ih", "hh") for r in ("", "_reverse")]
    elif variant == "Temp-CNN":
        for i in (0, 3):
            keys += [f"temporal_net.{i}.weight", f"temporal_net.{i}.bias"]
            keys += [f"temporal_net.{i + 1}.{s}"
                     for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    elif variant == "Temp-Trans":
        keys += ["pos_enc.pe", "temporal_net.self_attn.in_proj_weight", "temporal_net.self_attn.in_proj_bias",
                 "temporal_net.self_attn.out_proj.weight", "temporal_net.self_attn.out_proj.bias"]
        keys += [f"temporal_net.{m}.{s}" for m in ("linear1", "linear2", "norm1", "norm2") for s in ("weight", "bias")]
    for m in ("classifier.0", "emo_regressor.0", "top_layer_class", "top_layer_attri"):
        keys += [f"{m}.weight", f"{m}.bias"]
    return keys


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_equal_the_sheet(variant):
    sd = DeepEmoCluster(variant=variant).state_dict()
    assert set(sd) == {k.replace(".module", "") for k in sheet_keys(variant)}
    if variant == "Temp-GRU":
        assert sd["temporal_net.weight_ih_l0"].shape == (384, 256)
        assert sd["temporal_net.weight_hh_l0_reverse"].shape == (384, 128)
    if variant == "Temp-Trans":
        assert sd["pos_enc.pe"].shape == (11, 1, 256)
        assert sd["temporal_net.self_attn.in_proj_weight"].shape == (768, 256)
    assert sd["top_layer_class.weight"].shape == (10, 256) and sd["top_layer_attri.weight"].shape == (1, 256)


def test_gru_is_built_without_the_ineffective_dropout_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = DeepEmoCluster(variant="Temp-GRU")
    assert m.temporal_net.num_layers == 1 and m.temporal_net.bidirectional and m.temporal_net.hidden_size == 128


# ---------------------------------------------------------------- initialisation
def test_initialisation_statistics():
    m = make("Temp-Trans", seed=3)
    convs = [l for l in m.cnn_features if isinstance(l, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 1, 2, 2, 2, 2, 2]
    for c in convs:
        want = math.sqrt(2 / (9 * c.out_channels))
        tol = 0.25 if c.weight.numel() < 1000 else 0.05
        assert abs(c.weight.std().item() / want - 1) < tol, (c, c.weight.std().item(), want)
        assert torch.all(c.bias == 0)
    for bn in (l for l in m.cnn_features if isinstance(l, torch.nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    t = m.temporal_net
    for lin in (m.cnn_out[0], m.classifier[0], m.emo_regressor[0], m.top_layer_class, t.linear1, t.linear2,
                t.self_attn.out_proj):
        assert abs(lin.weight.std().item() - 0.01) < 0.0015, lin
        assert torch.all(lin.bias == 0)
    assert abs(m.top_layer_attri.weight.std().item() - 0.01) < 0.003 and m.top_layer_attri.bias.item() == 0
    # left at PyTorch defaults: in_proj Xavier-uniform (std sqrt(2/(256+768))), zero in_proj bias, LayerNorm 1/0
    assert abs(t.self_attn.in_proj_weight.std().item() - math.sqrt(2 / 1024)) < 0.002
    assert torch.all(t.self_attn.in_proj_bias == 0)
    assert torch.all(t.norm1.weight == 1) and torch.all(t.norm2.bias == 0)

    cnn = make("Temp-CNN", seed=3).temporal_net
    assert abs(cnn[0].weight.std().item() / math.sqrt(2 / (25 * 16)) - 1) < 0.15
    assert abs(cnn[3].weight.std().item() / math.sqrt(2 / 25) - 1) < 0.15
    assert torch.all(cnn[1].weight == 1) and torch.all(cnn[4].bias == 0) and torch.all(cnn[0].bias == 0)
    gru = make("Temp-GRU", seed=3).temporal_net
    bound = 1 / math.sqrt(128)  # default U(-1/sqrt(H), 1/sqrt(H)), std bound/sqrt(3)
    assert gru.weight_ih_l0.abs().max() <= bound and abs(gru.weight_ih_l0.std().item() - bound / math.sqrt(3)) < 0.002


def test_new_head_is_fresh_seeded_and_drop_head_removes_it():
    m = make("Temp-CNN")
    old = m.top_layer_class
    h1 = m.new_head(30, generator=torch.Generator().manual_seed(4))
    assert m.top_layer_class is h1 and h1 is not old and h1.out_features == 30 and m.num_clusters == 30
    assert abs(h1.weight.std().item() - 0.01) < 0.001 and torch.all(h1.bias == 0)
    h2 = m.new_head(30, generator=torch.Generator().manual_seed(4))
    assert torch.equal(h1.weight, h2.weight)
    assert not torch.equal(h2.weight, m.new_head(30, generator=torch.Generator().manual_seed(5)).weight)
    assert m.eval()(chunks_for(1))["logits"].shape == (11, 30)
    m.drop_head()
    assert m.top_layer_class is None


# ---------------------------------------------------------------- positional encoding
def test_positional_encoding_values():
    pe = DeepEmoCluster(variant="Temp-Trans").pos_enc.pe
    assert pe.shape == (11, 1, 256) and not pe.requires_grad
    ref = torch.zeros(11, 256, dtype=torch.float64)
    for pos in range(11):
        for i in range(128):
            ang = pos / 10000 ** (2 * i / 256)
            ref[pos, 2 * i], ref[pos, 2 * i + 1] = math.sin(ang), math.cos(ang)
    torch.testing.assert_close(pe[:, 0].double(), ref, rtol=0, atol=1e-5)
    assert pe[0, 0, 1] == 1 and pe[0, 0, 0] == 0


# ---------------------------------------------------------------- forward against hand computations
def test_temp_cnn_forward_by_hand_and_non_negative():
    m = make("Temp-CNN").eval()
    randomise_bn(m)
    x = chunks_for(2)
    with torch.no_grad():
        out = m(x)
        t = m.temporal_net
        z = out["emb"].reshape(2, 1, 11, 256)

        def bn(v, b):
            return F.batch_norm(v, b.running_mean, b.running_var, b.weight, b.bias, training=False, eps=1e-5)
        z = F.relu(bn(F.conv2d(z, t[0].weight, t[0].bias, padding=2), t[1]))
        z = F.relu(bn(F.conv2d(z, t[3].weight, t[3].bias, padding=2), t[4]))
    assert (out["hidden"] >= 0).all() and (out["hidden"] > 0).any()
    torch.testing.assert_close(out["hidden"], z.reshape(22, 256), rtol=1e-5, atol=1e-6)


def test_temp_trans_forward_by_hand():
    """x = LN1(x + Attn(x)); x = LN2(x + W2 relu(W1 x)), one head, scaling 1/16, within each sentence only."""
    m = make("Temp-Trans").eval()
    with torch.no_grad():
        t = m.temporal_net
        t.self_attn.in_proj_weight.mul_(8)  # sharper attention so mistakes show
        x = chunks_for(3)
        out = m(x)
        z = out["emb"].reshape(3, 11, 256) + m.pos_enc.pe[:, 0]  # (B, C, 256)
        q, k, v = (z @ t.self_attn.in_proj_weight.T + t.self_attn.in_proj_bias).split(256, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / 16, dim=-1) @ v
        z = F.layer_norm(z + t.self_attn.out_proj(att), (256,), t.norm1.weight, t.norm1.bias, 1e-5)
        z = F.layer_norm(z + t.linear2(F.relu(t.linear1(z))), (256,), t.norm2.weight, t.norm2.bias, 1e-5)
    torch.testing.assert_close(out["hidden"], z.reshape(33, 256), rtol=1e-4, atol=1e-5)


def test_temp_gru_permutes_with_sentences_and_mixes_chunks_in_order():
    m = make("Temp-GRU").eval()
    x = chunks_for(3)
    perm = [2, 0, 1]
    xp = x.reshape(3, 11, 1, CHUNK_FRAMES, MEL)[perm].reshape(33, 1, CHUNK_FRAMES, MEL)
    with torch.no_grad():
        o, op = m(x), m(xp)
        for key in ("emb", "hidden", "logits", "attri"):
            torch.testing.assert_close(op[key].reshape(3, 11, -1), o[key].reshape(3, 11, -1)[perm])
        # change chunk 5 of sentence 0 only: sentence 0's other chunks change (both GRU directions),
        # sentences 1 and 2 do not
        x2 = x.clone()
        x2[5] += 1
        h, h2 = o["hidden"].reshape(3, 11, 256), m(x2)["hidden"].reshape(3, 11, 256)
    torch.testing.assert_close(h2[1:], h[1:])
    assert not torch.allclose(h2[0, 0, 128:], h[0, 0, 128:])   # backward half of an earlier chunk
    torch.testing.assert_close(h2[0, 0, :128], h[0, 0, :128])  # forward half has not seen chunk 5 yet
    assert not torch.allclose(h2[0, 10, :128], h[0, 10, :128])


def test_temp_triplet_heads_read_cnn_out_directly():
    m = make("Temp-Triplet").eval()
    with torch.no_grad():
        x = chunks_for(2)
        out = m(x)
        emb = F.relu(m.cnn_out[0](m.cnn_features(x).flatten(1)))
        torch.testing.assert_close(out["emb"], emb)
        assert out["hidden"] is out["emb"] and len(m.cnn_out) == 2
        torch.testing.assert_close(out["logits"], m.top_layer_class(F.relu(m.classifier[0](emb))))
        torch.testing.assert_close(out["attri"], m.top_layer_attri(F.relu(m.emo_regressor[0](emb))))


@pytest.mark.parametrize("variant", VARIANTS)
def test_embed_is_pre_relu_classifier_output(variant):
    m = make(variant).eval()
    x = chunks_for(2)
    with torch.no_grad():
        e = m.embed(x)
        out = m(x)
        torch.testing.assert_close(e, m.classifier[0](out["hidden"]))
        torch.testing.assert_close(out["logits"], m.top_layer_class(F.relu(e)))
    assert (e < 0).any()  # pre-ReLU


def test_sentence_mean():
    attri = torch.arange(22, dtype=torch.float32).reshape(22, 1)
    torch.testing.assert_close(sentence_mean(attri), torch.tensor([5.0, 16.0]))
    torch.testing.assert_close(sentence_mean(torch.arange(6.0), chunks=3), torch.tensor([1.0, 4.0]))


def test_forward_consumes_no_numpy_rng():
    np.random.seed(0)
    m = make("Temp-Triplet")
    m(chunks_for(1))
    m.eval()(chunks_for(1))
    assert np.random.randint(1 << 30) == np.random.RandomState(0).randint(1 << 30)  # global stream untouched


# ---------------------------------------------------------------- triplets
def reference_draws(seed, count):
    """The pools of sheet section 7 drawn with the documented equivalent of legacy
    choice(pool, 1, replace=False): pool[permutation(len(pool))[0]]."""
    rs = np.random.RandomState(seed)
    out = []
    for _ in range(count):
        a = int(rs.permutation(11)[0])
        if a == 0:
            pp = [1, 2]
        elif a == 10:
            pp = [9, 8]
        else:
            pp = [i for i in range(a - 2, a + 3) if 0 <= i <= 10 and i != a]
        p = pp[rs.permutation(len(pp))[0]]
        npool = [i for i in range(11) if i != a and i not in pp]
        out.append((a, p, npool[rs.permutation(len(npool))[0]]))
    return out


def test_triplet_indices_first_draws_of_seed_0():
    rs = np.random.RandomState(0)
    got = [triplet_indices(rs) for _ in range(4)]
    assert got == [(4, 3, 8), (2, 3, 9), (2, 4, 6), (2, 0, 10)]
    assert got == reference_draws(0, 4)


def test_triplet_index_rules_over_many_draws():
    rs = np.random.RandomState(123)
    draws = [triplet_indices(rs) for _ in range(3000)]
    assert draws == reference_draws(123, 3000)  # pool order incl. a=10 descending and ascending negatives
    seen_p = {0: set(), 10: set()}
    for a, p, n in draws:
        assert abs(a - p) in (1, 2) and abs(a - n) >= 3 and 0 <= min(a, p, n) and max(a, p, n) <= 10
        if a in seen_p:
            seen_p[a].add(p)
    assert seen_p == {0: {1, 2}, 10: {9, 8}}
    assert {a for a, _, _ in draws} == set(range(11))
    again = np.random.RandomState(123)
    assert [triplet_indices(again) for _ in range(50)] == draws[:50]


def test_triplet_embeddings_round_major_and_shared_triple():
    b = 3
    emb = torch.arange(b * 11, dtype=torch.float32)[:, None] * torch.ones(1, 4)  # row value = row id
    anc, pos, neg = triplet_embeddings(emb, np.random.RandomState(0), rounds=10)
    assert anc.shape == pos.shape == neg.shape == (30, 4)
    triples = [triplet_indices(r, 11) for r in [np.random.RandomState(0)] for _ in range(10)]
    for r, (a, p, n) in enumerate(triples):
        for s in range(b):
            row = r * b + s
            assert (anc[row, 0], pos[row, 0], neg[row, 0]) == (s * 11 + a, s * 11 + p, s * 11 + n)


def test_triplet_loss_hand_example():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    n = torch.tensor([[6.0, 8.0], [1.0, 0.0]])
    # max(0, 5 - 10 + 1) = 0 and max(0, 2 - 1 + 1) = 2 -> mean 1
    torch.testing.assert_close(triplet_loss(a, p, n), torch.tensor(1.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(triplet_loss(a, p, n), torch.nn.TripletMarginLoss(margin=1.0, p=2)(a, p, n))


# ---------------------------------------------------------------- legacy checkpoints
def add_module_infix(sd):
    """Key layout of the original checkpoints: DataParallel-wrapped cnn_features and cnn_out."""
    out = OrderedDict()
    for k, v in sd.items():
        for head in ("cnn_features.", "cnn_out."):
            if k.startswith(head):
                k = head + "module." + k[len(head):]
        out[k] = v
    return out


def save_legacy(model, path, zip_format):
    sd = add_module_infix(model.state_dict())
    torch.save({"arch": "vgg16", "state_dict": sd}, path, _use_new_zipfile_serialization=zip_format)


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
@pytest.mark.parametrize("k", [10, 30])
@pytest.mark.parametrize("variant", VARIANTS)
def test_legacy_round_trip(variant, k, zip_format, tmp_path):
    m = make(variant, k=k)
    randomise_bn(m)
    path = tmp_path / "ck.pth.tar"
    save_legacy(m, path, zip_format)
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["arch"] == "vgg16" and "cnn_features.module.0.weight" in ck["state_dict"]
    assert set(ck["state_dict"]) == set(sheet_keys(variant))
    sd = strip_module(ck["state_dict"])
    assert infer_variant(sd) == variant and infer_num_clusters(sd) == k
    m2 = from_legacy_state_dict(sd)
    assert m2.variant == variant and m2.num_clusters == k
    x = chunks_for(2)
    with torch.no_grad():
        o, o2 = m.eval()(x), m2.eval()(x)
    for key in ("emb", "hidden", "logits", "attri"):
        assert torch.equal(o[key], o2[key])


def test_infer_helpers_and_variant_override():
    sd = DeepEmoCluster(variant="Temp-Triplet", num_clusters=None).state_dict()
    assert infer_variant(sd) == "Temp-Triplet" and infer_num_clusters(sd) is None
    assert from_legacy_state_dict(sd).top_layer_class is None
    assert from_legacy_state_dict({"arch": "vgg16", "state_dict": add_module_infix(sd)},
                                  variant="Temp-Triplet").variant == "Temp-Triplet"
    with pytest.raises(RuntimeError):  # strict: a Triplet state_dict is not a GRU model
        from_legacy_state_dict(sd, variant="Temp-GRU")
    assert list(strip_module({"a.module.b.module.c": 1})) == ["a.b.c"]


def test_legacy_file_with_cuda_located_storages_loads_on_cpu():
    m = make("Temp-CNN")
    buf = io.BytesIO()
    save_legacy(m, buf, zip_format=False)
    raw = buf.getvalue()
    # protocol-2 pickle: the memoised location 'cpu' is BINUNICODE 'X' + 4-byte little-endian length + utf-8
    cpu_tag = b"X" + (3).to_bytes(4, "little") + b"cpu"
    assert raw.count(cpu_tag) == 1
    cuda = raw.replace(cpu_tag, b"X" + (6).to_bytes(4, "little") + b"cuda:0")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(cuda), weights_only=True)
    ck = torch.load(io.BytesIO(cuda), map_location="cpu", weights_only=True)
    m2 = from_legacy_state_dict(ck)
    assert all(v.device.type == "cpu" for v in m2.state_dict().values())
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v)
