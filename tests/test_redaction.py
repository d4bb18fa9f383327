"""Log redaction: card numbers in every written form, long digit runs and secrets are masked;
timestamps, amounts and ids are not. Installed in every process ``paybot up`` starts (the
end-to-end checks are in tests/test_private_services.py); here the detector with generated
inputs, the record factory, and the supervisor forwarding a real child's output."""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import textwrap

import pytest

from paybot import redaction
from paybot.gateway.cards import luhn_check_digit, luhn_valid
from paybot.redaction import redact
from paybot.spoken.numbers import TEENS, TENS
from paybot_cli import children

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SEPARATORS = (" ", "  ", "-", ".", ",", "/", "_", "\t", " - ", ", ", ". ")
FILLER = ("charging", "card", "number is", "ok", "call CA1f3e", "for", "amount 321.72", "zip",
          "94107", "at 2026-12-05 00:32:54,123", "id=", "(", ")", "'", '"', ":", "[", "]")


def card_number(rng: random.Random) -> str:
    length = rng.randint(13, 19)
    partial = rng.choice("3456") + "".join(rng.choice("0123456789") for _ in range(length - 2))
    return partial + luhn_check_digit(partial)


def written(rng: random.Random, number: str) -> str:
    """``number`` as a log line might carry it: grouped with separators, or spoken."""
    if rng.random() < 0.25:
        words = [("oh" if d == "0" and rng.random() < 0.5 else WORDS[int(d)]) for d in number]
        sep = rng.choice((" ", ", ", " - ", "  "))
        return sep.join(words)
    groups, i = [], 0
    while i < len(number):
        size = rng.randint(1, 6)
        groups.append(number[i:i + size])
        i += size
    sep = rng.choice(SEPARATORS)
    return sep.join(groups) if rng.random() < 0.8 else "".join(
        g + rng.choice(SEPARATORS) for g in groups
    ).rstrip()


def digits_in_runs(text: str) -> list[str]:
    """Digits a reader would join: digits at most three non-alphanumerics apart."""
    return [re.sub(r"\D", "", m.group(0)) for m in re.finditer(r"\d(?:[^0-9A-Za-z]{0,3}\d)*", text)]


def test_card_numbers_in_any_written_form_are_masked():
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    for _ in range(2000):
        number = card_number(rng)
        form = written(rng, number)
        line = f"{rng.choice(FILLER)} {form} {rng.choice(FILLER)}"
        out = redact(line)
        assert form not in out, f"seed {seed}: {line!r} -> {out!r}"
        assert not any(number in run for run in digits_in_runs(out)), (seed, line, out)
        assert "[redacted …" in out, (seed, line, out)


