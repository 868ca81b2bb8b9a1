"""The `casavox` commands that put casavox on a box: `pack` (workstation), `verify-pack` and
`selftest` (the box, run by the pack's installer). Imported by edge_app/cli.py; each command
imports what it needs when it runs."""

from __future__ import annotations

import argparse
import json

EXIT_FAILED = 1


def cmd_pack(args: argparse.Namespace) -> int:
    """The offline artifact for one kind of box (export/pack.py)."""
    from casavox.export.pack import pack

    report = pack(
        args.target,
        args.bundle,
        args.out,
        args.source,
        cuda_libs=args.cuda_libs == "pack",
        extra_wheels=args.extra_wheel,
    )
    print(
        f"packed: {report.path} ({report.size / 1e6:.0f} MB: {len(report.wheels)} wheels, bundle "
        f"{report.bundle_size / 1e6:.0f} MB); signed by key {report.key_id}: on the box, "
        f"tar xf {report.path.name} && sudo ./{report.folder}/install.sh"
    )
    return 0


def cmd_verify_pack(args: argparse.Namespace) -> int:
    from casavox.export.pack import verify_pack

    manifest = verify_pack(args.folder)
    print(
        f"ok: {args.folder}: casavox {manifest['version']} for {manifest['target']}, signed by trusted key "
        f"{manifest['key_id']}; {len(manifest['files'])} files match their sha256"
    )
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    """Exit 0 only when every check passed; --json prints the whole report for the installer."""
    from casavox.edge_app.selftest import Expectation, run_selftest

    report = run_selftest(args.bundle, args.clip, Expectation.read(args.expect), args.device, args.home)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(f"providers: {', '.join(report.providers)}; usable devices: {', '.join(report.devices)}")
        for check in report.checks:
            print(f"{'ok  ' if check['ok'] else 'FAIL'} {check['check']}: {check['detail']}")
    return 0 if report.ok else EXIT_FAILED


def add_commands(sub) -> None:
    p = sub.add_parser(
        "pack", help="one offline artifact that installs the device side on a box (workstation)"
    )
    p.add_argument("--target", required=True, choices=["cpu", "cuda", "jetson"])
    p.add_argument(
        "--bundle", default="bundles/default", help="the signed bundle to subset (default bundles/default)"
    )
    p.add_argument("--out", help="artifact path (default casavox-<version>-<target>.tar)")
    p.add_argument("--source", help="casavox source checkout (default: this one)")
    p.add_argument(
        "--cuda-libs",
        choices=["pack", "system"],
        default="pack",
        help="cuda: pack NVIDIA's CUDA/cuDNN wheels (default) or use the box's own",
    )
    p.add_argument(
        "--extra-wheel",
        action="append",
        metavar="FILE.whl",
        help="add a wheel the index lacks (e.g. NVIDIA's onnxruntime-gpu for Jetson)",
    )
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser(
        "verify-pack", help="check an unpacked pack's signature and files (the installer uses it)"
    )
    p.add_argument("folder")
    p.set_defaults(func=cmd_verify_pack)

    p = sub.add_parser(
        "selftest", help="prove this box can run a bundle: providers, a spoken command, both models"
    )
    p.add_argument("--bundle", required=True)
    p.add_argument("--clip", required=True, help="a spoken command (a pack's selftest/command.wav)")
    p.add_argument("--expect", required=True, help="what it must become (a pack's selftest/expect.json)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, tensorrt or auto (default cpu)")
    p.add_argument("--home", help="home YAML (default: the example home)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_selftest)
