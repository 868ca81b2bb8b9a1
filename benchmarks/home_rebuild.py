"""What a change in Home Assistant costs casavox: the home rebuilt from a registry snapshot, then the
templates' slot lists, the LLM's grammar and the ASR bias rebuilt for it (SpeechPipeline.use_home).

    python -m benchmarks.home_rebuild [--bundle bundles/default] [--entities 1000] [--repeat 3]

The snapshot is synthetic, shaped as Home Assistant's websocket API returns it (40 areas on 3 floors,
lights, switches, fans, covers, sensors, locks in turn, every tenth entity not exposed), so the cost
of the follower's ``on_change`` can be measured for a home of any size without a Home Assistant.
Prints one JSON object: the median milliseconds of each step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from casavox.edge_app.backends.hass_home import home_from_registry, what_matters

DOMAINS = ("light", "switch", "fan", "cover", "sensor", "lock", "media_player", "climate")


def snapshot(n: int) -> dict:
    floors = [{"floor_id": f"f{i}", "name": f"Level {i}", "aliases": []} for i in range(3)]
    areas = [
        {"area_id": f"a{i}", "name": f"Room {i}", "aliases": [], "floor_id": f"f{i % 3}"} for i in range(40)
    ]
    states, entities, exposed = [], {}, {}
    for i in range(n):
        domain = DOMAINS[i % len(DOMAINS)]
        entity_id = f"{domain}.thing_{i}"
        attributes = {"friendly_name": f"Thing {i} {domain.replace('_', ' ')}"}
        if domain == "cover":
            attributes["device_class"] = "blind"
        states.append({"entity_id": entity_id, "state": "off", "attributes": attributes})
        entities[entity_id] = {"area_id": f"a{i % 40}", "aliases": [], "device_id": None}
        if i % 10:
            exposed[entity_id] = {"conversation": True}
    return {"floors": floors, "areas": areas, "devices": [], "states": states, "entities": entities,
            "exposed": exposed}  # fmt: skip


def _ms(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 1), out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="also rebuild the LLM's grammar and the ASR bias (a bundle with both)")
    p.add_argument("--entities", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.templates import load_language_intents

    snap = snapshot(args.entities)
    intents = load_language_intents()
    out = {"entities": args.entities, "repeat": args.repeat}
    out["home_ms"], home = _ms(lambda: home_from_registry(snap), args.repeat)
    out["digest_ms"], _ = _ms(lambda: what_matters(home), args.repeat)
    out["templates_ms"], _ = _ms(lambda: IntentEngine.build(home, None, intents), args.repeat)
    if args.bundle:
        from casavox.edge_app.pipeline import SpeechPipeline

        pipeline = SpeechPipeline.load(args.bundle, home)
        out["pipeline_use_home_ms"], _ = _ms(lambda: pipeline.use_home(home), args.repeat)
    out["exposed"] = len(home.exposed)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
