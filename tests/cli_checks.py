"""Checking the command line's answer to bad input."""

from netreveal.cli import main


def fails_with_one_line(capsys, argv: list[str], message: str) -> None:
    """``netreveal argv`` exits with 2 and prints exactly one ``netreveal: error:`` line containing ``message``
    (besides ``netreveal: warning:`` lines, e.g. that a model runs with random weights)."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.strip().splitlines() if not line.startswith("netreveal: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("netreveal: error: "), err
    assert message in lines[0], lines[0]
