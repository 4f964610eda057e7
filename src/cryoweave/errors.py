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


class NotFoundError(CryoweaveError, LookupError):
    """A project, workspace, job, job type or output that does not exist."""


class StatusError(CryoweaveError):
    """A status change the job lifecycle does not allow, or an edit the current state forbids
    (a job no longer building, an archived project)."""


class ResultError(CryoweaveError):
    """An output result that cannot be resolved, loaded or saved: a version never saved, a missing
    or damaged metafile, items that do not match; the message names the job, result, version and path."""


class DataError(CryoweaveError):
    """A job's data cannot be used: image files missing, mixed box sizes, a map and mask that differ."""


class ParamError(CryoweaveError, ValueError):
    """A job parameter that does not exist or whose value does not fit its type."""


class JobTypeError(SpecError):
    """A job type declaration that is not valid, or a plugin that cannot be loaded."""


class RecordError(CryoweaveError):
    """A project record file (project.json, job.json ...) that is missing, corrupt or too new."""


class AttachError(CryoweaveError):
    """A project directory that cannot be attached to or detached from this instance."""


class StoreError(CryoweaveError):
    """The instance database cannot be opened or used."""


class UnsafePathError(CryoweaveError):
    """A file to import or extract names a place outside its folder (``..``, an absolute path, a link
    that leads out); nothing is written."""
