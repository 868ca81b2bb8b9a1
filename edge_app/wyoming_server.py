"""`casavox serve-wyoming`: casavox as Home Assistant's speech-to-text, intent and handle service.

Home Assistant's Wyoming integration connects, asks ``describe`` and then sends either audio
(``transcribe`` + ``audio-start/chunk/stop`` -> ``transcript``), text to recognize (``recognize``
-> ``intent``, or ``intents-start`` / ``intent``... / ``intents-stop`` for a sentence with several
commands, or ``not-recognized``), or a transcript to handle (``transcript`` -> ``handled`` /
``not-handled``: we act on the configured backend and reply; this is what Home Assistant's Wyoming
conversation agent sends). A transcript that names its conversation (``context.conversation_id``,
which Home Assistant always sends) may be answered with a question: a lock or garage door is then
confirmed by the next turn of the same conversation ("yes"); one that names none is refused, with
that reply, as a channel that cannot ask back. Binds to 127.0.0.1 unless told otherwise: the box's
models are not a public service. Model calls are serialized by the pipeline's lock and run off the
event loop, so several clients can be connected.

Transcripts are not streamed (``supports_transcript_streaming`` is false): Whisper decodes the whole
utterance once, at ``audio-stop``, so ``transcript-chunk`` events would arrive together with the whole
transcript and tell the client nothing sooner.

The Wyoming protocol has no authentication, so the server defends itself: every event is read
with bounded sizes and validated (a malformed one is answered with an ``error`` event and, where
its framing is intact, the connection stays usable); each audio chunk, each utterance and the
number of connections are capped; an allow-list of client addresses and a mode that never acts
(``act = False``: speech-to-text and recognition only) are for a server bound to the LAN.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlparse

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
)
from wyoming.intent import Entity as WyEntity
from wyoming.intent import Intent as WyIntent
from wyoming.intent import IntentsStart, IntentsStop, NotRecognized
from wyoming.server import AsyncEventHandler, AsyncServer

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.pipeline import SpeechPipeline
from casavox.errors import CasavoxError
from casavox.runtime.audio.io import SAMPLE_RATE

log = logging.getLogger(__name__)

MAX_AUDIO_S = 30.0  # per utterance: a client that never sends audio-stop cannot make us buffer forever
MAX_PAYLOAD_BYTES = 1 << 20  # per event: Home Assistant sends ~2 KB chunks; 1 MiB is 30 s of 16 kHz mono
MAX_DATA_BYTES = 256 << 10  # an event's JSON data
MAX_TEXT_CHARS = 1000  # a command to recognize or handle
MAX_CONVERSATION_CHARS = 200  # a conversation id (Home Assistant's are 26-character ULIDs)
MAX_CLIENTS = 16  # connections at once
LINGER_S = 1.0  # at hang-up, how long the client's last bytes are read and dropped
RATES = (8_000, 192_000)  # accepted sample rates, inclusive
WIDTHS = (1, 2, 3, 4)  # bytes per sample audioop can convert
MAX_CHANNELS = 8
ACTING_OFF = "acting is off on this server"
ATTRIBUTION = Attribution(name="casavox", url="https://github.com/casavox/casavox")


class WyomingError(CasavoxError, ValueError):
    """A Wyoming server setting that cannot be used (an allow-list entry that is not an address)."""


class BadEvent(CasavoxError, ValueError):
    """An event the server refuses; answered with an ``error`` event carrying this one line.

    ``fatal``: the event's framing cannot be trusted (its lengths are unknown or too large), so
    the connection is closed after the answer; otherwise the next event is served.
    """

    def __init__(self, text: str, code: str = "bad-event", fatal: bool = False) -> None:
        super().__init__(text)
        self.code = code
        self.fatal = fatal


def describe(version: str = "0.1.0", act: bool = True) -> Info:
    """What the server offers; without acting (``act=False``) there is no handle program."""
    languages = ["en"]
    handle = [
        HandleProgram(
            name="casavox-handle",
            attribution=ATTRIBUTION,
            installed=True,
            description="Recognize and act on the configured backend",
            version=version,
            models=[HandleModel("casavox-handle", ATTRIBUTION, True, None, version, languages)],
            supports_home_control=True,  # handling acts on the home (through the configured backend)
        )
    ]
    return Info(
        asr=[
            AsrProgram(
                name="casavox-whisper",
                attribution=ATTRIBUTION,
                installed=True,
                description="Whisper tiny.en on onnxruntime, biased towards the home's names",
                version=version,
                models=[
                    AsrModel(
                        "whisper-tiny.en", ATTRIBUTION, True, "Whisper tiny.en (ONNX)", version, languages
                    )
                ],
                supports_transcript_streaming=False,  # one decode at audio-stop (module docstring)
            )
        ],
        intent=[
            IntentProgram(
                name="casavox-intents",
                attribution=ATTRIBUTION,
                installed=True,
                description="Home Assistant templates, then a fine-tuned LLM constrained to the home",
                version=version,
                models=[IntentModel("casavox-intents", ATTRIBUTION, True, None, version, languages)],
            )
        ],
        handle=handle if act else [],
    )


# ---- who may connect ---------------------------------------------------------------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(entries: Iterable[object]) -> tuple[Network, ...]:
    """Client addresses or networks (``192.168.1.10``, ``192.168.1.0/24``, ``::1``) allowed to connect."""
    networks = []
    for entry in entries:
        if not isinstance(entry, str):
            raise WyomingError(f"wyoming.allow: {entry!r} is not an address")
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise WyomingError(f"wyoming.allow: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def _peer_address(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP address from asyncio's ``peername``; None for a Unix socket or stdio."""
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def peer_allowed(peer: object, allow: tuple[Network, ...]) -> bool:
    """Whether a client may connect: always without an allow-list, and over a local socket
    (file permissions guard those); else only from an address the list names."""
    if not allow:
        return True
    address = _peer_address(peer)
    if address is None:
        return not (isinstance(peer, tuple) and peer)  # an address we cannot parse is refused
    return any(address.version == net.version and address in net for net in allow)


