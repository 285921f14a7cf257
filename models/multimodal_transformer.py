"""System 5: speech + text + motion-capture fusion on IEMOCAP, one transformer encoder per modality.

Every ablation configuration (speech, text, mocap, face, head or hand alone; any pair; all three) is ONE class,
`MultimodalTransformer(inputs={name: width, ...})`: the configuration is only the list of modalities and their
feature widths, so all of them share the same code, initialisation and training loop.

Inputs: x[name] (B, T_name, width) float and mask[name] (B, T_name) bool, True on real frames/tokens, padded
positions may hold any (finite or not) values. E.g. speech = wav2vec2 frames (1024), text = BERT token features
(768, row 0 = [CLS]), mocap = 189 columns (face 165 + head 6 + hand 18, features/mocap.py) or a single stream.
Output: logits (B, n_classes).

Architecture (M modalities, D = d_model):
    per modality  h = Linear(width -> D)(x) + PE[:T]      fixed sinusoidal positions (a non-persistent buffer)
                  h = Dropout(h)
                  h = TransformerEncoder(pre-LN layers, key padding mask = ~mask)(h)        (B, T, D)
                  h = LayerNorm(h)                         pre-LN leaves the residual stream un-normalised
                  v = masked mean over the valid positions ("mean") or h[:, 0] ("first", BERT's [CLS])  (B, D)
    absent        v = a learned vector a_name (D,) where the modality is absent in a row      (torch.where)
    fusion        [v_1 ; ... ; v_M] (B, M*D) -> Linear(M*D -> fusion_hidden) -> ReLU -> Dropout -> Linear -> logits

Why:
  * pre-LN layers (norm_first) train small transformers stably without a learning-rate warm-up;
  * sinusoidal positions hold no parameters, so a checkpoint does not depend on max_len (the table is rebuilt,
    not loaded); max_len only bounds the input length;
  * masked mean pooling and the key padding mask make a row's encoding independent of how far it is padded:
    in eval mode an utterance gives the same logits alone and in a batch of longer ones;
  * a learned "absent" vector instead of zeros: a zero vector is also a possible real encoding, a learned one
    lets the classifier learn what "this modality is missing" means. torch.where (not a multiplication by 0)
    picks it, so an absent modality's input values cannot leak into the logits, not even as NaN.

Presence: a modality is present in a row iff its mask has a True in that row, AND-ed with the optional
`present` (B, M) bool; a modality whose key is missing from x and mask is absent in every row.
A row whose mask is all False has no valid position: the encoder computes it with position 0 marked valid (a
dummy, so the attention softmax never sees only -inf and gives no NaN); the model then replaces that row by the
absent vector, so the dummy value is never used.
"""
from __future__ import annotations

import math

import torch
from torch import nn

POOLINGS = ("mean", "first")


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(...) -> (max_len, D); odd D drops the last cos."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]                          # (L, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    angles = pos * freq[None, :]                                                       # (L, ceil(D/2))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe                                                                          # (L, D)


