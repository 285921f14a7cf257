"""Frame-level wav2vec2 features (the audio side of the multi-scale chunk model), batched and length-exact.

Default = the original feat_wav2vec2.py: `facebook/wav2vec2-large-robust` (pre-trained only, no CTC head),
`last_hidden_state` (layer 24 followed by the encoder's final LayerNorm), 1024-d, 50 frames/s with
T = floor((N - 400) / 320) + 1 for N samples. Each waveform is first standardised on its own samples,
(x - mean) / sqrt(var + eps), with the eps of the transformers release the original ran on (1e-5);
current transformers processors use 1e-7 (`eps=1e-7`). No windowing of long files (as the original); a
batch that runs out of memory is retried one utterance at a time by the runner (features/extract.py).

Batching: inputs are sorted by length inside each call and cut into sub-batches of at most
`max_batch_seconds` of padded audio (default: 160 s on GPU; 0 on CPU, i.e. one forward pass per utterance,
because on CPU a padded batch is slower than its utterances one by one; bench/bench_wav2vec2_text.py).
Models whose conv feature encoder uses layer norm (`config.feat_extract_norm == "layer"`, e.g. large-robust,
large-lv60) are padded with zeros and get an attention mask, which keeps the padding out of every real
frame (the conv frames of an input only see its own samples, and the encoder zeroes padded frames before
the positional convolution). Group-norm models
(`feat_extract_norm == "group"`, e.g. wav2vec2-base) normalise each conv channel over the whole time axis,
so padding would change their outputs, and they were not trained with attention masks (transformers'
Wav2Vec2FeatureExtractor documentation): they only batch inputs of identical length, everything else runs
one at a time. Outputs are cut to each input's own frame count and returned in input order.

`layers`: "last" (default) = `last_hidden_state`. A sequence of ints picks entries of the model's
`hidden_states` (transformers 5: index 0 = Transformer input after the positional convolution, i = output of
layer i, negative indices count from the end; note that for "stable layer norm" models such as large-robust
`hidden_states[-1]` lacks the final LayerNorm, so it is *not* the same as "last"). Several layers are
concatenated along the feature axis (`combine="concat"`, dims = n x hidden) or averaged (`combine="mean"`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from utils import resolve_device

DEFAULT_MODEL = "facebook/wav2vec2-large-robust"
SAMPLE_RATE = 16000
EPS_ORIGINAL = 1e-5  # transformers 4.5.x Wav2Vec2FeatureExtractor, as used by the original
EPS_CURRENT = 1e-7  # transformers >= 4.6


def standardise(x: np.ndarray, eps: float = EPS_ORIGINAL) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over this waveform's samples (statistics in float64), float32 out."""
    x64 = np.asarray(x, dtype=np.float64)
    return ((x64 - x64.mean()) / np.sqrt(x64.var() + eps)).astype(np.float32)


