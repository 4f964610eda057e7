"""Writing STAR loop blocks fast: each column formatted at once as a byte matrix.

``starfile.write`` formats every cell in Python (well over 20 s for a million particles); here
numbers become fixed-point digits with numpy arithmetic and text is encoded once per distinct
value, so a million rows take a few seconds.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import pandas as pd

CHUNK = 200_000  # rows formatted at a time


def write_loop(fh: BinaryIO, name: str, columns: dict[str, object], n: int, *, version: bool = True) -> None:
    """Write a loop block of ``n`` rows, formatted ``CHUNK`` rows at a time as byte matrices."""
    head = "".join(f"_{label} #{i}\n" for i, label in enumerate(columns, 1))
    fh.write(f"{'# version 30001' if version else ''}\n\ndata_{name}\n\nloop_\n{head}".encode())
    for start in range(0, n, CHUNK):
        rows, cells = slice(start, start + CHUNK), []
        for values in columns.values():
            if isinstance(values, tuple):  # _rlnImageName: index@path
                idx, paths = values[0][rows], values[1][rows]
                if all(map(plain, pd.unique(paths))):
                    at = np.full((len(idx), 1), ord("@"), np.uint8)
                    cells.append(np.hstack([_digits(idx, 0, 6), at, _text(paths)]))
                else:  # quoted as a whole
                    names = [f"{i:06d}@{p}" for i, p in zip(idx.tolist(), paths.tolist())]
                    cells.append(_text(np.array(names, dtype=object)))
            else:
                cells.append(_cells(np.asarray(values)[rows]))
        gap = np.full((len(cells[0]), 1), ord(" "), np.uint8)
        line = [c for cell in cells for c in (cell, gap)]
        line[-1] = np.full_like(gap, ord("\n"))
        fh.write(np.hstack(line).tobytes())
    fh.write(b"\n")


def _cells(values: np.ndarray) -> np.ndarray:
    """One column as text: strings as they are, numbers with 6 decimals (integers without)."""
    if values.dtype.kind in "OSU":
        return _text(values)
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and np.abs(values).max() < 1e12):
        return _text(np.array([f"{v:.6f}" for v in values.tolist()], dtype=object))
    return _digits(values, 6 if values.dtype.kind == "f" else 0)


def _text(values: np.ndarray) -> np.ndarray:
    """Strings as an (n, width) byte matrix, space-padded; quoted when empty or holding spaces."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    encoded = np.array([(u if plain(u) else f'"{u}"').encode() for u in map(str, uniques)] or [b""],
                       dtype=bytes)
    matrix = encoded.view(np.uint8).reshape(len(encoded), -1)[codes]
    return np.where(matrix == 0, ord(" "), matrix).astype(np.uint8)


def plain(text: str) -> bool:
    """Whether a string can be written without quotes (not empty, no white space)."""
    return bool(text) and not any(c.isspace() for c in text)


def _digits(values: np.ndarray, decimals: int = 0, min_digits: int = 1) -> np.ndarray:
    """Finite numbers as right-aligned fixed-point text, an (n, width) byte matrix, in whole columns."""
    v = np.asarray(values)
    if v.dtype.kind == "f":
        q = np.rint(np.abs(v.astype(np.float64)) * 10.0**decimals).astype(np.uint64)
        neg = (v < 0) & (q > 0)
    else:
        neg = v < 0
        q = np.abs(v).astype(np.uint64) if v.dtype.kind == "i" else v.astype(np.uint64)
    fixed = max(min_digits, decimals + 1)  # digits always shown (units, decimals, zero padding)
    ndig = max(fixed, len(str(int(q.max()))) if q.size else 1)
    width = ndig + (decimals > 0) + bool(neg.any())
    out = np.full((len(q), width), ord(" "), np.uint8)
    done = np.zeros(len(q), dtype=bool)  # the sign is placed (or the number has no more digits)
    pos = width - 1
    for k in range(ndig):
        if decimals and k == decimals:
            out[:, pos] = ord(".")
            pos -= 1
        digit = (q % 10).astype(np.uint8) + ord("0")
        if k < fixed:
            out[:, pos] = digit
        else:
            blank = q == 0
            out[:, pos] = np.where(blank, np.where(neg & ~done, ord("-"), ord(" ")), digit)
            done |= blank
        q //= 10
        pos -= 1
    if pos >= 0:
        out[:, pos] = np.where(neg & ~done, ord("-"), ord(" "))
    return out