class ModalityEncoder(nn.Module):
    """One modality's sequence -> one vector: projection + positions, pre-LN transformer, LayerNorm, pooling."""

    def __init__(self, *, in_dim: int, d_model: int = 64, heads: int = 4, layers: int = 2, ff: int = 128,
                 dropout: float = 0.1, max_len: int = 512, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} not one of {', '.join(POOLINGS)}")
        if max_len < 1:
            raise ValueError(f"max_len = {max_len} must be at least 1")
        self.in_dim, self.d_model, self.max_len, self.pooling = in_dim, d_model, max_len, pooling
        self.proj = nn.Linear(in_dim, d_model)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)  # not in state_dict
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim) float, mask (B, T) bool (True = a real frame/token) -> (B, d_model)."""
        if x.dim() != 3 or x.shape[2] != self.in_dim:
            raise ValueError(f"input {tuple(x.shape)}: need (B, T, {self.in_dim})")
        b, t, _ = x.shape
        if mask.shape != (b, t):
            raise ValueError(f"mask {tuple(mask.shape)} does not match input {tuple(x.shape)}: need ({b}, {t})")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool, got {mask.dtype}")
        if t > self.max_len:
            raise ValueError(f"sequence length T = {t} > max_len = {self.max_len}")
        if t == 0:                                                 # one dummy (padded) position to compute on
            x, mask, t = x.new_zeros(b, 1, self.in_dim), mask.new_zeros(b, 1), 1
        dummy = mask[:, :1] | ~mask.any(dim=1, keepdim=True)       # (B, 1): all-False rows get position 0 ...
        mask = torch.cat([dummy, mask[:, 1:]], dim=1)              # ... as a dummy (no in-place |=: ONNX has none)
        # a value check reads the mask back to the host: done on the CPU only (on a GPU it would be a sync per
        # batch; the collates put [CLS] first by construction)
        if self.pooling == "first" and mask.device.type == "cpu" and bool((~mask[:, 0]).any()):
            raise ValueError("pooling 'first' needs position 0 valid in every row with a valid position "
                             "(left-aligned tokens, [CLS] first)")
        x = torch.where(mask[:, :, None], x.to(self.proj.weight.dtype), 0.0)  # padded values (even NaN) -> 0
        h = self.proj(x) + self.pe[:t].to(x.dtype)                 # (B, T, D)
        h = self.encoder(self.dropout(h), src_key_padding_mask=~mask)  # (B, T, D)
        h = self.norm(h)                                           # (B, T, D)
        if self.pooling == "first":
            return h[:, 0]                                         # (B, D)
        w = mask.to(h.dtype)[:, :, None]                           # (B, T, 1)
        pooled = (h * w).sum(dim=1) / w.sum(dim=1)                 # (B, D); >= 1 valid position per row
        assert pooled.shape == (b, self.d_model)
        return pooled


def per_modality(value, names: tuple[str, ...], what: str) -> dict:
    """A scalar for every modality, or a dict that must name each of them (extra names are refused too)."""
    if not isinstance(value, dict):
        return {n: value for n in names}
    missing, extra = [n for n in names if n not in value], sorted(set(value) - set(names))
    if missing or extra:
        raise ValueError(f"{what} per modality: missing {missing}, unknown {extra}")
    return {n: value[n] for n in names}


class MultimodalTransformer(nn.Module):
    """One ModalityEncoder per entry of `inputs` (name -> width), concatenation fusion, MLP classifier."""

    def __init__(self, *, inputs: dict[str, int], n_classes: int = 4, d_model: int = 64, heads: int = 4,
                 layers: int = 2, ff: int = 128, dropout: float = 0.1, max_len: int | dict[str, int] = 512,
                 pooling: str | dict[str, str] = "mean", fusion_hidden: int = 128, fusion_dropout: float = 0.3):
        super().__init__()
        if not inputs:
            raise ValueError("inputs is empty: need at least one modality (name -> feature width)")
        bad = [n for n in inputs if not isinstance(n, str) or not n or "." in n]
        if bad:
            raise ValueError(f"modality names must be non-empty strings without '.': {bad}")
        self.modalities: tuple[str, ...] = tuple(inputs)         # the order of concatenation
        self.inputs, self.n_classes, self.d_model = dict(inputs), n_classes, d_model
        lens = per_modality(max_len, self.modalities, "max_len")
        pools = per_modality(pooling, self.modalities, "pooling")
        self.encoders = nn.ModuleDict({
            n: ModalityEncoder(in_dim=inputs[n], d_model=d_model, heads=heads, layers=layers, ff=ff,
                               dropout=dropout, max_len=lens[n], pooling=pools[n])
            for n in self.modalities})
        self.absent = nn.ParameterDict({n: nn.Parameter(torch.randn(d_model) * 0.02) for n in self.modalities})
        m = len(self.modalities)
        self.fusion = nn.Sequential(nn.Linear(m * d_model, fusion_hidden), nn.ReLU(), nn.Dropout(fusion_dropout),
                                    nn.Linear(fusion_hidden, n_classes))

    def _check(self, x: dict, mask: dict, present: torch.Tensor | None) -> int:
        """Validate the keys, batch sizes and `present`; return B."""
        extra = sorted((set(x) | set(mask)) - set(self.modalities))
        if extra:
            raise ValueError(f"inputs {extra} are not modalities of this model {list(self.modalities)}")
        if set(x) != set(mask):
            raise ValueError(f"x and mask must hold the same modalities: {sorted(x)} vs {sorted(mask)}")
        sizes = {n: x[n].shape[0] for n in x}
        if present is not None and present.dim() >= 1:
            sizes["present"] = present.shape[0]
        if not sizes:
            raise ValueError("no input at all: cannot tell the batch size")
        if len({int(s) for s in sizes.values()}) != 1:  # int(): while tracing for ONNX the sizes are tensors
            raise ValueError(f"batch sizes differ: { {n: int(s) for n, s in sizes.items()} }")
        b = next(iter(sizes.values()))  # the size itself, so an ONNX trace keeps the batch axis dynamic
        if present is not None and (present.shape != (b, len(self.modalities)) or present.dtype != torch.bool):
            raise ValueError(f"present {tuple(present.shape)} {present.dtype}: need ({b}, {len(self.modalities)}) "
                             f"bool in the order {list(self.modalities)}")
        return b

    def encode(self, x: dict[str, torch.Tensor], mask: dict[str, torch.Tensor],
               present: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """name -> (B, d_model) for every modality: the encoding where present, the learned absent vector where
        not (see the module docstring for the presence rule). These are the vectors the fusion concatenates."""
        b = self._check(x, mask, present)
        out = {}
        for i, n in enumerate(self.modalities):
            absent = self.absent[n][None, :].expand(b, self.d_model)                # (B, D)
            if n not in x:
                out[n] = absent
                continue
            try:
                v = self.encoders[n](x[n], mask[n])                                 # (B, D)
            except ValueError as e:
                raise ValueError(f"modality {n!r}: {e}") from e
            here = mask[n].any(dim=1)                                               # (B,) bool
            if present is not None:
                here = here & present[:, i].to(here.device)
            out[n] = torch.where(here[:, None], v, absent.to(v))                    # (B, D)
        return out

    def forward(self, x: dict[str, torch.Tensor], mask: dict[str, torch.Tensor],
                present: torch.Tensor | None = None) -> torch.Tensor:
        """-> logits (B, n_classes)."""
        v = self.encode(x, mask, present)
        fused = torch.cat([v[n] for n in self.modalities], dim=1)                   # (B, M*D)
        assert fused.shape[1] == len(self.modalities) * self.d_model
        return self.fusion(fused)                                                   # (B, n_classes)
