"""The work behind ``netreveal account add|role|invite|reset-password`` (arguments: :mod:`netreveal.cli.web`).

Passwords are read from stdin when it is piped (the first line), else prompted twice; they follow
the rules of :mod:`netreveal.store.passwords`. ``invite`` prints a one-time link that creates an
account with the given role (the only way besides ``add`` and ``role`` to make annotators and
admins); ``reset-password`` ends every session of the account.
"""

from __future__ import annotations

import getpass
import sys

from netreveal.errors import NetrevealError


def read_password(username: str) -> str:
    """A password for ``username``: the first line of stdin when piped, else prompted twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.removesuffix("\n")
    first = getpass.getpass(f"password for {username}: ")
    if getpass.getpass("again: ") != first:
        raise NetrevealError("the two passwords differ")
    return first


def run(args) -> int:
    """Run the ``account`` sub-command named by ``args.account_command``."""
    from netreveal.cli.args import open_from_args
    from netreveal.store import accounts, invitations

    password = None
    if args.account_command in ("add", "reset-password"):
        accounts.check_username(args.username)
        password = accounts.check_password(read_password(args.username), args.username)
    if args.account_command == "invite":
        _check_url(args.url)
    store = open_from_args(args)
    try:
        with store.session() as session:
            if args.account_command == "add":
                account = accounts.create_account(session, args.username, password, args.role)
                print(f"added {account.role} {account.username}")
            elif args.account_command == "role":
                account = accounts.set_role(session, args.username, args.role)
                print(f"{account.username} is now {account.role}")
            elif args.account_command == "invite":
                token, row = invitations.create_invitation(session, args.role, None, args.days)
                print(f"{args.url.rstrip('/')}/invite/{token}")
                print(f"one-time link for a new {row.role} account, valid until {row.expires_at:%Y-%m-%d %H:%M} UTC")
            else:
                account, ended = accounts.reset_password(session, args.username, password)
                print(f"password of {account.username} reset; {ended} session(s) ended")
    finally:
        store.close()
    return 0


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise NetrevealError(f"--url must be an http:// or https:// address, not {url!r}")
