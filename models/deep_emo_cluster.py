"""The temporal-enhanced DeepEmoCluster network (Lin & Busso, Speech Communication 2024).

A 7-conv 2-D CNN per chunk, an optional temporal module across the 11 chunks of a sentence, a k-means
pseudo-label head and an emotion head.

Input: (B * 11, 1, 62, 128) chunks (time x mel) of one sentence after another, 11 per sentence in temporal
order (reference sheet section 4). Every row gets a cluster logit vector and one normalised emotion value;
the sentence prediction is the mean of its 11 chunk values (`sentence_mean`).

Variants (the original's `-mt` names):
    Temp-GRU      1-layer bidirectional GRU 256 -> 2 x 128 over the chunks
    Temp-CNN      two 5x5 convs over the (11 x 256) "image" of a sentence, ending in ReLU + Dropout(0.3)
    Temp-Trans    fixed sinusoidal positional encoding + one post-norm TransformerEncoderLayer (1 head, FFN 256)
    Temp-Triplet  no temporal module; a triplet loss on the cnn_out embeddings (`triplet_embeddings`)

The state_dict keys equal the original's once its DataParallel `.module` infix is stripped (`strip_module`,
`from_legacy_state_dict`), so old `{'arch': 'vgg16', 'state_dict': ...}` checkpoints load strictly.

Deliberate differences from the original (none changes a weight, a key, a logit or an emotion value):
  * Temp-GRU's GRU is built with dropout=0. The original passes 0.3, which PyTorch ignores for a single layer
    (and warns about, quirk 8), so the computation is the same.
  * Temp-Triplet's forward draws no triplets. The original draws 10 (a, p, n) triples from numpy's global RNG
    on every forward pass, eval included (quirk 7), but they feed only the loss. Here training code calls
    `draw_triplets(rng)` with an explicit numpy RandomState when it collates a batch, and the loss picks them
    (`select_triplets`); `triplet_embeddings(out["emb"], rng)` does both at once. The same legacy numpy calls
    make the draws reproducible against the original for the same RNG state.
  * The classifier always keeps its [Linear, ReLU] structure; the clustering features (the original removes
    the ReLU and the head, sheet section 9) are `embed(x)`, the pre-ReLU classifier Linear output.
  * The row count only has to be a multiple of `chunks` (11 by default) instead of a hard-coded 11.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

VARIANTS = ("Temp-GRU", "Temp-CNN", "Temp-Trans", "Temp-Triplet")
CHUNKS = 11
CHUNK_FRAMES = 62
MEL = 128
EMB = 256
# The original's "vgg16": int = 3x3 conv stride 1, str = 3x3 conv stride 2 (padding 1, bias, BN, ReLU; no pooling)
BACKBONE_CFG = (32, 32, "64", "64", "128", "128", "128")
FLAT = 128 * 2 * 4  # (C, H=time, W=mel) after five stride-2 convs on 62 x 128


def make_backbone() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 1
    for v in BACKBONE_CFG:
        c_out, stride = int(v), (2 if isinstance(v, str) else 1)
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
        c_in = c_out
    return nn.Sequential(*layers)  # conv at 0, 3, ..., 18; BN at 1, 4, ..., 19


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal encoding, buffer `pe` (max_len, 1, d): pe[pos, 2i] = sin(pos / 10000^(2i/d)),
    pe[pos, 2i+1] = cos(same). Computed in float32 through exp(-2i ln(10000) / d) as the original does, so a
    fresh buffer matches the checkpoints' bit for bit. Its dropout is p = 0 in the original, hence omitted."""

    def __init__(self, *, d_model: int = EMB, max_len: int = CHUNKS):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)                          # (L, 1)
        inv = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(pos * inv)
        pe[:, 0, 1::2] = torch.cos(pos * inv)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (C, B, d) sequence-first
        assert x.shape[0] <= self.pe.shape[0], f"{x.shape[0]} positions, encoding holds {self.pe.shape[0]}"
        return x + self.pe[: x.shape[0]]


