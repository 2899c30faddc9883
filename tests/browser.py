"""Headless Chromium for tests (Debian's /usr/bin/chromium driven by Playwright)."""

import shutil
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def have_chromium() -> bool:
    return shutil.which("chromium") is not None


needs_chromium = pytest.mark.skipif(not have_chromium(), reason="Debian chromium is not installed")


@contextmanager
def browser_page(width: int = 1280, height: int = 900):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


PHONE, LAPTOP = (390, 844), (1400, 900)
SIZES = [PHONE, LAPTOP]

# Elements whose box reaches past the right edge of the viewport, except inside a box that
# scrolls horizontally on purpose (overflow-x auto or scroll: wide tables, the INV grid).
_OFFENDERS = """() => {
  const width = window.innerWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p && p !== document.body && p !== document.documentElement; p = p.parentElement) {
      const s = getComputedStyle(p).overflowX;
      if (s === 'auto' || s === 'scroll') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if ((r.width || r.height) && r.right > width + 0.5 && !scrolls(el)) {
      out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className} right=${Math.round(r.right)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, offenders: out.slice(0, 10)};
}"""


def assert_fits(page, where: str = "") -> None:
    """No element is wider than the viewport: the page does not scroll sideways and no element's
    box passes the right edge, except inside boxes that scroll horizontally on purpose."""
    found = page.evaluate(_OFFENDERS)
    assert found["scrollWidth"] <= found["innerWidth"], (where, found)
    assert not found["offenders"], (where, found)


# Header cells (first row of each table) narrower than their longest word, and cells holding one
# number narrower than that number: a column squeezed until words or numbers break.
_SQUEEZED = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const fits = (cell, text) => {
    const style = getComputedStyle(cell);
    ctx.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;  // style.font may be ''
    const room = cell.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return ctx.measureText(text).width <= room + 1;
  };
  const out = [];
  for (const table of document.querySelectorAll('table')) {
    const head = table.rows[0];
    for (const th of head ? head.cells : []) {
      const words = th.innerText.split(/\\s+/).filter(Boolean);
      const widest = words.sort((a, b) => b.length - a.length)[0];
      if (widest && th.getBoundingClientRect().width && !fits(th, widest)) out.push(`header "${widest}"`);
    }
    for (const td of table.querySelectorAll('td')) {
      const text = td.innerText.trim();
      if (/^[-+−]?[0-9][0-9.,]*%?$/.test(text) && td.getBoundingClientRect().width && !fits(td, text)) {
        out.push(`number "${text}"`);
      }
    }
  }
  return out.slice(0, 10);
}"""


def assert_not_squeezed(page, where: str = "") -> None:
    """No table column is narrower than its header's longest word or than a number in it."""
    squeezed = page.evaluate(_SQUEEZED)
    assert not squeezed, (where, squeezed)