def conv_output_length(n: int, kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Frames out of the conv feature encoder for n samples (0 when too short)."""
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1 if n >= k else 0
    return max(int(n), 0)


def receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples needed for one output frame (400 for wav2vec2)."""
    r, jump = 1, 1
    for k, s in zip(kernels, strides):
        r += (k - 1) * jump
        jump *= s
    return r


class Wav2Vec2Features:
    """Extractor (see features/extract.py): list of 16 kHz float32 waveforms -> list of (T, dims) float32."""

    input = "audio"
    norm_pooling = "utterance-mean"  # NormTerm across utterance-mean vectors (audio-text system)

    def __init__(self, model: str = DEFAULT_MODEL, layers: str | Sequence[int] = "last", combine: str = "concat",
                 device: str = "auto", fp16: bool = False, normalise: bool = True, eps: float = EPS_ORIGINAL,
                 max_batch_seconds: float | None = None, precision: str = "fp32"):
        import torch
        import transformers
        from transformers import AutoModel

        if combine not in ("concat", "mean"):
            raise ValueError(f"combine must be 'concat' or 'mean', not {combine!r}")
        if isinstance(layers, str):
            if layers != "last":
                raise ValueError(f"layers must be 'last' or a sequence of hidden_states indices, not {layers!r}")
            self.layers: str | tuple[int, ...] = "last"
        else:
            self.layers = tuple(int(i) for i in layers)
            if not self.layers:
                raise ValueError("layers: give at least one index, or 'last'")
        self.device = resolve_device(device)
        from features.extract import check_extraction_precision, precision_params
        if fp16:  # the older flag: fp16 autocast, now refused off CUDA instead of silently ignored
            if precision not in ("fp32", "fp16"):
                raise ValueError(f"fp16=True (the older --fp16) contradicts precision {precision!r}")
            precision = "fp16"
        self.precision = check_extraction_precision(precision, self.device)
        from features.text import is_local, model_record, resolve_model
        path, alias = resolve_model(model)  # a keyword (tiny-random-wav2vec2) is built and cached locally
        self.model_id = model_record(model, path, alias)
        self.model = AutoModel.from_pretrained(path, local_files_only=is_local(path, alias)).to(self.device).eval()
        cfg = self.model.config
        if not hasattr(self.model, "_get_feat_extract_output_lengths"):
            raise ValueError(f"{self.model_id}: {type(self.model).__name__} is not a wav2vec2-style audio model")
        n_hidden = cfg.num_hidden_layers + 1
        if self.layers != "last":
            bad = [i for i in self.layers if not -n_hidden <= i < n_hidden]
            if bad:
                raise ValueError(f"layers {bad} outside the {n_hidden} hidden states of {self.model_id}")
        self.combine = combine
        self.normalise, self.eps = bool(normalise), float(eps)
        if max_batch_seconds is None:  # on CPU a padded batch runs slower than its utterances one by one
            max_batch_seconds = 160.0 if self.device.startswith("cuda") else 0.0
        self.max_batch_samples = int(max_batch_seconds * SAMPLE_RATE)
        self.use_mask = getattr(cfg, "feat_extract_norm", "layer") == "layer"
        self._kernels, self._strides = tuple(cfg.conv_kernel), tuple(cfg.conv_stride)
        n_sel = 1 if self.layers == "last" or combine == "mean" else len(self.layers)
        self.dims = int(cfg.hidden_size) * n_sel
        self.name = f"Wav2Vec{self.dims}"  # "Wav2Vec1024" for the default, the original's folder name
        self.frame_rate = SAMPLE_RATE / math.prod(self._strides)  # 50.0 for every wav2vec2 checkpoint
        self.min_seconds = receptive_field(self._kernels, self._strides) / SAMPLE_RATE  # 0.025 s
        self.params = {
            "model": self.model_id, "model_type": cfg.model_type,
            "layers": self.layers if self.layers == "last" else list(self.layers), "combine": combine,
            "normalise": self.normalise, "eps": self.eps if self.normalise else None,
            "sample_rate": SAMPLE_RATE, "feat_extract_norm": getattr(cfg, "feat_extract_norm", None),
            "fp16_autocast": self.precision == "fp16", "transformers": transformers.__version__,
            **precision_params(self.precision),
        }
        self._torch = torch

    # ------------------------------------------------------------------ helpers
    @property
    def fp16(self) -> bool:
        """Whether the forward passes autocast to float16 (the older flag's name for precision fp16)."""
        return self.precision == "fp16"

    def _to_device(self, x):
        """A host tensor on the extractor's device: from page-locked memory, without waiting, to a GPU."""
        if self.device.startswith("cuda"):
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)

    def n_frames(self, n_samples: int) -> int:
        """Frames the model returns for n samples (the model's own length rule; = the conv formula)."""
        if n_samples < receptive_field(self._kernels, self._strides):
            return 0
        return int(self.model._get_feat_extract_output_lengths(self._torch.tensor(int(n_samples))))

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into forward passes: longest first, padded total <= max_batch_samples."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        groups: list[list[int]] = []
        for i in order:
            g = groups[-1] if groups else None
            fits = g is not None and (len(g) + 1) * lengths[g[0]] <= self.max_batch_samples
            if fits and (self.use_mask or lengths[i] == lengths[g[0]]):
                g.append(i)
            else:
                groups.append([i])
        return groups

    def _forward(self, x, mask):
        torch = self._torch
        want_hidden = self.layers != "last"
        kwargs = {"attention_mask": mask} if mask is not None else {}
        from features.extract import extraction_autocast
        with extraction_autocast(self.device, self.precision):
            out = self.model(x, output_hidden_states=want_hidden, **kwargs)
        if not want_hidden:
            return out.last_hidden_state
        hs = [out.hidden_states[i] for i in self.layers]
        return torch.cat(hs, dim=-1) if self.combine == "concat" else torch.stack(hs).mean(0)

    # ------------------------------------------------------------------ extractor interface
    def __call__(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        waves = [np.asarray(x, dtype=np.float32).reshape(-1) for x in batch]
        waves = [standardise(x, self.eps) if self.normalise else x for x in waves]
        lengths = [len(x) for x in waves]
        for n in lengths:
            if self.n_frames(n) < 1:
                raise ValueError(f"{n} samples is shorter than the model's receptive field")
        out: list[np.ndarray | None] = [None] * len(waves)
        with torch.inference_mode():
            for group in self._batches(lengths):
                n_max = lengths[group[0]]
                x = np.zeros((len(group), n_max), dtype=np.float32)  # zero padding, as the processor pads
                for row, i in enumerate(group):
                    x[row, :lengths[i]] = waves[i]
                mask = None
                if self.use_mask and any(lengths[i] != n_max for i in group):
                    m = np.zeros((len(group), n_max), dtype=np.int64)
                    for row, i in enumerate(group):
                        m[row, :lengths[i]] = 1
                    mask = self._to_device(torch.from_numpy(m))
                h = self._forward(self._to_device(torch.from_numpy(x)), mask)
                h = h.float().cpu().numpy()  # (B, T, dims): the one copy back per forward pass
                for row, i in enumerate(group):
                    out[i] = np.ascontiguousarray(h[row, :self.n_frames(lengths[i])])
        return out  # type: ignore[return-value]


def save_tiny_random(folder, *, hidden: int = 32, seed: int = 0):
    """A small randomly initialised wav2vec2 with the real models' frame rate (7 convolutions of total stride
    320: 50 frames/s, 25 ms receptive field) and layer-norm encoder, saved like a hub checkpoint. The offline
    demo and the tests extract with it through the same code path as `facebook/wav2vec2-large-robust`; a
    folder that already holds it is left as it is."""
    from pathlib import Path

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    cfg = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
                         conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                         conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Wav2Vec2Model(cfg).eval()
    model.save_pretrained(folder)
    return folder
