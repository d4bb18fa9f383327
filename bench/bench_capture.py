"""Time from the caller's last key to the charged result, on the sandbox and on Stripe
(localstripe), in both payment styles; prints p50/p95.

    PYTHONPATH=. .venv/bin/python bench/bench_capture.py [-n 30]

Each run keys a card into the secure capture's state machine (``CaptureSession``); the clock
starts at the last key (the "1" that confirms; in two steps the "2" that declines keeping the
card) and stops when the payment row says what happened: the capture's charge
(``voice_bridge/secure_capture/charge.py``) and, in two steps, the action server's charge of the
token and its deletion. Database: a fresh SQLite file. Not included: Rasa, speech, Twilio
(``bench/bench_capture_calls.py`` measures the same over 20 concurrent phone calls).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paybot.db.engine import make_engine, migrate  # noqa: E402
from paybot.dialog.payloads import SecureCapture  # noqa: E402
from paybot.gateway.sandbox import SandboxGateway  # noqa: E402
from paybot.gateway.stripe_gateway import StripeGateway  # noqa: E402
from paybot.payments.ledger import Ledger, new_idempotency_key  # noqa: E402
from paybot.payments.rules import AmountRules  # noqa: E402
from paybot.seed import seed_demo_data  # noqa: E402
from tests.localstripe import API_KEY, LocalStripe  # noqa: E402
from voice_bridge.secure_capture.charge import charge  # noqa: E402
from voice_bridge.secure_capture.session import CaptureSession, Submit  # noqa: E402

ROBERT = "300400500"  # owes 1250.00
KEYS = "5555555555554444" + "1230" + "739" + "60601" + "1"


def one_payment(ledger: Ledger, engine, mode: str) -> float:
    """Seconds from the last key to the charged result."""
    instruction = SecureCapture(
        method="card", account_number=ROBERT, amount="1.00", currency="USD",
        idempotency_key=new_idempotency_key(), mode=mode, offer_save=mode == "tokenize",
    )
    session = CaptureSession(instruction, today=date.today)
    session.start(0.0)
    actions: list = []
    keys = KEYS + ("2" if mode == "tokenize" else "")
    for i, key in enumerate(keys[:-1]):
        session.key(key, 1.0 + i * 0.1)
    started = time.perf_counter()
    actions = session.key(keys[-1], 10.0)
    submit = next(a for a in actions if isinstance(a, Submit))
    outcome = charge(engine, ledger, instruction, submit.method, "call:bench", submit.save)
    if mode == "tokenize":
        outcome = ledger.tokens.charge(outcome.payment_id)
    elapsed = time.perf_counter() - started
    assert outcome.succeeded, outcome.status
    return elapsed


def measure(name: str, gateway_for, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        gateway = gateway_for(engine)
        seed_demo_data(engine, SandboxGateway(engine))
        ledger = Ledger(engine, gateway, rules=AmountRules(minimum=0))
        for mode, style in (("charge", "one step"), ("tokenize", "two steps")):
            one_payment(ledger, engine, mode)  # warm-up
            times = sorted(one_payment(ledger, engine, mode) * 1000 for _ in range(runs))
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            print(
                f"| {name} | {style} | {runs} | {statistics.median(times):.1f} ms "
                f"| {p95:.1f} ms |"
            )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="payments per gateway and style")
    args = parser.parse_args()
    print("| gateway | style | payments | p50 | p95 |\n|---|---|---|---|---|")
    measure("sandbox", SandboxGateway, args.n)
    emulator = LocalStripe()
    try:
        measure(
            "Stripe (localstripe)",
            lambda engine: StripeGateway(engine, api_key=API_KEY, api_base=emulator.url),
            args.n,
        )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
