"""Would a 4-bit lm_head make the CPU LLM faster without losing accuracy? (README "Intent numbers")

    python -m benchmarks.lm_head_int4 --bundle bundles/default --out /tmp/lm4
    casavox eval-intents /tmp/lm4 --tests ../shared/ha-intents-tests/en --no-templates   # vs the original

The output projection (49,152 x 576) is a fifth of the int8 weights read for every token, and
decoding is bound by those reads. This writes a bundle holding only the LLM with that one matrix
re-quantized from int8 to 4 bits (round to nearest, blocks of 32, as MatMulNBits takes it), the rest
untouched, then times the decode loop of both graphs interleaved on the peers' task (cached prefix,
24 free tokens). The accuracy of the two is then a plain `casavox eval-intents` on each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from casavox.runtime import bundle as fmt
from casavox.runtime.components import LlmComponent

BLOCK = 32


def requantize(q8: np.ndarray, scales8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MatMulNBits int8 blocks (symmetric, zero point 128) -> int4 blocks (zero point 8), packed two per byte."""
    w = (q8.astype(np.int16) - 128).astype(np.float32) * scales8[..., None]
    scales4 = np.abs(w).max(axis=2) / 7.0
    scales4[scales4 == 0] = 1.0
    q4 = np.clip(np.rint(w / scales4[..., None]) + 8, 0, 15).astype(np.uint8)
    return (q4[..., 0::2] | (q4[..., 1::2] << 4)).astype(np.uint8), scales4.astype(np.float32)


def write_variant(bundle: Path, out: Path) -> fmt.Bundle:
    import onnx
    from onnx import numpy_helper

    small = fmt.subset(bundle, out, {"asr": [], "llm": ["int8"]})
    files = LlmComponent.from_bundle(small).variants["int8"]
    graph, data = files.file, files.data_files[0]
    with tempfile.TemporaryDirectory() as tmp:  # onnx refuses hard-linked external data: read a copy
        for rel in (graph, data):
            shutil.copy(out / rel, Path(tmp) / Path(rel).name)
            (out / rel).unlink()
        model = onnx.load(Path(tmp) / Path(graph).name)
    inits = {t.name: t for t in model.graph.initializer}
    head = next(n for n in model.graph.node if n.output[0] == "logits" and n.op_type == "MatMulNBits")
    bits = next(a for a in head.attribute if a.name == "bits")
    if bits.i != 8 or len(head.input) > 3:
        raise SystemExit(
            f"expected a symmetric 8-bit lm_head, found bits={bits.i}, inputs={list(head.input)}"
        )
    packed, scales = requantize(
        numpy_helper.to_array(inits[head.input[1]]), numpy_helper.to_array(inits[head.input[2]])
    )
    inits[head.input[1]].CopyFrom(numpy_helper.from_array(packed, head.input[1]))
    inits[head.input[2]].CopyFrom(numpy_helper.from_array(scales, head.input[2]))
    bits.i = 4
    onnx.save(
        model, out / graph, save_as_external_data=True, all_tensors_to_one_file=True, location=Path(data).name
    )
    manifest = fmt.load_manifest(out)
    for rel in (graph, data):
        fmt.add_file(out, manifest, rel)
    llm = LlmComponent.from_manifest(manifest["components"][LlmComponent.NAME])
    int8 = replace(llm.variants["int8"], note="lm_head re-quantized to 4 bits (benchmarks/lm_head_int4.py)")
    manifest["components"][LlmComponent.NAME] = replace(
        llm, variants={**llm.variants, "int8": int8}
    ).to_manifest()
    fmt.write_manifest(out, manifest)
    return fmt.verify(out)


def decode_rates(bundles: dict[str, Path], rounds: int = 4) -> dict[str, float]:
    """Free-decode tokens/s of each bundle's int8 LLM (the benchmark's `casavox-llm-int8-free`
    system), interleaved command by command; the first round is warm-up."""
    from benchmarks.workers import LLM_COMMANDS, load_llm

    threads = len(os.sched_getaffinity(0))
    runs = {name: load_llm("casavox-llm-int8-free", path, threads, "cpu") for name, path in bundles.items()}
    per_token: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for i in range(len(LLM_COMMANDS)):
            for name, run in runs.items():
                _, stages = run(i)
                if r:
                    per_token[name].append(stages["llm_decode_per_token_ms"])
    return {name: round(1e3 / float(np.median(v)), 1) for name, v in per_token.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lm_head_int4", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bundle", type=Path, default=Path("bundles/default"))
    parser.add_argument(
        "--out", type=Path, required=True, help="new bundle folder (must not exist or be empty)"
    )
    args = parser.parse_args(argv)
    write_variant(args.bundle, args.out)
    rates = decode_rates({"int8": args.bundle, "int8 + 4-bit lm_head": args.out})
    for name, rate in rates.items():
        print(
            f"{name}: {rate} tok/s (free decode, 24 tokens after the cached prefix, median over 3 x 10 commands)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
