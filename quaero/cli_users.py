"""``quaero users``: add, remove and list accounts, set passwords, make and revoke API tokens.

They work on the database directly (no server needed, and a running one sees the change at once), so
whoever can run them on the server's machine can always get back in: the way to make the first admin.
A password is asked on the terminal (twice), or read from the first line of stdin with
``--password-stdin``; it never goes on the command line, where other users see it in ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from quaero.errors import QuaeroError
from quaero.settings import Settings
from quaero.stores.accounts import ROLES, AccountStore


def add_users_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``users`` command and its subcommands, under the main parser's subparsers ``sub``."""
    users = sub.add_parser("users", help="accounts and API tokens: add, remove, list, password, token, ...")
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a user (the password is asked, or read with --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True, help="admin: everything; viewer: read only")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")

    remove = actions.add_parser("remove", help="remove a user with their tokens and sessions")
    remove.add_argument("name")

    listing = actions.add_parser("list", help="list the users")
    listing.add_argument("--json", action="store_true")

    password = actions.add_parser("password", help="set a user's password (ends their sessions)")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")

    role = actions.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)

    token = actions.add_parser("token", help="make an API token for a user; it is printed this once")
    token.add_argument("name")
    token.add_argument("--name", dest="label", default="", help="what the token is for (e.g. backup script)")
    token.add_argument("--json", action="store_true")

    tokens = actions.add_parser("tokens", help="list API tokens (of one user, or of all)")
    tokens.add_argument("name", nargs="?")
    tokens.add_argument("--json", action="store_true")

    revoke = actions.add_parser("revoke-token", help="revoke an API token by its id (see: quaero users tokens)")
    revoke.add_argument("token_id", type=int, metavar="ID")

    for parser in (add, remove, listing, password, role, token, tokens, revoke):
        common(parser)


@contextmanager
def _accounts(settings: Settings) -> Iterator[AccountStore]:
    from quaero.stores.db import Database
    from quaero.stores.models import bind_models

    database = Database(settings.resolved_database_url)
    try:
        yield AccountStore(database, bind_models(database.db))
    finally:
        database.close()


def any_users(settings: Settings) -> bool:
    """Whether the database holds any account (``quaero serve`` asks before listening on the network)."""
    with _accounts(settings) as accounts:
        return accounts.has_users()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise QuaeroError("no terminal to ask for the password on: pipe it in with --password-stdin")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise QuaeroError("the two passwords differ: nothing was changed")
    return first


def cmd_users(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run one ``quaero users`` action."""
    action = args.users_command
    with _accounts(settings) as accounts:
        if action == "add":
            user = accounts.add(args.name, args.role, _read_password(args))
            print(f"added {user['name']} ({user['role']})", file=out)
        elif action == "remove":
            accounts.remove(args.name)
            print(f"removed {args.name} with their tokens and sessions", file=out)
        elif action == "password":
            accounts.update(args.name, password=_read_password(args))
            print(f"changed the password of {args.name}; their sessions have ended", file=out)
        elif action == "role":
            user = accounts.update(args.name, role=args.role)
            print(f"{user['name']} is now {user['role']}", file=out)
        elif action == "list":
            _listing(accounts.listing(), args.json, out, "no users (the server is open on a loopback address)",
                     "{name:<24}  {role:<7}  {tokens:>6}  {created_at}", name="NAME", role="ROLE", tokens="TOKENS",
                     created_at="ADDED")
        elif action == "tokens":
            _listing(accounts.tokens(args.name), args.json, out, "no tokens",
                     "{id:>5}  {user:<24}  {name:<24}  {created_at:<24}  {last_used_at}", id="ID", user="USER",
                     name="NAME", created_at="MADE", last_used_at="LAST USED")
        elif action == "token":
            info, token = accounts.create_token(args.name, args.label)
            if args.json:
                _print_json({**info, "token": token}, out)
            else:
                print(f"token {info['id']} ({info['name']}) for {info['user']}; it is shown this once, keep it "
                      f"now. Send it as 'Authorization: Bearer <token>'.", file=sys.stderr)
                print(token, file=out)
        elif action == "revoke-token":
            accounts.revoke_token(args.token_id)
            print(f"revoked token {args.token_id}", file=out)
    return 0


def _listing(items: list[dict[str, Any]], as_json: bool, out: TextIO, empty: str, row: str, **header: str) -> None:
    if as_json:
        _print_json(items, out)
        return
    if not items:
        print(empty, file=out)
        return
    print(row.format(**header), file=out)
    for item in items:
        print(row.format(**{key: "never" if value is None else value for key, value in item.items()}), file=out)


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2) + "\n")
    out.flush()