def test_card_numbers_spoken_in_words_without_a_digit_name_are_masked():
    """ "twenty", "forty", "twelve" name no digit ("two", "four"), yet read as card digits."""
    seed = int(os.environ.get("PAYBOT_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    words = [w for w in (*TEENS, *TENS) if not any(d in w for d in WORDS + ("oh",))]
    values = {**TEENS, **TENS}
    masked = 0
    while masked < 50:
        said = [rng.choice(words) for _ in range(rng.randint(7, 9))]
        number = "".join(str(values[w]) for w in said)
        if not (13 <= len(number) <= 19 and luhn_valid(number)):
            continue
        line = f"caller said {' '.join(said)} thanks"
        out = redact(line)
        assert " ".join(said) not in out, f"seed {seed}: {line!r} -> {out!r}"
        assert f"[redacted …{number[-4:]}]" in out, (seed, line, out)
        masked += 1


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-05 00:32:54,123 INFO paybot.x: started",
        "payment 42 for call CA1f3e9a0b7c4d",
        "zip 94107 amount 321.72 fee 2.00",
        "listening on 127.0.0.1:5005 and [::1]:8080",
        "confirmation 482 913 705",
        "due 2026-12-01, minimum 25.00",
        "4242 4242 4242 4241",  # fails Luhn
        "one of the two accounts",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_long_digit_runs_secrets_and_token_parameters_are_masked():
    redaction.register_secret("s3cret-value-for-the-test")
    out = redact("acct 000123456789 GET /conversations/x/tracker?token=abcDEF123&x=1 "
                 "header s3cret-value-for-the-test and s3cret-value-for-the-test")
    assert "000123456789" not in out and "[redacted …6789]" in out
    assert "abcDEF123" not in out and "token=[secret]&x=1" in out
    assert "s3cret" not in out


def test_the_record_factory_redacts_every_logger_and_extra_fields(capsys):
    """After install(), a record from any logger to any handler is masked, args, exception
    text and Sanic's ``request`` extra included."""
    redaction.install()
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(logging.Formatter("%(message)s %(request)s"))
    for name in ("some.library", "sanic.access"):
        logger = logging.getLogger(name)
        logger.addHandler(stream)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        logging.getLogger("some.library").info(
            "charging %s", "4000 0000 0000 9995", extra={"request": "GET /x?token=abc123def"})
        logging.getLogger("sanic.access").info(
            "", extra={"request": "GET /webhooks/4242-4242-4242-4242?token=abc123def"})
        try:
            raise ValueError("bad card " + " ".join(["four", "two"] * 8))
        except ValueError:
            logging.getLogger("some.library").exception("failed %s", "x",
                                                        extra={"request": "-"})
    finally:
        for name in ("some.library", "sanic.access"):
            logging.getLogger(name).removeHandler(stream)
            logging.getLogger(name).propagate = True
    out = capsys.readouterr().out
    assert "9995]" in out and "4000 0000 0000 9995" not in out
    assert "4242-4242-4242-4242" not in out and "abc123def" not in out
    assert "four two four two four two" not in out and "ValueError" in out


def test_the_supervisor_masks_what_a_child_prints(capfd):
    """A real child process prints card numbers and a secret (not through logging); what
    ``paybot up`` forwards shows them masked."""
    secret = "forwarded-secret-" + os.urandom(6).hex()
    redaction.register_secret(secret)
    lines = ["4242 4242 4242 4242", "4242.4242.4242.4242", "4242,4242,4242,4242",
             "4242  4242  4242  4242", "4242-4242-4242-4242",
             "four two four two four two four two four two four two four two four two",
             f"token {secret}"]
    script = "import sys\n" + "".join(f"print({line!r})\n" for line in lines)
    child = children.spawn("printer", "printer", [sys.executable, "-c", script],
                           children.child_env(), cwd=os.getcwd())
    child.process.wait(timeout=30)
    child.pump.join(timeout=5)
    out = capfd.readouterr().out
    assert out.count("[printer] [redacted …4242]") == 6, out
    assert secret not in out and "[printer] token [secret]" in out
    assert not any("4242424242424242" in run for run in digits_in_runs(out))


def test_every_launcher_installs_redaction(tmp_path):
    """The bridge's CLI, Rasa's launcher and the action server's launcher each install the
    redacting record factory before anything logs (run for real, in a child process)."""
    probe = textwrap.dedent("""
        import logging, sys, runpy
        target = sys.argv[1]
        import paybot.redaction as r
        calls = []
        real = r.install
        def install(*a, **k):
            real(*a, **k)
            logging.getLogger("probe").warning("card 4242 4242 4242 4242")
            raise SystemExit(0)
        r.install = install
        sys.argv = [target, *sys.argv[2:]]
        runpy.run_module(target, run_name="__main__")
    """)
    env = {**os.environ, "PAYBOT_ENV": "test", "PAYBOT_DATA_DIR": str(tmp_path),
           "PAYBOT_ACTION_SECRET": "x" * 20}
    for module, args in (("paybot_cli", ["bridge"]), ("rasa_plugins.rasa_server", ["run"]),
                         ("actions.server", ["--actions", "actions"])):
        result = subprocess.run([sys.executable, "-c", probe, module, *args], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (module, result.stderr[-2000:])
        assert "[redacted …4242]" in result.stderr, (module, result.stderr[-2000:])
        assert "4242 4242" not in result.stderr


def test_one_card_number_detector():
    """Redaction finds card numbers with the detector the channels use, whose Luhn is the
    card validation's: one implementation of each."""
    from paybot.parsing import card_numbers

    assert redaction.find_card_numbers is card_numbers.find_card_numbers
    assert card_numbers.luhn_valid is luhn_valid


def test_uninstall_restores_raw_records(caplog):
    redaction.install()
    redaction.uninstall()
    with caplog.at_level(logging.INFO, logger="paybot.test.raw"):
        logging.getLogger("paybot.test.raw").info("acct %s", "000123456789")
    assert "000123456789" in caplog.text


def test_payment_keys_survive_the_log_redaction() -> None:
    """A payment key is the capture's id in the logs: none may look like a digit run the
    redaction masks (a plain uuid4 hex has one in about one key in eight)."""
    from paybot.payments.ledger import new_idempotency_key

    keys = [new_idempotency_key() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
    assert all(redaction.redact(f"capture {key}: started") == f"capture {key}: started"
               for key in keys)
    assert len(set(keys)) == len(keys)
