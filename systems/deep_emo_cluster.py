"""The temporal-enhanced DeepEmoCluster as a method for engine/loop.py (epoch mode), and its predictor.

Data: a FeatureStore of 128-mel spectrograms (feat_mel.py, equal to the original's), the Train NormTerm, one
attribute, and optionally an unlabelled pool (its own store). Every batch holds whole sentences: z-norm,
11 chunks of 62 frames by the shared chunker, chunk-major within each sentence (the model's reshapes rely on it).

One epoch = up to two stages, each prepared just before it runs, as the original orders them:
  unlabelled (when -unlabel U > 0): embeddings of the pool's chunks (eval mode, pre-ReLU classifier output),
      k-means (engine.clustering), a fresh cluster head, cluster-balanced whole-sentence sampling; trained
      with cross-entropy (+ triplet for Temp-Triplet) by the SGD (1e-3) and the head's SGD (0.05) only;
  labelled: the same clustering of the Train chunks, a fresh head, then CE + 1 - CCC (published estimator,
      unbiased variances) (+ triplet), one backward, and SGD (1e-3), Adam (5e-4) and the head SGD all step.
Validation after each epoch: 1 - CCC of the sentence predictions (mean of 11 chunk outputs) over the whole
validation split (the original averages per-batch chunk-level losses over random batches).

Defined where the original crashes: an empty cluster gets sampling weight 0 (the original divides by zero);
a pool smaller than U is used whole (the count used is recorded); a sentence shorter than 62 frames is
zero-padded to one chunk (the original raises). Seeded: one numpy RandomState (k-means seeds, sampling,
triplets) and torch's RNG (heads, dropout), both saved for an exact resume.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.checkpoint import load_legacy
from engine.clustering import kmeans, nmi, sentence_uniform_order
from engine.loop import Stage
from features.normterm import NormTerm
from features.store import FeatureStore
from models.deep_emo_cluster import (DeepEmoCluster, from_legacy_state_dict, infer_num_clusters, infer_variant,
                                     draw_triplets, select_triplets, sentence_mean, strip_module,
                                     triplet_loss)
from systems.common import ATTRIBUTE_CODES, ATTRIBUTE_NAMES, chunk_batch, load_our_checkpoint
from utils import ccc, ccc_loss

SYSTEM = "deep_emo_cluster"
CHANNELS_LAST = torch.channels_last
M_FRAMES, CHUNKS = 62, 11
LEGACY_NAME = re.compile(r"TempDeepEmoCluster_epoch(\d+)_batch(\d+)_(\d+)clusters_(Act|Dom|Val)_"
                         r"(Temp-GRU|Temp-CNN|Temp-Trans|Temp-Triplet)(?:_unlabel(\d+))?(?:\.pth\.tar)?$")


def run_name(epochs: int, batch: int, k: int, emo: str, variant: str, unlabel: int) -> str:
    """The original's checkpoint name (without .pth.tar), so published and new models sort side by side."""
    return f"TempDeepEmoCluster_epoch{epochs}_batch{batch}_{k}clusters_{emo}_{variant}_unlabel{unlabel}"


def check_cluster_count(k: int, sentences: dict[str, int]) -> None:
    """UserError naming -nc unless every set clustered (name -> its sentence count) has at least `k` chunks:
    k-means needs as many points as clusters, and this is known before the first embedding pass."""
    from engine.cli import UserError
    for what, n in sentences.items():
        if n and k > n * CHUNKS:
            raise UserError(f"-nc {k}: more clusters than the {n * CHUNKS} chunks of the {n} sentence(s) of the "
                            f"{what} ({CHUNKS} chunks each); give -nc at most {n * CHUNKS}")


def _rng_state(rng: np.random.RandomState) -> dict:
    name, keys, pos, has_gauss, gauss = rng.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "gauss": float(gauss)}


def _set_rng_state(rng: np.random.RandomState, s: dict) -> None:
    rng.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))


