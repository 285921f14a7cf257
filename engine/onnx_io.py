"""ONNX export and inference, shared by every system: one way to write a graph, one way to run it.

`export` traces a module that maps named tensors to named tensors (the systems wrap their model together with
its NormTerm z-norm and label de-normalisation, so the graph takes raw feature chunks and returns scores on the
label scale), writes the .onnx file atomically and stores, inside the file, a JSON record of what it is: the
system's own fields plus the opset, the torch and onnx versions. `Session` runs such a file with onnxruntime on
the CPU (one thread or all) and gives that record back. Both import onnx / onnxruntime only when called.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from utils import atomic_path

OPSET = 17  # supported by the TorchScript exporter and every onnxruntime release since 1.11
META_KEY = "ser_toolkit"  # the metadata_props entry holding the JSON record


def export(module: torch.nn.Module, example: dict[str, torch.Tensor], out: str | Path, *,
           outputs: list[str], dynamic: dict[str, dict[int, str]], record: dict) -> dict:
    """Write `module` (eval mode; forward takes `example`'s tensors as keyword order) to `out` as ONNX with the
    named `dynamic` axes ({input or output name: {axis: axis name}}); `record` (JSON-able) is stored in the file.
    Returns the record as stored (with opset, torch and onnx versions, and `trace_check`'s comparison of the
    written graph in onnxruntime with the module on the trace inputs)."""
    import warnings

    import onnx
    module = module.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    full = {**record, "opset": OPSET, "torch": torch.__version__, "onnx": onnx.__version__,
            "inputs": list(example), "outputs": list(outputs)}
    with atomic_path(Path(out)) as tmp, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes name no input
        # eval-mode attention layers take PyTorch's fused fast path (aten::_native_multi_head_attention), which has
        # no ONNX form: trace the standard path, which the fast path equals to ~1e-7
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            torch.onnx.export(module, tuple(example.values()), str(tmp), input_names=list(example),
                              output_names=list(outputs), dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        full["export_check"] = trace_check(module, example, tmp)
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(full, sort_keys=True)
        onnx.save(graph, str(tmp))
    return full


def trace_check(module: torch.nn.Module, example: dict[str, torch.Tensor], path: Path) -> dict:
    """The written graph run by onnxruntime on the trace inputs against the module itself: {"onnxruntime":
    version, "max_abs_diff": largest |difference| over all outputs} (a wrong export shows at once)."""
    import numpy as np
    import onnxruntime as ort
    with torch.no_grad():
        want = module(*example.values())
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {k: v.numpy() for k, v in example.items()})
    diff = max(float(np.max(np.abs(np.asarray(g, np.float64) - w.double().numpy()), initial=0.0))
               for g, w in zip(got, want))
    return {"onnxruntime": ort.__version__, "max_abs_diff": diff}


def read_record(path: str | Path) -> dict:
    """The JSON record `export` stored in an .onnx file; a ValueError naming the file when there is none."""
    import onnx
    path = Path(path)
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own types for a file that is not ONNX
        raise ValueError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None
    found = {p.key: p.value for p in graph.metadata_props}
    if META_KEY not in found:
        raise ValueError(f"{path}: an ONNX model without this toolkit's record (not made by export_onnx.py)")
    return json.loads(found[META_KEY])


class Session:
    """An exported model in onnxruntime on the CPU: `run(name=array, ...)` -> {output name: array}; `record` is
    what `export` stored, `runtime` the onnxruntime version. `threads` None: onnxruntime's default (all cores)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort
        self.path, self.record = Path(path), read_record(path)
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: its graph-optimiser notes name no input of ours
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.runtime = ort.__version__
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, **inputs) -> dict:
        got = self.session.run(None, {k: v for k, v in inputs.items()})
        return dict(zip(self.outputs, got))