def exposure_warning(uri: str, allow: tuple[Network, ...] = (), act: bool = True) -> str | None:
    """The one-line warning for a TCP bind other than loopback (None when loopback or local)."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp":
        return None
    host = parsed.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to the LAN
    who = "the allowed clients" if allow else "anyone on the network"
    what = "use speech-to-text and recognition" if not act else "operate the home"
    hints = [h for h, needed in (("--allow ADDRESS", not allow), ("--no-act", act)) if needed]
    hint = f" (restrict with {' or '.join(hints)})" if hints else ""
    return (
        f"Wyoming server on {uri} is not loopback-only and the protocol has no authentication: "
        f"{who} can {what}{hint}"
    )


@dataclass
class Services:
    """What every connection shares: the speech models, the one conversation turn, and the
    server's policy (who may connect, how many at once, whether transcripts are acted on)."""

    pipeline: SpeechPipeline | None
    assistant: Assistant
    allow: tuple[Network, ...] = ()
    act: bool = True
    max_clients: int = MAX_CLIENTS
    clients: int = field(default=0, init=False)  # touched only on the event loop: no lock

    @property
    def area(self) -> str | None:
        return self.assistant.area


# ---- reading and validating events ---------------------------------------------------------
def _length(header: dict, key: str, limit: int) -> int:
    """A declared length; bad or over ``limit`` is fatal (the stream cannot be resynchronized)."""
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadEvent(f"{key} must be a whole number of bytes, not {value!r}", fatal=True)
    if value > limit:
        raise BadEvent(f"{key} {value} is over the limit of {limit} bytes", code="too-large", fatal=True)
    return value


