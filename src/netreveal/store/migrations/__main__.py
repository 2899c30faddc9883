"""``python -m netreveal.store.migrations "message"``: autogenerate the next revision from the models."""

import sys

from netreveal.errors import NetrevealError
from netreveal.store.schema import make_revision


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print('usage: python -m netreveal.store.migrations "what changed"', file=sys.stderr)
        return 2
    try:
        print(make_revision(argv[0]))
    except NetrevealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
