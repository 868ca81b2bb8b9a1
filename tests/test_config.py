"""Start-up checks: every config value in range and of its type, the metrics port free, before any
model loads; and what `casavox state` prints cannot drive the terminal. No model bundle needed."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from casavox.edge_app import cli
from casavox.edge_app.config import Config, ConfigError, bounds, load_config
from casavox.edge_app.metrics import Metrics, MetricsError
from casavox.edge_app.state_store import StateStore

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "examples" / "home.yaml"


def _load(tmp_path: Path, toml: str) -> Config:
    path = tmp_path / "casavox.toml"
    path.write_text(toml)
    return load_config(path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[safety]\nconfirm_timeout_s = inf\n",
            "safety.confirm_timeout_s must be between 0 and 600, not inf",
        ),
        ("[safety]\nconfirm_timeout_s = nan\n", "safety.confirm_timeout_s must be between"),
        ("[safety]\nconfirm_timeout_s = -1\n", "safety.confirm_timeout_s must be between 0 and 600"),
        ("[vad]\ntrailing_silence_ms = -250\n", "vad.trailing_silence_ms must be between 32 and 10000"),
        ("[vad]\nmin_speech_ms = -1.5\n", "vad.min_speech_ms must be between 0 and 5000, not -1.5"),
        ("[vad]\nmax_utterance_s = 0\n", "vad.max_utterance_s must be between 1 and 30"),
        ("[vad]\nthreshold = 1.5\n", "vad.threshold must be between 0.01 and 0.99"),
        ("[vad]\nthreshold = 0.3\nneg_threshold = 0.6\n", "vad.neg_threshold must be at most vad.threshold"),
        ("[mqtt]\nport = 99999\n", "mqtt.port must be between 1 and 65535, not 99999"),
        ("[mqtt]\nport = 0\n", "mqtt.port must be between 1 and 65535, not 0"),
        ("[mqtt]\nport = 1883.5\n", "mqtt.port must be a whole number, not 1883.5"),
        ("[mqtt]\nack_timeout_s = 0\n", "mqtt.ack_timeout_s must be between 0.1 and 60"),
        ("[hass]\ntimeout_s = -3\n", "hass.timeout_s must be between 0.1 and 120"),
        ("[log]\nmetrics_port = 70000\n", "log.metrics_port must be between 0 and 65535 (0 = off)"),
        ("[input]\nstdin_channels = 0\n", "input.stdin_channels must be between 1 and 8, not 0"),
        ("[input]\nstdin_rate = 1\n", "input.stdin_rate must be between 8000 and 192000, not 1"),
        ("[input]\nstdin_rate = -16000\n", "input.stdin_rate must be between 8000 and 192000"),
        ("[wake]\npush_to_talk_s = 1e9\n", "wake.push_to_talk_s must be between 0 and 600"),
        ("threads = -2\n", "threads must be between 0 and 1024"),
        ("state_lock_timeout_s = inf\n", "state_lock_timeout_s must be between 0 and 60"),
        ("[wake]\nwords = [1]\n", "wake.words[0] must be a non-empty string, not 1"),
        ("[wake]\nwords = ['hey casa', ' ']\n", "wake.words[1] must be a non-empty string, not ' '"),
        ("[input]\nfiles = [['a.wav']]\n", "input.files[0] must be a non-empty string"),
    ],
)
def test_out_of_range_and_wrong_element_types_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_values_at_the_bounds_and_usual_values_load(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "threads = 4\n[input]\nstdin_rate = 22050\n[vad]\nspeculate_ms = 0\nmax_utterance_s = 30\n"
        "[safety]\nconfirm_timeout_s = 0\n[mqtt]\nport = 65535\n[log]\nmetrics_port = 0\n"
        "[wake]\nwords = ['hey casa', 'ok house']\n",
    )
    assert config.input.stdin_rate == 22050 and config.mqtt.port == 65535
    assert config.wake.words == ("hey casa", "ok house")
    assert config.vad.max_utterance_s == 30.0 and isinstance(config.vad.speculate_ms, float)


def _numeric_fields(cls: type, where: str = ""):
    for f in dataclasses.fields(cls):
        default = getattr(cls(), f.name)
        if dataclasses.is_dataclass(default):
            yield from _numeric_fields(type(default), f"{where}{f.name}.")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            yield cls, f, where + f.name


def test_every_number_has_a_range_that_holds_its_default() -> None:
    for cls, f, key in _numeric_fields(Config):
        limits = bounds(cls, f)
        assert limits is not None, f"{key} has no range"
        assert limits[0] <= getattr(cls(), f.name) <= limits[1], key


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_metrics_port_in_use_is_one_line() -> None:
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(MetricsError, match=f"metrics port {port} on 127.0.0.1: in use"):
            Metrics().serve(port)


def test_run_checks_the_metrics_port_before_loading_models(tmp_path: Path, capsys) -> None:
    # The bundle does not exist: with the check after the models load, the error would be about it.
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        argv = [
            "run",
            str(tmp_path / "no-bundle"),
            "--home",
            str(HOME),
            "--state",
            str(tmp_path / "s.sqlite"),
        ]
        code = cli.main([*argv, "--stdin", "--metrics", str(port)])
    err = capsys.readouterr().err
    assert code != 0
    assert (
        err.strip()
        == f"casavox: error: metrics port {port} on 127.0.0.1: in use (log.metrics_port / --metrics)"
    )


@pytest.mark.parametrize("rate", ["1", "0", "-16000"])
def test_stdin_rate_flag_is_range_checked_at_start(tmp_path: Path, capsys, rate: str) -> None:
    argv = ["run", str(tmp_path / "no-bundle"), "--home", str(HOME), "--state", str(tmp_path / "s.sqlite")]
    code = cli.main([*argv, "--stdin", "--stdin-rate", rate])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith(f"casavox: error: input.stdin_rate must be between 8000 and 192000, not {rate}")


def test_state_escapes_terminal_control_characters(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore.open(path)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO entities(entity_id, state, attributes) VALUES (?, ?, ?)",
            ("light.x", "on\x1b[2J", '{"note": "a\\nFAKE LOG LINE"}'),
        )
        conn.execute("INSERT INTO list_items(list, item) VALUES (?, ?)", ("shopping", "milk\x1b]0;pwned\x07"))
    store.close()
    assert cli.main(["state", "--state", str(path), "--home", str(HOME)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "on\\x1b[2J" in out and "milk\\x1b]0;pwned\\x07" in out
    assert "note=a\\nFAKE LOG LINE" in out and len(out.splitlines()) == 2


def test_an_unknown_wake_word_is_one_line_before_the_models_load(tmp_path: Path, capsys) -> None:
    argv = ["run", str(tmp_path / "no-bundle"), "--home", str(HOME), "--state", str(tmp_path / "s.sqlite")]
    assert cli.main([*argv, "--stdin", "--wake", "hey_casa"]) != 0
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("casavox: error: wake word 'hey_casa': not a model file and not one of")
        and "\n" not in err
    )
    assert not (tmp_path / "s.sqlite").exists()  # nothing was opened


def test_wake_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[wake]\nengine = 'snowboy'\n")
    with pytest.raises(ConfigError, match="wake.engine must be micro or open"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text("[wake]\nmodels = ['okay_nabu']\nfollow_s = 0\n")
    with pytest.raises(ConfigError, match="wake.follow_s must be between 0.5 and 30"):
        load_config(tmp_path / "c.toml")
