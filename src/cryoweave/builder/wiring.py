"""Wiring a job's inputs: groups connected, single slots overridden, cleared or reset.

Each function returns a change for :meth:`cryoweave.store.Store.edit_job` (run with the project
locked). Connections change only while a job is building: a job that ran must be cleared first.

>>> store.edit_job("P1", "J7", connect("particles", "J5.particles"))              # doctest: +SKIP
>>> store.edit_job("P1", "J7", connect_result("particles", 0, "blob", "J3.particles.blob"))  # doctest: +SKIP
"""

from __future__ import annotations

from cryoweave.builder.bindings import bind_connection, cached, group_results
from cryoweave.builder.edits import Change, editable
from cryoweave.errors import NotFoundError, ParamError
from cryoweave.model.jobspec import InputSpec
from cryoweave.model.records import Connection, JobRecord, ResultRef
from cryoweave.store.transaction import ProjectTx, parse_uid


def _same_project(tx: ProjectTx, address: str) -> str:
    """An address with an optional ``P<n>.`` prefix: the prefix must name this project."""
    head, sep, rest = address.partition(".")
    if sep and head[:1].upper() == "P" and head[1:].isdigit():
        if f"P{int(head[1:])}" != tx.uid:
            raise ParamError(f"{address!r} is in project P{int(head[1:])}, not {tx.uid}: jobs connect only within "
                             "one project (export the group there and import it here)")
        return rest
    return address


def _source(tx: ProjectTx, record: JobRecord, job: str, what: str) -> JobRecord:
    """The job an input takes from: another job of the project."""
    uid = f"J{parse_uid(job, 'J', 'job')}"
    if uid == record.uid:
        raise ParamError(f"job {record.uid} cannot be connected to its own output ({what})")
    return tx.job(uid)[1]


def _no_cycle(tx: ProjectTx, record: JobRecord, source: JobRecord, what: str) -> None:
    if record.uid in tx.ancestors(source):
        raise ParamError(f"connecting {what} to {record.uid} would make a cycle: {source.uid} already depends on "
                         f"{record.uid}")


def _check_datatype(source: JobRecord, group: str, spec: InputSpec, what: str, job: str) -> None:
    """The output group must exist and hold the input's datatype."""
    output = next((o for o in source.spec.outputs if o.name == group), None)
    if output is None and group not in source.outputs:
        known = ", ".join(o.name for o in source.spec.outputs) or "none"
        raise NotFoundError(f"job {source.uid} ({source.type}) has no output {group!r} (outputs: {known})")
    datatype = output.type if output is not None else source.outputs[group].type
    if datatype != spec.type:
        raise ParamError(f"{what} holds {datatype.value} items but input {spec.name!r} of {job} takes "
                         f"{spec.type.value}")


def _connection(record: JobRecord, input_name: str, index: int) -> tuple[InputSpec, Connection]:
    spec = record.spec.input(input_name)
    current = record.inputs.get(input_name, [])
    if not 0 <= index < len(current):
        raise ParamError(f"input {input_name!r} of {record.uid} has {len(current)} connection(s); there is no "
                         f"connection {index}" + (f" (use 0 to {len(current) - 1})" if current else
                                                  f" (connect a group first: connect {input_name} J<n>.<output>)"))
    return spec, current[index]


def _slot(spec: InputSpec, record: JobRecord, slot: str):
    for s in spec.slots:
        if s.name == slot:
            return s
    known = ", ".join(s.name for s in spec.slots) or "none"
    raise ParamError(f"input {spec.name!r} of {record.uid} has no slot {slot!r} (slots: {known})")


