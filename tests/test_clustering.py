"""engine.clustering: k-means (faiss and torch backends), the sentence-uniform sampler, label helper, NMI."""
import math
import sys

import numpy as np
import pytest

from engine import clustering
from engine.clustering import kmeans, nmi, sentence_uniform_order


def blobs(n_per=400, k=5, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 10.0
    x = (rng.normal(size=(n_per * k, d)) + np.repeat(centers, n_per, axis=0)).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def noise(n=3000, d=16, seed=1):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def same_partition(a, b):
    """True when a and b are the same partition up to a relabelling (a bijection between the label sets)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def assert_nearest(x, r):
    """Every row is assigned to a nearest final centroid (exact ties, e.g. duplicated rows between the two
    halves of a split cluster, may go either way)."""
    d2 = ((x[:, None, :].astype(np.float64) - r.centroids[None]) ** 2).sum(-1)
    mine = d2[np.arange(len(x)), r.assign]
    assert np.all(mine <= d2.min(1) + 1e-4 * (1.0 + d2.min(1)))
    return d2


# --------------------------------------------------------------------------- k-means

def test_faiss_and_torch_agree_and_recover_blobs():
    pytest.importorskip("faiss")
    x, truth = blobs()
    f = kmeans(x, 5, niter=20, seed=6, backend="faiss")  # a seed whose random init leads to the true blobs
    t = kmeans(x, 5, niter=20, seed=6, backend="torch")
    assert f.backend == "faiss" and t.backend == "torch"
    for r in (f, t):
        assert r.assign.shape == (2000,) and r.assign.dtype == np.int64
        assert r.centroids.shape == (5, 16) and r.centroids.dtype == np.float32
        assert nmi(r.assign, truth) == pytest.approx(1.0)
        # every row is assigned to its nearest final centroid
        assert_nearest(x, r)
    assert same_partition(f.assign, t.assign)
    np.testing.assert_array_equal(f.assign, t.assign)  # same init rows -> even the same cluster ids
    np.testing.assert_allclose(f.centroids, t.centroids, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f.objective, t.objective, rtol=1e-5)


def test_backends_agree_on_structureless_data():
    """Same initial rows and same update rule: identical partitions even without cluster structure."""
    pytest.importorskip("faiss")
    x = noise()
    f = kmeans(x, 12, niter=10, seed=3, backend="faiss")
    t = kmeans(x, 12, niter=10, seed=3, backend="torch")
    assert len(f.objective) == len(t.objective) == 10
    assert (f.assign == t.assign).mean() > 0.99


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_deterministic_for_a_seed(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    x = noise()
    a = kmeans(x, 10, niter=8, seed=5, backend=backend)
    b = kmeans(x, 10, niter=8, seed=5, backend=backend)
    np.testing.assert_array_equal(a.assign, b.assign)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.objective == b.objective
    # the seed is actually used: different seeds start from different rows and end in different partitions
    others = [kmeans(x, 10, niter=8, seed=s, backend=backend).assign for s in (6, 7)]
    assert any(not same_partition(a.assign, o) for o in others)


def test_init_rows_are_distinct_and_seeded():
    rows = clustering._init_rows(1000, 50, 9)
    assert len(set(rows.tolist())) == 50 and rows.min() >= 0 and rows.max() < 1000
    np.testing.assert_array_equal(rows, clustering._init_rows(1000, 50, 9))
    assert not np.array_equal(rows, clustering._init_rows(1000, 50, 10))
    assert sorted(clustering._init_rows(7, 7, 0).tolist()) == list(range(7))


def test_torch_objective_non_increasing_and_defined_like_faiss():
    x = noise(n=2000, d=8)
    r = kmeans(x, 15, niter=12, seed=2, backend="torch")
    obj = np.asarray(r.objective)
    assert len(obj) == 12
    assert np.all(np.diff(obj) <= 1e-5 * obj[0])
    assert obj[-1] < 0.9 * obj[0]
    # objective[0] = sum of squared distances to the initial centroids (the k seeded rows)
    init = x[clustering._init_rows(len(x), 15, 2)]
    d2 = ((x[:, None, :].astype(np.float64) - init[None]) ** 2).sum(-1).min(1)
    assert obj[0] == pytest.approx(d2.sum(), rel=1e-4)


def test_faiss_objective_has_niter_entries():
    pytest.importorskip("faiss")
    x, _ = blobs()
    r = kmeans(x, 5, niter=7, seed=1, backend="faiss")
    assert len(r.objective) == 7
    assert all(math.isfinite(v) for v in r.objective) and r.objective[-1] <= r.objective[0]


@pytest.mark.parametrize("k", [6, 12])
def test_torch_empty_clusters_are_resplit(k):
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(3, 8)).astype(np.float32) + 3.0  # no zero coordinates: the split really moves
    x = np.repeat(pts, [50, 30, 5], axis=0)  # 85 rows but only 3 distinct points -> empty clusters every step
    r = kmeans(x, k, niter=10, seed=0, backend="torch")
    assert np.isfinite(r.centroids).all()
    assert r.assign.shape == (85,) and r.assign.min() >= 0 and r.assign.max() < k
    assert len(r.objective) == 10 and all(math.isfinite(v) for v in r.objective)
    d2 = assert_nearest(x, r)
    assert d2.min(1).max() < 1e-2  # each row sits on (a perturbed copy of) its own point
    # each of the 3 distinct points forms one group
    assert same_partition(r.assign, np.repeat(np.arange(3), [50, 30, 5]))


def test_split_rule_copies_and_perturbs():
    cent = np.array([[0.0, 0.0], [2.0, 4.0], [1.0, 1.0]], dtype=np.float32)
    hassign = np.array([0.0, 6.0, 1.0], dtype=np.float32)  # cluster 0 empty; only cluster 1 can be split
    assert clustering._split_empty_clusters(cent, hassign, n=7) == 1
    eps = 1.0 / 1024.0
    np.testing.assert_allclose(cent[0], [2.0 * (1 + eps), 4.0 * (1 - eps)], rtol=1e-7)
    np.testing.assert_allclose(cent[1], [2.0 * (1 - eps), 4.0 * (1 + eps)], rtol=1e-7)
    np.testing.assert_array_equal(cent[2], [1.0, 1.0])
    np.testing.assert_array_equal(hassign, [3.0, 3.0, 1.0])


def test_k_equal_n_and_k_greater_than_n():
    x = noise(n=6, d=4)
    r = kmeans(x, 6, seed=0, backend="torch")
    assert sorted(r.assign.tolist()) == list(range(6)) and r.objective == [0.0]
    with pytest.raises(ValueError, match=r"k=7 .*N=6"):
        kmeans(x, 7, seed=0, backend="torch")
    with pytest.raises(ValueError, match=r"k=7 .*N=6"):
        kmeans(x, 7, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((4, 2), np.nan, dtype=np.float32), 2, seed=0)
    with pytest.raises(ValueError, match="backend"):
        kmeans(x, 2, seed=0, backend="gpu")


def test_auto_falls_back_to_torch_without_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    assert not clustering.faiss_available()
    x, truth = blobs(n_per=100)
    r = kmeans(x, 5, niter=20, seed=1, backend="auto")
    assert r.backend == "torch" and r.assign.shape == (500,)
    with pytest.raises(ImportError, match="faiss"):
        kmeans(x, 5, seed=1, backend="faiss")


def test_auto_uses_faiss_when_available():
    pytest.importorskip("faiss")
    x, _ = blobs(n_per=50)
    assert kmeans(x, 5, seed=1).backend == "faiss"



# --------------------------------------------------------------------------- devices

def test_tensor_input_and_explicit_cpu_give_the_array_result():
    """A torch tensor (or device="cpu") is the same k-means as the numpy array: same partition, bit for bit."""
    import torch
    x = noise(n=1500, d=8)
    for backend in ("torch", "faiss") if clustering.faiss_available() else ("torch",):
        ref = kmeans(x, 9, niter=6, seed=4, backend=backend)
        for r in (kmeans(torch.from_numpy(x), 9, niter=6, seed=4, backend=backend),
                  kmeans(x, 9, niter=6, seed=4, backend=backend, device="cpu")):
            assert r.device == "cpu" and r.backend == backend
            np.testing.assert_array_equal(r.assign, ref.assign)
            assert r.centroids.tobytes() == ref.centroids.tobytes() and r.objective == ref.objective
    with pytest.raises(ValueError, match="NaN"):
        kmeans(torch.full((4, 2), float("nan")), 2, seed=0, backend="torch")


class _FakeGpuFaiss:
    """faiss with a pretend GPU: its GPU flat index is the CPU one, recording the device it was asked for."""

    def __init__(self, faiss):
        self._faiss, self.devices = faiss, []

    def __getattr__(self, name):
        return getattr(self._faiss, name)

    def get_num_gpus(self):
        return 1

    def StandardGpuResources(self):  # noqa: N802 (faiss's name)
        return object()

    def GpuIndexFlatConfig(self):  # noqa: N802
        return type("Config", (), {"device": -1})()

    def GpuIndexFlatL2(self, resources, d, config):  # noqa: N802
        self.devices.append(config.device)
        return self._faiss.IndexFlatL2(d)


def test_cuda_data_uses_faiss_gpu_index_when_faiss_has_gpus(monkeypatch):
    faiss = pytest.importorskip("faiss")
    fake = _FakeGpuFaiss(faiss)
    monkeypatch.setattr(clustering, "_import_faiss", lambda: fake)
    x, _ = blobs(n_per=60)
    r = kmeans(x, 5, niter=5, seed=2, device="cuda:1")
    assert fake.devices == [1] and r.backend == "faiss" and r.device == "cuda:1"
    cpu = kmeans(x, 5, niter=5, seed=2)  # no device: faiss-cpu, never the GPU index
    assert fake.devices == [1] and cpu.device == "cpu"
    np.testing.assert_array_equal(r.assign, cpu.assign)
    # faiss-cpu only (no GPU index in the module): the CUDA request runs faiss on the CPU
    monkeypatch.setattr(clustering, "_import_faiss", lambda: faiss)
    assert clustering.faiss_gpus(faiss) == 0
    assert kmeans(x, 5, niter=5, seed=2, device="cuda:0").device == "cpu"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_torch_fallback_runs_on_the_gpu(monkeypatch):
    import torch
    monkeypatch.setitem(sys.modules, "faiss", None)  # no faiss: the torch k-means on the model's device
    x, truth = blobs(n_per=200)
    xt = torch.from_numpy(x).cuda()
    r = kmeans(xt, 5, niter=20, seed=6)
    assert r.backend == "torch" and r.device.startswith("cuda")
    assert isinstance(r.assign, np.ndarray) and nmi(r.assign, truth) == pytest.approx(1.0)
    cpu = kmeans(x, 5, niter=20, seed=6)
    np.testing.assert_array_equal(r.assign, cpu.assign)
    np.testing.assert_allclose(r.objective, cpu.objective, rtol=1e-4)


# --------------------------------------------------------------------------- sampler

def test_sampler_balances_clusters_and_keeps_sentences_whole():
    sizes = {0: 600, 1: 150, 2: 30}  # sentences whose 11 chunks all fall in one cluster
    cc = np.concatenate([np.full((n, 11), c) for c, n in sizes.items()])
    m = len(cc)
    ids = sentence_uniform_order(cc, 3, np.random.RandomState(0))
    assert ids.shape == (m,) and ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < m
    freq = np.bincount(cc[ids].ravel(), minlength=3) / (11 * m)
    np.testing.assert_allclose(freq, 1 / 3, atol=0.06)  # unbalanced input would give [0.77, 0.19, 0.04]
    # reproducible for a seed, for RandomState and Generator alike
    np.testing.assert_array_equal(ids, sentence_uniform_order(cc, 3, np.random.RandomState(0)))
    g1 = sentence_uniform_order(cc, 3, np.random.default_rng(3))
    np.testing.assert_array_equal(g1, sentence_uniform_order(cc, 3, np.random.default_rng(3)))
    np.testing.assert_allclose(np.bincount(cc[g1].ravel(), minlength=3) / (11 * m), 1 / 3, atol=0.06)


def test_sampler_matches_hand_computed_draw_with_empty_cluster():
    cc = np.array([[0, 0], [0, 1], [2, 2]])  # cluster sizes 3, 1, 2, and cluster 3 is empty
    # w = (1/3, 1, 1/2, 0) / (11/6) = (2/11, 6/11, 3/11, 0); scores = 4/11, 8/11, 6/11; p = (2/9, 4/9, 1/3)
    rs = np.random.RandomState(0)
    expected = rs.choice(3, size=3, p=[2 / 9, 4 / 9, 1 / 3])
    rs.shuffle(expected)
    got = sentence_uniform_order(cc, 4, np.random.RandomState(0))
    np.testing.assert_array_equal(got, expected)
    # the empty cluster has weight 0: same draw as without it
    np.testing.assert_array_equal(got, sentence_uniform_order(cc, 3, np.random.RandomState(0)))
    # a larger check that p really is (2/9, 4/9, 1/3)
    rep = np.concatenate([sentence_uniform_order(cc, 4, np.random.RandomState(s)) for s in range(3000)])
    np.testing.assert_allclose(np.bincount(rep, minlength=3) / len(rep), [2 / 9, 4 / 9, 1 / 3], atol=0.02)


def test_sampler_single_cluster_is_uniform_and_checks_input():
    cc = np.zeros((5, 11), dtype=np.int64)
    rs = np.random.RandomState(1)
    expected = rs.choice(5, size=5, p=np.full(5, 0.2))
    rs.shuffle(expected)
    np.testing.assert_array_equal(sentence_uniform_order(cc, 4, np.random.RandomState(1)), expected)
    with pytest.raises(ValueError, match="range"):
        sentence_uniform_order(np.array([[0, 5]]), 3, np.random.RandomState(0))
    with pytest.raises(ValueError):
        sentence_uniform_order(np.array([0, 1]), 3, np.random.RandomState(0))
    assert sentence_uniform_order(np.zeros((0, 11), dtype=int), 3, np.random.RandomState(0)).shape == (0,)


# --------------------------------------------------------------------------- labels, NMI

def test_nmi_hand_computed_values():
    assert nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)
    # a = [0,0,1,1], b = [0,0,0,1]: H(a) = ln 2, H(b) = 2 ln 2 - (3/4) ln 3,
    # H(b|a) = (1/2) ln 2  ->  I = (3/2) ln 2 - (3/4) ln 3;  NMI = I / ((H(a) + H(b)) / 2)
    ln2, ln3 = math.log(2), math.log(3)
    expected = (1.5 * ln2 - 0.75 * ln3) / ((3 * ln2 - 0.75 * ln3) / 2)
    assert expected == pytest.approx(0.343711, abs=1e-6)
    assert nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(expected, rel=1e-12)
    assert nmi([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(expected, rel=1e-12)  # symmetric


def test_nmi_permutation_invariance_and_edge_cases():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 4, size=200))
    v = nmi(a, b)
    assert 0.0 < v < 1.0
    perm = np.array([2, 0, 3, 1])
    assert nmi(perm[a], b) == pytest.approx(v, rel=1e-12)
    assert nmi(a, perm[b] + 10) == pytest.approx(v, rel=1e-12)
    assert nmi(a, a) == pytest.approx(1.0)
    assert nmi(rng.integers(0, 3, 20000), rng.integers(0, 3, 20000)) < 1e-3  # independent
    assert nmi([1, 1, 1], [0, 0, 0]) == 1.0  # both constant
    assert nmi([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # one constant
    with pytest.raises(ValueError):
        nmi([0, 1], [0, 1, 2])
