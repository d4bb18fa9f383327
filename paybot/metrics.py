"""Every Prometheus metric paybot exports, defined once, and their text exposition.

Each service (the bridge, the action server, Rasa) is its own process with its own registry
and serves it at ``GET /metrics`` on the port it already listens on; a metric a process never
touches is exported with no samples (histograms and counters) or 0 (gauges). Labels are
kinds and statuses, never ids: a call, a conversation or a payment is in the logs, not here.

The bridge times a caller's turn (end of turn to the first bot audio sent), its Rasa round
trips, the speech pools' queue wait, reply frames sent too late to play on time, its active
calls and the outbox backlog; whoever runs the ledger (the bridge for keypad and ``<Pay>``
captures and reconciliation, the action server for chat and stored methods) counts payments
by status and times the gateway. Rasa and the action server time their HTTP requests; Rasa
counts what its parse cache did.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

T = TypeVar("T")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"
TOKEN_ENV = "PAYBOT_METRICS_TOKEN"  # noqa: S105 - a variable name
# A turn is good under a second; the buckets resolve the range an operator cares about.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

ACTIVE_CALLS = Gauge("paybot_active_calls", "Calls with a live media stream on this bridge")
DRAINING = Gauge("paybot_draining", "1 while the bridge drains (SIGTERM): no new calls")
CALLS_TURNED_AWAY = Counter(
    "paybot_calls_turned_away_total",
    "Calls answered with an apology and hung up: the bridge was draining or full "
    "(PAYBOT_MAX_CALLS)",
    ["reason"],
)
TURN_LATENCY = Histogram(
    "paybot_turn_latency_seconds",
    "From the caller's end of turn (speech or keys) to the first audio of the bot's reply",
    buckets=_LATENCY_BUCKETS,
)
RASA_ROUND_TRIP = Histogram(
    "paybot_rasa_round_trip_seconds",
    "The bridge's requests to Rasa: a caller's message or a system event (trigger)",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
LATE_FRAMES = Counter(
    "paybot_late_frames_total",
    "20 ms frames of a reply the caller would have heard late: the audio sent ran out "
    "before the next sentence was ready",
)
SPEECH_QUEUE_WAIT = Histogram(
    "paybot_speech_queue_wait_seconds",
    "Time a speech job waited for a thread: asr, tts (replies), tts_ahead (no one waits yet)",
    ["pool"],
    buckets=_WAIT_BUCKETS,
)
PAYMENTS = Counter(
    "paybot_payments_total",
    "Payment outcomes by the status this process settled them in",
    ["status"],
)
GATEWAY_LATENCY = Histogram(
    "paybot_gateway_seconds",
    "Calls to the payment gateway: charge or find, and how they ended (ok, timeout, error)",
    ["gateway", "operation", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
OUTBOX_BACKLOG = Gauge(
    "paybot_outbox_messages",
    "Text messages waiting in the outbox, by status (read from the database at scrape time)",
    ["status"],
)
PARSE_CACHE = Counter(
    "paybot_rasa_parse_cache_total",
    "Rasa's NLU parses by what its parse cache did: hit (remembered), miss (parsed, now "
    "remembered), skipped (a text with digits or number words, too long, or the model's "
    "pipeline reads the tracker)",
    ["outcome"],
)
HTTP_REQUESTS = Histogram(
    "paybot_http_request_seconds",
    "Requests this server answered (Rasa, the action server), by method and status class",
    ["method", "status"],
    buckets=_LATENCY_BUCKETS,
)


def render() -> bytes:
    """This process's metrics in Prometheus text format 0.0.4."""
    return generate_latest(REGISTRY)


def observe_http(method: str, status: int, seconds: float) -> None:
    """Time one answered request; statuses are grouped by class (``2xx``) to stay few."""
    HTTP_REQUESTS.labels(method=method.upper(), status=f"{status // 100}xx").observe(seconds)


def timed(gateway: str, operation: str, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, a gateway request, timed: ``outcome`` is ok, timeout (an exception
    named ``*Timeout``) or error (any other exception, re-raised)."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        return call(*args)
    except Exception as exc:
        outcome = "timeout" if type(exc).__name__.endswith("Timeout") else "error"
        raise
    finally:
        GATEWAY_LATENCY.labels(gateway=gateway, operation=operation, outcome=outcome).observe(
            time.perf_counter() - started
        )


def bearer_allowed(authorization: str, token: str | None) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token
    (always True when no token is configured)."""
    if not token:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def attach_to_sanic(app: Any, token: str | None = None) -> None:
    """Serve ``GET /metrics`` on a Sanic app (Rasa's, the action server's) and time its
    requests; with ``token``, a scrape must carry it as a bearer token (401 otherwise)."""
    from sanic import response

    async def scrape(request: Any) -> Any:
        if not bearer_allowed(request.headers.get("Authorization", ""), token):
            return response.text("a bearer token is needed\n", status=401,
                                 headers={"WWW-Authenticate": "Bearer"})
        return response.raw(render(), headers={"Content-Type": CONTENT_TYPE})

    async def started(request: Any) -> None:
        request.ctx.metrics_started = time.perf_counter()

    async def answered(request: Any, answer: Any) -> None:
        began = getattr(request.ctx, "metrics_started", None)
        if began is not None and request.path != METRICS_PATH:
            observe_http(request.method, answer.status, time.perf_counter() - began)

    app.add_route(scrape, METRICS_PATH, methods=["GET"], name="paybot_metrics")
    app.register_middleware(started, "request")
    app.register_middleware(answered, "response")
