"""``paybot chat``: talk to the running bot in a terminal, through the real stack.

It sends each line you type to Rasa's REST channel exactly as the SMS webhook or a chat client
would (``--channel``), with ``--phone`` as the caller's number (vouched for with the Rasa token,
as the bridge does, so the bot treats it as a caller ID), and prints the bot's replies and
its instructions to the bridge in brackets. With ``--channel voice`` it starts the way a call
does, with the ``session_begin`` system event. Start the stack first (``make run``).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import requests

from paybot.dialog.payloads import InvalidInstruction, parse_instruction
from paybot.dialog.vouch import vouch, vouch_key
from paybot.phone import InvalidPhoneNumber, to_e164
from paybot.settings import Settings

PREFIX = {"voice": "call", "sms": "sms", "chat": "chat"}
SYSTEM = {"/silence": "silence", "/capture-cancelled": "capture_result"}


class Chat:
    """One conversation with the running Rasa server."""

    def __init__(self, settings: Settings, channel: str, phone: str | None) -> None:
        self.rasa = settings.rasa_url
        self.token = settings.rasa_token.get_secret_value()
        self.channel = channel
        self.phone = phone
        self.sender = f"{PREFIX[channel]}:{uuid.uuid4().hex[:12]}"

    def say(self, text: str) -> list[dict[str, Any]]:
        metadata = vouch(
            vouch_key(self.token), sender=self.sender, channel=self.channel, caller=self.phone or ""
        )
        response = requests.post(
            f"{self.rasa}/webhooks/rest/webhook",
            json={"sender": self.sender, "message": text, "metadata": metadata},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def system(self, intent: str, **entities: str) -> list[dict[str, Any]]:
        response = requests.post(
            f"{self.rasa}/conversations/{self.sender}/trigger_intent",
            params={"token": self.token},
            json={"name": intent, "entities": entities},
            timeout=60,
        )
        response.raise_for_status()
        return response.json().get("messages", [])


def describe(message: dict[str, Any]) -> str:
    """A reply as one terminal line: the text, or the instruction in brackets."""
    if message.get("text"):
        return f"bot: {message['text']}"
    try:
        instruction = parse_instruction(message.get("custom"))
    except InvalidInstruction:
        return f"bot: [{message}]"
    fields = {k: v for k, v in vars(instruction).items() if v not in (None, [], {})}
    return f"bot: [{instruction.type} {fields}]"


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the chat loop until EOF (Ctrl-D), "quit" or a hang-up."""
    phone = None
    if args.phone:
        try:
            phone = to_e164(args.phone)
        except InvalidPhoneNumber:
            print(f"paybot: --phone {args.phone!r} is not a phone number", file=sys.stderr)
            return 2
    chat = Chat(settings, args.channel, phone)
    try:
        requests.get(chat.rasa, timeout=5).raise_for_status()
    except requests.RequestException:
        print(f"paybot: Rasa is not answering at {chat.rasa}; start it with 'make run'",
              file=sys.stderr)
        return 1
    print(f"paybot chat ({args.channel}{', from ' + phone if phone else ''}); "
          "type /silence to stay silent, Ctrl-D to end")
    if args.channel == "voice":
        _show(chat.system("session_begin", channel="voice", caller=phone or ""))
    return _loop(chat)


def _loop(chat: Chat) -> int:
    while True:
        try:
            line = input("you: ").strip()
        except EOFError:
            print()
            return 0
        if line.lower() in ("quit", "exit"):
            return 0
        if not line:
            continue
        replies = chat.system(SYSTEM[line]) if line in SYSTEM else chat.say(line)
        if _show(replies):
            return 0


def _show(replies: list[dict[str, Any]]) -> bool:
    """Print the replies; True when the bot hung up or transferred the caller."""
    ended = False
    for message in replies:
        print(describe(message))
        custom = message.get("custom") or {}
        ended = ended or custom.get("type") in ("hangup", "transfer")
    return ended
