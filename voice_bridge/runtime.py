"""What every call on this bridge shares: loaded speech models, the speech thread pools (ASR;
TTS for replies; TTS at low priority for work no caller waits for yet), the Rasa client, the
ledger and Twilio's REST client. Built once at start-up.

The models are loaded in a thread before the bridge accepts connections, so the first caller
does not pay for it and ``/healthz`` only answers once the bridge can really take a call.
Nothing here holds state of a call: that lives in :class:`voice_bridge.call.handler.CallHandler`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.engine import Engine

from paybot import metrics
from paybot.payments.factory import make_ledger
from paybot.payments.ledger import Ledger
from paybot.settings import Settings
from voice_bridge.asr import AsrEngine, make_asr_engine
from voice_bridge.call.rasa_client import RasaClient
from voice_bridge.jobs.background import running
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, LIVE_CALLS, SETTINGS
from voice_bridge.live_calls import LiveCalls
from voice_bridge.secure_capture.wording import load_wording
from voice_bridge.tts import PiperTts
from voice_bridge.tts.prompt_store import PromptStore
from voice_bridge.tts.warmup import static_prompts, warm_up
from voice_bridge.urgent_pool import UrgentPool

log = logging.getLogger(__name__)
T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Synthesis no caller waits for yet runs in two threads (one per core here) at a lower CPU
# priority: on an idle machine it uses both cores, on a busy one it yields to the replies.
AHEAD_THREADS = 2
AHEAD_NICE = 10


@dataclass
class VoiceRuntime:
    """The process-wide parts of the voice bridge."""

    settings: Settings
    asr: AsrEngine
    tts: PiperTts
    asr_pool: ThreadPoolExecutor
    tts_pool: UrgentPool
    ahead_pool: UrgentPool
    rasa: RasaClient
    engine: Engine
    ledger: Ledger
    twilio: Any  # voice_bridge.twilio.rest.TwilioRest, or None when Twilio is not configured
    live: LiveCalls  # the calls in progress and their steps (the agent console shows them)

    async def run_asr(self, fn: Callable[..., T], *args: Any) -> T:
        """Run recognition work in the ASR pool: small, frequent, latency-critical jobs."""
        job = _timed_wait("asr", fn)
        return await asyncio.get_running_loop().run_in_executor(self.asr_pool, job, *args)

    async def run_tts(
        self,
        fn: Callable[..., T],
        *args: Any,
        deadline: float | None = None,
        ahead: bool = False,
    ) -> T:
        """Run synthesis in its own pool, so a long sentence never delays a caller's turn;
        most urgent first: ``deadline`` is when the audio is needed (``time.monotonic()``
        seconds; default now), ``math.inf`` for the start-up warm-up. ``ahead``: no caller
        waits for it yet (the warm-up, a reply synthesised ahead); it runs in the
        low-priority pool, on CPU the callers' replies leave idle."""
        when = time.monotonic() if deadline is None else deadline
        pool = self.ahead_pool if ahead else self.tts_pool
        job = _timed_wait("tts_ahead" if ahead else "tts", fn)
        return await asyncio.wrap_future(pool.submit(when, job, *args))


def _timed_wait(pool: str, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` reporting how long it waited for a thread of ``pool`` (from now until it starts)
    to :data:`paybot.metrics.SPEECH_QUEUE_WAIT`."""
    queued = time.perf_counter()

    def job(*args: Any) -> T:
        metrics.SPEECH_QUEUE_WAIT.labels(pool=pool).observe(time.perf_counter() - queued)
        return fn(*args)

    return job


def decoders_up_front(settings: Settings) -> int:
    """PocketSphinx decoders to build at start-up: ``PAYBOT_ASR_DECODERS``, or one per call
    when ``PAYBOT_MAX_CALLS`` allows more calls than that (a call has one turn in progress at
    a time). Building one mid-call holds the GIL for 0.1-0.4 s and stalls every call."""
    return max(settings.asr_decoders, settings.max_calls)


def _load_models(settings: Settings) -> tuple[AsrEngine, PiperTts]:
    asr = make_asr_engine(
        settings.vosk_model, decoders=decoders_up_front(settings), engine=settings.asr_engine
    )
    tts = PiperTts(settings.piper_voice)
    return asr, tts


async def voice_runtime(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: load the models and build the runtime; release them at shutdown."""
    settings = app[SETTINGS]
    started = time.perf_counter()
    asr, tts = await asyncio.to_thread(_load_models, settings)
    engine = app[DB_ENGINE]
    asr_pool = ThreadPoolExecutor(settings.speech_threads, thread_name_prefix="asr")
    tts_pool = UrgentPool(settings.speech_threads, name="tts")
    ahead_pool = UrgentPool(AHEAD_THREADS, name="tts_ahead", nice=AHEAD_NICE)
    runtime = VoiceRuntime(
        settings=settings,
        asr=asr,
        tts=tts,
        asr_pool=asr_pool,
        tts_pool=tts_pool,
        ahead_pool=ahead_pool,
        rasa=RasaClient(
            app[HTTP_CLIENT], settings.rasa_url, settings.rasa_token.get_secret_value()
        ),
        engine=engine,
        ledger=make_ledger(settings, engine),
        twilio=_twilio_client(settings),
        live=app[LIVE_CALLS],
    )
    load_wording()  # the capture's words (bot/capture.yml), read before the first call
    app[RUNTIME] = runtime
    log.info("voice runtime ready in %.2fs", time.perf_counter() - started)
    prompts = static_prompts(PROJECT_ROOT)
    store = PromptStore(settings.tts_cache_path, tts.voice_key())
    try:
        async with running(_warm_up(runtime, prompts, store), "tts-warm-up"):
            yield
    finally:
        asr_pool.shutdown(wait=False, cancel_futures=True)
        tts_pool.shutdown()
        ahead_pool.shutdown()
        asr.close()


async def _warm_up(runtime: VoiceRuntime, prompts: list[str], store: PromptStore) -> None:
    """Put the static prompts in the TTS cache, one job per prompt, on spare CPU (read from
    ``store`` when a previous start kept them)."""
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(
            runtime.run_tts(warm_up, runtime.tts, [text], store, deadline=math.inf, ahead=True)
            for text in prompts
        )
    )
    log.info("tts cache warmed: %d pieces in %.1fs", sum(counts), time.perf_counter() - started)


def _twilio_client(settings: Settings) -> Any:
    """Twilio's REST client for call control, or None when no account is configured."""
    from voice_bridge.twilio.rest import TwilioNotConfigured, TwilioRest

    try:
        return TwilioRest.from_settings(settings)
    except TwilioNotConfigured:
        log.info("twilio REST not configured: transfers and hang-ups only close the stream")
        return None


RUNTIME = web.AppKey("voice_runtime", VoiceRuntime)
