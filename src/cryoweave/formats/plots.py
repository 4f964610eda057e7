"""Plots drawn with numpy alone, for the PNGs a job shows in its event log (no plotting library).

:func:`histogram_plot` draws a histogram as an RGB array: bars, axes, optional curves (a fitted
model's components), vertical lines (thresholds) and shaded x ranges (what is kept), with the x
range and the highest count written in a small bitmap font. :func:`line_plot` draws curves over one
x axis (FSC curves) with dashed threshold lines and a legend. :func:`png_bytes` turns either into PNG.

>>> image = histogram_plot(np.random.default_rng(0).normal(size=1000), lines=[0.0])
>>> image.shape, image.dtype
((360, 640, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BAR = (92, 124, 172)
AXIS = (40, 40, 40)
SHADE = (214, 238, 214)
LINE = (200, 40, 40)
CURVES = ((230, 140, 20), (40, 150, 60), (150, 60, 170), (20, 160, 170), (170, 110, 60), (90, 90, 90))

# A 3×5 bitmap font for numbers: each glyph is 5 rows of 3 bits.
_GLYPHS = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"), "-": ("000", "000", "111", "000", "000"),
    "+": ("000", "010", "111", "010", "000"), "e": ("000", "111", "111", "100", "111"),
    " ": ("000", "000", "000", "000", "000"),
}


def number_text(value: float) -> str:
    """A short label for a number (4 significant digits)."""
    return f"{value:.4g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def draw_text(image: np.ndarray, text: str, x: int, y: int, color: Sequence[int] = AXIS, scale: int = 2) -> None:
    """Write ``text`` (digits, ``. - + e``) with its top-left corner at (x, y); clipped at the edges."""
    height, width = image.shape[:2]
    for char in text:
        glyph = _GLYPHS.get(char, _GLYPHS[" "])
        for row, bits in enumerate(glyph):
            for col, bit in enumerate(bits):
                if bit == "1":
                    top, left = y + row * scale, x + col * scale
                    image[max(top, 0):min(top + scale, height), max(left, 0):min(left + scale, width)] = color
        x += 4 * scale


def text_width(text: str, scale: int = 2) -> int:
    return len(text) * 4 * scale - scale


def _polyline(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: Sequence[int], thick: int = 2) -> None:
    """Join the points (pixel coordinates) with straight segments, ``thick`` pixels wide."""
    height, width = image.shape[:2]
    for (x0, y0), (x1, y1) in zip(zip(xs[:-1], ys[:-1]), zip(xs[1:], ys[1:])):
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        px = np.round(np.linspace(x0, x1, steps + 1)).astype(int)
        py = np.round(np.linspace(y0, y1, steps + 1)).astype(int)
        for dx in range(thick):
            for dy in range(thick):
                ok = (px + dx >= 0) & (px + dx < width) & (py + dy >= 0) & (py + dy < height)
                image[py[ok] + dy, px[ok] + dx] = color


def _axes(image: np.ndarray, frame: tuple[int, int, int, int], x_range: tuple[float, float], px) -> None:
    """The x and y axes of a plot, the ends of its x range written under it."""
    left, right, top, bottom = frame
    width = image.shape[1]
    image[bottom:bottom + 2, left:right] = AXIS
    image[top - 8:bottom + 2, left:left + 2] = AXIS
    for x in x_range:
        label = number_text(x)
        at = int(np.clip(px(x) - text_width(label) / 2, 2, width - 2 - text_width(label)))
        draw_text(image, label, at, bottom + 8)


def histogram_plot(values: np.ndarray, bins: int = 100, *, value_range: tuple[float, float] | None = None,
                   curves: Sequence[tuple[np.ndarray, np.ndarray]] = (), lines: Sequence[float] = (),
                   shade: Sequence[tuple[float | None, float | None]] = (), size: tuple[int, int] = (360, 640),
                   ) -> np.ndarray:
    """An RGB image of a histogram of ``values`` (NaNs and infinities left out).

    ``curves``: ``(x, density)`` pairs drawn over the bars, scaled as counts per bin (a density
    integrating to the fraction of the values it models); ``lines``: x positions of vertical lines;
    ``shade``: x ranges ``(low, high)`` painted behind the bars (``None``: to the edge).
    """
    height, width = size
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if value_range is None:
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    else:
        low, high = value_range
    if not high > low:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 12, width - 12, 26, height - 24
    span_x, span_y = right - left, bottom - top
    peak = max(int(counts.max()) if len(counts) else 0, 1)
    scale = len(values) * (high - low) / bins  # density → counts per bin

    def px(x: float | np.ndarray) -> np.ndarray:
        return left + (np.asarray(x, np.float64) - low) / (high - low) * span_x

    def py(count: float | np.ndarray) -> np.ndarray:
        return bottom - np.asarray(count, np.float64) / peak * span_y * 0.95

    for lo, hi in shade:
        a = int(np.clip(px(low if lo is None else lo), left, right))
        b = int(np.clip(px(high if hi is None else hi), left, right))
        if b > a:
            image[top:bottom, a:b] = SHADE
    for k, count in enumerate(counts):
        a, b = int(px(edges[k])), max(int(px(edges[k + 1])) - 1, int(px(edges[k])) + 1)
        if count:
            image[int(py(count)):bottom, a:b] = BAR
    for k, (xs, density) in enumerate(curves):
        xs, density = np.asarray(xs, np.float64), np.asarray(density, np.float64)
        _polyline(image, px(xs), np.clip(py(density * scale), top - 10, bottom), CURVES[k % len(CURVES)])
    for x in lines:
        if low <= x <= high:
            col = int(np.clip(px(x), left, right - 2))
            for start in range(top - 8, bottom, 8):  # dashed
                image[start:min(start + 5, bottom), col:col + 2] = LINE
            label = number_text(x)
            at = col + 5 if col + 5 + text_width(label) < width - 2 else col - 3 - text_width(label)
            draw_text(image, label, at, top - 6, LINE)
    _axes(image, (left, right, top, bottom), (low, high), px)
    draw_text(image, number_text(peak), left + 6, 6)
    return image


def line_plot(xs: np.ndarray, curves: Sequence[np.ndarray], labels: Sequence[str] = (), *,
              hlines: Sequence[float] = (0.143,), y_range: tuple[float, float] = (-0.1, 1.05),
              vlines: Sequence[float] = (), size: tuple[int, int] = (360, 640)) -> np.ndarray:
    """An RGB image of curves sharing one x axis (FSC curves against spatial frequency).

    ``curves``: y values, one array per curve, drawn in the colours of ``CURVES`` in order (values
    outside ``y_range`` are clipped to it); ``labels``: a legend, a colour swatch and the label per
    curve (the bitmap font writes digits and ``. - + e``; other characters are left blank, so a legend
    of numbers such as ``1``, ``2`` … matched in the log is the readable one); ``hlines``: dashed
    horizontal lines (thresholds such as 0.143), labelled with their value; ``vlines``: dashed
    vertical lines at x positions (a resolution). The x range and y range are written at the axes.
    """
    height, width = size
    xs = np.asarray(xs, np.float64)
    low, high = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 1.0)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    y_low, y_high = y_range
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 40, width - 12, 16, height - 24
    span_x, span_y = right - left, bottom - top

    def px(x: float | np.ndarray) -> np.ndarray:
        return left + (np.asarray(x, np.float64) - low) / (high - low) * span_x

    def py(y: float | np.ndarray) -> np.ndarray:
        return bottom - (np.clip(np.asarray(y, np.float64), y_low, y_high) - y_low) / (y_high - y_low) * span_y

    if y_low < 0 < y_high:
        image[int(py(0.0)), left:right] = (190, 190, 190)
    for y in hlines:
        if y_low <= y <= y_high:
            row = int(py(y))
            for start in range(left, right, 10):
                image[row:row + 2, start:min(start + 6, right)] = LINE
            draw_text(image, number_text(y), right - text_width(number_text(y)) - 2, row - 12, LINE)
    for x in vlines:
        if low <= x <= high:
            col = int(np.clip(px(x), left, right - 2))
            for start in range(top, bottom, 8):
                image[start:min(start + 5, bottom), col:col + 2] = LINE
    for k, ys in enumerate(curves):
        ys = np.asarray(ys, np.float64)
        ok = np.isfinite(ys)
        _polyline(image, px(xs[ok]), py(ys[ok]), CURVES[k % len(CURVES)])
    for k, label in enumerate(labels):
        at_y = top + 4 + 16 * k
        image[at_y:at_y + 8, right - 150:right - 130] = CURVES[k % len(CURVES)]
        draw_text(image, str(label), right - 124, at_y - 1)
    _axes(image, (left, right, top, bottom), (low, high), px)
    for y in (y_low, y_high):
        label = number_text(y)
        draw_text(image, label, max(left - 4 - text_width(label), 2), int(py(y)) - 5)
    return image