class DeepEmoCluster(nn.Module):
    def __init__(self, *, variant: str, num_clusters: int | None = 10, chunks: int = CHUNKS):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r} not one of {', '.join(VARIANTS)}")
        if num_clusters is not None and int(num_clusters) < 1:
            raise ValueError(f"num_clusters must be >= 1 or None, got {num_clusters}")
        if chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        self.variant, self.chunks = variant, chunks
        self.cnn_features = make_backbone()
        cnn_out: list[nn.Module] = [nn.Linear(FLAT, EMB), nn.ReLU(inplace=True)]
        if variant != "Temp-Triplet":
            cnn_out.append(nn.Dropout(0.5))
        self.cnn_out = nn.Sequential(*cnn_out)
        if variant == "Temp-GRU":
            # original: dropout=0.3, inert with num_layers=1 (PyTorch only warns); 0 gives the same computation
            self.temporal_net = nn.GRU(EMB, EMB // 2, num_layers=1, batch_first=True, bidirectional=True, dropout=0.0)
        elif variant == "Temp-CNN":
            self.temporal_net = nn.Sequential(
                nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                nn.Conv2d(16, 1, kernel_size=5, stride=1, padding=2), nn.BatchNorm2d(1), nn.ReLU(inplace=True),
                nn.Dropout(0.3))
        elif variant == "Temp-Trans":
            self.pos_enc = PositionalEncoding(d_model=EMB, max_len=chunks)
            self.temporal_net = nn.TransformerEncoderLayer(
                d_model=EMB, nhead=1, dim_feedforward=256, dropout=0.3, activation="relu", layer_norm_eps=1e-5,
                batch_first=False, norm_first=False)
        else:
            self.temporal_net = None
        self.classifier = nn.Sequential(nn.Linear(EMB, EMB), nn.ReLU(inplace=True))
        self.emo_regressor = nn.Sequential(nn.Linear(EMB, EMB), nn.ReLU(inplace=True))
        self.top_layer_class = nn.Linear(EMB, int(num_clusters)) if num_clusters is not None else None
        self.top_layer_attri = nn.Linear(EMB, 1)
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        """Sheet section 8. GRU weights, the MHA in_proj and the LayerNorms keep PyTorch's defaults."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):  # includes the transformer's linear1/linear2/self_attn.out_proj
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    @property
    def num_clusters(self) -> int | None:
        return None if self.top_layer_class is None else self.top_layer_class.out_features

    # ---- cluster head handling (re-created every epoch by the training recipe) ----
    def new_head(self, num_clusters: int, generator: torch.Generator | None = None) -> nn.Linear:
        """Install a fresh Linear(256, K) head, N(0, 0.01) weights and zero bias; `generator` (a CPU
        torch.Generator) makes it reproducible. Placed on the classifier's device/dtype. Returns the head."""
        ref = self.classifier[0].weight
        head = nn.Linear(EMB, int(num_clusters))
        with torch.no_grad():
            head.weight.copy_(torch.empty(int(num_clusters), EMB).normal_(0.0, 0.01, generator=generator))
            head.bias.zero_()
        self.top_layer_class = head.to(device=ref.device, dtype=ref.dtype)
        return self.top_layer_class

    def drop_head(self) -> None:
        self.top_layer_class = None

    # ---- forward ----
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B*C, 1, 62, 128) -> (emb, hidden): the cnn_out output and the temporal output, both (B*C, 256)."""
        n = x.shape[0]
        assert x.dim() == 4 and tuple(x.shape[1:]) == (1, CHUNK_FRAMES, MEL), \
            f"expected (B*{self.chunks}, 1, {CHUNK_FRAMES}, {MEL}), got {tuple(x.shape)}"
        assert n % self.chunks == 0, f"{n} chunks is not a multiple of {self.chunks} per sentence"
        h = self.cnn_features(x)                                   # (N, 128, 2, 4)
        assert tuple(h.shape[1:]) == (128, 2, 4), tuple(h.shape)
        emb = self.cnn_out(h.reshape(n, FLAT))                     # (N, 256), flattened in (C, H, W) order
        b, c = n // self.chunks, self.chunks
        if self.variant == "Temp-GRU":
            z, _ = self.temporal_net(emb.reshape(b, c, EMB))       # (B, C, 256) = [fwd 128 | bwd 128]
            hidden = z.reshape(n, EMB)
        elif self.variant == "Temp-CNN":
            z = self.temporal_net(emb.reshape(b, 1, c, EMB))       # (B, 1, C, 256), non-negative
            hidden = z.reshape(n, EMB)
        elif self.variant == "Temp-Trans":
            z = self.pos_enc(emb.reshape(b, c, EMB).transpose(0, 1))  # (C, B, 256) sequence-first
            z = self.temporal_net(z)                               # (C, B, 256)
            hidden = z.transpose(0, 1).reshape(n, EMB)             # (B*C, 256)
        else:
            hidden = emb
        return emb, hidden

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        emb, hidden = self.encode(x)
        logits = self.top_layer_class(self.classifier(hidden)) if self.top_layer_class is not None else None
        attri = self.top_layer_attri(self.emo_regressor(hidden))  # (B*C, 1)
        return {"emb": emb, "hidden": hidden, "logits": logits, "attri": attri}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Clustering features: the pre-ReLU output of the classifier's Linear, (B*C, 256) (sheet section 9).
        Runs in whatever mode the caller set; the recipe uses eval()."""
        _, hidden = self.encode(x)
        return self.classifier[0](hidden)