@dataclass
class DeepEmoClusterMethod:
    store: FeatureStore
    normterm: NormTerm
    attribute: str  # act | dom | val
    variant: str  # Temp-GRU | Temp-CNN | Temp-Trans | Temp-Triplet
    num_clusters: int
    batch_size: int  # sentences per step
    seed: int = 0
    pool_store: FeatureStore | None = None  # the unlabelled pool's mel features
    pool: list[str] = field(default_factory=list)  # the U utterances drawn from it
    pool_source: str = ""
    pool_seed: int | None = None  # the seed the U pool sentences were drawn with
    pool_requested: int | None = None  # -unlabel U as asked (the pool may hold fewer)
    pool_overlap: dict = field(default_factory=dict)  # split -> pool sentences also in it (allowed explicitly)
    kmeans_backend: str = "auto"
    kmeans_iterations: int = 20
    lr_sgd: float = 1e-3
    lr_adam: float = 5e-4
    lr_head: float = 0.05
    corpus_version: str | None = None
    corpus: dict | None = None  # kind and name of a corpus other than MSP-Podcast (systems.common.run_corpus)

    def __post_init__(self):
        self.rng = np.random.RandomState(self.seed)
        self.prev_assign: np.ndarray | None = None
        self._log: dict = {}

    # ------------------------------------------------------------------ what the loop calls
    def build_model(self) -> DeepEmoCluster:
        # channels-last convolutions: 1.7x faster training steps on CPU (bench/bench_deep_emo_cluster.py)
        return DeepEmoCluster(variant=self.variant, num_clusters=self.num_clusters).to(memory_format=CHANNELS_LAST)

    def optimizers(self, model) -> dict:
        """SGD and Adam over every weight but the cluster head, built once as the original does."""
        shared = [p for n, p in model.named_parameters() if not n.startswith("top_layer_class.")]
        self._shared_opts = {"sgd": torch.optim.SGD(shared, lr=self.lr_sgd),
                             "adam": torch.optim.Adam(shared, lr=self.lr_adam)}
        return self._shared_opts

    def collate(self, items) -> dict:
        """Validation/prediction batches: (utterance, label) -> chunks."""
        return {"x": self._chunks(self.store, [u for u, _ in items])}

    def predict(self, model, batch) -> np.ndarray:
        return sentence_mean(model(batch["x"])["attri"], CHUNKS).float().cpu().numpy()

    def targets(self, items) -> np.ndarray:
        return self.normterm.label([v for _, v in items], self.attribute)

    def val_loss(self, pred, target) -> float:
        return 1.0 - ccc(pred, target)

    def loss(self, model, batch) -> torch.Tensor:  # the labelled stage's joint loss
        out = model(batch["x"])
        total = F.cross_entropy(out["logits"], batch["pseudo"]) + ccc_loss(out["attri"], batch["y"])
        return total + self._triplet(out, batch)

    def unlabelled_loss(self, model, batch) -> torch.Tensor:
        out = model(batch["x"])
        return F.cross_entropy(out["logits"], batch["pseudo"]) + self._triplet(out, batch)

    def epoch_stages(self, model, epoch: int, ctx, train_items: list) -> list[Stage]:
        self._log = {}
        stages = []
        if self.pool:
            stages.append(Stage("unlabelled", prepare=lambda st: self._prepare(st, model, ctx, "unlabelled",
                                                                             [(u, None) for u in self.pool])))
        stages.append(Stage("labelled", prepare=lambda st: self._prepare(st, model, ctx, "labelled", train_items)))
        return stages

    def round_log(self) -> dict:
        return dict(self._log)

    def state(self) -> dict:
        prev = torch.from_numpy(self.prev_assign) if self.prev_assign is not None else torch.zeros(0, dtype=torch.long)
        return {"rng": _rng_state(self.rng), "prev_assign": prev}

    def load_state(self, s: dict) -> None:
        _set_rng_state(self.rng, s["rng"])
        self.prev_assign = s["prev_assign"].numpy() if s["prev_assign"].numel() else None

    def config(self) -> dict:
        return {"system": SYSTEM, "model": {"variant": self.variant, "num_clusters": self.num_clusters},
                "attribute": self.attribute, "chunking": {"m": M_FRAMES, "C": CHUNKS, "n": 1},
                "features": self.store.describe(),
                "normterm": self.normterm.to_json(self.attribute),
                "batch_sentences": self.batch_size, "seed": self.seed,
                "optimisers": {"sgd": self.lr_sgd, "adam": self.lr_adam, "head_sgd": self.lr_head},
                "kmeans": {"backend": self.kmeans_backend, "iterations": self.kmeans_iterations},
                "unlabelled": self._pool_record(),
                "loss": "CE + 1-CCC (unbiased variances)" + (" + triplet" if self.variant == "Temp-Triplet" else ""),
                "corpus_version": self.corpus_version, **({"corpus": self.corpus} if self.corpus else {})}

    def _pool_record(self) -> dict:
        # "requested" and "overlap" only when they say something: older run folders keep their identity (resume)
        rec = {"size": len(self.pool), "source": self.pool_source, "seed": self.pool_seed,
               "pool_store": str(self.pool_store.root) if self.pool_store else None}
        if self.pool_requested is not None and self.pool_requested != len(self.pool):
            rec["requested"] = self.pool_requested
        if self.pool_overlap:
            rec["overlap"] = dict(self.pool_overlap)
        return rec

    # ------------------------------------------------------------------ the pieces
    def _chunks(self, store: FeatureStore, utts: list[str]) -> torch.Tensor:
        x = chunk_batch([store[u] for u in utts], self.normterm, M_FRAMES, CHUNKS)
        return x.unsqueeze(1).contiguous(memory_format=CHANNELS_LAST)  # (B*11, 1, 62, 128): height time, width mel

    def _triplet(self, out, batch) -> torch.Tensor:
        if self.variant != "Temp-Triplet":
            return out["attri"].new_zeros(())
        return triplet_loss(*select_triplets(out["emb"], batch["triplets"], chunks=CHUNKS))

    def embeddings(self, model, store: FeatureStore, utts: list[str], ctx) -> np.ndarray:
        """(len(utts) * 11, 256) pre-ReLU classifier outputs in eval mode; under DDP each rank embeds its block
        of sentences and every rank gets the whole matrix (rank 0 clusters it). The pass runs on ctx.device in
        ctx.precision: the next batch is read and chunked in a background thread (in page-locked memory on a GPU,
        so its copy overlaps the forward pass), and the embeddings stay on the device until one copy back at the
        end (a copy per batch would make the host wait for every forward pass)."""
        from concurrent.futures import ThreadPoolExecutor

        from engine.loop import autocast
        model.eval()
        mine = [utts[i] for i in ctx.block(len(utts))]
        starts = range(0, len(mine), ctx.eval_batch_size)
        pin = torch.device(ctx.device).type == "cuda"

        def chunks(b: int) -> torch.Tensor:  # (B*11, 1, 62, 128) on the host
            x = self._chunks(store, mine[b: b + ctx.eval_batch_size])
            return x.pin_memory() if pin else x
        out = []
        with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode(), autocast(ctx.device, ctx.precision):
            pending = [pool.submit(chunks, b) for b in starts[:1]]
            for k in range(len(starts)):
                x = pending.pop().result()
                if k + 1 < len(starts):
                    pending.append(pool.submit(chunks, starts[k + 1]))
                out.append(model.embed(x.to(ctx.device, non_blocking=True)).float())  # (B*11, 256), on the device
        mat = torch.cat(out).cpu().numpy() if out else np.zeros((0, 256), np.float32)
        return ctx.gather(mat)

    def _prepare(self, st: Stage, model, ctx, kind: str, items: list) -> None:
        store = self.pool_store if kind == "unlabelled" else self.store
        utts = [u for u, _ in items]
        t0 = time.perf_counter()
        emb = self.embeddings(model, store, utts, ctx)
        t1 = time.perf_counter()
        seed = int(self.rng.randint(1234))  # a fresh k-means seed every call, as the original draws it
        result = ctx.broadcast(kmeans(emb, self.num_clusters, niter=self.kmeans_iterations, seed=seed,
                                      backend=self.kmeans_backend, device=ctx.device) if ctx.rank == 0 else None)
        t2 = time.perf_counter()
        assign = result.assign.reshape(len(utts), CHUNKS)
        order = sentence_uniform_order(assign, self.num_clusters, self.rng)
        self._log.update({f"{kind}_embed_seconds": round(t1 - t0, 3), f"{kind}_kmeans_seconds": round(t2 - t1, 3),
                          f"{kind}_sampling_seconds": round(time.perf_counter() - t2, 4)})
        sizes = np.bincount(result.assign, minlength=self.num_clusters)
        self._log.update({f"{kind}_kmeans_objective": float(result.objective[-1]) if len(result.objective) else np.nan,
                          f"{kind}_empty_clusters": int((sizes == 0).sum())})
        if kind == "labelled":
            self._log["nmi"] = nmi(result.assign, self.prev_assign) if self.prev_assign is not None else np.nan
            self.prev_assign = result.assign.astype(np.int64)
        # a brand-new head each stage (its ids mean nothing across stages), trained by its own SGD
        model.new_head(self.num_clusters)
        model.to(ctx.device)
        head_opt = torch.optim.SGD(model.top_layer_class.parameters(), lr=self.lr_head)
        # sentences in sampled order, B per batch; a last partial batch is kept when every rank gets a sentence
        entries = [(utts[i], items[i][1], assign[i]) for i in order]
        batches = [np.arange(b, min(b + self.batch_size, len(entries))) for b in range(0, len(entries), self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < max(ctx.world, 1):
            batches.pop()
        opts = self._shared_opts
        st.items, st.batches, st.total = entries, batches, len(batches)
        st.collate = lambda chosen, store=store: self._collate_clustered(store, chosen)
        if kind == "unlabelled":
            st.loss, st.optimizers = self.unlabelled_loss, [opts["sgd"], head_opt]
        else:
            st.loss, st.optimizers = self.loss, [opts["sgd"], opts["adam"], head_opt]

    def _collate_clustered(self, store: FeatureStore, chosen: list) -> dict:
        batch = {"x": self._chunks(store, [u for u, _, _ in chosen]),
                 "pseudo": torch.from_numpy(np.concatenate([a for _, _, a in chosen]).astype(np.int64))}
        if chosen[0][1] is not None:
            y = self.normterm.label([v for _, v, _ in chosen], self.attribute)
            batch["y"] = torch.from_numpy(np.repeat(y, CHUNKS).astype(np.float32)).unsqueeze(1)
        if self.variant == "Temp-Triplet":  # (3, 10) chunk indices, drawn batch after batch as the loss drew them
            batch["triplets"] = draw_triplets(self.rng, rounds=10, chunks=CHUNKS)  # (nothing else draws in a stage)
        return batch


class Predictor:
    """A trained DeepEmoCluster ready to score raw mel arrays: z-norm, 11 chunks, mean of the chunk outputs,
    de-normalised with the Train label statistics."""

    def __init__(self, model: DeepEmoCluster, normterm: NormTerm, attribute: str, config: dict, device: str = "cpu"):
        self.model = model.to(device, memory_format=CHANNELS_LAST).eval()
        self.normterm, self.attribute, self.config, self.device = normterm, attribute, config, device
        self.chunking = {"m": M_FRAMES, "C": CHUNKS}
        self.source = str(config.get("source", ""))

    @classmethod
    def load(cls, path: str | Path, normterm: str | Path | None = None, device: str = "cpu",
             flags: dict | None = None, allow_unfinished: bool = False) -> "Predictor":
        """Our checkpoint folder, or an original .pth.tar (any file name) with its NormTerm folder. What the
        original file is comes from its name (the original's pattern), the weights' shapes and, for what those
        leave open, `flags` ({"variant", "num_clusters", "attribute"}: the command line); config
        "identified_by" says which gave what."""
        path = Path(path)
        if path.is_dir():
            sd, cfg, nt = load_our_checkpoint(path, SYSTEM, allow_unfinished)
            model = DeepEmoCluster(variant=cfg["model"]["variant"], num_clusters=cfg["model"]["num_clusters"])
            model.load_state_dict(sd, strict=True)
            return cls(model, nt, cfg["attribute"], cfg, device)
        if normterm is None:
            raise ValueError(f"{path}: an original .pth.tar needs its NormTerm folder (--normterm)")
        sd = strip_module(load_legacy(path))
        found, how = identify_legacy(path, sd, flags or {})
        variant, k, attribute = found["variant"], found["num_clusters"], found["attribute"]
        try:
            model = from_legacy_state_dict(sd, variant=variant)
        except RuntimeError as e:  # keys or shapes of another model
            first = str(e).splitlines()[0]
            raise ValueError(f"{path}: not a DeepEmoCluster {variant} state_dict ({first})") from None
        nt = NormTerm.load(normterm)
        cfg = {"system": SYSTEM, "model": {"variant": variant, "num_clusters": k}, "attribute": attribute,
               "chunking": {"m": M_FRAMES, "C": CHUNKS, "n": 1}, "legacy_file": path.name, "source": str(path),
               "features": {"name": "Mel_Spec128", "dims": 128}, "normterm": nt.to_json(attribute),
               "identified_by": how}
        return cls(model, nt, attribute, cfg, device)

    def predict(self, arrays: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for b in range(0, len(arrays), batch_size):
                x = chunk_batch(arrays[b: b + batch_size], self.normterm, M_FRAMES, CHUNKS).unsqueeze(1)
                x = x.contiguous(memory_format=CHANNELS_LAST)
                out.append(sentence_mean(self.model(x.to(self.device))["attri"], CHUNKS).float().cpu().numpy())
        p = np.concatenate(out) if out else np.zeros(0)
        return self.normterm.denorm(p, self.attribute)

    def track(self, arrays: list[np.ndarray]) -> list[dict]:
        """Per (T, 128) raw mel array, as systems.chunk_lstm.Predictor.track: the model's own chunk outputs
        ("attri", whose mean is the utterance score) and weights 1/C (sentence_mean)."""
        from systems.chunk_lstm import chunk_track
        with torch.inference_mode():
            x = chunk_batch(arrays, self.normterm, M_FRAMES, CHUNKS).unsqueeze(1)  # (B*C, 1, m, 128)
            x = x.contiguous(memory_format=CHANNELS_LAST)
            attri = self.model(x.to(self.device))["attri"]                  # (B*C, 1)
            utt = sentence_mean(attri, CHUNKS).float().cpu().numpy()        # (B,)
            chunks = attri.reshape(-1, CHUNKS).float().cpu().numpy()        # (B, C)
        weights = np.full(CHUNKS, 1.0 / CHUNKS)
        denorm = lambda v: self.normterm.denorm(v, self.attribute)  # noqa: E731
        return [chunk_track(denorm(utt[i]), denorm(chunks[i]),
                            weights, len(a), {"m": M_FRAMES, "C": CHUNKS}) for i, a in enumerate(arrays)]


def identify_legacy(path: Path, sd: dict, flags: dict) -> tuple[dict, str]:
    """({variant, num_clusters, attribute}, how each was found) of an original .pth.tar. The original loader
    takes any path, so the name is optional: the weights' keys and shapes give the variant and K, the original's
    name pattern (when the file has it) or `flags` the attribute. A name that contradicts the weights is refused;
    flags only fill what the file leaves open (the testing script checks them against the result)."""
    match = LEGACY_NAME.search(path.name)
    named = ({"variant": match[5], "num_clusters": int(match[3]), "attribute": ATTRIBUTE_CODES[match[4]]}
             if match else {})
    shapes = {"variant": infer_variant(sd), "num_clusters": infer_num_clusters(sd)}
    what = {"variant": ("the temporal model", "-mt"), "num_clusters": ("the cluster count", "-nc"),
            "attribute": ("the attribute", "-emo")}
    found, sources = {}, {}
    for key, (label, flag) in what.items():
        if key in named and shapes.get(key) is not None and named[key] != shapes[key]:
            raise ValueError(f"{path}: the file name says {label} is {named[key]}, the weights say {shapes[key]}")
        for source, value in (("the weights", shapes.get(key)), ("the file name", named.get(key)),
                              (flag, flags.get(key))):
            if value is not None:
                found[key] = value
                sources.setdefault(source, []).append(label)
                break
        else:
            raise ValueError(f"{path}: neither the file name nor the weights say {label}; give {flag} (or the "
                             "original's name, TempDeepEmoCluster_epoch*_batch*_<K>clusters_<emo>_<variant>...)")
    how = "; ".join(f"{' and '.join(labels)} from {source}" for source, labels in sources.items())
    return found, how


def recorded_settings(cfg: dict) -> dict:
    """What a checkpoint's config says of each of the original's flags (None: not recorded): our runs record
    them all, an original file only in its name (the original's pattern) and its weights."""
    loop, pool = cfg.get("loop", {}), cfg.get("unlabelled", {})
    rec = {"-ep": loop.get("epochs"), "-batch": cfg.get("batch_sentences"), "-nc": cfg["model"]["num_clusters"],
           "-emo": ATTRIBUTE_NAMES[cfg["attribute"]], "-mt": cfg["model"]["variant"],
           "-unlabel": pool.get("requested", pool.get("size")) if pool else None}
    match = LEGACY_NAME.search(cfg.get("legacy_file", ""))
    if match:
        rec.update({"-ep": int(match[1]), "-batch": int(match[2]),
                    "-unlabel": int(match[6]) if match[6] is not None else None})
    return rec


# ---------------------------------------------------------------------------- command-line plumbing

FLAGS = ("-ep", "--epoch", "-nc", "--num_clusters", "-mt", "--model_type", "-unlabel", "--unlabel_size")


def add_cli_args(ap) -> None:
    """The original's six flags (same spelling) plus where things are; shared by main.py and online_testing.py."""
    from engine.cli import int_at_least
    from models.deep_emo_cluster import VARIANTS
    from systems.common import add_data_args
    ap.add_argument("-ep", "--epoch", type=int_at_least(1), required=True, help="training epochs (names the run)")
    ap.add_argument("-batch", "--batch_size", required=True,
                    type=int_at_least(2, "with one sentence a batch holds one label, 1 - CCC is constant and the "
                                         "emotion head learns nothing"),
                    help="sentences per batch (x 11 chunks; at least 2: the CCC loss needs two labels)")
    ap.add_argument("-emo", "--emo_attr", choices=("Act", "Dom", "Val"), required=True,
                    help="attribute: arousal (Act), dominance (Dom) or valence (Val)")
    ap.add_argument("-nc", "--num_clusters", type=int_at_least(2), required=True, help="k-means clusters K")
    ap.add_argument("-mt", "--model_type", choices=VARIANTS, required=True, help="temporal modelling variant")
    ap.add_argument("-unlabel", "--unlabel_size", type=int_at_least(0), default=0,
                    help="unlabelled sentences U drawn from the pool (0 = fully supervised)")
    add_data_args(ap, "Mel_Spec128", "default: <root>/NormTerm_Mel128 as `make demo` writes it, else <root>/NormTerm "
                  "when it holds 128-d statistics; an original .pth.tar needs the NormTerm it was trained with")
