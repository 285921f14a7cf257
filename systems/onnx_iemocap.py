"""ONNX export and scoring of the two IEMOCAP classifiers: the MDRE family (ARE, TRE, MDRE, MDREA) and the
speech + text + mocap fusion (every configuration).

The graph is the model plus a softmax: it takes exactly the tensors the system's own collate makes for the torch
model (`MDREMethod.collate`, `FusionMethod.collate`) and returns `posteriors` (B, C) and `logits` (B, C) in the
checkpoint's class order (C = len(config["classes"]): IEMOCAP's four, or the classes of the corpus it trained on). Batch and every length axis are dynamic.

Why the feature normalisation stays outside the graph (in the collate, with its statistics stored in the .onnx
file's record): both systems normalise with `utils.znorm` (float64, NaN -> 0, clipped to +-3) BEFORE anything
else touches the frames - the speech branch then averages 5 frames per row, the missing-data conditions blank
normalised frames, mocap fills lost markers with the training mean after normalising - so the normalised batch
is the one definition of the model's input. Moving it into the graph would need the unpooled frames in and a
second (float32) implementation of znorm and of the pooling; the record carries the statistics (`norm`) and the
input settings (`inputs`, `vocab`), the same fields as the checkpoint's config.json, so
`systems.<system>.method_from_config` rebuilds the collate from the .onnx file alone. The classifiers have no
label de-normalisation (their outputs are class scores).

`export_checkpoint(run, out)` is what export_onnx.py calls for "mdre" and "speech-text-mocap" checkpoints;
`OnnxScorer(path).scores(method, items)` scores labelled items through the same collate as `engine.loop.evaluate`.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import onnx_io
from engine.checkpoint import load_checkpoint

MDRE_SYSTEM, STM_SYSTEM = "mdre", "speech-text-mocap"
OUTPUTS = ["posteriors", "logits"]
MDRE_AUDIO = ("mfcc", "mfcc_len", "prosody")
MDRE_TEXT = ("tokens", "token_len")


def mdre_input_names(kind: str) -> list[str]:
    """The graph inputs of a kind of the family: the keys its collate makes (y aside)."""
    from systems.mdre import USES_AUDIO, USES_TEXT
    return [*(MDRE_AUDIO if kind in USES_AUDIO else ()), *(MDRE_TEXT if kind in USES_TEXT else ())]


def stm_input_names(modalities) -> list[str]:
    """The graph inputs of a fusion configuration: each modality's rows and mask, then `present` (B, M)."""
    return [n for m in modalities for n in (m, f"{m}_mask")] + ["present"]


class MDREGraph(nn.Module):
    """An MDRE-family model with its inputs as positional tensors (the collate's keys) and softmax posteriors."""

    def __init__(self, *, model: nn.Module):
        super().__init__()
        self.model, self.names = model.eval(), mdre_input_names(model.kind)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert len(inputs) == len(self.names), f"{len(inputs)} inputs for {self.names}"
        logits = self.model(**dict(zip(self.names, inputs)))                  # (B, C)
        return logits.softmax(dim=1), logits


class TraceableSelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention's batch-first self-attention with a key padding mask, the same weights and numbers,
    written so that an ONNX trace keeps the length axis dynamic. Why: torch's own multi_head_attention_forward
    traced by the TorchScript exporter (torch 2.13, opset 17) freezes the sequence length of the example into a
    Reshape (an export at T = 7 fails at T = 5 in onnxruntime). Used only in the exported copy of the model."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        assert query is key is value and attn_mask is None and not need_weights and not is_causal, \
            "self-attention with a key padding mask only"
        heads, width = self.num_heads, self.head_dim
        q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)  # (B, T, D) each
        q, k, v = (t.unflatten(-1, (heads, width)).transpose(1, 2) for t in (q, k, v))     # (B, h, T, d)
        scores = q @ k.transpose(-1, -2) / math.sqrt(width)                                   # (B, h, T, T)
        if key_padding_mask is not None and key_padding_mask.dtype == torch.bool:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        elif key_padding_mask is not None:  # nn.TransformerEncoder hands it on as a float mask: -inf = padded
            scores = scores + key_padding_mask[:, None, None, :].to(scores.dtype)
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).flatten(2)                        # (B, T, D)
        return self.out_proj(out), None


