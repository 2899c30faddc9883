"""Rendering the static analysis pages (label report, evaluation-study report) from the Jinja
templates in ``netreveal/report/templates``: autoescaping on, one base layout and stylesheet for
both (``base.html.j2``, drawn after the main report's page), tables given as rows of cells.

The templates are read from their folder, so rendering never imports the torch-based
:mod:`netreveal.report` package (the evaluation-study report runs without torch). Numbers reach
the templates already formatted by :mod:`netreveal.formatting`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from netreveal.formatting import breakable_name

TEMPLATES = Path(__file__).resolve().parent / "report" / "templates"


@dataclass
class Cell:
    """One table cell: ``text`` (escaped when rendered), a CSS class, a tooltip, a column span."""

    text: str
    cls: str = ""
    title: str = ""
    span: int = 1


@dataclass
class Table:
    """A table as the pages draw it: header cells and rows of cells (plain strings or
    :class:`Cell`); ``row_classes``, when given, holds one CSS class per row."""

    header: list[str | Cell]
    rows: list[list[str | Cell]] = field(default_factory=list)
    row_classes: list[str] = field(default_factory=list)

    def add(self, cells: list[str | Cell], cls: str | None = None) -> None:
        """Append a row (with its CSS class when the table has row classes)."""
        self.rows.append(cells)
        if cls is not None:
            self.row_classes.append(cls)


def name(text: str) -> Cell:
    """A left-aligned text cell that may wrap (names, labels, methods)."""
    return Cell(text, "name")


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment of the analysis pages (autoescaping, undefined names are errors; the
    ``breakable`` filter lets a layer name wrap after its dots)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined)
    env.filters["breakable"] = lambda text: Markup(breakable_name(text))  # escaped by breakable_name
    return env


def render_page(template: str, **context) -> str:
    """Render ``template`` (a file in ``report/templates``) with ``context``."""
    return environment().get_template(template).render(**context)


__all__ = ["TEMPLATES", "Cell", "Table", "environment", "name", "render_page"]