def _header(line: bytes) -> dict:
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("event header is not JSON") from None
    if not isinstance(header, dict):
        raise BadEvent("event header must be a JSON object")
    return header


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, read within the size limits; None at the end of the stream.

    Unlike ``wyoming.event.async_read_event`` it reads no payload before checking its length
    (a 100 MB ``payload_length`` was read whole) and says what was wrong instead of hanging up.
    """
    try:
        line = await reader.readline()
    except ValueError:  # a header line over the reader's limit
        raise BadEvent("event header line is too long", code="too-large", fatal=True) from None
    if not line.endswith(b"\n"):
        return None  # end of stream (possibly mid-line)
    header = _header(line)
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        extra = await reader.readexactly(data_length) if data_length else b""
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    data = header.get("data") or {}
    if extra:
        try:
            more = json.loads(extra)
        except (ValueError, UnicodeDecodeError):
            raise BadEvent("event data is not JSON") from None
        if not isinstance(more, dict) or not isinstance(data, dict):
            raise BadEvent("event data must be a JSON object")
        data = {**data, **more}
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadEvent("event type must be a non-empty string")
    if not isinstance(data, dict):
        raise BadEvent(f"{kind}: event data must be a JSON object")
    return Event(type=kind, data=data, payload=payload)


def _optional_str(event: Event, key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadEvent(f"{event.type}: {key} must be a string, not {type(value).__name__}")
    return value


def _text(event: Event) -> str:
    text = event.data.get("text")
    if not isinstance(text, str):
        raise BadEvent(f"{event.type}: text must be a string, not {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise BadEvent(f"{event.type}: text is over {MAX_TEXT_CHARS} characters", code="too-large")
    return text


def _context_area(event: Event) -> str | None:
    context = event.data.get("context")
    if context is None:
        return None
    if not isinstance(context, dict):
        raise BadEvent(f"{event.type}: context must be an object")
    return _optional_str(event, "context.area", context.get("area")) or None


def _conversation(event: Event) -> str | None:
    """The client's conversation id (``context.conversation_id``), checked; None when it names none."""
    context = event.data.get("context")
    if not isinstance(context, dict):
        return None  # a bad context is reported by _context_area
    cid = _optional_str(event, "context.conversation_id", context.get("conversation_id"))
    if cid is not None and len(cid) > MAX_CONVERSATION_CHARS:
        raise BadEvent(f"{event.type}: conversation_id is over {MAX_CONVERSATION_CHARS} characters")
    return cid or None


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.frame_bytes


def _whole(event: Event, key: str, low: int, high: int) -> int:
    value = event.data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadEvent(f"{event.type}: {key} must be a whole number from {low} to {high}, not {value!r}")
    return value


def audio_format(event: Event) -> AudioFormat:
    """The rate, width and channels of an audio-start or audio-chunk, checked before conversion."""
    return AudioFormat(
        _whole(event, "rate", *RATES),
        _whole(event, "width", WIDTHS[0], WIDTHS[-1]),
        _whole(event, "channels", 1, MAX_CHANNELS),
    )


