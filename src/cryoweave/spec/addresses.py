"""Addresses of output groups, output results and input slots, as the seeds print them.

Output addresses: ``J12.particles`` (a group), ``J12.particles.blob`` (a result, final
version), ``J12.particles.blob.F`` (the same) and ``J12.particles.alignments3D.3`` (version 3).
``str()`` prints the canonical form, which leaves out ``.F``: ``J12.particles.blob.F`` prints
as ``J12.particles.blob``. Input slot addresses: ``particles.0.blob`` (input group,
connection index, slot).

>>> a = parse_output_address("J12.particles.alignments3D.3")
>>> a.job_number, a.result, a.version
(12, 'alignments3D', 3)
>>> str(parse_output_address("J12.particles.blob.F"))
'J12.particles.blob'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from cryoweave.errors import AddressError
from cryoweave.spec.results import IDENTIFIER

FINAL = "F"
"""The version label of a result's final output."""

_JOB_UID = re.compile(r"^J[1-9][0-9]*$")
_NUMBER = re.compile(r"^[0-9]+$")
_OUTPUT_FORMS = "J12.particles, J12.particles.blob, J12.particles.blob.F or J12.particles.alignments3D.3"
_INPUT_FORMS = "particles.0.blob (input group, connection index, slot)"


def _identifier_problem(part: str) -> str | None:
    if not part:
        return "is empty"
    if not IDENTIFIER.match(part):
        return f"{part!r} must be a letter followed by letters, digits or '_'"
    return None


def _output_problem(job: Any, group: Any, result: Any, version: Any) -> str | None:
    """What is wrong with these parts of an output address, or None."""
    if not isinstance(job, str) or not _JOB_UID.match(job):
        return f"the job {job!r} must be J followed by a number from 1, e.g. J12"
    if not isinstance(group, str) or (problem := _identifier_problem(group)):
        return f"the output group {problem or repr(group)}"
    if result is None:
        return None if version == FINAL else "a version needs a result, e.g. J12.particles.blob.3"
    if not isinstance(result, str) or (problem := _identifier_problem(result)):
        return f"the result {problem or repr(result)}"
    if result == FINAL:
        return "'F' is a version and needs a result before it, e.g. J12.particles.blob.F"
    if version != FINAL and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        return f"the version {version!r} must be F or a number from 0"
    return None


@dataclass(frozen=True)
class OutputAddress:
    """An output group (``result`` None) or one version of one of its results.

    >>> str(OutputAddress("J3", "volume", "map", 7))
    'J3.volume.map.7'
    """

    job: str
    group: str
    result: str | None = None
    version: int | Literal["F"] = FINAL

    def __post_init__(self) -> None:
        problem = _output_problem(self.job, self.group, self.result, self.version)
        if problem:
            raise AddressError(f"{self!r} is not a valid output address: {problem}; "
                               f"expected {_OUTPUT_FORMS}")

    def __str__(self) -> str:
        text = f"{self.job}.{self.group}"
        if self.result is not None:
            text += f".{self.result}"
            if self.version != FINAL:
                text += f".{self.version}"
        return text

    @property
    def job_number(self) -> int:
        """The job's number: 12 for ``J12``."""
        return int(self.job[1:])


@dataclass(frozen=True)
class InputSlotAddress:
    """One slot of one connection of an input group, e.g. ``particles.0.blob``.

    >>> str(InputSlotAddress("volume", 1, "map_half_A"))
    'volume.1.map_half_A'
    """

    group: str
    connection: int
    slot: str

    def __post_init__(self) -> None:
        problem = _input_problem(self.group, self.connection, self.slot)
        if problem:
            raise AddressError(f"{self!r} is not a valid input slot address: {problem}; "
                               f"expected {_INPUT_FORMS}")

    def __str__(self) -> str:
        return f"{self.group}.{self.connection}.{self.slot}"


def _input_problem(group: Any, connection: Any, slot: Any) -> str | None:
    if not isinstance(group, str) or (problem := _identifier_problem(group)):
        return f"the input group {problem or repr(group)}"
    if isinstance(connection, bool) or not isinstance(connection, int) or connection < 0:
        return f"the connection index {connection!r} must be a number from 0"
    if not isinstance(slot, str) or (problem := _identifier_problem(slot)):
        return f"the slot {problem or repr(slot)}"
    return None


def parse_output_address(text: Any) -> OutputAddress:
    """Parse ``J12.particles``, ``J12.particles.blob``, ``….blob.F`` or ``….alignments3D.3``.

    Raises
    ------
    AddressError
        Naming the text, the part that is wrong and the expected forms.

    >>> parse_output_address("J12.particles.blob")
    OutputAddress(job='J12', group='particles', result='blob', version='F')
    """
    if not isinstance(text, str):
        raise AddressError(f"output address {text!r} must be a string such as {_OUTPUT_FORMS}")
    parts = text.split(".")
    if not 2 <= len(parts) <= 4:
        if not text:
            problem = "it is empty"
        elif len(parts) == 1:
            problem = "the output group is missing after the job"
        else:
            problem = f"it has {len(parts)} parts separated by '.', at most 4 (job.group.result.version)"
        raise AddressError(f"{text!r} is not an output address: {problem}; expected {_OUTPUT_FORMS}")
    job, group = parts[0], parts[1]
    result = parts[2] if len(parts) > 2 else None
    version: Any = FINAL
    if len(parts) == 4:
        version = int(parts[3]) if _NUMBER.match(parts[3]) else parts[3]
        if version != FINAL and not isinstance(version, int):
            raise AddressError(f"{text!r} is not an output address: the version {parts[3]!r} must be "
                               f"F or a number from 0; expected {_OUTPUT_FORMS}")
    problem = _output_problem(job, group, result, version)
    if problem:
        raise AddressError(f"{text!r} is not an output address: {problem}; expected {_OUTPUT_FORMS}")
    return OutputAddress(job, group, result, version)


def parse_input_slot_address(text: Any) -> InputSlotAddress:
    """Parse ``particles.0.blob`` (input group, connection index, slot).

    Raises
    ------
    AddressError
        Naming the text, the part that is wrong and the expected form.

    >>> parse_input_slot_address("particles.0.blob")
    InputSlotAddress(group='particles', connection=0, slot='blob')
    """
    if not isinstance(text, str):
        raise AddressError(f"input slot address {text!r} must be a string such as {_INPUT_FORMS}")
    parts = text.split(".")
    if len(parts) != 3:
        problem = "it is empty" if not text else f"it has {len(parts)} parts separated by '.', expected 3"
        raise AddressError(f"{text!r} is not an input slot address: {problem}; expected {_INPUT_FORMS}")
    connection: Any = int(parts[1]) if _NUMBER.match(parts[1]) else parts[1]
    problem = _input_problem(parts[0], connection, parts[2])
    if problem:
        raise AddressError(f"{text!r} is not an input slot address: {problem}; expected {_INPUT_FORMS}")
    return InputSlotAddress(parts[0], connection, parts[2])
