"""results.json -> report.md, PNG plots, the summary table, and the comparison with an older run."""

from __future__ import annotations

import json
from pathlib import Path

# Flat metrics the comparison looks at: name -> (value, "lower"|"higher" is better, kind)
LATENCY_SLACK_MS = 2.0  # differences below this are noise whatever the percentage


def flat_metrics(results: dict) -> dict[str, tuple[float, str, str]]:
    out: dict[str, tuple[float, str, str]] = {}
    for section in ("asr", "llm"):
        for system, row in (results.get(section) or {}).get("systems", {}).items():
            if "latency" in row:
                out[f"{section}.{system}.median_ms"] = (row["latency"]["median_ms"], "lower", "latency")
            if "wer" in row:
                out[f"{section}.{system}.wer"] = (row["wer"], "lower", "accuracy")
    for name, row in (results.get("accuracy") or {}).items():
        if isinstance(row, dict) and "accuracy" in row:
            out[f"accuracy.{name}"] = (row["accuracy"], "higher", "accuracy")
    for mode, paths in (results.get("e2e") or {}).items():
        if isinstance(paths, dict):
            for path, s in paths.items():
                if isinstance(s, dict) and "eos_to_action" in s and s["eos_to_action"].get("n"):
                    out[f"e2e.{mode}.{path}.median_ms"] = (
                        s["eos_to_action"]["median_ms"],
                        "lower",
                        "latency",
                    )
    return out


def compare(new: dict, old: dict, latency_pct: float, accuracy_pts: float) -> tuple[list[str], bool]:
    """Lines of a delta table and whether anything regressed beyond the thresholds."""
    a, b = flat_metrics(old), flat_metrics(new)
    lines = ["| metric | old | new | delta | |", "|---|---:|---:|---:|---|"]
    regressed = False
    for key in sorted(set(a) & set(b)):
        (ov, better, kind), (nv, _, _) = a[key], b[key]
        delta = nv - ov
        worse = delta > 0 if better == "lower" else delta < 0
        if kind == "latency":
            bad = worse and abs(delta) > LATENCY_SLACK_MS and abs(delta) > latency_pct * max(ov, 1e-9)
            shown = f"{delta:+.1f} ms ({delta / max(ov, 1e-9):+.0%})"
        else:
            bad = worse and abs(delta) > accuracy_pts
            shown = f"{delta * 100:+.1f} pts"
        regressed |= bad
        lines.append(f"| {key} | {ov:.4g} | {nv:.4g} | {shown} | {'REGRESSION' if bad else ''} |")
    return lines, regressed


def _ms(s: dict | None) -> str:
    return (
        "-"
        if not s or not s.get("n")
        else f"{s['median_ms']:.1f} / {s['p95_ms']:.1f} / {s['p99_ms']:.1f} (n={s['n']})"
    )


def summary_lines(results: dict) -> list[str]:
    """The short table `make benchmark` prints and the README copies."""
    lines = ["| what | system | median ms | p95 ms | quality |", "|---|---|---:|---:|---|"]
    for section, quality in (("asr", "wer"), ("llm", None)):
        for system, row in (results.get(section) or {}).get("systems", {}).items():
            if "skipped" in row:
                lines.append(f"| {section} | {system} | - | - | skipped: {row['skipped'][:60]} |")
                continue
            lat = row["latency"]
            q = f"WER {row['wer']:.1%}" if quality else f"{row.get('decode_tok_s', 0):.0f} tok/s decode"
            ratio = row.get("ratio_vs_casavox")
            q += f", {ratio:.1f}x casavox time" if ratio and not system.startswith("casavox") else ""
            lines.append(f"| {section} | {system} | {lat['median_ms']:.0f} | {lat['p95_ms']:.0f} | {q} |")
    for mode, paths in (results.get("e2e") or {}).items():
        if not isinstance(paths, dict) or mode == "daemon_process":
            continue
        for path, s in paths.items():
            e = s.get("eos_to_action", {})
            if e.get("n"):
                lines.append(
                    f"| end of speech -> action | {path}, {'semantic endpointing' if mode == 'semantic' else 'speculation ' + mode} | {e['median_ms']:.0f} | {e['p95_ms']:.0f} | n={e['n']} |"
                )
    for name, row in (results.get("accuracy") or {}).items():
        if isinstance(row, dict) and "accuracy" in row:
            lines.append(f"| intent accuracy | {name} | - | - | {row['accuracy']:.1%} of {row['n']} |")
    return lines