# ---- one connection ----------------------------------------------------------------------
class CasavoxHandler(AsyncEventHandler):
    """One client's connection: bounded reading, validation, then the event's service."""

    def __init__(self, services: Services, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.services = services
        self.area = services.area
        self._start_utterance()
        self._routes: dict[str, Callable[[Event], Any]] = {
            "describe": self._describe,
            "transcribe": self._transcribe,
            "audio-start": self._audio_start,
            "audio-chunk": self._audio_chunk,
            "audio-stop": self._audio_stop,
            "recognize": self._recognize,
            "transcript": self._handle,
        }

    def _start_utterance(self) -> None:
        self.converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)
        self.audio: list[bytes] = []
        self.audio_s = 0.0  # seconds of the client's audio taken so far (at most MAX_AUDIO_S)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    async def error(self, text: str, code: str = "bad-event") -> None:
        """Answer with a Wyoming ``error`` event (one line) and log it."""
        log.warning("Wyoming client %s: %s", self.writer.get_extra_info("peername"), text)
        try:
            await self.write_event(Error(text=text, code=code).event())
        except (ConnectionError, RuntimeError):
            pass  # the client is gone already

    def _admission(self) -> BadEvent | None:
        """Why this connection is refused (not on the allow-list, too many), or None."""
        s = self.services
        peer = self.writer.get_extra_info("peername")
        if not peer_allowed(peer, s.allow):
            return BadEvent(
                f"client {peer[0] if peer else peer} is not allowed on this server", "not-allowed"
            )
        if s.clients >= s.max_clients:
            return BadEvent(f"too many connections (at most {s.max_clients}); try again later", "busy")
        return None

    async def run(self) -> None:
        """Receive events until the client leaves, one is fatal, or the server stops."""
        self._is_running = True
        refused = self._admission()
        if refused is not None:
            await self.error(str(refused), refused.code)
            await self._close()
            return
        self.services.clients += 1
        try:
            while self._is_running and await self._serve_one():
                pass
        finally:
            self.services.clients -= 1
            await self._close()

    async def _close(self) -> None:
        await self.disconnect()
        await self._linger()
        self.writer.close()

    async def _linger(self) -> None:
        """Half-close, then discard what the client still sends (bounded) before closing.

        Closing a socket with unread input resets the connection, and a reset can destroy the
        error event just sent (a refused client that had already written its request lost it).
        """
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            await asyncio.wait_for(self._discard(), LINGER_S)
        except (OSError, RuntimeError, asyncio.TimeoutError):
            pass

    async def _discard(self) -> None:
        left = MAX_PAYLOAD_BYTES
        while left > 0 and (data := await self.reader.read(min(left, 65536))):
            left -= len(data)

    async def _serve_one(self) -> bool:
        """Read and answer one event; False to hang up."""
        try:
            event = await read_event(self.reader)
            if event is None:
                return False
            return await self.handle_event(event)
        except BadEvent as exc:
            await self.error(str(exc), exc.code)
            return not exc.fatal
        except CasavoxError as exc:
            await self.error(str(exc), "failed")
            return True
        except (ConnectionError, asyncio.IncompleteReadError):
            return False
        except Exception as exc:  # a bug: the log keeps the traceback, the client gets one line
            log.exception("Wyoming event failed")
            await self.error(f"internal error ({type(exc).__name__})", "internal")
            return True

    async def handle_event(self, event: Event) -> bool:
        route = self._routes.get(event.type)
        if route is not None:
            await route(event)
        return True  # events we do not serve are ignored, as Wyoming services do

    # ---- the services -------------------------------------------------------------------
    async def _describe(self, event: Event) -> None:
        await self.write_event(describe(act=self.services.act).event())

    async def _transcribe(self, event: Event) -> None:
        self.area = _context_area(event) or self.services.area  # language and name are not used

    async def _audio_start(self, event: Event) -> None:
        self._start_utterance()
        audio_format(event)

    async def _audio_chunk(self, event: Event) -> None:
        fmt = audio_format(event)
        raw = event.payload or b""
        if len(raw) % fmt.frame_bytes:
            raise BadEvent(
                f"audio-chunk: {len(raw)} bytes is not a whole number of {fmt.frame_bytes}-byte frames"
            )
        room = MAX_AUDIO_S - self.audio_s
        take = min(len(raw), int(room * fmt.rate) * fmt.frame_bytes)  # cut before converting
        if take <= 0:
            return  # the utterance is full: the rest is not even converted
        chunk = AudioChunk(rate=fmt.rate, width=fmt.width, channels=fmt.channels, audio=raw[:take])
        self.audio.append(self.converter.convert(chunk).audio)
        self.audio_s += take / fmt.bytes_per_second

    async def _audio_stop(self, event: Event) -> None:
        pcm = b"".join(self.audio)
        self._start_utterance()
        text = ""
        if len(pcm) >= 2:
            if self.services.pipeline is None:
                raise BadEvent("speech-to-text is not available on this server", "unavailable")
            samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], "<i2").astype(np.float32) / 32768.0
            text = (await self._run(self.services.pipeline.transcribe, samples)).text.strip()
        await self.write_event(Transcript(text=text).event())

    async def _recognize(self, event: Event) -> None:
        text = _text(event)
        area = _context_area(event) or self.area
        result = await self._run(self.services.assistant.understand, text, area)
        if not result.understood:
            await self.write_event(NotRecognized(text=result.reason or "not understood").event())
            return
        intents = [
            WyIntent(name=i.name, entities=[WyEntity(name=k, value=v) for k, v in i.slots.items()], text=text)
            for i in result.intents
        ]
        if len(intents) == 1:
            await self.write_event(intents[0].event())
            return
        # several commands in one sentence: the series Wyoming defines for them
        await self.write_event(IntentsStart().event())
        for intent in intents:
            await self.write_event(intent.event())
        await self.write_event(IntentsStop().event())

    async def _handle(self, event: Event) -> None:
        """A transcript to act on: one turn on the configured backend (unless acting is off)."""
        text = _text(event)
        area = _context_area(event) or self.area
        cid = _conversation(event)
        context = {"conversation_id": cid} if cid is not None else None
        if not self.services.act:
            await self.write_event(NotHandled(text=ACTING_OFF, context=context).event())
            return
        # A question needs a conversation to be answered in: without one, "ask" refuses instead. Keys
        # are the server's own, so no client's "yes" can answer the box microphone's question (None).
        key = f"wyoming:{cid}" if cid is not None else f"wyoming-connection:{id(self)}"
        handle = partial(self.services.assistant.handle, can_ask=cid is not None, conversation=key)
        turn = await self._run(handle, text, area)
        if turn.handled:
            reply = Handled(text=turn.reply, context=context)
        else:
            reply = NotHandled(text=turn.reply, context=context)
        await self.write_event(reply.event())


