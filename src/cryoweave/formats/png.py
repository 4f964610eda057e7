"""A minimal PNG writer for images a job shows in its event log (an 8-bit grey or RGB array).

Plots drawn by a plotting library arrive as PNG bytes already; this covers what numpy alone
makes: a central slice of a map, a 2D histogram.

>>> png_bytes(np.zeros((4, 4), np.uint8))[:8] == PNG_SIGNATURE
True
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from cryoweave.errors import FormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of a 2D (grey) or H×W×3 (RGB) array; floats are scaled from their min–max to 0–255."""
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or 0 in array.shape:
        raise FormatError(f"an image must be a non-empty H×W or H×W×3 array, not shape {array.shape}")
    if array.dtype != np.uint8:
        values = np.nan_to_num(array.astype(np.float64))
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        array = np.clip(np.round(values), 0, 255).astype(np.uint8)
    height, width = array.shape[:2]
    colour = 0 if array.ndim == 2 else 2
    rows = array.reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
