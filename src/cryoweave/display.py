"""Small formatting helpers shared by the command line and the demo."""

from __future__ import annotations


def human_size(size: float) -> str:
    """A byte count in binary units.

    >>> human_size(512), human_size(3 * 2**20)
    ('512 B', '3.0 MiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def si_size(size: float) -> str:
    """A byte count in SI units (1 kB = 1000 B, as ``du --si`` counts disk space).

    >>> si_size(999), si_size(12_345_678_901)
    ('999 B', '12.3 GB')
    """
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
