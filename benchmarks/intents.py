"""Intent LLM studies beside the main benchmark (benchmarks/run.py, which has the peers and the
accuracy): the cached instruction prefix on vs off, the cost of a 1,000-entity home vs 20, what
compiling a home's grammar costs against copying the compiled one (what each command pays), and the
CPU loop's in-place KV buffers against growing a copy of the cache at every step.

    python -m benchmarks.intents --bundle bundles/default
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.workers import LLM_COMMANDS as COMMANDS  # one command list for every LLM figure

ROOT = Path(__file__).resolve().parents[1]


def _pct(values: list[float]) -> dict:
    return {
        "median_ms": statistics.median(values),
        "p95_ms": float(np.percentile(values, 95)),
        "n": len(values),
    }


def bench_llm(bundle: Path, variant: str, threads: int) -> dict:
    from casavox.runtime.bundle import verify
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.llm import load_llm
    from casavox.runtime.intents.prompt import candidates, user_message

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
    from casavox.runtime.bundle import verify
    from casavox.runtime.home import home_from_dict, load_home
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.llm import load_llm

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


def bench_grammar(bundle: Path) -> dict:
    """Per home: grammar size, llguidance compile time (LLMatcher construction) and the copy time of
    a compiled matcher (``IntentLLM._matcher``), medians of 20."""
    import llguidance

    from casavox.runtime.bundle import verify
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.llm import load_llm
    from casavox.runtime.intents.schema import answer_schema

    llm = load_llm(verify(bundle, hash_files=False), threads=1)
    homes = {"example home": ROOT / "examples" / "home.yaml"}
    fixture = ROOT.parent / "shared" / "ha-intents-tests" / "en" / "_fixtures.yaml"
    if fixture.exists():
        homes["Home Assistant fixture home"] = fixture
    result = {}
    for name, path in homes.items():
        grammar = llm.grammar(answer_schema(llm.spec, load_home(path)))
        compile_ms, copy_us = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            matcher = llguidance.LLMatcher(llm.ll_tokenizer, grammar, log_level=0)
            t1 = time.perf_counter()
            matcher.deep_copy()
            copy_us.append((time.perf_counter() - t1) * 1e6)
            compile_ms.append((t1 - t0) * 1e3)
        result[name] = {
            "grammar_kb": round(len(grammar) / 1024, 1),
            "compile_ms": statistics.median(compile_ms),
            "copy_us": statistics.median(copy_us),
        }
    return result


def bench_kv_in_place(bundle: Path, threads: int, rounds: int = 4) -> dict:
    """The same int8 graph loaded twice, with the in-place KV buffers and with the copying loop,
    measured in alternation (decode rate over 48 free tokens, then the commands under the grammar),
    so that machine noise hits both alike; medians over the rounds."""
    from casavox.runtime.bundle import verify
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.llm import IntentLLM
    from casavox.runtime.intents.prompt import candidates, user_message
    from casavox.runtime.intents.schema import answer_schema

    home = load_home(ROOT / "examples" / "home.yaml")
    b = verify(bundle, hash_files=False)
    llms = {
        "in place": IntentLLM(b, "int8", threads=threads, shared_kv=True),
        "copying": IntentLLM(b, "int8", threads=threads, shared_kv=False),
    }
    grammar = llms["in place"].grammar(answer_schema(llms["in place"].spec, home))
    messages = [user_message(t, candidates(home, t, None), None) for t in COMMANDS]
    rates: dict[str, list[float]] = {k: [] for k in llms}
    times: dict[str, list[float]] = {k: [] for k in llms}
    for _ in range(rounds):
        for name, llm in llms.items():
            rates[name].append(llm.decode_rate(48))
            for m in messages:
                times[name].append(sum(llm.generate(m, grammar).timings_ms.values()))
    return {
        name: {"decode_tok_s": statistics.median(rates[name]), "command": _pct(times[name])} for name in llms
    }


def bench_templates() -> dict:
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.engine import IntentEngine

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "intents.json"))
    parser.add_argument("--only", help="comma list of studies: templates,llm,large_home,grammar,kv_in_place")
    parser.add_argument("--variant", default="int8", help="LLM variant for the llm study (default int8)")
    args = parser.parse_args(argv)
    bundle = Path(args.bundle)
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads"}
    studies = {
        "templates": bench_templates,
        "llm": lambda: bench_llm(bundle, args.variant, args.threads),
        "large_home": lambda: bench_large_home(bundle, args.threads),
        "grammar": lambda: bench_grammar(bundle),
        "kv_in_place": lambda: bench_kv_in_place(bundle, args.threads),
    }
    chosen = args.only.split(",") if args.only else list(studies)
    unknown = sorted(set(chosen) - set(studies))
    if unknown:
        parser.error(f"unknown study {', '.join(unknown)} (have: {', '.join(studies)})")
    for name in chosen:
        results[name] = studies[name]()
        print(f"{name}: {json.dumps(results[name], indent=1)}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
