"""Job types declared as data: inputs, outputs, parameters and resources.

A job type is a :class:`JobTypeSpec`, plain data that serialises to JSON. Labs ship their own
through the ``cryoweave.jobs`` entry point group (see :mod:`cryoweave.jobs.registry`). Every
job record keeps a copy of the spec it was created with, so a project stays readable on an
instance that lacks the plugin.

>>> spec = JobTypeSpec.model_validate({
...     "type": "subset_particles", "title": "Subset particles",
...     "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"]}],
...     "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
...     "params": [{"name": "fraction", "type": "number", "default": 0.5, "minimum": 0, "maximum": 1}],
... })
>>> spec.coerce_params({"fraction": "0.25"})
{'fraction': 0.25}
"""

from __future__ import annotations

import math
import os
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryoweave.errors import CryoweaveError, JobTypeError, ParamError
from cryoweave.spec import Datatype, parse_slot
from cryoweave.spec.results import IDENTIFIER


def describe(err: ValidationError) -> str:
    """pydantic's errors as one line: ``problem (at place); ...``."""
    parts = []
    for e in err.errors():
        where = ".".join(map(str, e.get("loc", ())))
        parts.append(e.get("msg", "").removeprefix("Value error, ") + (f" (at {where})" if where else ""))
    return "; ".join(parts)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier(value: str, what: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} must be a letter then letters, digits or '_'")
    return value


class SlotSpec(_Model):
    """One result an input takes or an output makes: name, result type, required or not."""

    name: str
    dtype: str
    required: bool = True

    @model_validator(mode="before")
    @classmethod
    def _from_notation(cls, value: Any) -> Any:
        """Slot specs as users write them: ``"ctf"``, ``"?background_blob"``, dicts (see spec.slots)."""
        try:
            slot = parse_slot(value)
        except CryoweaveError as err:
            raise ValueError(str(err)) from None
        return {"name": slot.name, "dtype": slot.dtype, "required": slot.required}


class InputSpec(_Model):
    """An input group: a datatype, the slots it reads, and how many groups may connect."""

    name: str
    type: Datatype
    title: str = ""
    description: str = ""
    slots: list[SlotSpec] = Field(default_factory=list)
    count_min: int = Field(1, ge=0)
    count_max: int | None = Field(1, ge=1, description="None: any number")
    repeat_allowed: bool = False

    _name = field_validator("name")(lambda v: _identifier(v, "input name"))

    @model_validator(mode="after")
    def _counts(self) -> InputSpec:
        if self.count_max is not None and self.count_max < self.count_min:
            raise ValueError(f"input {self.name!r}: count_max {self.count_max} < count_min {self.count_min}")
        if len({s.name for s in self.slots}) != len(self.slots):
            raise ValueError(f"input {self.name!r} names a slot twice")
        return self


class OutputSpec(_Model):
    """An output group: the results the job creates, and the input whose other results pass through."""

    name: str
    type: Datatype
    title: str = ""
    description: str = ""
    slots: list[SlotSpec] = Field(default_factory=list)
    passthrough: str | None = None
    made_at_run: bool = Field(False, description="declared by the running job (e.g. one per split); "
                                                 "removed when the job is cleared")

    _name = field_validator("name")(lambda v: _identifier(v, "output name"))


