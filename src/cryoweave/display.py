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
