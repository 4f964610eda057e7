"""The exceptions users can cause.

Every error a user can provoke with a bad file, a bad field name or a bad address is one of
these classes. Each message names the file, field or address at fault and says what to do;
the CLI prints it on one line and exits non-zero.

``DatasetError`` also derives from ``AssertionError`` (and ``ValueError``) because
cryosparc-tools signals invalid dataset operations with ``assert``; scripts written for it
that catch ``AssertionError`` keep working unchanged.
"""

from __future__ import annotations


class CryoweaveError(Exception):
    """Base class of every error cryoweave raises on purpose."""


class DatasetError(CryoweaveError, ValueError, AssertionError):
    """An invalid operation on a dataset (mismatched lengths, duplicate uids, ...)."""


class FieldNotFoundError(CryoweaveError, KeyError):
    """A field name that the dataset does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class RowIndexError(CryoweaveError, IndexError):
    """A row index outside the dataset (an ``IndexError``, as numpy and cryosparc-tools raise)."""


class DatasetLoadError(CryoweaveError):
    """A dataset file that cannot be read; the message names the file and the problem."""


class DatasetSaveError(CryoweaveError):
    """A dataset that cannot be written; the message names the destination and the problem."""


class SpecError(CryoweaveError, ValueError):
    """A datatype, result type, slot spec or dtype notation that is not valid."""


class AddressError(SpecError):
    """An address such as ``J12.particles.blob.F`` that does not parse."""


class FormatError(CryoweaveError):
    """A .csg, .star or other non-dataset file that cannot be read or written."""
