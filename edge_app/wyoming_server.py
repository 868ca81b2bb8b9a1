"""`casavox serve-wyoming`: casavox as Home Assistant's speech-to-text, intent and handle service.

Home Assistant's Wyoming integration connects, asks ``describe`` and then sends either audio
(``transcribe`` + ``audio-start/chunk/stop`` -> ``transcript``), text to recognize (``recognize``
-> ``intent`` / ``not-recognized``), or a transcript to handle (``transcript`` -> ``handled`` /
``not-handled``: we act on the configured backend and reply). Binds to 127.0.0.1 unless told
otherwise: the box's models are not a public service. Model calls are serialized by the
pipeline's lock and run off the event loop, so several clients can be connected.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
)
from wyoming.intent import Entity as WyEntity
from wyoming.intent import Intent as WyIntent
from wyoming.intent import NotRecognized, Recognize
from wyoming.server import AsyncEventHandler, AsyncServer

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.pipeline import SpeechPipeline
from casavox.runtime.audio.io import SAMPLE_RATE

log = logging.getLogger(__name__)

MAX_AUDIO_S = 30.0  # a client that never sends audio-stop cannot make us buffer forever
ATTRIBUTION = Attribution(name="casavox", url="https://github.com/casavox/casavox")


def describe(version: str = "0.1.0") -> Info:
    languages = ["en"]
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
        handle=[
            HandleProgram(
                name="casavox-handle",
                attribution=ATTRIBUTION,
                installed=True,
                description="Recognize and act on the configured backend",
                version=version,
                models=[HandleModel("casavox-handle", ATTRIBUTION, True, None, version, languages)],
            )
        ],
    )


@dataclass
class Services:
    """What every connection shares: the speech models and the one conversation turn."""

    pipeline: SpeechPipeline
    assistant: Assistant

    @property
    def area(self) -> str | None:
        return self.assistant.area


class CasavoxHandler(AsyncEventHandler):
    def __init__(self, services: Services, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.services = services
        self.converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)
        self.audio: list[bytes] = []
        self.audio_bytes = 0
        self.area = services.area

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    async def handle_event(self, event: Event) -> bool:
        s = self.services
        if Describe.is_type(event.type):
            await self.write_event(describe().event())
            return True
        if Transcribe.is_type(event.type):
            context = Transcribe.from_event(event).context or {}
            self.area = context.get("area") or s.area
            return True
        if AudioStart.is_type(event.type):
            self.audio, self.audio_bytes = [], 0
            return True
        if AudioChunk.is_type(event.type):
            chunk = self.converter.convert(AudioChunk.from_event(event))
            if self.audio_bytes < MAX_AUDIO_S * SAMPLE_RATE * 2:
                self.audio.append(chunk.audio)
                self.audio_bytes += len(chunk.audio)
            return True
        if AudioStop.is_type(event.type):
            pcm = b"".join(self.audio)
            self.audio, self.audio_bytes = [], 0
            text = ""
            if len(pcm) >= 2:
                samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], "<i2").astype(np.float32) / 32768.0
                text = (await self._run(s.pipeline.transcribe, samples)).text.strip()
            await self.write_event(Transcript(text=text).event())
            return True
        if Recognize.is_type(event.type):
            recognize = Recognize.from_event(event)
            area = (recognize.context or {}).get("area") or self.area
            result = await self._run(s.pipeline.parse, recognize.text, area)
            if not result.understood:
                await self.write_event(NotRecognized(text=result.reason or "not understood").event())
                return True
            intent = result.intents[0]  # Wyoming's intent event carries one intent
            entities = [WyEntity(name=k, value=v) for k, v in intent.slots.items()]
            await self.write_event(WyIntent(name=intent.name, entities=entities, text=recognize.text).event())
            return True
        if Transcript.is_type(event.type):  # handle: one turn, acted on the configured backend
            transcript = Transcript.from_event(event)
            area = (transcript.context or {}).get("area") or self.area
            # Wyoming's handle has no follow-up question: "ask" refuses instead (Assistant.handle)
            turn = await self._run(partial(s.assistant.handle, can_ask=False), transcript.text, area)
            await self.write_event(
                (Handled(text=turn.reply) if turn.handled else NotHandled(text=turn.reply)).event()
            )
            return True
        return True


async def run_server(services: Services, uri: str) -> None:
    await AsyncServer.from_uri(uri).run(partial(CasavoxHandler, services))


def serve(config, uri: str) -> int:
    """Load everything once and serve until interrupted."""
    from casavox.edge_app.app import build_assistant, load_pipeline, open_backend
    from casavox.edge_app.state_store import StateStore
    from casavox.runtime.home import load_home

    home = load_home(config.home)
    store = StateStore.open(config.state_path, config.state_lock_timeout_s)
    backend = open_backend(config, home, store)
    pipeline = load_pipeline(config, home)
    services = Services(pipeline, build_assistant(config, home, pipeline, backend, store))
    log.info("Wyoming server on %s", uri)
    try:
        asyncio.run(run_server(services, uri))
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()
        store.close()
    return 0
