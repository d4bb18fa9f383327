"""The SMS webhook's round trip under load: signed ``POST /twilio/sms`` requests, as Twilio
sends them, against a real ``paybot up`` stack (the bot, the action server, the bridge; Twilio
itself the local fake), offered open loop at each rate; print p50/p95/max and errors.

    .venv/bin/python bench/bench_sms.py [--rates 10,50,100] [--seconds 5] [--timeout 15]

Open loop: message i leaves at start + i / rate whatever the earlier ones are doing, so a slow
server meets the traffic it would meet, not a politely waiting client. Each message comes from
a number of its own (a new conversation: Rasa's lock store serialises one sender's turns) and
asks for the balance, which the bot answers by asking who is writing. The round trip is from
the request's send time to the bridge's whole TwiML answer, over every answer and over the
bot's own answers (not the bridge's apology, sent when Rasa is slower than the bridge's 12 s
limit). An error is a non-200 answer or a broken connection; a timeout is no answer within
``--timeout`` (Twilio gives a webhook 15 s). The stack's SQLite database and its in-memory
tracker store are the defaults of ``paybot up``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_twilio import FakeTwilio  # noqa: E402
from tests.stack import Stack  # noqa: E402
from voice_bridge.twilio.signature import sign  # noqa: E402
from voice_bridge.twilio.webhooks import SMS_UNAVAILABLE  # noqa: E402

BUSINESS_LINE = "+15555550000"


async def one(session, url: str, token: str, n: int, at: float, timeout_s: float):
    """Wait for the send time, post message ``n``; (latency s, outcome)."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    sent = time.perf_counter()
    params = {"MessageSid": f"SM{n:032x}", "AccountSid": "AC" + "0" * 32,
              "From": f"+1404{n:07d}", "To": BUSINESS_LINE, "Body": "what's my balance?"}
    headers = {"X-Twilio-Signature": sign(url, params, token)}
    try:
        async with session.post(url, data=params, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as answer:
            body = await answer.text()
            outcome = "error" if answer.status != 200 else "ok"
            if outcome == "ok" and SMS_UNAVAILABLE in body:
                outcome = "apology"
    except asyncio.TimeoutError:
        outcome = "timeout"
    except aiohttp.ClientError:
        outcome = "error"
    return time.perf_counter() - sent, outcome


async def level(url: str, token: str, rate: float, seconds: float, timeout_s: float, base: int):
    count = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.5
        results = await asyncio.gather(*(
            one(session, url, token, base + i, start + i / rate, timeout_s) for i in range(count)
        ))  # fmt: skip
    answered = sorted(latency for latency, outcome in results if outcome in ("ok", "apology"))
    bot = sorted(latency for latency, outcome in results if outcome == "ok")
    counts = {kind: sum(o == kind for _, o in results) for kind in ("apology", "error", "timeout")}
    print(f"  {rate:>5.0f}/s offered, {count} messages: every answer {percentiles(answered)}; "
          f"the bot's answers ({len(bot)}) {percentiles(bot)}; apologies {counts['apology']}, "
          f"errors {counts['error']}, timeouts {counts['timeout']}", flush=True)


def percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "none"
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18] if len(latencies) > 1 \
        else latencies[0]
    return f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,50,100", help="messages/s (default 10,50,100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per rate (default 5)")
    parser.add_argument("--timeout", type=float, default=15.0, help="per message (default 15)")
    parser.add_argument("--warmup", type=int, default=5, help="messages first, not counted")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with FakeTwilio() as fake, tempfile.TemporaryDirectory() as tmp:
        stack = Stack.configure(Path(tmp) / "stack", **fake.env(), PAYBOT_SMS_FROM=BUSINESS_LINE,
                                PAYBOT_SCHEDULER_INTERVAL_S="0", PAYBOT_LOG_LEVEL="WARNING")
        started = time.perf_counter()
        stack.start()
        print(f"stack up in {time.perf_counter() - started:.0f}s", flush=True)
        try:
            url = stack.bridge_url + "/twilio/sms"
            asyncio.run(level(url, fake.auth_token, 2, args.warmup / 2, args.timeout, 9_000_000))
            print("measured:")
            for index, rate in enumerate(rates):
                asyncio.run(level(url, fake.auth_token, rate, args.seconds, args.timeout,
                                  (index + 1) * 1_000_000))
                time.sleep(2)  # let the stragglers of this level finish
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
