"""Datatypes: the kinds of items a job takes in and puts out.

Every input group and every output group of a job holds items of one datatype, e.g. the
``particles`` output of a refinement holds ``particle`` items.

>>> parse_datatype("particle")
<Datatype.PARTICLE: 'particle'>
>>> str(Datatype.VOLUME_MULTI)
'volume_multi'
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from cryoweave.errors import SpecError


class Datatype(StrEnum):
    """The kind of item in an input or output group; the value is CryoSPARC's name."""

    EXPOSURE = "exposure"
    PARTICLE = "particle"
    TEMPLATE = "template"
    VOLUME = "volume"
    VOLUME_MULTI = "volume_multi"
    MASK = "mask"
    LIVE = "live"
    ML_MODEL = "ml_model"
    SYMMETRY_CANDIDATE = "symmetry_candidate"
    FLEX_MESH = "flex_mesh"
    FLEX_MODEL = "flex_model"
    HYPERPARAMETER = "hyperparameter"
    DENOISE_MODEL = "denoise_model"
    ANNOTATION_MODEL = "annotation_model"


VOLUME_DATATYPES: frozenset[Datatype] = frozenset({Datatype.VOLUME, Datatype.VOLUME_MULTI, Datatype.MASK})
"""Datatypes whose ``blob`` result is a 3D map (path, shape, psize_A) rather than an image stack."""


def parse_datatype(text: Any) -> Datatype:
    """The `Datatype` named by ``text`` (exact, lower-case CryoSPARC name).

    Raises
    ------
    SpecError
        If ``text`` names no datatype; the message lists the valid names.

    >>> parse_datatype("volume_multi")
    <Datatype.VOLUME_MULTI: 'volume_multi'>
    """
    if isinstance(text, Datatype):
        return text
    if isinstance(text, str):
        try:
            return Datatype(text)
        except ValueError:
            pass
    valid = ", ".join(d.value for d in Datatype)
    guess = text.lower().rstrip("s") if isinstance(text, str) else ""
    hint = f" (did you mean {guess!r}?)" if guess in {d.value for d in Datatype} else ""
    raise SpecError(f"{text!r} is not a datatype{hint}; use one of: {valid}")
