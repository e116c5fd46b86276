"""Small PNG charts for asset metadata and markdown reports.

Charts are rendered with matplotlib's Agg canvas on a private ``Figure`` (never
``pyplot``), so they are safe from any thread, never open a window, and leave the
global backend alone. Figures are small (6 x 3.5 in at 80 dpi = 480 x 280 px) so a PNG
embedded as a data URI in Dagster metadata stays well under ~60 KB. Output is
byte-for-byte deterministic for the same input: no timestamps or version strings are
written into the PNG and random subsampling is seeded.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

FIGSIZE = (6.0, 3.5)
DPI = 80
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _to_png(fig) -> bytes:
    buffer = io.BytesIO()
    # metadata={"Software": None} drops the matplotlib version stamp, so the bytes only
    # depend on the data (and the renderer), not on which matplotlib wrote them.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _finite(values: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be numeric: {exc}") from exc
    return array[np.isfinite(array)]


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def histogram_png(
    values: Any,
    title: str,
    xlabel: str,
    bins: int = 50,
    upper_quantile: float | None = None,
) -> bytes:
    """Histogram of ``values`` (NaN/inf dropped) as PNG bytes.

    ``upper_quantile`` (e.g. 0.99) drops values above that quantile first; raw TLC
    columns carry absurd outliers (100 000-mile trips) that would squash every real
    value into one bar. The title then says how many values were left out.
    """
    data = _finite(values, "histogram values")
    fig = _new_figure()
    ax = fig.add_subplot()
    if upper_quantile is not None and data.size:
        if not 0.0 < upper_quantile <= 1.0:
            raise ValueError(f"upper_quantile must be in (0, 1], got {upper_quantile}")
        cutoff = float(np.quantile(data, upper_quantile))
        dropped = int((data > cutoff).sum())
        data = data[data <= cutoff]
        if dropped:
            title = f"{title} ({dropped} values > {cutoff:.4g} not shown)"
    if data.size:
        ax.hist(data, bins=bins, color="#4C72B0", edgecolor="white", linewidth=0.3)
        ax.set_ylabel("count")
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return _to_png(fig)


def distributions_png(
    reference: Any,
    current: Any,
    title: str,
    xlabel: str,
    labels: tuple[str, str] = ("training window", "this month"),
    bins: int = 40,
    upper_quantile: float = 0.99,
) -> bytes:
    """Two distributions on shared bins, as densities (a drift picture): ``reference`` (the
    training window) as a filled histogram, ``current`` (the new month) as a step line.
    Values above the reference's ``upper_quantile`` are left out of both (named in the title)."""
    ref = _finite(reference, "reference values")
    cur = _finite(current, "current values")
    fig = _new_figure()
    ax = fig.add_subplot()
    if ref.size and cur.size:
        cutoff = float(np.quantile(ref, upper_quantile))
        low = float(min(ref.min(), cur.min()))
        edges = np.linspace(low, cutoff if cutoff > low else low + 1.0, bins + 1)
        dropped = int((ref > cutoff).sum() + (cur > cutoff).sum())
        ax.hist(ref[ref <= cutoff], bins=edges, density=True, color="#4C72B0", alpha=0.45, label=labels[0])
        ax.hist(cur[cur <= cutoff], bins=edges, density=True, histtype="step", color="#C44E52", linewidth=1.5, label=labels[1])
        ax.legend(fontsize=8)
        ax.set_ylabel("density")
        if dropped:
            title = f"{title} ({dropped} values > {cutoff:.4g} not shown)"
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return _to_png(fig)


def daily_counts_png(series: pd.Series, title: str) -> bytes:
    """Bar chart of a per-day count Series (e.g. from ``profile.pickups_per_day``)."""
    import matplotlib.dates as mdates

    fig = _new_figure()
    ax = fig.add_subplot()
    if len(series):
        index = pd.DatetimeIndex(series.index)
        ax.bar(index, np.asarray(series.values, dtype=float), width=0.8, color="#4C72B0")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel("count")
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=10)
    return _to_png(fig)


def bar_png(labels: Sequence[Any], values: Sequence[float], title: str, xlabel: str) -> bytes:
    """Horizontal bar chart, one bar per label, value printed at the end of each bar.

    Horizontal so long labels (model names, ``PU_DO=236_239``) stay readable; ``xlabel``
    names the value axis (e.g. ``"RMSE (minutes)"``).
    """
    labels = [str(label) for label in labels]
    numbers = np.asarray(values, dtype=float)
    if len(labels) != numbers.size:
        raise ValueError(f"bar_png: {len(labels)} labels but {numbers.size} values")
    fig = _new_figure()
    ax = fig.add_subplot()
    if numbers.size:
        positions = np.arange(numbers.size)
        ax.barh(positions, numbers, color="#4C72B0")
        ax.set_yticks(positions, labels, fontsize=8)
        ax.invert_yaxis()  # first label on top, like a table
        for position, number in zip(positions, numbers):
            ax.annotate(
                f"{number:.4g}",
                (number, position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.margins(x=0.15)
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return _to_png(fig)


def scatter_png(
    actual: Any, predicted: Any, title: str, max_points: int = 5000, seed: int = 0
) -> bytes:
    """Predicted vs actual scatter with the y = x line (perfect predictions lie on it).

    Pairs with a non-finite side are dropped; at most ``max_points`` pairs are drawn,
    chosen with a seeded RNG so the same input gives the same picture.
    """
    y_true = np.asarray(actual, dtype=float).ravel()
    y_pred = np.asarray(predicted, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"scatter_png: actual has {y_true.size} values but predicted has {y_pred.size}"
        )
    keep = np.isfinite(y_true) & np.isfinite(y_pred)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if max_points > 0 and y_true.size > max_points:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(y_true.size, size=max_points, replace=False))
        y_true, y_pred = y_true[chosen], y_pred[chosen]
    fig = _new_figure()
    ax = fig.add_subplot()
    if y_true.size:
        ax.scatter(y_true, y_pred, s=3, alpha=0.3, color="#4C72B0", linewidths=0, rasterized=True)
        low = float(min(y_true.min(), y_pred.min()))
        high = float(max(y_true.max(), y_pred.max()))
        ax.plot([low, high], [low, high], color="#C44E52", linewidth=1, label="y = x")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=10)
    return _to_png(fig)


def lines_png(labels: Sequence[Any], series: dict[str, Sequence[float | None]], title: str, ylabel: str) -> bytes:
    """One line per series over the ``labels`` (months); a missing value (None/NaN) is a gap,
    and each point is marked so a single month still shows."""
    labels = [str(label) for label in labels]
    fig = _new_figure()
    ax = fig.add_subplot()
    drawn = False
    positions = np.arange(len(labels))
    for name, values in series.items():
        numbers = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        if numbers.size != len(labels):
            raise ValueError(f"lines_png: {len(labels)} labels but {numbers.size} values for {name}")
        if np.isfinite(numbers).any():
            ax.plot(positions, numbers, marker="o", markersize=4, linewidth=1.5, label=name)
            drawn = True
    if drawn:
        ax.set_xticks(positions, labels, fontsize=8, rotation=45, ha="right")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=10)
    return _to_png(fig)


def png_markdown(png: bytes, alt: str) -> str:
    """Inline a PNG in markdown as ``![alt](data:image/png;base64,...)``."""
    if not bytes(png[:8]) == PNG_SIGNATURE:
        raise ValueError("png_markdown: data does not start with the PNG signature")
    safe_alt = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    safe_alt = safe_alt.replace("\n", " ")
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{safe_alt}](data:image/png;base64,{encoded})"
