"""``netreveal serve`` and ``netreveal account``: the web app and its accounts.

Handlers import their work lazily so ``netreveal --help`` stays fast.
"""

from __future__ import annotations

from netreveal.cli.args import add_database_arg


def add_parsers(subparsers) -> None:
    """Add ``serve`` and ``account`` to an ``argparse`` sub-parser collection."""
    serve = subparsers.add_parser("serve", help="serve the reveal game, the naming studio and the admin pages")
    add_database_arg(serve)
    serve.add_argument("--study", help="study to serve (default: the newest in the database)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--forwarded-allow-ips", metavar="IPS",
                       help="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and "
                            "X-Forwarded-Proto headers are trusted ('*': any; default: none, the client is "
                            "the connection's peer address)")
    serve.add_argument("--idle-minutes", type=float, default=120,
                       help="log a browser out after this many minutes without activity (default: 120)")
    serve.add_argument("--max-body-kb", type=int, default=64,
                       help="largest request body accepted, in KiB (default: 64; larger ones get 413)")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes sharing the port (default: 1); the rate limits hold across them")
    serve.set_defaults(handler=run_serve)

    account = subparsers.add_parser("account", help="add accounts, invite annotators and admins, change roles, "
                                                    "reset passwords")
    sub = account.add_subparsers(dest="account_command", required=True)
    add = sub.add_parser("add", help="add an account; the password is read from stdin or prompted")
    add.add_argument("username")
    add.add_argument("--role", default="player", choices=["player", "annotator", "admin"])
    add_database_arg(add)
    role = sub.add_parser("role", help="change an account's role")
    role.add_argument("username")
    role.add_argument("role", choices=["player", "annotator", "admin"])
    add_database_arg(role)
    invite = sub.add_parser("invite", help="print a one-time link that creates an account with a role")
    invite.add_argument("--role", default="annotator", choices=["player", "annotator", "admin"])
    invite.add_argument("--days", type=float, default=7, help="days the link stays valid (default 7, at most 30)")
    invite.add_argument("--url", default="http://127.0.0.1:8000",
                        help="address people reach the server at (default: http://127.0.0.1:8000)")
    add_database_arg(invite)
    reset = sub.add_parser("reset-password", help="set a new password (stdin or prompt) and end the account's sessions")
    reset.add_argument("username")
    add_database_arg(reset)
    account.set_defaults(handler=run_account)


def run_serve(args) -> int:
    from netreveal.cli import serve

    return serve.run(args)


def run_account(args) -> int:
    from netreveal.cli import account

    return account.run(args)
