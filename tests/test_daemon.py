"""The daemon end to end: synthesized speech in, real models, real SQLite / broker, replies out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from casavox.edge_app.config import load_config
from casavox.edge_app.sources import WavSource, frames_of
from casavox.runtime.audio.io import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "examples" / "home.yaml"


def noise(seconds: float, level: float = 0.003, seed: int = 0) -> np.ndarray:
    """Background hiss: low-level noise the VAD must ignore and ASR must tolerate."""
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(
        np.float32
    )


def stream(say, *parts, level: float = 0.003) -> np.ndarray:
    """Sentences (str) and pauses (seconds), with noise mixed under everything."""
    audio = np.concatenate(
        [say(p) if isinstance(p, str) else np.zeros(int(p * SAMPLE_RATE), np.float32) for p in parts]
    )
    return audio + np.resize(noise(len(audio) / SAMPLE_RATE + 0.01, level), len(audio))


def states(store) -> dict[str, str]:
    return {k: v[0] for k, v in store.entities().items()}


def test_commands_with_pauses_and_noise_change_the_simulated_home(make, say) -> None:
    daemon, store = make()
    before = states(store)
    audio = stream(
        say, 0.6, "Turn off the lights in the kitchen.", 1.0, "Set the bedroom lamp brightness to 50%.", 1.2,
        "Put some light on in the office.", 0.8, "Close the living room blinds.", 1.0,
    )  # fmt: skip
    assert daemon.run(frames_of(audio)) == 4
    after = states(store)
    assert before["light.kitchen_ceiling"] == "on" and after["light.kitchen_ceiling"] == "off"
    assert after["light.kitchen_counter"] == "off"
    assert store.entity("light.bedroom_lamp") == ("on", {"brightness": 128})
    assert after["light.desk_lamp"] == "on" and after["light.office_ceiling"] == "on"  # the LLM path
    assert after["cover.living_room_blinds"] == "closed"
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {
        "light.kitchen_ceiling", "light.kitchen_counter", "light.bedroom_lamp", "light.desk_lamp",
        "light.office_ceiling", "cover.living_room_blinds",
    }  # fmt: skip
    sources = [r["intent"]["source"] for r in daemon.records]
    assert sources == ["template", "template", "llm", "template"]
    assert all(r["speculative"] == "hit" for r in daemon.records)
    assert all(r["delivered"] and r["outcome"] == "acted" for r in daemon.records)
    for key in ("vad_tail_ms", "asr_ms", "intent_ms", "action_ms", "eos_to_action_ms"):
        assert all(key in r["timings_ms"] for r in daemon.records), key


def test_speculation_gives_the_same_results_as_waiting(make, say) -> None:
    audio = stream(say, 0.5, "Turn on the ceiling fan.", 1.0, "Switch on the coffee maker.", 1.0)
    on, _ = make()
    on.run(frames_of(audio))
    off, _ = make(vad={"speculate_ms": 0}, state=str(Path(on.timers.store.path).with_name("other.sqlite")))
    off.run(frames_of(audio))
    assert [r["speculative"] for r in on.records] == ["hit", "hit"]
    assert [r["speculative"] for r in off.records] == ["off", "off"]

    # the same intents (the transcript may differ in punctuation: more trailing silence was heard)
    def intents(records):
        return [(r["intent"]["name"], r["intent"]["slots"]) for r in records]

    assert (
        intents(on.records)
        == intents(off.records)
        == [
            ("HassTurnOn", {"name": "Ceiling Fan"}),
            ("HassTurnOn", {"name": "Coffee Maker"}),
        ]
    )


def test_locks_and_garage_doors_need_a_spoken_yes(make, say) -> None:
    daemon, store = make()
    daemon.run(frames_of(stream(say, 0.5, "Open the garage door.", 1.0)))
    assert daemon.records[-1]["outcome"] == "asked" and "Are you sure" in daemon.records[-1]["reply"]
    assert states(store)["cover.garage_door"] == "closed"  # nothing happens before the yes
    daemon.run(frames_of(stream(say, 0.5, "No.", 1.0)))
    assert daemon.records[-1]["outcome"] == "cancelled" and states(store)["cover.garage_door"] == "closed"
    daemon.run(frames_of(stream(say, 0.5, "Open the garage door.", 1.0, "Yes.", 1.0)))
    assert daemon.records[-1]["outcome"] == "confirmed" and states(store)["cover.garage_door"] == "open"


def test_while_a_question_is_pending_only_its_answer_skips_the_wake_word(make, say) -> None:
    daemon, store = make(wake={"words": ["hey casa"]})
    audio = stream(
        say, 0.5, "Hey casa open the garage door.", 1.0, "Turn on the coffee maker.", 1.0, "Yes.", 1.0
    )
    daemon.run(frames_of(audio))
    assert [r["outcome"] for r in daemon.records] == ["asked", "no_wake_word", "confirmed"], [
        (r["heard"], r["outcome"]) for r in daemon.records
    ]
    assert states(store)["switch.coffee_maker"] == "off"  # a command needs the wake word, question or not
    assert states(store)["cover.garage_door"] == "open"


def test_a_yes_already_under_way_when_the_question_was_asked_does_not_count(make, say) -> None:
    """The confirmation window opens when the question has been delivered: speech that began before
    that (in the source's own samples) is no answer to it."""
    daemon, store = make()
    daemon.run(frames_of(stream(say, 0.5, "Open the garage door.", 1.0)))
    assert daemon.records[-1]["outcome"] == "asked"
    asked_at = daemon._question_at
    assert asked_at > 0
    yes = stream(say, 0.2, "Yes.", 0.3)
    early = daemon.understand(yes, start=asked_at - 1)
    assert early.skipped == "answer before the question" and daemon.respond(early) is None
    assert states(store)["cover.garage_door"] == "closed" and daemon.assistant.awaiting_answer()
    later = daemon.understand(yes, start=asked_at)
    assert later.skipped == "answer" and daemon.respond(later).outcome == "confirmed"
    assert states(store)["cover.garage_door"] == "open"


def test_confirmation_times_out_and_refuse_policy(make, say) -> None:
    daemon, store = make(safety={"confirm_timeout_s": 0.0})
    daemon.run(frames_of(stream(say, 0.5, "Open the garage door.", 1.0, "Yes.", 1.0)))
    assert states(store)["cover.garage_door"] == "closed"  # the yes came too late
    refusing, store2 = make(safety={"confirm": "refuse"}, state=str(Path(store.path).with_name("r.sqlite")))
    refusing.run(frames_of(stream(say, 0.5, "Open the garage door.", 1.0)))
    assert refusing.records[-1]["outcome"] == "refused" and states(store2)["cover.garage_door"] == "closed"


def test_wake_word_and_push_to_talk(make, say) -> None:
    daemon, store = make(wake={"words": ["hey casa"]})
    daemon.run(frames_of(stream(say, 0.5, "Turn on the desk lamp.", 1.0)))
    assert daemon.records[-1]["outcome"] == "no_wake_word" and states(store)["light.desk_lamp"] == "off"
    daemon.run(frames_of(stream(say, 0.5, "Hey casa, turn on the desk lamp.", 1.0)))
    assert daemon.records[-1]["outcome"] == "acted" and states(store)["light.desk_lamp"] == "on"
    daemon.armed_until = time.monotonic() + 30  # what SIGUSR1 does
    daemon.run(frames_of(stream(say, 0.5, "Turn on the ceiling fan.", 1.0)))
    assert states(store)["fan.ceiling_fan"] == "on"


def test_bad_files_are_skipped_and_the_next_one_is_served(make, say, tmp_path) -> None:
    import soundfile

    daemon, store = make()
    good = tmp_path / "good.wav"
    soundfile.write(good, say("Turn on the ceiling fan."), SAMPLE_RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + os.urandom(200))
    errors = []
    source = WavSource([corrupt, tmp_path / "missing.wav", good], on_error=errors.append)
    assert daemon.run(source) == 1
    assert len(errors) == 2 and "corrupt.wav" in errors[0] and "no such file" in errors[1]
    assert states(store)["fan.ceiling_fan"] == "on"


def test_each_record_names_the_file_and_offset_it_came_from(make, say, tmp_path) -> None:
    """So a log line can be matched to its audio: the file, and where in it the utterance's audio
    (with the VAD's 320-ms pre-roll) begins."""
    import soundfile

    daemon, _ = make()
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    soundfile.write(first, stream(say, 0.5, "Turn on the ceiling fan.", 0.5), SAMPLE_RATE)
    soundfile.write(
        second, stream(say, 2.0, "Turn off the ceiling fan.", 0.6, "Turn on the desk lamp.", 0.5), SAMPLE_RATE
    )
    assert daemon.run(WavSource([first, second])) == 3
    where = [r["source"] for r in daemon.records]
    assert [w["file"] for w in where] == [str(first), str(second), str(second)]
    assert abs(where[0]["offset_s"] - (0.5 - 0.32)) <= 0.15, where
    assert abs(where[1]["offset_s"] - (2.0 - 0.32)) <= 0.15, where
    assert where[2]["offset_s"] > where[1]["offset_s"] + 1.0, where


def test_endless_speech_is_cut_and_the_next_command_is_served(make, say) -> None:
    daemon, store = make(vad={"max_utterance_s": 4.0})
    babble = np.concatenate(
        [say("and the lights and the fan and the music and the blinds and the heating")] * 3
    )
    audio = np.concatenate(
        [babble, np.zeros(SAMPLE_RATE, np.float32), stream(say, "Turn on the ceiling fan.", 1.0)]
    )
    daemon.run(frames_of(audio))
    assert daemon.records[0]["end"] == "max_length"
    assert daemon.records[-1]["outcome"] == "acted" and states(store)["fan.ceiling_fan"] == "on"


def test_mqtt_backend_end_to_end_and_broker_down(make, say, tmp_path) -> None:
    from tests.broker import Broker, Recorder

    broker = Broker(tmp_path).start()
    try:
        rec = Recorder(broker.port)
        daemon, _ = make(backend="mqtt", mqtt={"port": broker.port})
        daemon.run(frames_of(stream(say, 0.5, "Turn off the lights in the kitchen.", 1.0)))
        got = rec.wait_for(2)
        assert sorted(got) == [
            ("casavox/light/kitchen_ceiling/set", '{"state": "OFF"}'),
            ("casavox/light/kitchen_counter/set", '{"state": "OFF"}'),
        ]
        broker.stop()
        time.sleep(0.3)
        daemon.run(
            frames_of(stream(say, 0.5, "Switch on the coffee maker.", 1.0, "Turn on the ceiling fan.", 1.0))
        )
        assert [r["outcome"] for r in daemon.records[-2:]] == ["failed", "failed"]
        assert "unreachable" in daemon.records[-1]["reply"]  # told, and still listening
        rec.close()
    finally:
        broker.stop()


def test_metrics_endpoint(make, say) -> None:
    from tests.broker import free_port

    port = free_port()
    daemon, _ = make(log={"json": "", "quiet": True, "metrics_port": port})
    daemon.run(frames_of(stream(say, 0.5, "Turn on the ceiling fan.", 1.0)))
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'casavox_utterances_total{outcome="acted"} 1.0' in text
    assert 'casavox_stage_seconds_count{stage="asr"} 1.0' in text


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def test_cli_stdin_at_another_rate_json_log_and_say_to(full_bundle, say, tmp_path) -> None:
    import soundfile
    import soxr

    audio = stream(say, 0.5, "Turn on the ceiling fan.", 1.0, "Put milk on my shopping list.", 1.0, level=0.0)
    pcm = _pcm(soxr.resample(audio, SAMPLE_RATE, 22050))
    reply = tmp_path / "reply.wav"
    cmd = [
        sys.executable, "-m", "casavox.edge_app.cli", "run", str(full_bundle), "--home", str(HOME),
        "--state", str(tmp_path / "s.sqlite"), "--stdin", "--stdin-rate", "22050", "--say-to", str(reply),
    ]  # fmt: skip
    proc = subprocess.run(cmd, input=pcm, capture_output=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["intent"]["name"] for r in lines] == ["HassTurnOn", "HassShoppingListAddItem"]
    assert "Turned on Ceiling Fan" in proc.stderr.decode()
    data, rate = soundfile.read(reply)
    assert rate == 22050 and len(data) > rate // 2  # "Added milk", spoken
    state = subprocess.run(
        [sys.executable, "-m", "casavox.edge_app.cli", "state", "--state", str(tmp_path / "s.sqlite"), "--json"],
        capture_output=True, timeout=60, cwd=ROOT, check=True,
    )  # fmt: skip
    out = json.loads(state.stdout)
    assert out["entities"]["fan.ceiling_fan"]["state"] == "on"
    assert out["lists"]["shopping_list"] == [{"item": "milk", "complete": False}]


def test_sigterm_during_an_utterance_exits_cleanly_and_keeps_state(full_bundle, say, tmp_path) -> None:
    cmd = [
        sys.executable, "-m", "casavox.edge_app.cli", "run", str(full_bundle), "--home", str(HOME),
        "--state", str(tmp_path / "s.sqlite"), "--stdin",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    proc.stdin.write(_pcm(stream(say, 0.5, "Turn on the ceiling fan.", 1.0)))
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    first = proc.stdout.readline()  # the first command's log line: it was acted on
    assert json.loads(first)["outcome"] == "acted" and time.monotonic() < deadline
    proc.stdin.write(_pcm(say("Switch on the coffee")))  # mid-utterance, no endpoint yet
    proc.stdin.flush()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert rest.strip() == b""  # the unfinished utterance was dropped, not half-done
    import sqlite3

    conn = sqlite3.connect(tmp_path / "s.sqlite")
    rows = dict(conn.execute("SELECT entity_id, state FROM entities").fetchall())
    assert rows["fan.ceiling_fan"] == "on" and rows["switch.coffee_maker"] == "off"
    conn.close()


def test_config_file_and_flags(tmp_path) -> None:
    from casavox.edge_app.config import ConfigError

    toml = tmp_path / "casavox.toml"
    toml.write_text(
        'backend = "mqtt"\narea = "Kitchen"\n[mqtt]\nport = 1999\n[vad]\ntrailing_silence_ms = 400\n'
    )
    config = load_config(toml, {"mqtt": {"host": "10.0.0.2"}})
    assert (config.backend, config.area, config.mqtt.port, config.mqtt.host) == (
        "mqtt",
        "Kitchen",
        1999,
        "10.0.0.2",
    )
    assert config.vad.trailing_silence_ms == 400.0
    toml.write_text("[safety]\nconfirm_policy = 'allow'\n")
    with pytest.raises(ConfigError, match="safety.confirm_policy"):
        load_config(toml)
    toml.write_text("[safety]\nconfirm = 'sometimes'\n")
    with pytest.raises(ConfigError, match="ask, refuse or allow"):
        load_config(toml)
    toml.write_text("backend = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(toml)


def test_the_example_config_documents_the_defaults() -> None:
    assert load_config(ROOT / "examples" / "casavox.toml") == load_config(None)


def test_espeak_voice_from_wav_files_and_on_the_broker(make, tmp_path) -> None:
    """The second synthetic voice (Debian's espeak-ng) at its own rate, with noise, via WAV files."""
    import soundfile

    from casavox.runtime.tts import espeak_say
    from tests.broker import Broker, Recorder

    files = []
    for i, text in enumerate(
        ["Turn on the ceiling fan.", "Close the living room blinds.", "Switch on the coffee maker."]
    ):
        speech = espeak_say(text)
        hiss = np.random.default_rng(i).standard_normal(len(speech.audio)).astype(np.float32) * 0.003
        audio = speech.audio + hiss
        files.append(tmp_path / f"{i}.wav")
        soundfile.write(files[-1], audio, speech.sample_rate)  # 22.05 kHz: resampled by the source
    daemon, store = make()
    assert daemon.run(WavSource(files)) == 3
    after = states(store)
    assert (after["fan.ceiling_fan"], after["cover.living_room_blinds"], after["switch.coffee_maker"]) == (
        "on",
        "closed",
        "on",
    )
    broker = Broker(tmp_path).start()
    try:
        rec = Recorder(broker.port)
        mqtt_daemon, _ = make(backend="mqtt", mqtt={"port": broker.port}, state=str(tmp_path / "m.sqlite"))
        mqtt_daemon.run(WavSource(files))
        assert rec.wait_for(3) == [
            ("casavox/fan/ceiling_fan/set", "ON"),
            ("casavox/cover/living_room_blinds/set", "CLOSE"),
            ("casavox/switch/coffee_maker/set", "ON"),
        ]
        rec.close()
    finally:
        broker.stop()


def test_microphone_path_against_the_real_portaudio(full_bundle, tmp_path) -> None:
    """PortAudio is real here; this machine has no sound card, so the error path is what runs."""
    pytest.importorskip("pyaudio")
    from casavox.edge_app.sources import InputError, list_devices, pick_device

    devices = list_devices()
    if devices:
        pytest.skip(f"this machine has audio inputs ({devices[0]['name']}); the no-device path cannot run")
    with pytest.raises(InputError, match="no audio input device"):
        pick_device(devices, None)
    with pytest.raises(InputError, match="matches none of: 0: USB Mic"):
        pick_device([{"index": 0, "name": "USB Mic", "channels": 1, "rate": 48000}], "Blue Yeti")
    assert pick_device([{"index": 3, "name": "USB Mic", "channels": 1, "rate": 48000}], "usb")["index"] == 3
    out = subprocess.run(
        [sys.executable, "-m", "casavox.edge_app.cli", "devices"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "no audio input devices"
    run = subprocess.run(
        [sys.executable, "-m", "casavox.edge_app.cli", "run", str(full_bundle), "--home", str(HOME), "--state", str(tmp_path / "s.sqlite"), "--mic"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and "no audio input device found" in run.stderr
    assert "ALSA lib" not in run.stderr  # PortAudio's probing noise is muted


def test_an_acoustic_wake_word_gates_the_rest(make, say) -> None:
    """Before "Okay Nabu" nothing is transcribed; then the command is the rest of the same breath,
    or the next utterance when the wake word was said alone."""
    daemon, store = make(wake={"models": ["okay_nabu"]})
    audio = stream(
        say, 0.8, "Switch on the desk lamp.", 1.0, "Okay Nabu, switch on the desk lamp.", 1.0,
        "Okay Nabu.", 0.8, "Switch on the ceiling fan.", 1.0, "Switch on the coffee maker.", 1.0,
    )  # fmt: skip
    daemon.run(frames_of(audio))
    got = [(r["outcome"], r["heard"]) for r in daemon.records]
    first = daemon.records[0]
    assert first["outcome"] == "no_wake_word" and first["heard"] == "", got
    assert "asr_ms" not in first["timings_ms"], got  # Whisper never ran on it
    acted = [r for r in daemon.records if r["outcome"] == "acted"]
    assert [r["intent"]["slots"].get("name") for r in acted] == ["Desk Lamp", "Ceiling Fan"], got
    assert daemon.records[-1]["outcome"] == "no_wake_word", got  # the window after the wake word closed
    after = states(store)
    assert after["light.desk_lamp"] == "on" and after["fan.ceiling_fan"] == "on"
    assert after["switch.coffee_maker"] == "off"


def test_with_an_acoustic_wake_word_a_pending_question_takes_only_its_answer(make, say) -> None:
    daemon, store = make(wake={"models": ["okay_nabu"]})
    audio = stream(
        say, 0.8, "Okay Nabu, open the garage door.", 1.0, "Turn on the coffee maker.", 1.0, "Yes.", 1.0
    )
    daemon.run(frames_of(audio))
    said = [r["outcome"] for r in daemon.records if r["outcome"] != "wake_word_only"]  # a pause after it
    assert said == ["asked", "no_wake_word", "confirmed"], [
        (r["heard"], r["outcome"]) for r in daemon.records
    ]
    assert states(store)["switch.coffee_maker"] == "off" and states(store)["cover.garage_door"] == "open"


def test_a_ringing_timer_is_stopped_by_stop_without_the_wake_word(make, say, caplog) -> None:
    import logging

    daemon, store = make(wake={"models": ["okay_nabu"]}, reply={"ring_every_s": 1.0})
    daemon.assistant.timers.start(0.0, name="pasta")
    with caplog.at_level(logging.INFO, logger="casavox.edge_app.daemon"):
        daemon.run(frames_of(stream(say, 3.2, "Turn on the desk lamp please.", 1.0, "Stop.", 1.0, 3.0)))
    rings = [r for r in caplog.messages if r == "reply: pasta timer done"]
    outcomes = [r["outcome"] for r in daemon.records]
    assert outcomes == ["no_wake_word", "stopped"], outcomes  # only "stop" skips the wake word
    assert len(rings) >= 3, rings  # it rang again and again until told to stop...
    after = caplog.messages[caplog.messages.index("stopped the timer") :]
    assert "reply: pasta timer done" not in after  # ...and never after
    assert states(store)["light.desk_lamp"] == "off"


def test_stop_while_a_reply_plays_and_not_after(make, say, tmp_path) -> None:
    daemon, store = make(wake={"models": ["okay_nabu"]}, reply={"say_to": str(tmp_path / "reply.wav")})
    audio = stream(say, 0.8, "Okay Nabu, switch on the desk lamp.", 0.4, "Stop.", 4.0, "Stop.", 1.0)
    daemon.run(frames_of(audio))
    outcomes = [r["outcome"] for r in daemon.records if r["outcome"] != "wake_word_only"]
    assert outcomes == ["acted", "stopped", "no_wake_word"], [
        (r["heard"], r["outcome"]) for r in daemon.records
    ]
    assert (tmp_path / "reply.wav").stat().st_size > 1000 and states(store)["light.desk_lamp"] == "on"
