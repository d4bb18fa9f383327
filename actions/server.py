"""The action server as ``paybot up`` runs it: ``python -m actions.server ...`` is
``python -m rasa_sdk ...`` that answers only Rasa.

Every request except ``GET /health`` must carry the shared secret from ``PAYBOT_ACTION_SECRET``
in the :data:`HEADER` header (Rasa sends it from ``bot/endpoints.yml``); anything else gets 403
before its body is read. The secret comes from the environment, never the command line, and
log records are redacted (:mod:`paybot.redaction`). The check is a rasa_sdk plug-in, attached
to the Sanic app the way rasa_sdk's own plug-ins are, as is ``GET /metrics``
(:func:`paybot.metrics.attach_to_sanic`).
"""

from __future__ import annotations

import hmac
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pluggy
from sanic import Sanic, response
from sanic.request import Request

from paybot import log_format, metrics, redaction

HEADER = "X-Paybot-Action-Secret"
SECRET_ENV = "PAYBOT_ACTION_SECRET"  # noqa: S105 - a variable name
# GET only: the liveness probe, which says "ok" and no more, and the Prometheus metrics
# (counts and timings; PAYBOT_METRICS_TOKEN guards them when set).
OPEN_PATHS = frozenset({"/health", metrics.METRICS_PATH})
log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("rasa_sdk")


def secret_check(secret: str) -> Callable[[Request], Awaitable[Any]]:
    """A Sanic request middleware refusing requests without ``secret`` in :data:`HEADER`."""
    expected = secret.encode()

    async def check(request: Request) -> Any:
        if request.method == "GET" and request.path in OPEN_PATHS:
            return None
        given = request.headers.get(HEADER, "").encode()
        if hmac.compare_digest(given, expected):
            return None
        log.warning("refused %s %s from %s: no valid %s header",
                    request.method, request.path, request.ip, HEADER)
        return response.json({"error": "forbidden"}, status=403)

    return check


class SharedSecretPlugin:
    """The rasa_sdk plug-in that puts :func:`secret_check` in front of every route."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    @hookimpl
    def attach_sanic_app_extensions(self, app: Sanic) -> None:
        app.register_middleware(secret_check(self.secret), "request")


class MetricsPlugin:
    """The rasa_sdk plug-in that serves ``GET /metrics`` (:mod:`paybot.metrics`)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    @hookimpl
    def attach_sanic_app_extensions(self, app: Sanic) -> None:
        metrics.attach_to_sanic(app, self.token)


def main() -> None:
    """rasa_sdk's command line with the shared-secret check, /metrics and redacted logs (one
    JSON object a line with PAYBOT_LOG_FORMAT=json, each action's conversation on its lines)."""
    redaction.install()
    log_format.install_from_env()
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"action server: {SECRET_ENV} is not set; refusing to serve without it",
              file=sys.stderr)
        sys.exit(2)
    from rasa_sdk.__main__ import main as sdk_main
    from rasa_sdk.executor import ActionExecutor
    from rasa_sdk.plugin import plugin_manager

    ActionExecutor.run = log_format.with_conversation(  # type: ignore[method-assign]
        ActionExecutor.run, lambda _self, call, *_a, **_k: call.get("sender_id")
    )
    plugin_manager().register(SharedSecretPlugin(secret))
    plugin_manager().register(MetricsPlugin(os.environ.get(metrics.TOKEN_ENV) or None))
    sdk_main()


if __name__ == "__main__":
    main()