def connect(input_name: str, address: str) -> Change:
    """Connect an output group (``J5.particles``) to an input group; its results bind to the slots."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        editable(record, "its inputs")
        spec = record.spec.input(input_name)
        connection = Connection.parse(_same_project(tx, address))
        source = _source(tx, record, connection.job, str(connection))
        lookup = cached(lambda uid: tx.job(uid)[1])
        _check_datatype(source, connection.group, spec, str(connection), record.uid)
        current = record.inputs.setdefault(input_name, [])
        if spec.count_max is not None and len(current) >= spec.count_max:
            raise ParamError(f"input {input_name!r} of {record.uid} takes at most {spec.count_max} group(s) "
                             f"and has {len(current)}; disconnect one first")
        if not spec.repeat_allowed and any(str(c) == str(connection) for c in current):
            raise ParamError(f"{connection} is already connected to input {input_name!r} of {record.uid}")
        _no_cycle(tx, record, source, str(connection))
        held = group_results(source, connection.group, lookup)
        binding = bind_connection(spec, len(current), connection, held)
        missing = [b for b in binding.slots if b.how == "missing"]
        if missing:
            have = ", ".join(f"{a.name} ({a.dtype})" for a in (held or {}).values()) or "no results"
            raise ParamError(f"{connection} has no result for the required slot {missing[0].name!r} "
                             f"({missing[0].dtype}) of input {input_name!r}: it holds {have}")
        current.append(connection)
        bound = ", ".join(f"{b.name}←{b.address}" for b in binding.slots if b.ref is not None)
        return f"input {input_name}[{len(current) - 1}] connected to {connection}" + (f" ({bound})" if bound else "")
    return change


def connect_result(input_name: str, index: int, slot: str, address: str) -> Change:
    """Bind one slot of one connection to a result of any job (``J3.particles.blob``, ``….alignments3D.3``)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        editable(record, "its inputs")
        spec, connection = _connection(record, input_name, index)
        target = _slot(spec, record, slot)
        ref = ResultRef.parse(_same_project(tx, address))
        source = _source(tx, record, ref.job, str(ref))
        _no_cycle(tx, record, source, str(ref))
        lookup = cached(lambda uid: tx.job(uid)[1])
        _check_datatype(source, ref.group, spec, f"{ref.job}.{ref.group}", record.uid)
        held = group_results(source, ref.group, lookup)
        if held is not None:
            found = held.get(ref.result)
            if found is None:
                raise NotFoundError(f"{ref.job}.{ref.group} has no result {ref.result!r} (results: "
                                    f"{', '.join(held) or 'none'})")
            if found.dtype != target.dtype:
                raise ParamError(f"{ref.job}.{ref.group}.{ref.result} is a {found.dtype} result; slot "
                                 f"{input_name}.{index}.{slot} takes {target.dtype}")
            if ref.version != "F":
                versions = (0,) if found.passthrough and found.versions else found.versions
                if not versions:
                    raise ParamError(f"{ref.job} has not saved {ref.job}.{ref.group}.{ref.result} yet; only its "
                                     "final version (F) can be chosen before it runs")
                if ref.version not in versions:
                    raise ParamError(f"{ref.job}.{ref.group}.{ref.result} has no version {ref.version}; saved "
                                     f"versions: {', '.join(map(str, versions))}")
        elif ref.version != "F":
            raise ParamError(f"{ref.job} has not run; only the final version (F) of its results can be chosen")
        connection.overrides[slot] = ref
        if slot in connection.cleared:
            connection.cleared.remove(slot)
        return f"input slot {input_name}.{index}.{slot} bound to {ref}"
    return change


def clear_slot(input_name: str, index: int, slot: str) -> Change:
    """Leave an optional slot of a connection empty."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        editable(record, "its inputs")
        spec, connection = _connection(record, input_name, index)
        target = _slot(spec, record, slot)
        if target.required:
            raise ParamError(f"slot {input_name}.{index}.{slot} is required: it can be bound to another result "
                             "(connect-result) but not cleared")
        connection.overrides.pop(slot, None)
        if slot not in connection.cleared:
            connection.cleared.append(slot)
        return f"input slot {input_name}.{index}.{slot} cleared"
    return change


def reset_slot(input_name: str, index: int, slot: str) -> Change:
    """Undo an override or a clear: the slot binds to its connection's group again."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        editable(record, "its inputs")
        spec, connection = _connection(record, input_name, index)
        _slot(spec, record, slot)
        connection.overrides.pop(slot, None)
        if slot in connection.cleared:
            connection.cleared.remove(slot)
        return f"input slot {input_name}.{index}.{slot} bound to {connection} again"
    return change


def disconnect(input_name: str, index: int | None = None) -> Change:
    """Remove one connection of an input (by index) or all of them."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        editable(record, "its inputs")
        record.spec.input(input_name)
        current = record.inputs.get(input_name, [])
        if index is None:
            removed = [str(c) for c in current]
            record.inputs.pop(input_name, None)
        else:
            if not 0 <= index < len(current):
                raise ParamError(f"input {input_name!r} of {record.uid} has {len(current)} connection(s); "
                                 f"there is no connection {index}")
            removed = [str(current.pop(index))]
            if not current:
                record.inputs.pop(input_name, None)
        return f"input {input_name} disconnected from {', '.join(removed) or 'nothing'}"
    return change
