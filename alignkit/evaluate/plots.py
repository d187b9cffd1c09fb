"""The figures of ``alignkit eval report``, each returned as a base64-encoded PNG ready for a data URI.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no global state,
no display needed). Non-finite values are left out of a line (matplotlib breaks the line there).
"""

from __future__ import annotations

import base64
import io
import math

import torch

from alignkit.errors import AlignkitError
from alignkit.evaluate.overoptimisation import gao_curve

Series = dict[str, tuple[list, list]]
"""Named lines of one panel: ``{label: (xs, ys)}``."""


def line_panels(panels: list[tuple[str, Series]], xlabel: str) -> str:
    """One small line chart per ``(title, series)`` panel, side by side in rows of three."""
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = _figure(4.2 * columns, 3.0 * rows)
    for i, (title, series) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, i + 1)
        for label, (xs, ys) in series.items():
            axes.plot(xs, [_number(y) for y in ys], marker="o", markersize=2.5, linewidth=1.2, label=label)
        axes.set(title=title, xlabel=xlabel)
        axes.grid(alpha=0.3)
        if len(series) > 1:
            axes.legend(fontsize=7)
    return _png(figure)


def interval_plot(rows: list[tuple[str, float, float, float]], xlabel: str) -> str:
    """One point per ``(label, value, low, high)`` row with its interval as an error bar, on [0, 1]."""
    figure = _figure(7.0, 0.5 + 0.45 * len(rows))
    axes = figure.add_subplot(1, 1, 1)
    for y, (_, value, low, high) in enumerate(rows):
        spread = [[max(value - low, 0.0)], [max(high - value, 0.0)]]  # errorbar refuses negative lengths
        axes.errorbar([value], [y], xerr=spread, fmt="o", capsize=4, color="tab:blue")
    axes.axvline(0.5, color="grey", linewidth=0.8, linestyle=":")
    axes.set_yticks(range(len(rows)), [label for label, *_ in rows], fontsize=8)
    axes.set(xlim=(0, 1), xlabel=xlabel)
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def bucket_plot(buckets: list[dict]) -> str:
    """Mean reward per length bucket before and after (the ``buckets`` of a length-bucket gain)."""
    figure = _figure(6.0, 3.2)
    axes = figure.add_subplot(1, 1, 1)
    positions = range(len(buckets))
    for offset, key, label in ((-0.2, "mean_before", "before (baseline)"), (0.2, "mean_after", "after (policy)")):
        axes.bar([p + offset for p in positions], [_number(b[key]) for b in buckets], width=0.4, label=label)
    axes.set_xticks(list(positions), [f"{b['lower']:g}–{b['upper']:g}" for b in buckets], fontsize=8)
    axes.set(xlabel="reply length bucket (tokens)", ylabel="mean judge reward")
    axes.axhline(0, color="grey", linewidth=0.5)
    axes.legend(fontsize=7)
    return _png(figure)


def gao_plot(sqrt_kl: list[float], curves: dict[str, dict]) -> str:
    """Reward gained since the first iteration against √KL, per reward (points), with its fitted Gao et al.
    RL form d(α − β log d) (line) when it has one and its observed peak (dotted vertical line)."""
    figure = _figure(6.5, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    d = [_number(x) for x in sqrt_kl]
    positive = [x for x in d if x > 0]  # NaN compares false
    for i, (name, curve) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        axes.plot(d, [_number(g) for g in curve["gain"]], "o", markersize=3, alpha=0.7, color=colour, label=name)
        fit = curve["fit"]
        if "alpha" in fit and len(positive) >= 2:
            grid = torch.linspace(min(positive), max(positive), 100)
            axes.plot(grid.tolist(), gao_curve(grid, fit["alpha"], fit["beta"], "rl").tolist(), color=colour,
                      label=f"{name} fit: α={fit['alpha']:.3g}, β={fit['beta']:.3g}")
        if curve["observed_peak"]["d"] is not None:
            axes.axvline(curve["observed_peak"]["d"], color=colour, linestyle=":", linewidth=1)
    axes.axhline(0, color="grey", linewidth=0.5)
    axes.set(xlabel="√KL(π ‖ π_ref) per reply", ylabel="reward − reward at the first iteration")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _png(figure)


def _number(value) -> float:
    """A plottable float: None (a non-finite number in a JSON report) becomes NaN, a gap in the line."""
    return math.nan if value is None else float(value)


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise AlignkitError("the report's plots need matplotlib: pip install 'alignkit[report]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")
