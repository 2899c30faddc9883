"""What makes a password acceptable: 8-256 characters, not one character repeated, not the user
name (nor containing it), and not a common password (the list shipped as ``common_passwords.txt``,
also with digits or symbols added before or after, such as ``Monkey2024!``). Case is ignored."""

from __future__ import annotations

import string
from functools import lru_cache
from importlib import resources

PASSWORD_MIN, PASSWORD_MAX = 8, 256
_PADDING = string.digits + string.punctuation + " "


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-case (comments and blank lines skipped)."""
    text = resources.files("netreveal.store").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def is_common(password: str) -> bool:
    """True when ``password`` (any case) is on the list, bare or padded with digits and symbols."""
    lowered = password.lower()
    core = lowered.strip(_PADDING)
    common = common_passwords()
    return lowered in common or (bool(core) and core in common)


def password_problem(password: object, username: str | None = None) -> str | None:
    """Why ``password`` is refused for the account ``username`` (a sentence), or None when it is fine."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"password must have {PASSWORD_MIN}-{PASSWORD_MAX} characters"
    if len(set(password)) == 1:
        return "password must not be one character repeated"
    if username:
        name, lowered = username.lower(), password.lower()
        if lowered == name:
            return "password must not be the user name"
        if name in lowered:
            return "password must not contain the user name"
    if is_common(password):
        return "this password is too common: choose one that is harder to guess"
    return None
