"""The ``paybot`` console script: argparse wiring only; each command lives in its module.

Command modules are imported only when their command runs, so ``paybot --help`` is quick
and ``paybot bridge`` does not load the database layer it does not need.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from paybot import log_format, redaction
from paybot.settings import Settings, SettingsError, load_settings

Handler = Callable[[Settings, argparse.Namespace], int]
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Loggers that are chatty at INFO without saying anything useful to an operator.
QUIET_LOGGERS = ("alembic.runtime.plugins",)


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand; each sets ``handler`` to ``"module:function"``."""
    parser = argparse.ArgumentParser(
        prog="paybot", description="Self-hosted conversational pay-by-phone bot."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = commands.add_parser("up", help="start Rasa, the action server and the bridge")
    up.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                    help="how long to wait for every service to be healthy (default 300)")
    up.add_argument("--workers", type=int, choices=range(1, 33), metavar="N",
                    help="N processes of Rasa, the action server and the bridge, on "
                         "consecutive ports (default: PAYBOT_*_WORKERS, else 1)")
    up.set_defaults(handler="paybot_cli.up:command")

    train = commands.add_parser("train", help="train the Rasa model from bot/ and nlu_data/")
    train.add_argument("--if-changed", action="store_true",
                       help="skip when the training files are unchanged since the last model")
    train.add_argument("--force", action="store_true", help="train even if nothing changed")
    train.set_defaults(handler="paybot_cli.train:command")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", help="migrate the database to the latest schema"
                           ).set_defaults(handler="paybot_cli.database:upgrade_command")
    db_commands.add_parser("prepare", help="what `paybot up` does first: migrate, seed (dev), "
                           "settle payments left open; run it before `paybot serve`"
                           ).set_defaults(handler="paybot_cli.database:prepare_command")

    commands.add_parser("seed", help="load the demo data (dev only)"
                        ).set_defaults(handler="paybot_cli.database:seed_command")

    accounts = commands.add_parser("accounts", help="customer accounts")
    account_commands = accounts.add_subparsers(dest="accounts_command", metavar="ACTION",
                                               required=True)
    csv_import = account_commands.add_parser("import", help="import accounts from a CSV file")
    csv_import.add_argument("file", type=Path, metavar="FILE.csv")
    csv_import.add_argument("--skip-bad", action="store_true",
                            help="skip invalid rows instead of rejecting the file")
    csv_import.add_argument("--dry-run", action="store_true",
                            help="validate and report without writing anything")
    csv_import.set_defaults(handler="paybot_cli.accounts:import_command")

    payments = commands.add_parser("payments", help="payments")
    payment_commands = payments.add_subparsers(dest="payments_command", metavar="ACTION",
                                               required=True)
    run_due = payment_commands.add_parser("run-due", help="charge the scheduled payments "
                                          "whose day has come (run it from cron)")
    run_due.add_argument("--date", metavar="YYYY-MM-DD",
                         help="take the payments due by this day (default today)")
    run_due.set_defaults(handler="paybot_cli.payments:run_due_command")

    reconcile = commands.add_parser("reconcile", help="write a day's file of completed "
                                    "payments for the biller (and upload it by SFTP)")
    reconcile.add_argument("--date", metavar="YYYY-MM-DD",
                           help="the UTC day (default yesterday)")
    reconcile.add_argument("--no-upload", action="store_true",
                           help="write the file only, even with PAYBOT_SFTP_URL set")
    reconcile.set_defaults(handler="paybot_cli.reconcile:reconcile_command")

    sftp = commands.add_parser("sftp", help="the biller's SFTP server (PAYBOT_SFTP_URL)")
    sftp_commands = sftp.add_subparsers(dest="sftp_command", metavar="ACTION", required=True)
    pull = sftp_commands.add_parser("pull", help="fetch a file, e.g. the accounts file to "
                                    "import")
    pull.add_argument("remote", metavar="REMOTE", help="path under the URL's directory")
    pull.add_argument("local", nargs="?", type=Path, metavar="LOCAL",
                      help="where to save it (default: its name, here)")
    pull.set_defaults(handler="paybot_cli.reconcile:sftp_pull_command")

    reminders = commands.add_parser("reminders", help="payment reminders")
    reminder_commands = reminders.add_subparsers(dest="reminders_command", metavar="ACTION",
                                                 required=True)
    run_reminders = reminder_commands.add_parser("run", help="text (or call) the accounts due "
                                                 "in PAYBOT_REMINDER_OFFSETS_DAYS days (cron)")
    run_reminders.add_argument("--date", metavar="YYYY-MM-DD",
                               help="count the days from this day (default today)")
    run_reminders.set_defaults(handler="paybot_cli.reminders:run_command")

    from paybot_cli.console_users import add_arguments as add_console_arguments

    add_console_arguments(commands)

    lb = commands.add_parser("haproxy-config", help="write an HAProxy configuration for the "
                             "bridges (and Rasa's chat channel) that `paybot up` starts")
    lb.add_argument("--workers", type=int, choices=range(1, 33), metavar="N",
                    help="as `paybot up --workers N` (default: PAYBOT_*_WORKERS)")
    lb.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                    help="the address HAProxy listens on (default 127.0.0.1)")
    lb.add_argument("--port", type=int, default=8000, metavar="PORT",
                    help="the bridges' frontend, what Twilio reaches (default 8000)")
    lb.add_argument("--chat-port", type=int, metavar="PORT",
                    help="also a frontend for Rasa's REST channel (chat clients)")
    lb.add_argument("--stats-port", type=int, metavar="PORT",
                    help="also HAProxy's stats page on 127.0.0.1:PORT/stats")
    lb.add_argument("--peer", action="append", metavar="NAME=HOST:PORT",
                    help="a balancer sharing the call stick table (each one, this one too)")
    lb.add_argument("--local-peer", metavar="NAME", help="which --peer this balancer is")
    lb.add_argument("--output", type=Path, metavar="FILE", help="write here (default stdout)")
    lb.set_defaults(handler="paybot_cli.load_balancer:command")

    trackers = commands.add_parser("trackers", help="Rasa's conversations in the PostgreSQL "
                                   "tracker store (PAYBOT_TRACKER_STORE_URL)")
    tracker_commands = trackers.add_subparsers(dest="trackers_command", metavar="ACTION",
                                               required=True)
    prune = tracker_commands.add_parser("prune", help="delete the conversations idle for "
                                        "longer than DAYS (run it daily)")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                       help="delete conversations whose last event is older than this")
    prune.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    prune.set_defaults(handler="paybot_cli.trackers:prune_command")

    serve = commands.add_parser("serve", help="run one service in the foreground, as `paybot "
                                "up` would (for systemd or a container)")
    serve.add_argument("service", choices=("rasa", "actions", "bridge"))
    serve.add_argument("--worker", type=int, default=1, metavar="I",
                       help="which worker (from 1): its port is the base port + I - 1")
    serve.set_defaults(handler="paybot_cli.serve:command")

    commands.add_parser("bridge", help="run the voice bridge in the foreground"
                        ).set_defaults(handler="paybot_cli.bridge:command")

    chat = commands.add_parser("chat", help="talk to the running bot in this terminal")
    chat.add_argument("--phone", help="the caller's number (E.164), e.g. +15555550100")
    chat.add_argument("--channel", choices=("chat", "sms", "voice"), default="chat",
                      help="which channel to pretend to be (default chat)")
    chat.set_defaults(handler="paybot_cli.chat:command")

    call = commands.add_parser("call", help="phone the running bridge the way Twilio would")
    call.add_argument("--url", metavar="URL",
                      help="the bridge (default http://PAYBOT_HOST:PAYBOT_BRIDGE_PORT, "
                           "i.e. http://127.0.0.1:8080)")
    call.add_argument("--from", dest="caller", metavar="NUMBER",
                      help="the caller's number (default: the script's, else +15555550100)")
    call.add_argument("--to", dest="called", metavar="NUMBER",
                      help="the number called (default: the script's, else +15555550000)")
    call.add_argument("--script", type=Path, metavar="FILE.yml",
                      help="steps to run (see examples/calls/); without it, type lines: text "
                           "is said, 'press 123#' keys, 'hangup' or Ctrl-D hangs up")
    call.add_argument("--wav", type=Path, metavar="OUT.wav",
                      help="save the call: stereo 8 kHz, left the caller, right the bot")
    call.add_argument("--call-sid", metavar="CA…", help="the CallSid (default a fresh one)")
    call.add_argument("--transcribe", action="store_true",
                      help="also print what speech recognition hears in each bot reply")
    call.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                      help="how long to wait for each bot reply (default 20)")
    call.add_argument("--voice", metavar="NAME",
                      help="the caller's espeak-ng voice, e.g. en-gb+m3 (default en-us+klatt2, "
                           "the voice the default speech engine hears best)")
    call.set_defaults(handler="paybot_cli.call:command")

    scan = commands.add_parser("pci-scan", help="look for card data in the database, Rasa's "
                               "trackers, logs, the outbox and recordings; exit 1 on any")
    scan.add_argument("--cvc", metavar="CODES",
                      help="security codes to look for next to their name, e.g. 123,4567")
    scan.add_argument("--path", type=Path, action="append", default=[], metavar="PATH",
                      help="also scan the logs, recordings and SQLite files here (repeatable)")
    scan.add_argument("--conversation", action="append", default=[], metavar="SENDER_ID",
                      help="also read this conversation's tracker from Rasa (repeatable)")
    scan.add_argument("--no-rasa", action="store_true",
                      help="do not ask the running Rasa for its in-memory trackers")
    scan.set_defaults(handler="paybot_cli.pci_scan:command")
    return parser


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``PAYBOT_LOG_LEVEL`` (unknown names fall back to INFO) in
    ``PAYBOT_LOG_FORMAT`` (text or JSON lines), every record redacted, the configured secrets
    among what is masked."""
    for secret in (settings.rasa_token, settings.action_secret, settings.twilio_auth_token,
                   settings.console_secret, settings.crm_token, settings.crm_webhook_secret,
                   settings.sftp_password, settings.metrics_token):
        if secret is not None:
            redaction.register_secret(secret.get_secret_value())
    redaction.install(settings.log_level, LOG_FORMAT)
    log_format.install(settings.log_format)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def resolve(target: str) -> Handler:
    """Import ``"package.module:function"`` and return the function."""
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``paybot`` command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 1 when the command failed, 2 on a usage or
        configuration error, 130 when interrupted.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"paybot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return resolve(args.handler)(settings, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