def traceable(model: nn.Module) -> nn.Module:
    """A copy of a MultimodalTransformer whose encoder layers use TraceableSelfAttention (same weights)."""
    model = copy.deepcopy(model).eval()
    for name, mha in [(n, m) for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]:
        assert mha.batch_first and mha._qkv_same_embed_dim, f"{name}: batch-first, one in_proj expected"
        new = TraceableSelfAttention(mha.embed_dim, mha.num_heads, dropout=mha.dropout, batch_first=True)
        new.load_state_dict(mha.state_dict())
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, new.eval())
    return model


class FusionGraph(nn.Module):
    """A MultimodalTransformer with (rows, mask) per modality and `present` as positional tensors, and softmax
    (over a traceable copy of the model: TraceableSelfAttention)."""

    def __init__(self, *, model: nn.Module):
        super().__init__()
        self.model, self.modalities = traceable(model), tuple(model.modalities)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = len(self.modalities)
        assert len(inputs) == 2 * m + 1, f"{len(inputs)} inputs for {m} modalities (rows, mask each) + present"
        x = {n: inputs[2 * i] for i, n in enumerate(self.modalities)}             # (B, T_n, D_n)
        mask = {n: inputs[2 * i + 1] for i, n in enumerate(self.modalities)}      # (B, T_n) bool
        logits = self.model(x, mask, inputs[-1])                                  # (B, C)
        return logits.softmax(dim=1), logits


class _Width:
    """Stands in for a feature store where only its width is read (FusionMethod.input_dims)."""

    def __init__(self, dims: int):
        self.dims = dims

    def __contains__(self, utt) -> bool:
        return False


def method_of(cfg: dict):
    """The system's method a checkpoint config (or an .onnx record) describes, without any feature store: enough
    to build the model; for scoring, `systems.<system>.method_from_config` over real stores."""
    if cfg.get("system") == MDRE_SYSTEM:
        from systems.mdre import method_from_config
        return method_from_config(cfg, None, None, {})
    if cfg.get("system") == STM_SYSTEM:
        from systems.speech_text_mocap import method_from_config
        dims = cfg["model"]["inputs"]
        return method_from_config(cfg, _Width(dims.get("speech", 0)), _Width(dims.get("text", 0)), _Width(0))
    raise ValueError(f"system {cfg.get('system')!r}: this exporter handles {MDRE_SYSTEM} and {STM_SYSTEM}")


def graph_of(method, model: nn.Module) -> nn.Module:
    """The graph wrapper of the method's model (with its weights loaded: the fusion graph works on a copy)."""
    return MDREGraph(model=model) if hasattr(method, "kind") else FusionGraph(model=model)


def example_batch(method) -> dict[str, torch.Tensor]:
    """A two-row batch with unequal lengths, shaped as the method's collate makes it (tracing input). Lengths stay
    below every fixed bound (128 text positions), so no length-dependent branch is frozen at its limit."""
    g = torch.Generator().manual_seed(0)
    if hasattr(method, "kind"):
        from systems.mdre import MFCC_DIM, PROSODY_DIM
        full = {"mfcc": torch.randn(2, 9, MFCC_DIM, generator=g), "mfcc_len": torch.tensor([9, 4]),
                "prosody": torch.randn(2, PROSODY_DIM, generator=g),
                "tokens": torch.randint(2, len(method.vocab), (2, 6), generator=g), "token_len": torch.tensor([6, 3])}
        return {n: full[n] for n in mdre_input_names(method.kind)}
    batch = {}
    for m, d in method.input_dims().items():
        batch[m] = torch.randn(2, 7, d, generator=g)
        batch[f"{m}_mask"] = torch.arange(7)[None, :] < torch.tensor([7, 4])[:, None]   # (2, 7)
    batch["present"] = torch.ones(2, len(method.modalities), dtype=torch.bool)
    return batch


