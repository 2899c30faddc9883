"""Static HTML reports: a self-contained folder with index.html and its images."""

from netreveal.report.html import Report
from netreveal.report.render import colorize, overlay, to_pil

__all__ = ["Report", "colorize", "overlay", "to_pil"]