# ---- sentence-level prediction ----
def sentence_mean(attri: torch.Tensor, chunks: int = CHUNKS) -> torch.Tensor:
    """(B*C, 1) or (B*C,) chunk outputs -> (B,) mean over each sentence's C chunks."""
    flat = attri.reshape(-1)
    assert flat.numel() % chunks == 0, f"{flat.numel()} values is not a multiple of {chunks}"
    return flat.reshape(-1, chunks).mean(dim=1)


# ---- Temp-Triplet sampling and loss ----
def _draw(rng: np.random.RandomState, pool: np.ndarray) -> int:
    # the original's legacy call: choice(pool, 1, replace=False) consumes a permutation of the whole pool
    return int(rng.choice(pool, 1, replace=False)[0])


def triplet_indices(rng: np.random.RandomState, chunks: int = CHUNKS, win: int = 2) -> tuple[int, int, int]:
    """One (anchor, positive, negative) chunk-index triple as the original draws it (sheet section 7).

    anchor uniform over 0..C-1; positive pool = positions within +-win of the anchor, the anchor excluded and
    out-of-range ones dropped, ascending, except for the edges: a = 0 -> [1..win], a = C-1 -> [C-2, ..., C-1-win]
    (descending); negative pool = every other position (|n - a| > win) in ascending order."""
    idx = np.arange(chunks)
    a = _draw(rng, idx)
    if a == 0:
        p_pool = np.arange(1, win + 1)
    elif a == chunks - 1:
        p_pool = np.arange(a - 1, a - win - 1, -1)
    else:
        p_pool = np.array([i for i in range(a - win, a + win + 1) if 0 <= i < chunks and i != a])
    p = _draw(rng, p_pool)
    excluded = {a, *p_pool.tolist()}
    n_pool = np.array(sorted(set(range(chunks)) - excluded))
    n = _draw(rng, n_pool)
    return a, p, n


