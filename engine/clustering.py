"""Per-epoch clustering tools for the temporal-enhanced DeepEmoCluster training.

What is here (see the reference sheet ``deep_emo_cluster.md`` §9-§11 and quirks 11/12):

* :func:`kmeans` - k-means on the (N, D) chunk embeddings, configured as the original configured faiss
  (random init from data points, ``niter`` Lloyd iterations, no subsampling, one redo, not spherical, exact L2).
  On ``device="cpu"`` (the default): faiss-cpu when it can be imported, otherwise a pure-torch implementation of
  the same algorithm. On a CUDA device: faiss on that GPU where the installed faiss has GPU support
  (``faiss.get_num_gpus() > 0``), faiss-cpu where only that is installed, and the torch implementation on the
  GPU when faiss is absent (or ``backend="torch"``).
* :func:`sentence_uniform_order` - the original's ``SentUnifSampler`` draw: whole sentences, drawn with
  replacement so that the chunk clusters come out balanced.
* :func:`nmi` - normalized mutual information (arithmetic mean), used to log how much the partition moved
  between epochs.

Distributed training is the caller's business: gather the features on one rank, call :func:`kmeans` there, and
broadcast the result.

Threads: nothing here changes a global thread setting. faiss uses its OpenMP thread count (``OMP_NUM_THREADS``
or ``faiss.omp_set_num_threads``, set by the caller if at all); the torch path runs with torch's current
intra-op thread count (``torch.get_num_threads()``), whatever the caller configured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["KMeansResult", "kmeans", "sentence_uniform_order", "nmi", "faiss_available", "faiss_gpus"]

# The original set max_points_per_centroid to 10,000,000 so that faiss never subsamples the training set.
_MAX_POINTS_PER_CENTROID = 10_000_000
# Relative perturbation used when an empty cluster is re-seeded from a non-empty one (faiss uses 1/1024,
# "a bit above machine epsilon for float16").
_SPLIT_EPS = 1.0 / 1024.0
# Seed of the generator that picks the cluster to split (faiss re-creates its generator with this seed at every
# iteration, so the choice depends only on the cluster sizes).
_SPLIT_RNG_SEED = 1234
# Bound on the number of float32 elements of one (rows, k) distance block in the torch path (~32 MiB).
_BLOCK_ELEMS = 1 << 23


@dataclass
class KMeansResult:
    """Result of :func:`kmeans`.

    assign:    (N,) int64, index of the nearest final centroid of every row.
    centroids: (k, D) float32 final centroids.
    objective: per-iteration objective, i.e. the sum over rows of the squared L2 distance to the nearest centroid
               *at the start* of each iteration (faiss's ``iteration_stats[i].obj``); ``niter`` entries, except
               in faiss's N == k corner case, which copies the rows to the centroids and records one entry (0).
    backend:   "faiss" or "torch", the implementation that actually ran.
    device:    where it ran: "cpu", or the CUDA device (e.g. "cuda:0") of faiss's GPU index or of the torch path.
    """

    assign: np.ndarray
    centroids: np.ndarray
    objective: list = field(default_factory=list)
    backend: str = "torch"
    device: str = "cpu"


# ----------------------------------------------------------------------------------------------------------
# k-means
# ----------------------------------------------------------------------------------------------------------

def _import_faiss():
    """Import faiss, or return None when it is not installed / cannot be loaded."""
    try:
        import faiss  # noqa: PLC0415 (optional dependency, imported lazily)
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    """True when faiss can be imported in this process."""
    return _import_faiss() is not None


def faiss_gpus(faiss) -> int:
    """Number of GPUs the installed faiss can use (0 for faiss-cpu, which has no GPU index at all)."""
    if faiss is None or not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def _resolve_device(x, device):
    """The torch.device k-means runs on: `device` when given, else the tensor's own, else the CPU."""
    import torch

    if device is None:
        return x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" = the current device, named for the record
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _check_arguments(shape, k, niter, seed) -> None:
    if len(shape) != 2:
        raise ValueError(f"kmeans: x must be a 2-D (N, D) array, got shape {tuple(shape)}")
    n, d = shape
    if n == 0 or d == 0:
        raise ValueError(f"kmeans: x must have at least one row and one column, got shape {tuple(shape)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"kmeans: k must be a positive integer, got {k!r}")
    if int(k) > n:
        raise ValueError(f"kmeans: k={int(k)} clusters requested but x has only N={n} rows; "
                         f"k-means needs at least as many rows as clusters (k <= N)")
    if isinstance(niter, bool) or not isinstance(niter, (int, np.integer)) or niter < 0:
        raise ValueError(f"kmeans: niter must be a non-negative integer, got {niter!r}")
    # faiss stores the seed in a C int and seeds its permutation generator with seed + 1.
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31 - 1:
        raise ValueError(f"kmeans: seed must be an integer in [0, 2**31 - 1), got {seed!r}")


def _check_inputs(x, k, niter, seed) -> np.ndarray:
    """`x` as a C-contiguous float32 host array, after the argument checks and a NaN/Inf scan."""
    import torch

    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    x = np.asarray(x)
    _check_arguments(x.shape, k, niter, seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    step = max(1, (1 << 22) // d)
    for i0 in range(0, n, step):
        if not np.isfinite(x[i0:i0 + step]).all():
            raise ValueError("kmeans: x contains NaN or Inf values")
    return x


def kmeans(x, k: int, *, niter: int = 20, seed: int, backend: str = "auto", device=None) -> KMeansResult:
    """k-means of the rows of ``x`` into ``k`` clusters, as the original ran it with faiss.

    Parameters
    ----------
    x:       (N, D) numpy array or torch tensor (float32 is used; a C-contiguous float32 array is not copied).
    k:       number of clusters, 1 <= k <= N (k > N raises ValueError).
    niter:   number of Lloyd iterations (the original: 20).
    seed:    seed of the random initialisation (the original drew ``np.random.randint(1234)`` per call).
    backend: "auto" (faiss if importable, else torch), "faiss" (ImportError if unavailable) or "torch".
    device:  where to compute (e.g. the model's device); default: the tensor's own device, the CPU for arrays.
             On CUDA, faiss runs on that GPU when it was built with GPU support, on the CPU otherwise (faiss-cpu);
             the torch path (no faiss, or backend="torch") runs on the GPU, ``x`` moved there once.

    The result's arrays are always host numpy arrays. Both backends are deterministic for a given seed (and a
    given thread count; on CUDA under ``torch.use_deterministic_algorithms``), and both start from the same
    k data rows: faiss-cpu 1.15's ``rand_perm(seed + 1)`` is reproduced exactly by the torch path, so on data
    without near-ties the two backends give the same partition.
    """
    if backend not in ("auto", "faiss", "torch"):
        raise ValueError(f"kmeans: backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    dev = _resolve_device(x, device)
    faiss = None if backend == "torch" else _import_faiss()
    if faiss is None and backend == "faiss":
        raise ImportError("kmeans: backend='faiss' requested but faiss cannot be imported; "
                          "install faiss-cpu (see requirements.txt) or use backend='torch'/'auto'")
    if faiss is None and dev.type != "cpu":  # the torch path on the accelerator: x stays (or goes) there
        xt = _device_rows(x, k, niter, seed, dev)
        return _kmeans_torch(xt, int(k), int(niter), int(seed))
    x = _check_inputs(x, k, niter, seed)
    k, niter, seed = int(k), int(niter), int(seed)
    if faiss is None:
        return _kmeans_torch(x, k, niter, seed)
    gpu = dev.index if dev.type == "cuda" and faiss_gpus(faiss) > 0 else None
    return _kmeans_faiss(faiss, x, k, niter, seed, gpu=gpu)


def _device_rows(x, k, niter, seed, dev):
    """`x` as a contiguous float32 tensor on `dev` after the argument checks and a NaN/Inf check there (one
    host sync for the whole matrix, not per block)."""
    import torch

    _check_arguments(tuple(x.shape), k, niter, seed)
    xt = torch.as_tensor(x).detach().to(dev, torch.float32).contiguous()
    if not bool(torch.isfinite(xt).all()):
        raise ValueError("kmeans: x contains NaN or Inf values")
    return xt


def _flat_index(faiss, d: int, gpu: int | None):
    """An exact-L2 float32 index: faiss's GPU index on device `gpu` (with the resources it needs kept alive
    alongside), or the CPU one."""
    if gpu is None:
        return faiss.IndexFlatL2(d), None
    resources = faiss.StandardGpuResources()
    config = faiss.GpuIndexFlatConfig()
    config.device = int(gpu)
    return faiss.GpuIndexFlatL2(resources, d, config), resources


def _kmeans_faiss(faiss, x: np.ndarray, k: int, niter: int, seed: int, gpu: int | None = None) -> KMeansResult:
    n, d = x.shape
    clus = faiss.Clustering(d, k)
    clus.niter = niter
    clus.seed = seed
    clus.nredo = 1
    clus.spherical = False
    clus.verbose = False
    # No subsampling: faiss subsamples only when N > k * max_points_per_centroid.
    clus.max_points_per_centroid = max(_MAX_POINTS_PER_CENTROID, -(-n // k))
    # Below k * min_points_per_centroid faiss only prints a warning on stderr; 0 silences it, nothing else changes.
    clus.min_points_per_centroid = 0
    # Options that newer faiss versions added: pin them to the behaviour of the faiss the original used.
    if hasattr(clus, "init_method") and hasattr(faiss, "ClusteringInitMethod_RANDOM"):
        clus.init_method = faiss.ClusteringInitMethod_RANDOM
    # faiss >= 1.1x stops early once the relative objective improvement is <= early_stop_threshold; its default
    # 0.0 already stops as soon as the objective stalls. faiss 1.6 always ran niter iterations: -inf restores that.
    for name, value in (("early_stop_threshold", float("-inf")), ("use_super_kmeans", False),
                        ("use_faster_subsampling", False), ("frozen_centroids", False),
                        ("int_centroids", False), ("update_index", False)):
        if hasattr(clus, name):
            setattr(clus, name, value)
    index, _resources = _flat_index(faiss, d, gpu)  # exact L2, float32 (the resources live as long as the index)
    clus.train(x, index)
    centroids = faiss.vector_to_array(clus.centroids).astype(np.float32, copy=False).reshape(k, d)
    stats = clus.iteration_stats  # replaces the `.obj` vector the original read (removed in newer faiss)
    objective = [float(stats.at(i).obj) for i in range(stats.size())]
    # After train() the index holds exactly the final centroids; assign every row to its nearest one.
    index.reset()
    index.add(centroids)
    _, nearest = index.search(x, 1)
    return KMeansResult(assign=nearest[:, 0].astype(np.int64), centroids=centroids.copy(),
                        objective=objective, backend="faiss", device="cpu" if gpu is None else f"cuda:{gpu}")


# --- torch fallback ------------------------------------------------------------------------------------------

def _init_rows(n: int, k: int, seed: int) -> np.ndarray:
    """The k distinct rows faiss (1.15) picks as initial centroids for ``seed``.

    faiss takes the first k entries of a Fisher-Yates permutation of range(N) driven by an mt19937 seeded with
    ``seed + 1``; step i swaps position i with ``i + (u32 % (N - i))``. numpy's legacy RandomState(int) seeds
    the same mt19937 the same way, and drawing uint32 over the full range returns its raw outputs. Only the
    first k steps are needed (later steps never touch positions < k), so this is O(k).
    """
    raw = np.random.RandomState((seed + 1) & 0xFFFFFFFF).randint(0, 2**32, size=k, dtype=np.uint32)
    moved: dict[int, int] = {}
    rows = np.empty(k, dtype=np.int64)
    for i in range(k):
        j = i + int(raw[i]) % (n - i)
        vi, vj = moved.get(i, i), moved.get(j, j)
        moved[i], moved[j] = vj, vi
        rows[i] = vj
    return rows


def _block_rows(n: int, k: int, d: int) -> int:
    return int(max(256, min(n, _BLOCK_ELEMS // max(k, d))))


def _nearest(xt, x_sq, cent, block: int, with_objective: bool):
    """Nearest centroid of every row, computed block by block (||x||^2 + ||c||^2 - 2 x.c, like IndexFlatL2)."""
    import torch

    n = xt.shape[0]
    assign = torch.empty(n, dtype=torch.int64, device=xt.device)
    c_sq = (cent * cent).sum(dim=1)
    # the objective is summed on the device (float64, in block order: the same sum as Python floats would give)
    # and read back once by the caller, so a GPU is not synchronised once per block
    total = torch.zeros((), dtype=torch.float64, device=xt.device)
    for i0 in range(0, n, block):
        xb = xt[i0:i0 + block]
        dist = torch.addmm(c_sq.unsqueeze(0), xb, cent.t(), beta=1.0, alpha=-2.0)
        dist.add_(x_sq[i0:i0 + block].unsqueeze(1))
        idx = torch.argmin(dist, dim=1)  # first minimum on ties
        assign[i0:i0 + block] = idx
        if with_objective:
            best = dist.gather(1, idx.unsqueeze(1)).clamp_(min=0.0)
            total += best.sum(dtype=torch.float64)
    return assign, total


class _FloatStream:
    """faiss's ``RandomGenerator(seed).rand_float()`` sequence: mt19937 output (as float32) / 2^32."""

    def __init__(self, seed: int):
        self._rs = np.random.RandomState(seed)
        self._buf = np.empty(0, dtype=np.float32)

    def peek(self, m: int) -> np.ndarray:
        if self._buf.size < m:
            raw = self._rs.randint(0, 2**32, size=max(m, 1024), dtype=np.uint32)
            self._buf = np.concatenate([self._buf, raw.astype(np.float32) / np.float32(4294967296.0)])
        return self._buf[:m]

    def consume(self, m: int) -> None:
        self._buf = self._buf[m:]


def _split_empty_clusters(centroids: np.ndarray, hassign: np.ndarray, n: int) -> int:
    """Re-seed empty clusters from non-empty ones, in place; returns the number of splits.

    Same rule as faiss's ``split_clusters``: for every empty cluster ci (in index order) walk cyclically over the
    clusters from 0 and pick cluster cj with probability (|S_cj| - 1) / (N - k) (a fresh mt19937 seeded with
    1234, float draws u32 / 2^32), copy its centroid into ci, then push the two apart by a relative 1/1024 in
    alternating directions per dimension (ci *= 1 +/- eps, cj *= 1 -/+ eps), and book half of cj's count to ci.
    The next assignment step then shares cj's rows between the two. Clusters with a single row are never split,
    and a cluster with at least two rows always exists when N > k, so the walk terminates and no centroid is
    ever left undefined (no NaN). ``hassign`` is float32 like faiss's histogram.
    """
    k, d = centroids.shape
    if not (hassign == 0).any():
        return 0
    draws = _FloatStream(_SPLIT_RNG_SEED)
    denom = float(np.float32(n - k))
    even = (np.arange(d) % 2) == 0
    up, down = 1.0 + _SPLIT_EPS, 1.0 - _SPLIT_EPS
    nsplit = 0
    for ci in range(k):
        if hassign[ci] != 0:
            continue
        p = ((hassign.astype(np.float64) - 1.0) / denom).astype(np.float32)
        while True:  # one lap over clusters 0..k-1 per pass; the walk always restarts at cluster 0
            r = draws.peek(k)
            hit = np.flatnonzero(r < p)
            if hit.size:
                cj = int(hit[0])
                draws.consume(cj + 1)
                break
            draws.consume(k)
        src = centroids[cj].astype(np.float64)
        centroids[ci] = np.where(even, src * up, src * down).astype(np.float32)
        centroids[cj] = np.where(even, src * down, src * up).astype(np.float32)
        hassign[ci] = hassign[cj] / np.float32(2.0)
        hassign[cj] = hassign[cj] - hassign[ci]
        nsplit += 1
    return nsplit


def _kmeans_torch(x, k: int, niter: int, seed: int) -> KMeansResult:
    """Lloyd's algorithm in torch, mirroring faiss's Clustering step by step, on the device of ``x`` (a float32
    numpy array: CPU; a contiguous float32 tensor: its device).

    Per iteration: assign rows to the nearest centroid (recording the objective), recompute each centroid as the
    mean of its rows (float64 accumulation), re-seed empty clusters (:func:`_split_empty_clusters`). After the
    last iteration every row is assigned to its nearest final centroid. Memory beyond x itself is O(N) for the
    norms/assignments plus one (block, k) distance block, so N ~ 2e6, D = 256 is fine. On a GPU the host sees
    only the (k, D) centroids and k counts once per iteration (the empty-cluster split runs on the host, with
    faiss's generator) and the objective, one number per iteration.
    """
    import torch

    n, d = x.shape
    with torch.no_grad():
        xt = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)  # an array: shared memory, no copy
        dev = xt.device
        block = _block_rows(n, k, d)
        x_sq = torch.empty(n, dtype=torch.float32, device=dev)
        for i0 in range(0, n, block):
            xb = xt[i0:i0 + block]
            x_sq[i0:i0 + block] = (xb * xb).sum(dim=1)

        objective: list = []
        if n == k:  # faiss's corner case: the rows are the centroids, one fake iteration with objective 0
            cent = xt.clone()
            objective.append(0.0)
        else:
            cent = xt[torch.from_numpy(_init_rows(n, k, seed)).to(dev)].clone()  # (k, D)
            for _ in range(niter):
                assign, obj = _nearest(xt, x_sq, cent, block, with_objective=True)
                objective.append(obj)  # a 0-d tensor, read back after the loop
                sums = torch.zeros((k, d), dtype=torch.float64, device=dev)
                for i0 in range(0, n, block):  # CUDA: deterministic under torch.use_deterministic_algorithms
                    sums.index_add_(0, assign[i0:i0 + block], xt[i0:i0 + block].to(torch.float64))
                counts = torch.bincount(assign, minlength=k)
                nonempty = counts > 0
                new = torch.zeros((k, d), dtype=torch.float64, device=dev)
                new[nonempty] = sums[nonempty] / counts[nonempty].unsqueeze(1).to(torch.float64)
                cent_np = new.to(torch.float32).cpu().numpy()  # (k, D): the split rule runs on the host
                _split_empty_clusters(cent_np, counts.cpu().numpy().astype(np.float32), n)
                cent = torch.from_numpy(cent_np).to(dev)
            objective = [float(v) for v in objective]
        assign, _ = _nearest(xt, x_sq, cent, block, with_objective=False)
    return KMeansResult(assign=assign.cpu().numpy().astype(np.int64, copy=False),
                        centroids=np.ascontiguousarray(cent.cpu().numpy(), dtype=np.float32).copy(),
                        objective=objective, backend="torch", device=str(dev))


# ----------------------------------------------------------------------------------------------------------
# Sentence-level uniform sampling
# ----------------------------------------------------------------------------------------------------------

def sentence_uniform_order(chunk_clusters: np.ndarray, k: int, rng) -> np.ndarray:
    """The original's ``SentUnifSampler``: M sentence ids drawn so that chunk clusters come out balanced.

    ``chunk_clusters[i, c]`` is the cluster of chunk c of sentence i (shape (M, C), ids in [0, k)).

    * cluster weight w_j = (1/|S_j|) / sum_l (1/|S_l|), |S_j| = number of chunks in cluster j;
    * sentence score s_i = sum over its C chunks of w_(cluster of the chunk); p_i = s_i / sum(s);
    * ``ids = rng.choice(M, size=M, p=p)`` (with replacement), then ``rng.shuffle(ids)``.

    With a ``numpy.random.RandomState`` (or the ``numpy.random`` module, i.e. the original's global RNG) the
    calls, and hence the draws, are exactly the original's; a ``numpy.random.Generator`` is accepted too (same
    calls, its own stream). Sentences are returned whole: the caller emits chunks 0..C-1 of each drawn sentence
    in order, so batches of B*C chunks hold B complete sentences.

    Empty clusters: the original computes 1/0 and crashes. Here an empty cluster gets weight 0 and is left out of
    the normalisation (no chunk can carry its weight anyway, so p is unchanged for every other cluster). If all
    chunks are in one cluster, every sentence scores the same and the draw is uniform.
    """
    cc = np.asarray(chunk_clusters)
    if cc.ndim != 2:
        raise ValueError(f"sentence_uniform_order: chunk_clusters must be (M, C), got shape {cc.shape}")
    if cc.size and not np.issubdtype(cc.dtype, np.integer):
        raise ValueError(f"sentence_uniform_order: chunk_clusters must hold integer ids, got dtype {cc.dtype}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"sentence_uniform_order: k must be a positive integer, got {k!r}")
    if not (hasattr(rng, "choice") and hasattr(rng, "shuffle")):
        raise TypeError("sentence_uniform_order: rng must be a numpy RandomState or Generator")
    m, c = cc.shape
    if m == 0:
        return np.empty(0, dtype=np.int64)
    if c == 0:
        raise ValueError("sentence_uniform_order: every sentence needs at least one chunk (C >= 1)")
    cc = cc.astype(np.int64, copy=False)
    if cc.min() < 0 or cc.max() >= k:
        raise ValueError(f"sentence_uniform_order: cluster ids must lie in [0, {int(k)}), "
                         f"got range [{cc.min()}, {cc.max()}]")
    sizes = np.bincount(cc.ravel(), minlength=int(k))
    inv = np.zeros(int(k), dtype=np.float64)
    nonempty = sizes > 0
    inv[nonempty] = 1.0 / sizes[nonempty]
    weights = inv / inv.sum()
    scores = weights[cc].sum(axis=1)
    p = scores / scores.sum()
    ids = rng.choice(m, size=m, p=p)
    rng.shuffle(ids)
    return np.asarray(ids, dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# Pseudo-labels
# ----------------------------------------------------------------------------------------------------------

def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def nmi(a, b) -> float:
    """Normalized mutual information, I(a; b) / ((H(a) + H(b)) / 2) (natural logs; the base cancels).

    Matches sklearn's ``normalized_mutual_info_score`` with its default ``average_method='arithmetic'``,
    including its edge cases: both labelings constant (or empty) -> 1.0; zero mutual information -> 0.0.
    Labels may be any hashable numpy-comparable values; only the partition matters.
    """
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"nmi: labelings differ in length ({a.size} vs {b.size})")
    n = a.size
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    if (len(ua) == len(ub) == 1) or n == 0:
        return 1.0
    joint = np.bincount(ia.ravel() * len(ub) + ib.ravel(), minlength=len(ua) * len(ub)).reshape(len(ua), len(ub))
    ca, cb = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    pij = joint[nz] / n
    outer = (ca[:, None] * cb[None, :])[nz].astype(np.float64)
    mi = float((pij * (np.log(joint[nz].astype(np.float64)) + math.log(n) - np.log(outer))).sum())
    mi = max(mi, 0.0)
    if mi == 0.0:
        return 0.0
    normalizer = max((_entropy(ca, n) + _entropy(cb, n)) / 2.0, np.finfo(np.float64).eps)
    return float(mi / normalizer)
