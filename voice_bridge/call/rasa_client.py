"""The bridge's client for Rasa: caller turns over the REST channel (the channel and caller
number vouched for, :mod:`paybot.dialog.vouch`), system events over the HTTP API
(token-protected, so callers cannot forge them).

Replies come back as :class:`BotReply`: what to say, in order, and the instructions the bot
attached (:mod:`paybot.dialog.payloads`). A custom payload that is not one of ours is logged
by type and dropped, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from paybot import metrics
from paybot.dialog.payloads import (
    Hangup,
    Instruction,
    InvalidInstruction,
    Listen,
    Prepare,
    SecureCapture,
    Transfer,
    parse_instruction,
)
from paybot.dialog.vouch import Heard, vouch, vouch_key

log = logging.getLogger(__name__)
RASA_TIMEOUT_S = 15.0


class RasaUnavailable(RuntimeError):
    """Rasa did not answer, or answered with an error."""


@dataclass(frozen=True)
class BotReply:
    """One bot turn: the texts to speak and the instructions that came with them."""

    texts: tuple[str, ...] = ()
    instructions: tuple[Instruction, ...] = ()

    @property
    def listen(self) -> Listen | None:
        return next((i for i in reversed(self.instructions) if isinstance(i, Listen)), None)

    @property
    def capture(self) -> SecureCapture | None:
        return next((i for i in self.instructions if isinstance(i, SecureCapture)), None)

    @property
    def transfer(self) -> Transfer | None:
        return next((i for i in self.instructions if isinstance(i, Transfer)), None)

    @property
    def prepare(self) -> tuple[str, ...]:
        """What the bot will probably say next, to synthesise while this reply plays."""
        return tuple(t for i in self.instructions if isinstance(i, Prepare) for t in i.texts)

    @property
    def hangup(self) -> bool:
        return any(isinstance(i, Hangup) for i in self.instructions)

    @property
    def interruptible(self) -> bool:
        """False when the bot marked this reply's speech as a disclosure to play in full."""
        listen = self.listen
        return listen.barge_in if listen is not None else True


@dataclass
class RasaClient:
    """Talks to one Rasa server for many calls (stateless; share it)."""

    session: ClientSession
    base_url: str
    token: str
    timeout_s: float = RASA_TIMEOUT_S
    _timeout: ClientTimeout = field(init=False)
    _vouch_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._timeout = ClientTimeout(total=self.timeout_s)
        self._vouch_key = vouch_key(self.token)

    async def message(
        self, sender: str, text: str, metadata: dict[str, str], heard: Heard | None = None
    ) -> BotReply:
        """Send the caller's words (or keyed digits) as a user message, vouching for the
        ``channel`` and ``from`` (E.164; absent when withheld) of ``metadata`` and for how the
        turn was ``heard`` (spoken, with the ASR confidence, or keyed)."""
        vouched = vouch(
            self._vouch_key,
            sender=sender,
            channel=metadata.get("channel", "voice"),
            caller=metadata.get("from", ""),
            heard=heard,
        )
        body = {"sender": sender, "message": text, "metadata": vouched}
        with metrics.RASA_ROUND_TRIP.labels(kind="message").time():
            data = await self._post("/webhooks/rest/webhook", body, sender)
        return parse_reply(data if isinstance(data, list) else [])

    async def trigger(self, sender: str, intent: str, entities: dict[str, str]) -> BotReply:
        """Send a system event (session start, silence, capture result) as an intent."""
        path = f"/conversations/{sender}/trigger_intent"
        body = {"name": intent, "entities": entities}
        with metrics.RASA_ROUND_TRIP.labels(kind="trigger").time():
            data = await self._post(path, body, sender, params={"token": self.token})
        messages = data.get("messages", []) if isinstance(data, dict) else []
        return parse_reply(messages)

    async def _post(
        self, path: str, body: dict[str, Any], sender: str, params: dict[str, str] | None = None
    ) -> Any:
        url = f"{self.base_url.rstrip('/')}{path}"
        try:
            async with self.session.post(
                url, json=body, params=params, timeout=self._timeout
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"rasa answered {response.status}")
                return await response.json(content_type=None)
        except (ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("rasa call failed for %s: %s", _loggable(sender), type(exc).__name__)
            raise RasaUnavailable(type(exc).__name__) from exc


def parse_reply(messages: list[Any]) -> BotReply:
    """Split Rasa's messages into texts and instructions, dropping what is not ours."""
    texts: list[str] = []
    instructions: list[Instruction] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
        custom = message.get("custom")
        if custom is not None:
            try:
                instructions.append(parse_instruction(custom))
            except InvalidInstruction as exc:
                log.warning("ignored a custom payload from the bot: %s", exc)
    return BotReply(tuple(texts), tuple(instructions))


def _loggable(sender: str) -> str:
    """The conversation id for a log line: call ids as they are, phone numbers masked."""
    kind, _, ident = sender.partition(":")
    return sender if kind in ("call", "chat") else f"{kind}:…{ident[-2:]}"
