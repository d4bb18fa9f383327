"""``paybot console ...``: the agent console's users (add, list, new password, role,
disable). Passwords come from a prompt (typed twice) or, when stdin is not a terminal, from
its first line: never from the command line, where other users and the shell history see it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from paybot.console.users import (
    UserError,
    add_user,
    disable_user,
    list_users,
    set_password,
    set_role,
)
from paybot.settings import Settings
from paybot_cli.console import emit, fail, say
from paybot_cli.database import upgrade


def add_arguments(commands: argparse._SubParsersAction) -> None:
    """The ``console`` command and its actions."""
    console = commands.add_parser("console", help="the agent console's users (/console)")
    actions = console.add_subparsers(dest="console_command", metavar="ACTION", required=True)
    add = actions.add_parser("add-user", help="add a user; the password is asked for (or "
                             "read from stdin's first line)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=("agent", "supervisor", "admin"))
    add.set_defaults(handler="paybot_cli.console_users:add_command")
    actions.add_parser("users", help="list the users"
                       ).set_defaults(handler="paybot_cli.console_users:list_command")
    password = actions.add_parser("password", help="set a user's password (their sessions end)")
    password.add_argument("name", metavar="NAME")
    password.set_defaults(handler="paybot_cli.console_users:password_command")
    role = actions.add_parser("set-role", help="change a user's role (their sessions end)")
    role.add_argument("name", metavar="NAME")
    role.add_argument("--role", required=True, choices=("agent", "supervisor", "admin"))
    role.set_defaults(handler="paybot_cli.console_users:role_command")
    disable = actions.add_parser("disable", help="stop a user signing in (their sessions end)")
    disable.add_argument("name", metavar="NAME")
    disable.set_defaults(handler="paybot_cli.console_users:disable_command")


def read_password() -> str | None:
    """The new password: typed twice at a terminal, else stdin's first line. None when the
    two typings differ or nothing was given."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            fail("the two passwords differ")
            return None
        return first or None
    line = sys.stdin.readline().rstrip("\r\n")
    return line or None


def add_command(settings: Settings, args: argparse.Namespace) -> int:
    password = read_password()
    if password is None:
        fail("no password given")
        return 1
    return _run(settings, lambda engine: add_user(engine, args.name, args.role, password),
                f"added {args.role} {args.name.strip().lower()}")


def password_command(settings: Settings, args: argparse.Namespace) -> int:
    password = read_password()
    if password is None:
        fail("no password given")
        return 1
    return _run(settings, lambda engine: set_password(engine, args.name, password),
                f"new password for {args.name}")


def role_command(settings: Settings, args: argparse.Namespace) -> int:
    return _run(settings, lambda engine: set_role(engine, args.name, args.role),
                f"{args.name} is now {args.role}")


def disable_command(settings: Settings, args: argparse.Namespace) -> int:
    return _run(settings, lambda engine: disable_user(engine, args.name), f"disabled {args.name}")


def list_command(settings: Settings, args: argparse.Namespace) -> int:
    engine = upgrade(settings)
    try:
        for user in list_users(engine):
            state = " (disabled)" if user.disabled_at else ""
            emit(f"{user.name}\t{user.role}{state}")
    finally:
        engine.dispose()
    return 0


def _run(settings: Settings, change, done: str) -> int:
    engine = upgrade(settings)
    try:
        change(engine)
    except UserError as exc:
        fail(str(exc))
        return 1
    finally:
        engine.dispose()
    say(done)
    return 0
