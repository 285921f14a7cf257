#!/usr/bin/env python
"""Export a trained model as ONNX, to run with onnxruntime (prediction_process.py --onnx, or any ONNX runtime).

    python export_onnx.py --checkpoint Models/LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act --out act.onnx
    python export_onnx.py --checkpoint LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Val.pth.tar \\
        --normterm NormTerm --out val.onnx

Any of our checkpoint folders (the system is read from its config.json: chunk_lstm, deep_emo_cluster,
audio_text, mdre, speech-text-mocap) or an original .pth.tar with its NormTerm folder. The chunk LSTM and
DeepEmoCluster graphs take raw feature chunks and return scores on the label scale (z-norm and label
de-normalisation inside); audio-text takes the padded chunk and token rows and their masks. The file holds a JSON
record of what it is (system, attribute(s), chunking, features and extractor settings, the checkpoint's source
and config, opset, torch and onnx versions): docs/onnx.md.
"""
import json
import sys
from pathlib import Path

from engine.cli import UserError, add_allow_unfinished_arg, entry, parser

IEMOCAP_SYSTEMS = ("mdre", "speech-text-mocap")  # exported by systems.onnx_iemocap


def recorded_system(checkpoint: Path) -> str | None:
    """The system a checkpoint folder's config.json names (None for a file: an original .pth.tar)."""
    config = checkpoint / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text()).get("system")
    except (OSError, ValueError) as e:
        raise UserError(f"{config}: unreadable ({e})") from None


def export(checkpoint: Path, out: Path, normterm: Path | None, allow_unfinished: bool) -> dict:
    if recorded_system(checkpoint) in IEMOCAP_SYSTEMS:
        if normterm is not None:
            raise UserError(f"--normterm: {checkpoint} holds its own statistics; --normterm is for an original "
                            ".pth.tar")
        from systems.onnx_iemocap import export_checkpoint
        return export_checkpoint(checkpoint, out, allow_unfinished=allow_unfinished)
    from systems.onnx_export import export_checkpoint
    return export_checkpoint(checkpoint, out, normterm=normterm, allow_unfinished=allow_unfinished)


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", type=Path, required=True,
                    help="a checkpoint folder (model.safetensors + config.json) or an original .pth.tar")
    ap.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    ap.add_argument("--normterm", type=Path,
                    help="an original .pth.tar's NormTerm folder (audio-text: the folder holding NormTerm_Speech "
                         "and NormTerm_Text); default for a chunk-LSTM .pth.tar: the shipped v1.6 NormTerm/")
    add_allow_unfinished_arg(ap)
    args = ap.parse_args(argv)
    if not args.checkpoint.exists():
        raise UserError(f"--checkpoint {args.checkpoint}: no such checkpoint folder or file")
    try:
        record = export(args.checkpoint, args.out, args.normterm, args.allow_unfinished)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    # the long entries (the checkpoint's config, the extractor settings, a vocabulary) are stored, not printed
    shown = {k: v if len(json.dumps(v)) <= 200 else f"({len(json.dumps(v))} characters, stored)"
             for k, v in record.items()}
    print(f"wrote {args.out}: {record['system']} from {record.get('source') or args.checkpoint}, opset "
          f"{record['opset']} (torch {record['torch']}, onnx {record['onnx']})")
    print("record: " + json.dumps(shown, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
