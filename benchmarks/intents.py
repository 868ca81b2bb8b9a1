"""Intent benchmark: template path, the LLM fallback (per quant, with/without the cached prefix),
peers on the same model (llama-cpp-python on the original GGUF, PyTorch eager), accuracy on Home
Assistant's test suite and on our own paraphrases, and the cost of a 1,000-entity home.

    python -m benchmarks.intents --bundle bundles/default [--ha-tests ../shared/ha-intents-tests/en]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    "it's too dark in the office",
    "kill the kitchen lights",
    "fire up the coffee maker",
    "bedroom lamp to half brightness",
    "let me in, unlock the front door",
    "roll up the living room blinds",
    "how warm is it in the living room",
    "get the robot vacuum cleaning",
    "night light down to ten percent please",
    "turn off the kitchen ceiling and then turn on the desk lamp",
]


def _pct(values: list[float]) -> dict:
    return {
        "median_ms": statistics.median(values),
        "p95_ms": float(np.percentile(values, 95)),
        "n": len(values),
    }


def bench_llm(bundle: Path, variant: str, threads: int) -> dict:
    from runtime.bundle import verify
    from runtime.home import load_home
    from runtime.intents.engine import IntentEngine
    from runtime.intents.llm import load_llm
    from runtime.intents.prompt import candidates, user_message

    home = load_home(ROOT / "examples" / "home.yaml")
    llm = load_llm(verify(bundle, hash_files=False), variant, threads=threads)
    engine = IntentEngine.build(home, llm)
    out = {
        "variant": variant,
        "decode_tok_s": llm.decode_rate(48),
        "prefix_prefill_ms": llm.prefill_prefix_ms,
    }
    for reuse in (True, False):
        times, steps, generated, forced = [], [], [], []
        for text in COMMANDS * 2:
            a = llm.generate(
                user_message(text, candidates(home, text, None), None), engine.grammar, reuse_prefix=reuse
            )
            times.append(sum(a.timings_ms.values()))
            steps.append(a.model_steps)
            generated.append(a.generated_tokens)
            forced.append(a.forced_tokens)
        key = "cached_prefix" if reuse else "no_prefix_cache"
        out[key] = {
            **_pct(times),
            "model_steps": statistics.mean(steps),
            "answer_tokens": statistics.mean(generated),
            "forced_tokens": statistics.mean(forced),
        }
    # Same commands through the whole engine (templates first, then the LLM).
    t = []
    for text in COMMANDS:
        t.append(engine.parse(text).timings_ms["total_ms"])
    out["engine_total"] = _pct(t)
    return out


def bench_large_home(bundle: Path, threads: int) -> dict:
    from runtime.bundle import verify
    from runtime.home import home_from_dict, load_home
    from runtime.intents.engine import IntentEngine
    from runtime.intents.llm import load_llm

    llm = load_llm(verify(bundle, hash_files=False), threads=threads)
    small = load_home(ROOT / "examples" / "home.yaml")
    areas = [{"name": a.name, "id": a.id} for a in small.areas] + [
        {"name": f"Room {i}", "id": f"r{i}"} for i in range(44)
    ]
    entities = [{"name": e.name, "id": e.id, "area": e.area_id} for e in small.exposed]
    entities += [
        {"name": f"Lamp {i}", "id": f"light.l{i}", "area": f"r{i % 44}"} for i in range(1000 - len(entities))
    ]
    big = home_from_dict({"areas": areas, "entities": entities})
    result = {}
    for name, home in (("20 entities", small), ("1000 entities", big)):
        t0 = time.perf_counter()
        engine = IntentEngine.build(home, llm)
        build_ms = (time.perf_counter() - t0) * 1e3
        times = [engine.parse(text, templates=False).timings_ms["total_ms"] for text in COMMANDS * 2]
        result[name] = {**_pct(times), "grammar_build_ms": build_ms, "entities": len(home.exposed)}
    result["ratio_median"] = result["1000 entities"]["median_ms"] / result["20 entities"]["median_ms"]
    return result


def bench_templates() -> dict:
    from runtime.home import load_home
    from runtime.intents.engine import IntentEngine

    engine = IntentEngine.build(load_home(ROOT / "examples" / "home.yaml"), None)
    texts = [
        "turn off the lights in the kitchen",
        "set the bedroom lamp brightness to 50%",
        "lock the front door",
        "what is the temperature in the living room",
        "turn on the desk lamp",
    ]
    engine.parse(texts[0])
    times = [engine.parse(t).timings_ms["total_ms"] for t in texts * 10]
    return _pct(times)


def bench_llama_cpp(threads: int) -> dict:
    """The original Q4_1 GGUF in llama.cpp: prompt of the same size, 48 decoded tokens."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return {
            "skipped": "llama-cpp-python not installed (pip install llama-cpp-python; it compiles llama.cpp)"
        }
    from export.llm.source import default_gguf

    llm = Llama(model_path=str(default_gguf()), n_ctx=1024, n_threads=threads, verbose=False)
    prompt = _sample_prompt()
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.eval(tokens[:8])
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    prefill_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    n = 48
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([tok])
    return {
        "decode_tok_s": n / (time.perf_counter() - t0),
        "prompt_tokens": len(tokens),
        "prefill_ms": prefill_ms,
    }