def dynamic_axes(names: list[str]) -> dict[str, dict[int, str]]:
    """Batch on every input and output; each sequence input's length axis (its own name)."""
    axes = {n: {0: "batch"} for n in names + OUTPUTS}
    for n in names:
        if n in ("mfcc", "tokens"):
            axes[n][1] = f"{n}_steps"
        elif n not in ("mfcc_len", "prosody", "token_len", "present"):       # fusion rows and masks
            axes[n][1] = f"{n.removesuffix('_mask')}_steps"
    return axes


def graph_inputs(method, batch: dict) -> dict[str, np.ndarray]:
    """A collated batch (the torch model's input) as the graph's named numpy arrays."""
    if hasattr(method, "kind"):
        return {n: batch[n].numpy() for n in mdre_input_names(method.kind)}
    out = {}
    for m in method.modalities:
        out[m], out[f"{m}_mask"] = batch["x"][m].numpy(), batch["mask"][m].numpy()
    out["present"] = batch["present"].numpy()
    return out


def export_method(method, model_state: dict, out: Path, *, record: dict) -> dict:
    """Export the method's model with `model_state` to `out`; the record gets the config fields the collate needs."""
    model = method.build_model()
    model.load_state_dict(model_state)
    example = example_batch(method)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the trace must run the layers' Python code (our attention)
    try:
        return onnx_io.export(graph_of(method, model), example, out, outputs=OUTPUTS,
                              dynamic=dynamic_axes(list(example)), record=record)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def export_checkpoint(checkpoint: Path, out: Path, *, allow_unfinished: bool = False) -> dict:
    """Write the run folder `checkpoint`'s best model (an mdre or speech-text-mocap checkpoint) to `out` as ONNX;
    returns the record stored in it: the checkpoint's config (system, model, classes, vocab, norm, inputs) plus
    the graph's inputs, outputs, opset and versions. An unfinished run is refused unless `allow_unfinished`."""
    checkpoint = Path(checkpoint)
    state, cfg = load_checkpoint(checkpoint, allow_unfinished)
    method = method_of(cfg)
    keep = ("system", "model", "classes", "vocab", "norm", "inputs", "modalities", "limits", "loss", "features")
    record = {**{k: cfg[k] for k in keep if k in cfg}, "checkpoint": str(checkpoint),
              "normalisation": "outside the graph: the system's collate z-normalises with `norm` (utils.znorm)",
              "outputs_meaning": {"posteriors": "softmax over classes", "logits": "the torch model's output"}}
    return export_method(method, state, Path(out), record=record)


class OnnxScorer:
    """An exported IEMOCAP classifier in onnxruntime: `scores(method, items, batch_size)` -> posteriors (n, 4)
    through the method's own collate, batch by batch (as engine.loop.evaluate); `run(batch)` for one batch."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.session = onnx_io.Session(path, threads=threads)
        self.record, self.runtime = self.session.record, self.session.runtime

    def run(self, method, batch: dict) -> dict[str, np.ndarray]:
        return self.session.run(**graph_inputs(method, batch))

    def scores(self, method, items: list, batch_size: int = 64, output: str = "posteriors") -> np.ndarray:
        out = [self.run(method, method.collate(items[b: b + batch_size]))[output]
               for b in range(0, len(items), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.record["classes"])))


def torch_posteriors(method, model, items: list, batch_size: int) -> np.ndarray:
    """The torch path's posteriors: engine.loop.evaluate (the systems' test scoring) and a softmax."""
    from engine.loop import evaluate
    logits = evaluate(method, model, items, batch_size, "cpu")
    return torch.from_numpy(logits).softmax(dim=1).numpy()
