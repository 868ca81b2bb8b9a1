"""`casavox run`, `casavox devices`, `casavox state`, `casavox serve-wyoming`."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def _overrides(args: argparse.Namespace) -> dict:
    """Command-line flags as a partial config (only the ones given)."""
    o: dict = {}
    for key in ("bundle", "home", "state", "area", "backend", "device", "asr_variant"):
        value = getattr(args, key, None)
        if value is not None:
            o[key] = value
    if getattr(args, "threads", None):
        o["threads"] = args.threads
    if getattr(args, "no_llm", False):
        o["llm"] = False
    if getattr(args, "allow_unsigned", False):
        o["allow_unsigned"] = True
    src: dict = {}
    if getattr(args, "mic", None) is not None:
        src.update(source="mic", device=args.mic)
    if getattr(args, "audio", None):
        src.update(source="wav", files=args.audio)
    if getattr(args, "stdin", False):
        src["source"] = "stdin"
    if getattr(args, "stdin_rate", None) is not None:  # 0 is checked (and refused) by the config
        src["stdin_rate"] = args.stdin_rate
    if getattr(args, "realtime", False):
        src["realtime"] = True
    if getattr(args, "front_end", None):
        src["front_end"] = args.front_end
    if src:
        o["input"] = src
    if getattr(args, "no_speculation", False):
        o["vad"] = {"speculate_ms": 0.0}
    wake: dict = {}
    if getattr(args, "wake", None):
        wake["models"] = args.wake
    if getattr(args, "wake_phrase", None):
        wake["words"] = args.wake_phrase
    if getattr(args, "wake_engine", None):
        wake["engine"] = args.wake_engine
    if wake:
        o["wake"] = wake
    if getattr(args, "confirm", None):
        o.setdefault("safety", {})["confirm"] = args.confirm
    if getattr(args, "act_early", False):
        o.setdefault("safety", {})["act_early"] = True
    if getattr(args, "say_to", None):
        o["reply"] = {"say_to": args.say_to}
    log: dict = {}
    if getattr(args, "log", None) is not None:
        log["json"] = args.log
    if getattr(args, "metrics", None):
        log["metrics_port"] = args.metrics
    if getattr(args, "quiet", False):
        log["quiet"] = True
    if log:
        o["log"] = log
    for section in ("mqtt", "hass"):
        for item in getattr(args, section, None) or []:
            key, _, value = item.partition("=")
            o.setdefault(section, {})[key] = int(value) if value.isdigit() else value
    return o


def cmd_run(args: argparse.Namespace) -> int:
    from casavox.edge_app.app import build_daemon, frames_for
    from casavox.edge_app.config import load_config

    config = load_config(args.config, _overrides(args))
    if config.input.source == "mic":  # fail before loading models when there is no microphone
        from casavox.edge_app.sources import list_devices, pick_device

        pick_device(list_devices(), config.input.device or None)
    daemon, store = build_daemon(config)
    daemon.install_signals()
    where = f" in the {config.area}" if config.area else ""
    log.info("listening (%s)%s, backend %s", config.input.source, where, config.backend)
    try:
        served = daemon.run(frames_for(config))
    finally:
        if daemon.follower is not None:
            daemon.follower.stop()
        if daemon.box is not None:
            daemon.box.close()
        daemon.backend.close()
        store.close()
    log.info("stopped after %d utterance(s); peak RSS %.0f MB", served, _peak_rss_mb())
    return 0


def _peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM; getrusage would include a parent's before exec)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_devices(_args: argparse.Namespace) -> int:
    from casavox.edge_app.sources import list_devices

    devices = list_devices()
    if not devices:
        print("no audio input devices")
    for d in devices:
        print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']} Hz)")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    from casavox.edge_app.config import load_config
    from casavox.edge_app.state_store import StateError, StateStore

    config = load_config(args.config, _overrides(args))
    if not config.state_path.exists():
        raise StateError(f"{config.state_path}: no state yet (run the daemon first)")
    store = StateStore.open(config.state_path, read_only=True)
    from casavox.edge_app.backends.sim import reported

    entities = {k: (s, reported(k.partition(".")[0], s, a)) for k, (s, a) in store.entities().items()}
    lists = {r[0]: store.items(r[0]) for r in store.read("SELECT DISTINCT list FROM list_items")}
    if args.json:
        out = {
            "entities": {k: {"state": s, "attributes": a} for k, (s, a) in entities.items()},
            "lists": {k: [{"item": i, "complete": c} for i, c in v] for k, v in lists.items()},
        }
        print(json.dumps(out, indent=2))
        return 0
    for entity_id, (state, attrs) in entities.items():
        extra = ", ".join(f"{k}={v}" for k, v in attrs.items() if k not in ("friendly_name", "device_class"))
        print(_printable(f"{entity_id:36s} {state:10s} {extra}"))
    for name, items in lists.items():
        print(_printable(f"{name}: " + ", ".join(f"{'[x]' if c else '[ ]'} {i}" for i, c in items)))
    return 0


def _printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\n``, ``\\u202e``): list
    items and states come from speech and Wyoming clients, and must not drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def cmd_handle(args: argparse.Namespace) -> int:
    """Sentences as text through one conversation turn each, acting on the configured backend."""
    from casavox.edge_app.app import build_assistant, load_home_for, load_pipeline, open_backend
    from casavox.edge_app.config import load_config
    from casavox.edge_app.state_store import StateStore

    config = load_config(args.config, _overrides(args))
    home = load_home_for(config)
    store = StateStore.open(config.state_path, config.state_lock_timeout_s)
    backend = open_backend(config, home, store)
    try:
        assistant = build_assistant(config, home, load_pipeline(config, home), backend, store)
        for text in args.text:  # a later sentence may answer an earlier one's question ("yes")
            turn = assistant.handle(text)
            print(
                json.dumps(turn.to_json(), ensure_ascii=False)
                if args.json
                else turn.reply or "(nothing to say)"
            )
    finally:
        backend.close()
        store.close()
    return 0


def cmd_serve_wyoming(args: argparse.Namespace) -> int:
    from casavox.edge_app.config import load_config
    from casavox.edge_app.wyoming_server import serve

    config = load_config(args.config, _wyoming_overrides(args, _overrides(args)))
    return serve(config, args.uri)


def _wyoming_overrides(args: argparse.Namespace, overrides: dict) -> dict:
    """serve-wyoming's flags as the ``[wyoming]`` section (``--allow`` replaces the config's list)."""
    wyoming: dict = {}
    if args.allow:
        wyoming["allow"] = list(args.allow)
    if args.no_act:
        wyoming["act"] = False
    if args.max_clients is not None:
        wyoming["max_clients"] = args.max_clients
    if args.zeroconf is not None:
        wyoming["zeroconf"] = True
        if args.zeroconf:
            wyoming["name"] = args.zeroconf
    return {**overrides, "wyoming": wyoming} if wyoming else overrides


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="casavox.toml (every setting; flags override it)")
    p.add_argument("--home", help="home YAML (Home Assistant test-fixture format)")
    p.add_argument("--state", help="SQLite state file of the simulated home (and timers, lists)")


def _unsigned_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="load a bundle not signed by a trusted key (config: allow_unsigned; hashes are still checked)",
    )


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "bundle",
        nargs="?",
        help="bundle folder (default: the config's, else $CASAVOX_BUNDLE, else ~/.local/share/casavox/bundle)",
    )
    _common(p)
    p.add_argument("--area", help="the area the box stands in")
    p.add_argument("--backend", choices=["sim", "mqtt", "hass"])
    p.add_argument("--device", help="cpu, cuda, tensorrt or auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--asr-variant", help="fp32, int8 or fp16")
    p.add_argument("--no-llm", action="store_true", help="templates only")
    _unsigned_arg(p)
    p.add_argument("--mqtt", action="append", metavar="KEY=VALUE", help="MQTT setting, e.g. host=10.0.0.2")
    p.add_argument(
        "--hass", action="append", metavar="KEY=VALUE", help="Home Assistant setting, e.g. url=..."
    )
    p.add_argument("--confirm", choices=["ask", "refuse", "allow"], help="policy for locks/doors")
    p.add_argument("--quiet", action="store_true")


def add_commands(sub) -> None:
    p = sub.add_parser("run", help="the daemon: listen, act, answer")
    _model_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--mic", nargs="?", const="", help="microphone (optionally by index or name)")
    src.add_argument("--audio", nargs="+", metavar="FILE", help="audio files, one after the other")
    src.add_argument("--stdin", action="store_true", help="raw 16-bit little-endian PCM on stdin")
    p.add_argument("--stdin-rate", type=int, help="sample rate of --stdin PCM (default 16000)")
    p.add_argument("--realtime", action="store_true", help="play --audio files at real-time speed")
    p.add_argument("--no-speculation", action="store_true", help="process only after the endpoint")
    p.add_argument("--act-early", action="store_true", help="act on a confident result before the endpoint")
    p.add_argument(
        "--wake",
        action="append",
        metavar="NAME",
        help="acoustic wake word: okay_nabu, hey_jarvis, hey_mycroft, alexa or a model file (repeatable)",
    )
    p.add_argument("--wake-engine", choices=("micro", "open"), help="wake-word engine (default micro)")
    p.add_argument(
        "--front-end",
        choices=("none", "webrtc", "speex"),
        help="noise suppression before the VAD (default: the config's input.front_end, none)",
    )
    p.add_argument(
        "--wake-phrase",
        action="append",
        metavar="PHRASE",
        help='or a phrase matched on the transcript ("hey casa")',
    )
    p.add_argument("--say-to", metavar="FILE.wav", help="write spoken replies (Piper) to this file")
    p.add_argument("--log", metavar="FILE", help='JSON lines per utterance ("-" stdout, "" off)')
    p.add_argument("--metrics", type=int, metavar="PORT", help="Prometheus endpoint on 127.0.0.1:PORT")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("handle", help="sentences as text: understand, act on the home, reply")
    p.add_argument("text", nargs="+", help='one or more sentences, e.g. "turn off the kitchen lights"')
    p.add_argument("--bundle", help="bundle folder (default as for run)")
    _common(p)
    p.add_argument("--area", help="the area the speaker is in")
    p.add_argument("--backend", choices=["sim", "mqtt", "hass"])
    p.add_argument("--no-llm", action="store_true", help="templates only")
    _unsigned_arg(p)
    p.add_argument("--confirm", choices=["ask", "refuse", "allow"], help="policy for locks/doors")
    p.add_argument("--json", action="store_true", help="one JSON turn per sentence")
    p.set_defaults(func=cmd_handle)

    p = sub.add_parser("devices", help="list audio input devices")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("state", help="print the simulated home's state")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_state)

    p = sub.add_parser("serve-wyoming", help="serve speech-to-text and intents to Home Assistant (Wyoming)")
    _model_args(p)
    p.add_argument("--uri", default="tcp://127.0.0.1:10300", help="listen address (default localhost only)")
    p.add_argument(
        "--allow",
        action="append",
        metavar="ADDRESS",
        help="only this client address or network may connect (repeatable; replaces [wyoming] allow)",
    )
    p.add_argument(
        "--no-act", action="store_true", help="speech-to-text and recognition only: never act on a transcript"
    )
    p.add_argument("--max-clients", type=int, help="connections at once (default 16)")
    p.add_argument(
        "--zeroconf",
        nargs="?",
        const="",
        metavar="NAME",
        help="advertise over mDNS (_wyoming._tcp) so Home Assistant discovers the box (default name "
        "casavox-<host>); needs a LAN bind such as --uri tcp://0.0.0.0:10300",
    )
    p.set_defaults(func=cmd_serve_wyoming)