def render(results: dict, folder: Path) -> Path:
    env, settings = results["environment"], results["settings"]
    scope = "quick subset" if settings["quick"] else "full run"
    if settings["items"]:
        scope += f", {settings['items']} items per section"
    md = [
        f"# casavox benchmark, {results['started']}",
        "",
        f"Machine: {env['cpu']} ({env['cores']} cores), GPU: {env['gpu'] or 'none'}, Python {env['python']}; "
        f"providers: {settings['device']}; threads: {settings['threads']}; {scope}.",
        f"Bundle: `{results['bundle']['path']}`, manifest sha256 `{results['bundle']['manifest_sha256'][:16]}`.",
        "",
        "## Summary",
        "",
        *summary_lines(results),
        "",
    ]
    if results.get("asr"):
        md += ["## ASR (interleaved, warm-up excluded; median / p95 / p99 ms)", ""]
        md += [
            "| system | total | log-mel | encoder | decoder | decoder per token | RTF | WER | peak RSS MB | load s |",
            "|---|---|---|---|---|---|---:|---:|---:|---:|",
        ]
        for system, row in results["asr"]["systems"].items():
            if "skipped" in row:
                md.append(f"| {system} | skipped: {row['skipped']} |||||||||")
                continue
            st = row["stages"]
            md.append(
                f"| {system} | {_ms(row['latency'])} | {_ms(st.get('log_mel_ms'))} | {_ms(st.get('encoder_ms'))} | "
                f"{_ms(st.get('decoder_ms'))} | {_ms(st.get('decoder_per_token_ms'))} | {row['rtf']:.3f} | {row['wer']:.1%} | "
                f"{row['peak_rss_mb']:.0f} | {row['load_s']:.1f} |"
            )
        read = results["asr"].get("read_resample_ms")
        md += ["", f"Audio read + resample (22.05 kHz WAV file -> 16 kHz, casavox): {_ms(read)}.", ""]
    if results.get("llm"):
        md += ["## Intent LLM (interleaved; casavox is grammar-constrained, peers decode unconstrained)", ""]
        md += [
            "| system | total | prefill (command tokens) | decode | decode per token | tok/s | peak RSS MB |",
            "|---|---|---|---|---|---:|---:|",
        ]
        for system, row in results["llm"]["systems"].items():
            if "skipped" in row:
                md.append(f"| {system} | skipped: {row['skipped']} ||||||")
                continue
            st = row["stages"]
            md.append(
                f"| {system} | {_ms(row['latency'])} | {_ms(st.get('llm_prefill_ms'))} | {_ms(st.get('llm_decode_ms'))} | "
                f"{_ms(st.get('llm_decode_per_token_ms'))} | {row.get('decode_tok_s', 0):.0f} | {row['peak_rss_mb']:.0f} |"
            )
        md += ["", f"Template intent (examples/home.yaml): {_ms(results['llm'].get('template_ms'))}.", ""]
    if results.get("accuracy"):
        md += ["## Intent accuracy (exact match of name + slots, Home Assistant's test semantics)", ""]
        md += ["| set | path | quant | accuracy | n | median ms |", "|---|---|---|---:|---:|---:|"]
        for row in results["accuracy"].values():
            if isinstance(row, dict) and "accuracy" in row:
                md.append(
                    f"| {row['set']} | {row['path']} | {row['quant']} | {row['accuracy']:.1%} | {row['n']} | {row['median_ms']:.0f} |"
                )
        md.append("")
    if results.get("e2e"):
        md += ["## End of speech -> action (real time, simulated home)", ""]
        md += [
            "| speculation | path | EoS -> action | VAD tail | silence wait | after endpoint | template/LLM intent | action |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode, paths in results["e2e"].items():
            if mode == "daemon_process" or not isinstance(paths, dict):
                continue
            for path, s in paths.items():
                md.append(
                    f"| {mode} | {path} | {_ms(s['eos_to_action'])} | {_ms(s.get('vad_tail'))} | {_ms(s['silence_wait'])} | "
                    f"{_ms(s['after_endpoint'])} | {_ms(s['intent'])} | {_ms(s['action'])} |"
                )
        md.append("")
    if results.get("startup"):
        s = results["startup"]
        md += ["## Start-up and memory", "", f"`casavox run` process start -> listening: cold {s['cold_s']:.2f} s, warm {s['warm_s']:.2f} s; "
               f"peak RSS of the daemon process {s['peak_rss_mb']:.0f} MB.", ""]  # fmt: skip
    md += ["## Bundle size per variant", "", "| component | variant | MB |", "|---|---|---:|"]
    for (comp, variant), mb in sorted(
        (tuple(k.split("/")), v) for k, v in results["bundle"]["size_mb"].items()
    ):
        md.append(f"| {comp} | {variant} | {mb:.1f} |")
    md += [
        "",
        "Plots: "
        + ", ".join(f"[{p.name}](plots/{p.name})" for p in sorted((folder / "plots").glob("*.png"))),
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


def plots(results: dict, folder: Path) -> list[Path]:
    """Latency distributions per stage and system; accuracy vs latency per quant."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the box or in CI
    import matplotlib.pyplot as plt

    out = folder / "plots"
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for section in ("asr", "llm"):
        systems = {k: v for k, v in (results.get(section) or {}).get("systems", {}).items() if "raw_ms" in v}
        if not systems:
            continue
        fig, ax = plt.subplots(figsize=(8, 0.6 * len(systems) + 1.5))
        ax.boxplot([v["raw_ms"] for v in systems.values()], vert=False, tick_labels=list(systems))
        ax.set_xlabel("ms per item (total)")
        ax.set_title(f"{section.upper()} latency per system")
        fig.tight_layout()
        made.append(out / f"{section}_latency.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)
        stages = sorted({s for v in systems.values() for s in v.get("raw_stages", {})})
        if stages:
            fig, ax = plt.subplots(figsize=(8, 0.5 * len(stages) * max(1, len(systems)) / 2 + 1.5))
            data, labels = [], []
            for name, v in systems.items():
                for s in stages:
                    if s in v.get("raw_stages", {}) and not s.endswith("tokens") and s != "model_steps":
                        data.append(v["raw_stages"][s])
                        labels.append(f"{name}: {s}")
            ax.boxplot(data, vert=False, tick_labels=labels)
            ax.set_xlabel("ms")
            ax.set_title(f"{section.upper()} latency per stage")
            fig.tight_layout()
            made.append(out / f"{section}_stages.png")
            fig.savefig(made[-1], dpi=100)
            plt.close(fig)
    rows = [r for r in (results.get("accuracy") or {}).values() if isinstance(r, dict) and "accuracy" in r]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in rows:
            ax.scatter(r["median_ms"], r["accuracy"] * 100)
            ax.annotate(
                f"{r['set']} {r['path']} {r['quant']}", (r["median_ms"], r["accuracy"] * 100), fontsize=7
            )
        ax.set_xlabel("median ms per sentence")
        ax.set_ylabel("exact-match accuracy %")
        ax.set_title("Intent accuracy vs latency")
        fig.tight_layout()
        made.append(out / "accuracy_vs_latency.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)
    e2e = {
        f"{m} {p}": s["raw_ms"]
        for m, ps in (results.get("e2e") or {}).items()
        if isinstance(ps, dict)
        for p, s in ps.items()
        if isinstance(s, dict) and s.get("raw_ms")
    }
    if e2e:
        fig, ax = plt.subplots(figsize=(7, 0.6 * len(e2e) + 1.5))
        ax.boxplot(list(e2e.values()), vert=False, tick_labels=list(e2e))
        ax.set_xlabel("end of speech -> action, ms")
        fig.tight_layout()
        made.append(out / "e2e_latency.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)
    return made


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