def draw_triplets(rng: np.random.RandomState, rounds: int = 10, chunks: int = CHUNKS) -> torch.Tensor:
    """(3, rounds) int64 on the host: row 0 the anchors, 1 the positives, 2 the negatives of `rounds` triples
    drawn one after another (`triplet_indices`). Drawn where the batch is collated, so the training step gets
    them with its batch (one asynchronous copy) instead of making a tensor on the host inside the step."""
    triples = [triplet_indices(rng, chunks=chunks) for _ in range(rounds)]
    return torch.tensor(triples, dtype=torch.long).reshape(rounds, 3).t().contiguous()  # (3, R)


def select_triplets(emb: torch.Tensor, triplets: torch.Tensor, chunks: int = CHUNKS
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B*C, D) embeddings and (3, R) chunk indices (on emb's device) -> anchor, positive, negative, each
    (R*B, D), round-major (row r*B + b): each round's triple is shared by every sentence of the batch."""
    n, d = emb.shape
    assert n % chunks == 0, f"{n} rows is not a multiple of {chunks}"
    assert triplets.dim() == 2 and triplets.shape[0] == 3, f"triplets {tuple(triplets.shape)}: need (3, R)"
    z = emb.reshape(n // chunks, chunks, d)                     # (B, C, D)
    rounds = triplets.shape[1]
    out = [z[:, triplets[k]].transpose(0, 1).reshape(rounds * (n // chunks), d) for k in range(3)]  # (R*B, D)
    return out[0], out[1], out[2]


def triplet_embeddings(emb: torch.Tensor, rng: np.random.RandomState, rounds: int = 10,
                       chunks: int = CHUNKS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`select_triplets` of `rounds` triples drawn now from `rng` (rng consumed in that order)."""
    return select_triplets(emb, draw_triplets(rng, rounds, chunks).to(emb.device), chunks)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """nn.TripletMarginLoss(margin=1.0, p=2): mean of max(0, |a - p + eps| - |a - n + eps| + 1), eps 1e-6."""
    return F.triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                                 reduction="mean")


# ---- legacy checkpoints ----
def strip_module(state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Remove every `.module` substring from the keys (the DataParallel infix, e.g. cnn_features.module.0.weight)."""
    return OrderedDict((k.replace(".module", ""), v) for k, v in state_dict.items())


def _unwrap(sd: Mapping) -> Mapping[str, torch.Tensor]:
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):  # the whole {'arch', 'state_dict'} dict
        sd = sd["state_dict"]
    return strip_module(sd)


def infer_num_clusters(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    w = _unwrap(state_dict).get("top_layer_class.weight")
    return None if w is None else int(w.shape[0])


def infer_variant(state_dict: Mapping[str, torch.Tensor]) -> str:
    """GRU, CNN and Trans have their own temporal keys; Temp-Triplet is 'none of these'. Keys alone cannot tell
    Temp-Triplet from a temporal-free model whose cnn_out has dropout (dropout has no state): pass the variant
    to `from_legacy_state_dict` when that matters."""
    keys = _unwrap(state_dict).keys()
    if "temporal_net.weight_ih_l0" in keys:
        return "Temp-GRU"
    if "temporal_net.0.weight" in keys:
        return "Temp-CNN"
    if "pos_enc.pe" in keys:
        return "Temp-Trans"
    return "Temp-Triplet"


def from_legacy_state_dict(state_dict: Mapping[str, torch.Tensor], variant: str | None = None) -> DeepEmoCluster:
    """Build the model a (possibly `.module`-infixed) state_dict or {'arch', 'state_dict'} checkpoint describes
    and load it strictly. K comes from top_layer_class.weight (no head -> None); Temp-Trans' chunk count from
    pos_enc.pe."""
    sd = _unwrap(state_dict)
    variant = variant or infer_variant(sd)
    chunks = int(sd["pos_enc.pe"].shape[0]) if variant == "Temp-Trans" and "pos_enc.pe" in sd else CHUNKS
    model = DeepEmoCluster(variant=variant, num_clusters=infer_num_clusters(sd), chunks=chunks)
    model.load_state_dict(sd, strict=True)
    return model
