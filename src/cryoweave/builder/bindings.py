"""Which result each input slot is bound to, and which results pass through.

A connection records only the user's choices (the output group, single-slot overrides, cleared
slots). The binding is worked out from the output group's results, so it follows the source job
as it is now: its saved outputs once it has run, else what its spec and its own inputs say it
will hold. Each slot of the input group is bound

1. to an override, if the user set one (any job's result of the slot's type, any version);
2. to the group's result of the same name and type;
3. to the group's result of the same type (a result named after the type first, e.g.
   ``alignments3D`` for a slot ``alignments``), among those not taken by name. Maps and masks
   (``map``, ``map_half_A``, ``mask`` …) all share the type ``blob`` and differ only by their
   role, so those slots bind by name only.

Every other result of the group is carried along as a **passthrough**.

>>> spec = InputSpec(name="particles", type="particle", slots=["blob", "?ctf"])
>>> held = {"blob": Available("blob", "blob"), "location": Available("location", "location")}
>>> [(b.name, b.how) for b in bind_connection(spec, 0, Connection(job="J1", group="particles"), held).slots]
[('blob', 'name'), ('ctf', 'empty')]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryoweave.errors import NotFoundError
from cryoweave.model.jobspec import InputSpec
from cryoweave.model.records import Connection, JobRecord, ResultRef
from cryoweave.spec.results import VOLUME_SLOTS

Lookup = Callable[[str], JobRecord]
"""A job of the same project by uid (``"J5"``), raising NotFoundError when there is none."""


def cached(fetch: Lookup) -> Lookup:
    """``fetch`` with each job read once."""
    seen: dict[str, JobRecord] = {}

    def lookup(uid: str) -> JobRecord:
        if uid not in seen:
            seen[uid] = fetch(uid)
        return seen[uid]
    return lookup


@dataclass(frozen=True)
class Available:
    """A result an output group holds, or will hold once its job has run (``versions`` empty)."""

    name: str
    dtype: str
    passthrough: bool = False
    versions: tuple[int, ...] = ()


def group_results(record: JobRecord, group: str, lookup: Lookup,
                  _depth: int = 0) -> dict[str, Available] | None:
    """The results of output ``group`` of a job; ``None`` while they cannot be known yet (a job that
    has not run and whose passthrough input is not connected).

    Raises NotFoundError when the job has no such output.
    """
    saved = record.outputs.get(group)
    if saved is not None and saved.tables:
        return {r.name: Available(r.name, r.dtype, r.passthrough, tuple(r.versions)) for r in saved.results.values()}
    spec = next((o for o in record.spec.outputs if o.name == group), None)
    if spec is None:
        known = ", ".join(o.name for o in record.spec.outputs) or "none"
        raise NotFoundError(f"job {record.uid} ({record.type}) has no output {group!r} (outputs: {known})")
    held = {s.name: Available(s.name, s.dtype) for s in spec.slots}
    if spec.passthrough is None:
        return held
    connections = record.inputs.get(spec.passthrough, [])
    if not connections or _depth > 1000:
        return None
    input_spec = record.spec.input(spec.passthrough)
    carried: dict[str, str] | None = None
    for index, connection in enumerate(connections):
        try:
            source = group_results(lookup(connection.job), connection.group, lookup, _depth + 1)
        except NotFoundError:
            return None
        if source is None:
            return None
        binding = bind_connection(input_spec, index, connection, source)
        names = {b.name: b.dtype for b in [*binding.slots, *binding.passthroughs] if b.ref is not None}
        carried = names if carried is None else {n: d for n, d in carried.items() if n in names}
    for name, dtype in (carried or {}).items():
        held.setdefault(name, Available(name, dtype, passthrough=True))
    return held


@dataclass
class Bound:
    """One slot of a connection (or one passthrough result) and the result it is bound to.

    ``how``: ``override``, ``name``, ``type``, ``passthrough``; ``cleared`` (emptied by the user),
    ``empty`` (optional, nothing fits), ``missing`` (required, nothing fits) or ``unknown`` (the
    source job's results are not known yet).
    """

    name: str
    dtype: str
    required: bool
    ref: ResultRef | None
    how: str
    candidates: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return str(self.ref) if self.ref is not None else "—"


@dataclass
class ConnectionBinding:
    index: int
    connection: Connection
    slots: list[Bound]
    passthroughs: list[Bound]
    known: bool

    def label(self, input_name: str) -> str:
        return f"{input_name}[{self.index}] ({self.connection})"


def bind_connection(spec: InputSpec, index: int, connection: Connection,
                    held: dict[str, Available] | None) -> ConnectionBinding:
    """Bind the slots of input ``spec`` for one connection whose group holds ``held``."""
    taken: set[str] = set()
    by_name: dict[str, str] = {}
    if held is not None:
        for slot in spec.slots:
            found = held.get(slot.name)
            if slot.name not in connection.overrides and slot.name not in connection.cleared and found \
                    and found.dtype == slot.dtype:
                by_name[slot.name] = slot.name
                taken.add(slot.name)
    slots = []
    for slot in spec.slots:
        if slot.name in connection.overrides:
            slots.append(Bound(slot.name, slot.dtype, slot.required, connection.overrides[slot.name], "override"))
        elif slot.name in connection.cleared:
            slots.append(Bound(slot.name, slot.dtype, slot.required, None, "cleared"))
        elif held is None:
            slots.append(Bound(slot.name, slot.dtype, slot.required, None, "unknown"))
        elif slot.name in by_name or slot.name in VOLUME_SLOTS:
            ref = ResultRef(job=connection.job, group=connection.group, result=slot.name)
            how = "name" if slot.name in by_name else ("missing" if slot.required else "empty")
            slots.append(Bound(slot.name, slot.dtype, slot.required, ref if how == "name" else None, how))
        else:
            fits = [a.name for a in held.values() if a.dtype == slot.dtype and a.name not in taken]
            if fits:
                chosen = slot.dtype if slot.dtype in fits else fits[0]
                taken.add(chosen)
                slots.append(Bound(slot.name, slot.dtype, slot.required,
                                   ResultRef(job=connection.job, group=connection.group, result=chosen), "type",
                                   tuple(f for f in fits if f != chosen)))
            else:
                slots.append(Bound(slot.name, slot.dtype, slot.required, None,
                                   "missing" if slot.required else "empty"))
    passthroughs = []
    if held is not None:
        slot_names = {s.name for s in spec.slots}
        for a in held.values():
            if a.name not in taken and a.name not in slot_names:
                passthroughs.append(Bound(a.name, a.dtype, False,
                                          ResultRef(job=connection.job, group=connection.group, result=a.name),
                                          "passthrough"))
    return ConnectionBinding(index, connection, slots, passthroughs, held is not None)


@dataclass
class InputBinding:
    """An input group of a job: its spec, each connection's binding, and what keeps it from running."""

    name: str
    spec: InputSpec
    connections: list[ConnectionBinding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        """Results present in some connections only: appending the groups keeps common fields only."""
        if len(self.connections) < 2:
            return []
        sets = [{b.name for b in [*c.slots, *c.passthroughs] if b.ref is not None} for c in self.connections]
        return sorted(set.union(*sets) - set.intersection(*sets))


def bind_input(record: JobRecord, name: str, lookup: Lookup) -> InputBinding:
    """Bind every connection of one input group of a job and list what is unmet."""
    spec = record.spec.input(name)
    binding = InputBinding(name, spec)
    connections = record.inputs.get(name, [])
    count = len(connections)
    if count < spec.count_min:
        binding.problems.append(f"input {name!r} needs at least {spec.count_min} connected {spec.type.value} "
                                f"group(s) and has {count}")
    if spec.count_max is not None and count > spec.count_max:
        binding.problems.append(f"input {name!r} takes at most {spec.count_max} group(s) and has {count}")
    if not spec.repeat_allowed:
        seen: set[str] = set()
        for c in connections:
            if str(c) in seen:
                binding.problems.append(f"input {name!r} has {c} twice, and this input does not allow repeats")
            seen.add(str(c))
    for index, connection in enumerate(connections):
        try:
            held = group_results(lookup(connection.job), connection.group, lookup)
        except NotFoundError as err:
            binding.problems.append(f"input {name}[{index}]: {err}")
            held = None
        cb = bind_connection(spec, index, connection, held)
        binding.connections.append(cb)
        for b in cb.slots:
            if b.how == "missing":
                have = ", ".join(f"{a.name} ({a.dtype})" for a in (held or {}).values()) or "no results"
                binding.problems.append(f"input {cb.label(name)}: required slot {b.name!r} ({b.dtype}) has no "
                                        f"result: {connection} holds {have}; connect another group or bind the "
                                        f"slot with connect-result")
            elif b.how == "cleared" and b.required:
                binding.problems.append(f"input {cb.label(name)}: required slot {b.name!r} is cleared")
    return binding


def bind_inputs(record: JobRecord, lookup: Lookup) -> list[InputBinding]:
    return [bind_input(record, spec.name, lookup) for spec in record.spec.inputs]
