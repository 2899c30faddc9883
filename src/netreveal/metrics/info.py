"""What each evaluation metric means, in one place: its key (as :func:`netreveal.pipeline.score_heatmaps`
returns it), the label tables and reports print, which direction is better and a one-line plain
explanation. Summary tables, CSV headers and the report's per-image values all read it from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """One metric: ``key`` (``deletion_auc``), ``label`` (``deletion AUC``), ``better``
    (``"lower"`` or ``"higher"``) and ``explanation`` (one plain sentence, no jargon)."""

    key: str
    label: str
    better: str
    explanation: str

    @property
    def arrow(self) -> str:
        """↓ when lower values are better, ↑ when higher ones are."""
        return "↓" if self.better == "lower" else "↑"

    @property
    def heading(self) -> str:
        """The label with its arrow, as table headers show it (``deletion AUC ↓``)."""
        return f"{self.label} {self.arrow}"

    @property
    def sentence(self) -> str:
        """The explanation followed by which direction is better."""
        return f"{self.explanation} ({self.better} is better)"


METRICS: dict[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("deletion_auc", "deletion AUC", "lower",
                   "mean class probability as the map's top pixels are removed"),
        MetricInfo("insertion_auc", "insertion AUC", "higher",
                   "mean class probability as the map's top pixels are put back"),
        MetricInfo("pointing_game", "pointing game", "higher",
                   "1 if the map's peak is on the class's true region, else 0"),
        MetricInfo("energy_in_mask", "energy in mask", "higher",
                   "share of the map's total on the class's true region"),
    )
}


def metric_info(name: str) -> MetricInfo | None:
    """The metric called ``name`` (a key such as ``deletion_auc``, a label or a heading); None when
    ``name`` is no metric (e.g. a method's own statistic)."""
    if name in METRICS:
        return METRICS[name]
    return next((m for m in METRICS.values() if name in (m.label, m.heading)), None)


__all__ = ["METRICS", "MetricInfo", "metric_info"]
