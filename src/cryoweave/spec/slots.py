"""Slot specs: which results an input group needs or an output group makes.

A slot spec is written in one of four forms, all parsed into a `Slot`:

- ``"ctf"``: the name; the result type is inferred from it (`infer_result_dtype`);
- ``"?background_blob"``: the same, optional (input slots only);
- ``{"name": "components_mode_0", "dtype": "components", "required": False}``;
- ``{"prefix": "ctf", "dtype": "ctf"}``: the deprecated Datafield form, prefix being the name.

>>> parse_slot("?background_blob")
Slot(name='background_blob', dtype='stat_blob', required=False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryoweave.errors import SpecError
from cryoweave.spec.results import IDENTIFIER, infer_result_dtype

LoadableSlots = Literal["default", "passthrough", "all"] | list[str]
"""Which slots to load: those required or newly made, unused passthroughs, both, or a list."""

_EXAMPLES = ("write 'ctf', '?background_blob' or {'name': 'components_mode_0', 'dtype': 'components', "
             "'required': False}")


@dataclass(frozen=True)
class Slot:
    """One result of an input or output group: its name (the field prefix) and result type.

    ``required`` applies to input slots only; output slots are always made.

    >>> Slot("background_blob", "stat_blob", required=False).to_dict()
    {'name': 'background_blob', 'dtype': 'stat_blob', 'required': False}
    """

    name: str
    dtype: str
    required: bool = True

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("dtype", self.dtype)):
            if not isinstance(value, str) or not IDENTIFIER.match(value):
                raise SpecError(f"slot {what} {value!r} must be a letter followed by letters, digits "
                                "or '_', e.g. 'alignments_class_0'")
        if not isinstance(self.required, bool):
            raise SpecError(f"slot {self.name!r}: required must be True or False, not {self.required!r}")

    def to_dict(self) -> dict[str, Any]:
        """The full dict form, ``{"name": …, "dtype": …, "required": …}``."""
        return {"name": self.name, "dtype": self.dtype, "required": self.required}


def parse_slot(spec: Any, *, allow_optional: bool = True) -> Slot:
    """The `Slot` a slot spec (string, dict, Datafield dict or `Slot`) describes.

    Parameters
    ----------
    spec
        ``"ctf"``, ``"?ctf"``, ``{"name", "dtype", "required"?}``, ``{"prefix", "dtype",
        "required"?}`` or a `Slot`.
    allow_optional
        False for output slots, which cannot be optional.

    Raises
    ------
    SpecError
        If the spec is malformed, its name cannot be mapped to a result type, or it is
        optional where ``allow_optional`` is False.

    >>> parse_slot({"name": "alignments_class_1", "dtype": "alignments3D"})
    Slot(name='alignments_class_1', dtype='alignments3D', required=True)
    """
    if isinstance(spec, Slot):
        slot = spec
    elif isinstance(spec, str):
        slot = _from_string(spec)
    elif isinstance(spec, Mapping):
        slot = _from_mapping(spec)
    else:
        raise SpecError(f"slot spec {spec!r} must be a string, a dict or a Slot; {_EXAMPLES}")
    if not slot.required and not allow_optional:
        raise SpecError(f"slot {slot.name!r} cannot be optional here: output slots are always made; "
                        f"drop the '?' or 'required': False")
    return slot


def parse_slots(specs: Iterable[Any], *, allow_optional: bool = True) -> list[Slot]:
    """Parse a list of slot specs; two slots may not share a name.

    >>> [s.name for s in parse_slots(["blob", "?ctf"])]
    ['blob', 'ctf']
    """
    if isinstance(specs, str | Mapping | Slot):
        raise SpecError(f"slot specs must be a list, e.g. ['blob', '?ctf'], not {specs!r}")
    slots: list[Slot] = []
    seen: set[str] = set()
    for spec in specs:
        slot = parse_slot(spec, allow_optional=allow_optional)
        if slot.name in seen:
            raise SpecError(f"slot {slot.name!r} is given twice; each slot name may appear once")
        seen.add(slot.name)
        slots.append(slot)
    return slots


def _from_string(spec: str) -> Slot:
    name = spec[1:] if spec.startswith("?") else spec
    if not IDENTIFIER.match(name):
        raise SpecError(f"slot spec {spec!r}: {name!r} is not a slot name (a letter followed by "
                        f"letters, digits or '_'); {_EXAMPLES}")
    return Slot(name, infer_result_dtype(name), required=not spec.startswith("?"))


def _from_mapping(spec: Mapping[Any, Any]) -> Slot:
    keys = set(spec)
    if "name" in keys and "prefix" in keys:
        raise SpecError(f"slot spec {dict(spec)!r} gives both 'name' and 'prefix'; use 'name' only")
    name_key = "prefix" if "prefix" in keys else "name"
    allowed = {name_key, "dtype", "required"}
    if keys - allowed or not {name_key, "dtype"} <= keys:
        extra = ", ".join(sorted(map(repr, keys - allowed)))
        problem = f"unknown keys {extra}" if extra else "'name' and 'dtype' are both required"
        raise SpecError(f"slot spec {dict(spec)!r}: {problem}; {_EXAMPLES}")
    return Slot(spec[name_key], spec["dtype"], spec.get("required", True))