class ParamType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    ENUM = "enum"
    PATH = "path"


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class ParamSpec(_Model):
    """A typed parameter with a default and help text; ``None`` means "not set" for optional ones."""

    name: str
    type: ParamType
    default: Any = None
    title: str = ""
    help: str = ""
    choices: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    section: str = ""
    advanced: bool = False

    _name = field_validator("name")(lambda v: _identifier(v, "parameter name"))

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if (self.type == ParamType.ENUM) != bool(self.choices):
            raise ValueError(f"parameter {self.name!r}: an enum needs choices, and only an enum has them")
        if self.default is not None:
            self.coerce(self.default)
        return self

    def coerce(self, value: Any) -> Any:
        """The value in this parameter's type (strings from the command line are parsed)."""
        if value is None:
            return None
        try:
            out = _COERCE[self.type](value)
        except (TypeError, ValueError):
            raise ParamError(f"parameter {self.name!r} takes {self._kind()}, not {value!r}") from None
        if self.type == ParamType.ENUM and out not in (self.choices or ()):
            raise ParamError(f"parameter {self.name!r} must be one of {', '.join(self.choices or ())}, "
                             f"not {out!r}")
        numeric = isinstance(out, int | float) and not isinstance(out, bool)
        below = numeric and self.minimum is not None and out < self.minimum
        above = numeric and self.maximum is not None and out > self.maximum
        if below or above:
            raise ParamError(f"parameter {self.name!r} must lie in [{self.minimum}, {self.maximum}], "
                             f"not {out}")
        return out

    def _kind(self) -> str:
        return {"number": "a number", "integer": "a whole number", "string": "text",
                "boolean": "true or false", "enum": "one of " + ", ".join(self.choices or ()),
                "path": "a path"}[self.type]


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    out = float(value)
    if not math.isfinite(out):
        raise ValueError
    return out


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(str(value).strip(), 10) if isinstance(value, str) else int(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _path(value: Any) -> str:
    """A path as the user meant it where they typed it: ``~`` expanded, relative to the current
    folder made absolute (a job runs elsewhere). Glob characters are kept."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = _text(value).strip()
    if not text:
        raise ValueError
    return os.path.abspath(os.path.expanduser(text))


_COERCE = {ParamType.NUMBER: _number, ParamType.INTEGER: _integer, ParamType.STRING: _text,
           ParamType.BOOLEAN: _boolean, ParamType.ENUM: _text, ParamType.PATH: _path}


class ResourceSpec(_Model):
    """What one job needs from a lane: CPUs, GPUs and memory."""

    cpu: int = Field(1, ge=1)
    gpu: int = Field(0, ge=0)
    ram_gb: float = Field(1.0, gt=0)


class JobTypeSpec(_Model):
    """Everything the system knows about a job type before it runs."""

    type: str
    title: str
    description: str = ""
    category: str = "utilities"
    version: str = "1"
    inputs: list[InputSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    run_outputs: str = Field("", description="the outputs the job declares when it runs, in words "
                                             "(e.g. split_0 … split_N-1 and remainder)")
    params: list[ParamSpec] = Field(default_factory=list)
    resources: ResourceSpec = Field(default_factory=ResourceSpec)

    _type = field_validator("type")(lambda v: _identifier(v, "job type"))

    @model_validator(mode="after")
    def _consistent(self) -> JobTypeSpec:
        for what, items in (("input", self.inputs), ("output", self.outputs), ("parameter", self.params)):
            names = [i.name for i in items]
            if len(set(names)) != len(names):
                raise ValueError(f"job type {self.type!r} declares an {what} name twice")
        inputs = {i.name for i in self.inputs}
        for out in self.outputs:
            if out.passthrough is not None and out.passthrough not in inputs:
                raise ValueError(f"output {out.name!r} passes through input {out.passthrough!r}, which "
                                 f"job type {self.type!r} does not have")
        return self

    @classmethod
    def parse(cls, data: Any, source: str = "") -> JobTypeSpec:
        """A spec from data, with one readable error naming the job type and the problem."""
        if isinstance(data, JobTypeSpec):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            name = data.get("type", "?") if isinstance(data, dict) else "?"
            raise JobTypeError(f"job type {name!r}{' from ' + source if source else ''} is not valid: "
                               f"{describe(err)}") from None

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise ParamError(f"job type {self.type!r} has no parameter {name!r} (parameters: {known})")

    def input(self, name: str) -> InputSpec:
        for i in self.inputs:
            if i.name == name:
                return i
        known = ", ".join(i.name for i in self.inputs) or "none"
        raise ParamError(f"job type {self.type!r} has no input {name!r} (inputs: {known})")

    def output(self, name: str) -> OutputSpec:
        for o in self.outputs:
            if o.name == name:
                return o
        known = ", ".join(o.name for o in self.outputs) or "none"
        raise ParamError(f"job type {self.type!r} has no output {name!r} (outputs: {known})")

    def coerce_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Explicitly set parameter values, checked and converted to their types."""
        return {name: self.param(name).coerce(value) for name, value in values.items()}

    def with_outputs(self, outputs: list[OutputSpec | dict[str, Any]]) -> JobTypeSpec:
        """This spec with these outputs instead of its own, checked as a whole (each passthrough input exists)."""
        data = self.model_dump(mode="json")
        data["outputs"] = [o.model_dump(mode="json") if isinstance(o, OutputSpec) else dict(o) for o in outputs]
        return JobTypeSpec.parse(data)

    def without_run_outputs(self) -> JobTypeSpec:
        """This spec without the outputs its job declared while it ran."""
        if not any(o.made_at_run for o in self.outputs):
            return self
        return self.model_copy(update={"outputs": [o for o in self.outputs if not o.made_at_run]})

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}