async def run_server(
    services: Services, uri: str, started: asyncio.Event | None = None, zeroconf_name: str | None = None
) -> None:
    """Serve ``uri`` until cancelled; warns once when the bind is reachable from the network.

    ``zeroconf_name`` (``""``: the default name): also advertise the server over mDNS while it runs,
    withdrawn when it stops. A bind that cannot be advertised fails before anything listens."""
    from casavox.edge_app.wyoming_mdns import advertise, advertised_address

    warning = exposure_warning(uri, services.allow, services.act)
    if warning:
        log.warning(warning)
    if zeroconf_name is not None:
        advertised_address(uri)  # a loopback bind: one clear line now
    server = AsyncServer.from_uri(uri)
    await server.start(partial(CasavoxHandler, services))
    advert = await advertise(uri, zeroconf_name or None) if zeroconf_name is not None else None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
        loop.add_signal_handler(signal.SIGTERM, stopping.set)  # systemd's stop: withdraw, then go
    if started is not None:
        started.set()
    try:
        await stopping.wait()
    finally:
        if advert is not None:
            await advert.close()
        await server.stop()


def policy(settings) -> dict:
    """The server policy from ``[wyoming]`` (allow, act, max_clients) as Services fields, checked."""
    if settings.max_clients < 1:
        raise WyomingError(f"wyoming.max_clients must be at least 1, not {settings.max_clients}")
    return {"allow": parse_allow(settings.allow), "act": settings.act, "max_clients": settings.max_clients}


def serve(config, uri: str) -> int:
    """Load everything once and serve until interrupted."""
    from casavox.edge_app.app import build_assistant, follow_home, load_home_for, load_pipeline, open_backend
    from casavox.edge_app.state_store import StateStore

    rules = policy(config.wyoming)  # a bad entry fails now, before the models load
    zeroconf_name = config.wyoming.name if config.wyoming.zeroconf else None
    if zeroconf_name is not None:
        from casavox.edge_app.wyoming_mdns import advertised_address

        advertised_address(uri)  # so is a bind that cannot be advertised
    home = load_home_for(config)
    store = StateStore.open(config.state_path, config.state_lock_timeout_s)
    backend = open_backend(config, home, store)
    pipeline = load_pipeline(config, home)
    assistant = build_assistant(config, home, pipeline, backend, store)
    services = Services(pipeline, assistant, **rules)

    def use_home(new_home) -> None:
        pipeline.use_home(new_home)
        assistant.home = new_home

    follower = follow_home(config, home, use_home)
    log.info("Wyoming server on %s%s", uri, "" if services.act else " (acting is off)")
    try:
        asyncio.run(run_server(services, uri, zeroconf_name=zeroconf_name))
    except KeyboardInterrupt:
        pass
    finally:
        if follower is not None:
            follower.stop()
        backend.close()
        store.close()
    return 0