def _sample_prompt() -> str:
    from runtime.home import load_home
    from runtime.intents.prompt import PREFIX, SUFFIX, candidates, user_message

    home = load_home(ROOT / "examples" / "home.yaml")
    text = COMMANDS[0]
    return PREFIX + user_message(text, candidates(home, text, None), None) + SUFFIX


def bench_pytorch(threads: int) -> dict:
    import torch

    from export.llm.finetune import ADAPTER_DIR
    from export.llm.pipeline import merged_model

    torch.set_num_threads(threads)
    model, source = merged_model(None, ADAPTER_DIR)
    ids = source.tokenizer(_sample_prompt(), return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill_ms = (time.perf_counter() - t0) * 1e3
        cache, tok = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        n = 32
        t0 = time.perf_counter()
        for _ in range(n):
            out = model(tok, past_key_values=cache, use_cache=True)
            cache, tok = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
    return {
        "decode_tok_s": n / (time.perf_counter() - t0),
        "prompt_tokens": int(ids.shape[1]),
        "prefill_ms": prefill_ms,
    }


def accuracy(bundle: Path, tests: Path, *extra: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_app.cli",
            "eval-intents",
            str(bundle),
            "--tests",
            str(tests),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        return {"error": out.stderr[-500:]}
    data = json.loads(out.stdout)
    return {"accuracy": data["accuracy"], "sentences": data["sentences"], "latency": data["latency"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--ha-tests", default=str(ROOT.parent / "shared" / "ha-intents-tests" / "en"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--skip", default="", help="comma list of: peers, accuracy, large")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "intents.json"))
    args = parser.parse_args(argv)
    bundle, skip = Path(args.bundle), set(args.skip.split(","))
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads"}
    results["templates"] = bench_templates()
    print(f"templates: median {results['templates']['median_ms']:.2f} ms", flush=True)
    results["llm"] = bench_llm(bundle, "int8", args.threads)
    print(json.dumps(results["llm"], indent=1), flush=True)
    if "large" not in skip:
        results["large_home"] = bench_large_home(bundle, args.threads)
        print(json.dumps(results["large_home"], indent=1), flush=True)
    if "peers" not in skip:
        results["llama_cpp"] = bench_llama_cpp(args.threads)
        print("llama.cpp:", results["llama_cpp"], flush=True)
        results["pytorch"] = bench_pytorch(args.threads)
        print("pytorch:", results["pytorch"], flush=True)
    if "accuracy" not in skip:
        ha = Path(args.ha_tests)
        if ha.exists():
            results["ha_merged"] = accuracy(bundle, ha)
            results["ha_llm_only"] = accuracy(bundle, ha, "--no-templates")
        results["paraphrases_llm_only"] = accuracy(
            bundle, ROOT / "tests" / "data" / "paraphrases.yaml", "--no-templates"
        )
        results["paraphrases_merged"] = accuracy(bundle, ROOT / "tests" / "data" / "paraphrases.yaml")
        for k in ("ha_merged", "ha_llm_only", "paraphrases_llm_only", "paraphrases_merged"):
            if k in results:
                print(k, {x: results[k].get(x) for x in ("accuracy", "sentences")}, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
