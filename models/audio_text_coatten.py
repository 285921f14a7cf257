"""Audio-text co-attention Transformer (Lin, Goncalves & Busso, ICMI 2023, "multi-scale chunk regularization").

Input: audio (B, L, 7168) temporal-pyramid-pooled wav2vec2 chunk rows and text (B, L, 768) RoBERTa token rows,
each led by the "global" row of ones and zero-padded to the same L (the original pads both to 128), plus two
bool masks (B, L) with True = padding. Output: {"act", "dom", "val"}, each (B,) normalised scores (the original
returns the tuple (act, dom, val) in that order).

Architecture (reference sheet section 7), d = hidden = 256, 4 heads, FFN 512, dropout 0.3, post-LN:
    proj_sph / proj_txt     bias-free input projections, then one shared sinusoidal PE (no sqrt(d) scaling)
                            and Dropout(0.1)
    trans.l{1,2,3}_sph_sph  masked self-attention layers on the audio stream, trans.l{1,2,3}_txt_txt on text
    trans.l{4,5}_sph_txt    co-attention: query = text stream, key/value = audio stream, audio mask
    trans.l{4,5}_txt_sph    co-attention: query = audio stream, key/value = text stream, text mask
    fusion                  concat(audio[:, 0], text[:, 0]) -> (B, 512), audio first
    top_layer_{act,dom,val} Linear(512, 256) -> ReLU -> Linear(256, 1)

Every layer, with v = 1 - mask of its own stream (sheet quirk 6):
    a = MHA(q, k = v = own, key_padding_mask = own mask); a = Dropout(a * v); h = LN1(own + a) * v
    out = LN2(h + Dropout(W2 Dropout(GELU(W1 h))))          W1, W2 without bias; the output is not masked again
so padded rows leave a layer equal to norm2.bias. (The first multiplication by v is kept as in the original but
has no effect: padded rows are zeroed again after LN1 and valid rows have v = 1.) In the co-attention layers row i of the attention output
belongs to the OTHER stream's position i and is added to the own stream's row i; the other stream's padded
query rows are not masked (quirk 5).

The state_dict keys equal the original's (114 tensors, 7,689,731 parameters at the defaults), so a bare
`TransformerCoAtten_*.pth.tar` state_dict loads strictly (`from_original_state_dict`). The PE table is a
non-persistent buffer: it follows `.to()` but, as in the original, is not in the state_dict (quirk 19). It is
computed in float32 as pos / 10000^(2i/d) like the original, so it equals the original's table bit for bit.

Deliberate differences from the original (none changes a weight, a key or an output):
  * each layer has three Dropout modules (after attention, after GELU, after W2) instead of one shared one;
    they hold no parameters and are called in the same order, so the RNG stream is the same;
  * forward returns a dict instead of a tuple and asserts equal stream lengths L <= max_len.
In eval mode without gradients the self-attention layers may take PyTorch's fused MHA fast path, which differs
from the standard path by ~1e-7 (quirk 20).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn

AUDIO_DIM = 1024 * 7  # wav2vec2-large hidden size x 7 temporal-pyramid bins (levels 1, 2, 4)
TEXT_DIM = 768        # roberta-base hidden size
MAX_LEN = 128
LAYER_NAMES = ("l1_sph_sph", "l2_sph_sph", "l3_sph_sph", "l4_sph_txt", "l5_sph_txt",
               "l1_txt_txt", "l2_txt_txt", "l3_txt_txt", "l4_txt_sph", "l5_txt_sph")
TARGETS = ("act", "dom", "val")


def sinusoidal_table(*, max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model) float32: P[pos, 2i] = sin(pos / 10000^(2i/d)), P[pos, 2i+1] = cos(same)."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)                              # (L, 1)
    angle = pos / torch.pow(10000, torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (L, d/2)
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table


class MaskedAttenLayer(nn.Module):
    """One post-LN encoder layer with the original's intermediate masking.

    Self-attention (`MaskSelfAttenLayer`): forward(x, mask). Co-attention (`MaskCoAttenLayer`):
    forward(x_own, mask_own, other=x_other), where the other stream gives the queries. The two original
    classes have identical parameters (the co-attention one also calls its MHA `self_attn`)."""

    def __init__(self, *, d_model: int = 256, heads: int = 4, ffn: int = 512, dropout: float = 0.3):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dim=d_model, num_heads=heads, batch_first=True)
        self.linear1 = nn.Linear(d_model, ffn, bias=False)
        self.linear2 = nn.Linear(ffn, d_model, bias=False)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout_attn = nn.Dropout(dropout)
        self.dropout_act = nn.Dropout(dropout)
        self.dropout_ffn = nn.Dropout(dropout)
        self.activation = nn.GELU()  # exact erf form

    def forward(self, x: torch.Tensor, mask: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, L, d) own stream; mask: (B, L) bool, True = pad; other: (B, L, d) query stream or None
        assert x.dim() == 3 and mask.shape == x.shape[:2], f"x {tuple(x.shape)} vs mask {tuple(mask.shape)}"
        q = x if other is None else other
        assert q.shape == x.shape, f"query {tuple(q.shape)} vs own stream {tuple(x.shape)}: lengths must match"
        v = (~mask).to(x.dtype).unsqueeze(-1)                                  # (B, L, 1) non-pad indicator
        a = self.self_attn(q, x, x, key_padding_mask=mask, need_weights=False)[0]  # (B, L, d)
        a = self.dropout_attn(a * v)
        h = self.norm1(x + a) * v                                              # padded rows -> 0
        f = self.dropout_ffn(self.linear2(self.dropout_act(self.activation(self.linear1(h)))))
        return self.norm2(h + f)                                               # padded rows -> norm2.bias


class StackedLayers(nn.Module):
    """The ten layers under their original names (`trans.<name>.*` in the state_dict)."""

    def __init__(self, *, d_model: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        for name in LAYER_NAMES:
            self.add_module(name, MaskedAttenLayer(d_model=d_model, heads=heads, ffn=ffn, dropout=dropout))

    def forward(self, xs: torch.Tensor, xt: torch.Tensor, mask_s: torch.Tensor, mask_t: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        xs = self.l3_sph_sph(self.l2_sph_sph(self.l1_sph_sph(xs, mask_s), mask_s), mask_s)
        xt = self.l3_txt_txt(self.l2_txt_txt(self.l1_txt_txt(xt, mask_t), mask_t), mask_t)
        xs1 = self.l4_sph_txt(xs, mask_s, other=xt)
        xt1 = self.l4_txt_sph(xt, mask_t, other=xs)
        xs2 = self.l5_sph_txt(xs1, mask_s, other=xt1)
        xt2 = self.l5_txt_sph(xt1, mask_t, other=xs1)
        return xs2, xt2                                                        # (B, L, d) each


def make_head(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))


class AudioTextCoAttention(nn.Module):
    def __init__(self, *, audio_dim: int = AUDIO_DIM, text_dim: int = TEXT_DIM, hidden: int = 256, heads: int = 4,
                 max_len: int = MAX_LEN, ffn: int = 512, dropout: float = 0.3, pe_dropout: float = 0.1):
        super().__init__()
        assert hidden % 2 == 0 and hidden % heads == 0, f"hidden {hidden} must be even and divisible by {heads}"
        self.audio_dim, self.text_dim, self.hidden, self.max_len = audio_dim, text_dim, hidden, max_len
        self.proj_sph = nn.Linear(audio_dim, hidden, bias=False)
        self.proj_txt = nn.Linear(text_dim, hidden, bias=False)
        self.register_buffer("pe", sinusoidal_table(max_len=max_len, d_model=hidden), persistent=False)
        self.pe_dropout = nn.Dropout(pe_dropout)
        self.trans = StackedLayers(d_model=hidden, heads=heads, ffn=ffn, dropout=dropout)
        self.top_layer_act = make_head(hidden)
        self.top_layer_dom = make_head(hidden)
        self.top_layer_val = make_head(hidden)

    def add_pe(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d), shared table, then Dropout(0.1)
        return self.pe_dropout(x + self.pe[: x.shape[1]])

    def embed(self, audio: torch.Tensor, text: torch.Tensor, mask_audio: torch.Tensor, mask_text: torch.Tensor
              ) -> torch.Tensor:
        """The fused (B, 2 * hidden) embedding: concat(audio stream row 0, text stream row 0)."""
        b, length, fa = audio.shape
        assert fa == self.audio_dim and text.shape == (b, length, self.text_dim), \
            f"audio {tuple(audio.shape)} / text {tuple(text.shape)}: need (B, L, {self.audio_dim}) / " \
            f"(B, L, {self.text_dim}) with the same L"
        assert length <= self.max_len, f"{length} positions, the positional encoding holds {self.max_len}"
        assert mask_audio.shape == (b, length) and mask_text.shape == (b, length), "masks must be (B, L)"
        assert mask_audio.dtype == torch.bool and mask_text.dtype == torch.bool, "masks must be bool (True = pad)"
        xs = self.add_pe(self.proj_sph(audio))                                 # (B, L, d) audio first (RNG order)
        xt = self.add_pe(self.proj_txt(text))                                  # (B, L, d)
        xs2, xt2 = self.trans(xs, xt, mask_audio, mask_text)
        return torch.cat([xs2[:, 0], xt2[:, 0]], dim=1)                        # (B, 2d)

    def forward(self, audio: torch.Tensor, text: torch.Tensor, mask_audio: torch.Tensor, mask_text: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        z = self.embed(audio, text, mask_audio, mask_text)
        return {t: getattr(self, f"top_layer_{t}")(z).squeeze(1) for t in TARGETS}  # (B,) each

    def chunk_outputs(self, audio: torch.Tensor, text: torch.Tensor, mask_audio: torch.Tensor,
                      mask_text: torch.Tensor) -> dict:
        """forward's outputs plus, per audio chunk row (rows 1 .. L-1; padded rows are the caller's to drop):
        "chunks" {target: (B, L-1)}, the heads on concat(audio row c, text row 0) after the last layer, i.e. the
        fused vector with the chunk's row where the global audio row goes; "weights" (B, L-1), the global audio
        row's attention over the chunk rows in the last audio self-attention layer (l3_sph_sph), averaged over
        heads and divided by its sum over the chunk rows (the global row's weight on itself left out)."""
        seen = {}

        def keep_input(module, args):  # returns None: the layer's input is left as it is
            seen["x"] = args[0]
        hook = self.trans.l3_sph_sph.register_forward_pre_hook(keep_input)
        assert audio.shape[:2] == text.shape[:2] == mask_audio.shape == mask_text.shape, "need (B, L) alike"
        try:  # embed's steps, keeping every row of both streams
            xs2, xt2 = self.trans(self.add_pe(self.proj_sph(audio)), self.add_pe(self.proj_txt(text)),
                                  mask_audio, mask_text)                   # (B, L, d) each
        finally:
            hook.remove()
        z = torch.cat([xs2[:, 0], xt2[:, 0]], dim=1)                       # (B, 2d) as embed
        layer = self.trans.l3_sph_sph
        att = layer.self_attn(seen["x"], seen["x"], seen["x"], key_padding_mask=mask_audio, need_weights=True,
                              average_attn_weights=True)[1]                # (B, L, L), row = query
        w = att[:, 0, 1:]                                                  # (B, L-1) global row over chunks
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        rows = torch.cat([xs2[:, 1:], xt2[:, :1].expand_as(xs2[:, 1:])], dim=2)  # (B, L-1, 2d)
        heads = {t: getattr(self, f"top_layer_{t}") for t in TARGETS}
        return {"utterance": {t: h(z).squeeze(1) for t, h in heads.items()},
                "chunks": {t: h(rows).squeeze(2) for t, h in heads.items()}, "weights": w}

    def parameter_breakdown(self) -> "OrderedDict[str, int]":
        """Parameter count per top-level part: proj_sph, proj_txt, each trans layer, each head."""
        out: OrderedDict[str, int] = OrderedDict()
        out["proj_sph"] = self.proj_sph.weight.numel()
        out["proj_txt"] = self.proj_txt.weight.numel()
        for name in LAYER_NAMES:
            out[f"trans.{name}"] = sum(p.numel() for p in getattr(self.trans, name).parameters())
        for t in TARGETS:
            out[f"top_layer_{t}"] = sum(p.numel() for p in getattr(self, f"top_layer_{t}").parameters())
        return out


def _unwrap(sd: Mapping) -> "OrderedDict[str, torch.Tensor]":
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    return OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in sd.items())


def from_original_state_dict(state_dict: Mapping, *, heads: int = 4, max_len: int = MAX_LEN
                             ) -> AudioTextCoAttention:
    """Build the model a bare original state_dict (or {'state_dict': ...}) describes and load it strictly.

    audio_dim, text_dim, hidden and ffn come from the weight shapes; the head count and max_len are not
    stored in the checkpoint (the original uses 4 and 128)."""
    sd = _unwrap(state_dict)
    hidden, audio_dim = sd["proj_sph.weight"].shape
    model = AudioTextCoAttention(audio_dim=int(audio_dim), text_dim=int(sd["proj_txt.weight"].shape[1]),
                                 hidden=int(hidden), heads=heads, max_len=max_len,
                                 ffn=int(sd["trans.l1_sph_sph.linear1.weight"].shape[0]))
    model.load_state_dict(sd, strict=True)
    return model
