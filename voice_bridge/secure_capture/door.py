"""The one door to the secure capture for a call: keys in, words and a status out.

The call handler owns the websocket, the player and the conversation. From the moment the bot
announces a capture until it ends, the handler hands every key to a :class:`CaptureDoor`
(:meth:`~CaptureDoor.key`, :meth:`~CaptureDoor.tick`) and gets back only sentences to speak
(prompt wording: never more than a brand and the last four) and, at the end of
:meth:`~CaptureDoor.run`, a status: ``submitted``, ``cancelled`` or ``failed``. The keypad
state machine (:mod:`.session`), the digit buffers (:mod:`.fields`), the keyed card or bank
account and the charge (:mod:`.charge`) stay behind it.

A field's silence timeout counts from when the caller has heard its question, not from when
the capture asked it: while a prompt is being synthesised and played the door holds the
session's clock (a busy machine's slow synthesis must not eat into the caller's time), until
the prompt's end mark is echoed (:meth:`~CaptureDoor.prompt_played`), a key is pressed, or
:data:`PROMPT_HOLD_MAX_S` passes without an echo. The prompts of one step are said as one
reply: a second ``say`` would clear the first before it was heard.

Logs carry the CallSid and error class names: never digits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from paybot.dialog.payloads import SecureCapture
from paybot.gateway.card_data import BankAccount, CardData
from paybot.payments.profile import load_profile
from paybot.payments.settlement import PaymentOutcome
from voice_bridge.secure_capture.agent_session import AgentPaySession, AgentPayWording
from voice_bridge.secure_capture.charge import charge, charge_tokenized
from voice_bridge.secure_capture.fields import Prompt
from voice_bridge.secure_capture.session import Action, CaptureSession, Done, Submit
from voice_bridge.secure_capture.steps import CaptureProgress
from voice_bridge.secure_capture.wording import CaptureWording

if TYPE_CHECKING:
    from voice_bridge.runtime import VoiceRuntime

log = logging.getLogger(__name__)

Say = Callable[[str], Awaitable[object]]
Payment = tuple[PaymentOutcome | None, str | None]
# The longest a prompt may take to synthesise and play before its silence timeout runs anyway
# (its end mark never echoed): capture prompts are a few seconds of speech.
PROMPT_HOLD_MAX_S = 30.0


class CaptureDoor:
    """The secure capture of one call.

    Args:
        runtime: The process-wide database engine and ledger (the charge uses them).
        call_sid: For log lines.
        conversation_id: The conversation the payment is recorded under.
    """

    def __init__(self, runtime: VoiceRuntime, call_sid: str, conversation_id: str) -> None:
        self._runtime = runtime
        self._call_sid = call_sid
        self._conversation_id = conversation_id
        self._session: CaptureSession | None = None
        self._closing: CaptureSession | None = None
        # Keys pressed while a capture's intro plays: they belong to that capture.
        self._early: list[str] | None = None
        self._actions: asyncio.Queue[list[Action]] = asyncio.Queue()
        self._payment: asyncio.Future[Payment] | None = None
        self._wording = CaptureWording()
        self._held_since: float | None = None  # a prompt is being said: no silence timeout
        self.last_done: Done | None = None  # how the last capture ended
        self.last_progress: CaptureProgress | None = None  # and where it was then

    @property
    def active(self) -> bool:
        """A capture is collecting keys."""
        return self._session is not None

    @property
    def takes_keys(self) -> bool:
        """Keys belong to the capture (announced or running), not to the conversation."""
        return self._session is not None or self._early is not None

    @property
    def progress(self) -> CaptureProgress | None:
        """What the agent console may see of the running capture (no digits), if any."""
        return self._session.progress if self._session is not None else None

    def expect(self) -> None:
        """The bot announced a capture: from now on keys belong to it."""
        self._early = []

    def withdraw(self) -> None:
        """The announced capture will not run here (Twilio's <Pay> did not take the call):
        keys pressed meanwhile are wiped and keys belong to the conversation again."""
        if self._early:
            self._early.clear()
        self._early = None

    def key(self, digit: str, now: float) -> None:
        """One DTMF key for the capture."""
        if self._session is not None:
            self._held_since = None  # keyed over the prompt: the caller is answering
            self._actions.put_nowait(self._session.key(digit, now))
        elif self._early is not None:
            self._early.append(digit)

    def tick(self, now: float) -> None:
        """The clock: a field left silent times out (not while its prompt is being said)."""
        if self._session is None:
            return
        if self._held_since is not None:
            if now - self._held_since < PROMPT_HOLD_MAX_S:
                return
            log.warning("call %s: no end mark for a capture prompt within %.0fs",
                        self._call_sid, PROMPT_HOLD_MAX_S)
            self.prompt_played(now)
        actions = self._session.tick(now)
        if actions:
            self._actions.put_nowait(actions)

    def prompt_played(self, now: float) -> None:
        """The caller has heard the last prompt: its silence timeout starts now."""
        self._held_since = None
        if self._session is not None:
            self._session.prompt_played(now)

    async def run(
        self, instruction: SecureCapture, say: Say, clock: Callable[[], float], *,
        item: str | None = None,
    ) -> str:
        """Collect the details by keypad, pay, and return the status (``failed`` if it ends
        with an error). ``item``: an agent asked for this payment of the instruction's amount
        for ``item`` (:mod:`.agent_session`): the caller confirms the amount first."""
        while not self._actions.empty():  # nothing left from an earlier capture
            self._actions.get_nowait()
        early, self._early = self._early or [], None
        self._held_since = None  # an earlier capture's last words are not this one's
        # Read once at start-up (the runtime's ledger and warm-up): no file I/O here.
        profile = load_profile(self._runtime.settings)
        if item is None:
            session = self._session = CaptureSession(instruction, profile=profile)
            self._wording = CaptureWording(instruction.allowed_brands)
        else:
            session = self._session = AgentPaySession(instruction, profile=profile)
            self._wording = AgentPayWording(Decimal(instruction.amount), instruction.currency,
                                            item, instruction.allowed_brands)
        try:
            now = clock()
            actions: list[Action] = session.start(now)
            if early:  # keyed during the intro: the first prompt is not needed
                actions = [a for key in early for a in session.key(key, now)]
                early.clear()
            while True:
                done = await self._step(session, actions, say, clock)
                if done is not None:
                    self.last_done = done
                    return done.status
                actions = await self._actions.get()
        finally:
            self.last_progress = session.progress
            self._session = None

    async def _step(
        self, session: CaptureSession, actions: list[Action], say: Say, clock: Callable[[], float]
    ) -> Done | None:
        submit = next((a for a in actions if isinstance(a, Submit)), None)
        if submit is not None:  # pay at once, while "one moment" plays; a hang-up won't stop it
            self._payment = asyncio.ensure_future(
                self._pay(submit.method, session.instruction, submit.save)
            )
        texts = [self._wording.text(a) for a in actions if isinstance(a, Prompt)]
        if any(texts):  # one reply: the clock waits until the caller has heard it
            self._held_since = clock()
            await say(" ".join(text for text in texts if text))
        for action in actions:
            if isinstance(action, Submit):
                assert self._payment is not None
                outcome, error = await asyncio.shield(self._payment)
                return await self._step(session, session.finished(outcome, error=error), say,
                                        clock)
            if isinstance(action, Done):
                return action
        return None

    async def _pay(
        self, method: CardData | BankAccount, instruction: SecureCapture, save: bool = False
    ) -> Payment:
        """Charge through the ledger in a thread; errors come back as codes, never text."""
        runtime = self._runtime
        try:
            outcome = await asyncio.shield(
                asyncio.to_thread(
                    charge, runtime.engine, runtime.ledger, instruction, method,
                    self._conversation_id, save,
                )
            )
            return outcome, None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("call %s: payment submit failed (%s)", self._call_sid, type(exc).__name__)
            return None, type(exc).__name__

    def hang_up(self) -> None:
        """The call is ending: wipe whatever was keyed so far (call before cancelling
        :meth:`run`)."""
        self._closing = self._session
        if self._session is not None:
            self._session.cancel("hangup")
        if self._early:
            self._early.clear()

    async def settle(self) -> None:
        """After :meth:`hang_up` and :meth:`run` are over: the caller confirmed (pressed 1)
        and hung up, so the payment they agreed to is still taken, once, and recorded,
        whether it was under way or not picked up yet."""
        session, self._closing = self._closing, None
        if self._payment is not None:
            paid = await asyncio.gather(self._payment, return_exceptions=True)
            await self._charge_token_left(paid[0], session)
        while session is not None and not self._actions.empty():
            for action in self._actions.get_nowait():
                if isinstance(action, Submit):
                    payment = await self._pay(action.method, session.instruction, action.save)
                    await self._charge_token_left(payment, session)

    async def _charge_token_left(self, payment: object, session: CaptureSession | None) -> None:
        """Two steps and the call ended before the bot charged the token: charge it now."""
        if session is None or session.instruction.mode != "tokenize":
            return
        outcome = payment[0] if isinstance(payment, tuple) else None
        if isinstance(outcome, PaymentOutcome) and outcome.status == "pending":
            try:
                await asyncio.to_thread(charge_tokenized, self._runtime.ledger, outcome)
            except Exception as exc:
                log.warning("call %s: token charge failed (%s)", self._call_sid, type(exc).__name__)
