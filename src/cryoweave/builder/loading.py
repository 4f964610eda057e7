"""Loading results: a job's output at a version, and a job's assembled input groups.

Every load comes down to one table of items (the uids of an output group's own table, or of the
connected group's) and the results to add to them, each kept in one or more ``.cs`` files under
some prefix. Each file is read once, with only the fields asked for; the tables are joined on
``uid`` keeping the items present in every one (intersection); a result kept in several files
(a passthrough that came through several appended connections) is their concatenation. Tables
whose uids are those of the items in the same order, the common case along a chain of jobs, are
joined without searching or copying.

>>> load_output(project_dir, lookup("J7"), "particles", lookup)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoweave.builder.bindings import Bound, InputBinding, Lookup, bind_input
from cryoweave.dataset import Dataset
from cryoweave.dataset.combine import concat_columns, match_last
from cryoweave.dataset.memory import take
from cryoweave.dataset.parallel import parallel_map
from cryoweave.errors import DatasetError, DatasetLoadError, NotFoundError, ResultError
from cryoweave.model.records import JobRecord, OutputGroup, OutputResult, OutputTable, ResultRef, ResultSource
from cryoweave.spec import LoadableSlots
from cryoweave.spec.addresses import FINAL


@dataclass(frozen=True)
class Column:
    """One result to load: the name it gets, where its fields are, and how to name it in errors."""

    name: str
    sources: tuple[ResultSource, ...]
    label: str


def saved_group(record: JobRecord, group: str) -> OutputGroup:
    """An output group the job has saved, or a clear error."""
    saved = record.outputs.get(group)
    if saved is not None and saved.tables:
        return saved
    if group not in {o.name for o in record.spec.outputs} and group not in record.outputs:
        known = ", ".join(o.name for o in record.spec.outputs) or "none"
        raise NotFoundError(f"job {record.uid} ({record.type}) has no output {group!r} (outputs: {known})")
    raise ResultError(f"job {record.uid} ({record.status.value}) has not saved output {group!r} yet; "
                      "its results can be used once it has run")


def table_at(record: JobRecord, group: OutputGroup, version: int | str) -> OutputTable:
    if version == FINAL:
        return group.tables[-1]
    for table in group.tables:
        if table.version == version:
            return table
    raise ResultError(f"{record.uid}.{group.name} has no version {version}; saved versions: "
                      f"{', '.join(map(str, group.versions))} (F is {group.versions[-1]})")


def result_sources(result: OutputResult, record: JobRecord, group: str,
                   version: int | str) -> tuple[tuple[ResultSource, ...], str]:
    """Where one version of a result is kept, and its address with the version number."""
    if result.passthrough:
        if version not in (FINAL, 0):
            raise ResultError(f"{record.uid}.{group}.{result.name} is a passthrough and has only version 0 "
                              f"(or F), not {version}")
        origins = ", ".join(dict.fromkeys(s.origin for s in result.sources if s.origin))
        return tuple(result.sources), f"{record.uid}.{group}.{result.name} (passed through from {origins or '?'})"
    if not result.versions:
        raise ResultError(f"{record.uid}.{group}.{result.name} has no saved version")
    if version == FINAL:
        index = -1
    elif version in result.versions:
        index = result.versions.index(version)  # type: ignore[arg-type]
    else:
        raise ResultError(f"{record.uid}.{group}.{result.name} has no version {version}; saved versions: "
                          f"{', '.join(map(str, result.versions))} (F is {result.versions[-1]})")
    number = result.versions[index]
    label = f"{record.uid}.{group}.{result.name}.{number}"
    return (ResultSource(metafile=result.metafiles[index], prefix=result.name, origin=label),), label


def resolve(ref: ResultRef, lookup: Lookup) -> tuple[tuple[ResultSource, ...], str, str]:
    """The files of the result a slot is bound to: (sources, address with version, dtype)."""
    record = lookup(ref.job)
    group = saved_group(record, ref.group)
    result = group.results.get(ref.result)
    if result is None:
        raise ResultError(f"{ref.job}.{ref.group} has no result {ref.result!r} (results: "
                          f"{', '.join(group.results) or 'none'})")
    sources, label = result_sources(result, record, ref.group, ref.version)
    return sources, label, result.dtype


# ------------------------------------------------------------------------------------------ joining
def _read(project_dir: Path, metafile: str, prefixes: set[str], label: str) -> Dataset:
    path = project_dir / metafile
    if not path.is_file():
        raise ResultError(f"{label}: its metafile {path} is missing; clear and re-run the job that made it, "
                          "or restore the file")
    try:
        data = Dataset.load(path, prefixes=sorted(prefixes))
    except DatasetLoadError as err:
        raise ResultError(f"{label}: its metafile cannot be read: {err}") from None
    present = set(data.prefixes())
    lacking = sorted(prefixes - present)
    if lacking:
        raise ResultError(f"{label}: its metafile {path} has no '{lacking[0]}/...' fields (it has: "
                          f"{', '.join(sorted(present)) or 'none'})")
    return data


def join_tables(project_dir: str | Path, items: Sequence[str], columns: Sequence[Column], items_label: str,
                single_item_pairs: bool = True) -> Dataset:
    """The items of the ``items`` tables (concatenated) with each column's fields joined on uid."""
    project_dir = Path(project_dir)
    wanted: dict[str, set[str]] = {m: set() for m in items}
    labels: dict[str, str] = dict.fromkeys(items, items_label)
    for column in columns:
        for source in column.sources:
            wanted.setdefault(source.metafile, set()).add(source.prefix)
            labels.setdefault(source.metafile, column.label)
    files = {m: _read(project_dir, m, prefixes, labels[m]) for m, prefixes in wanted.items()}
    base = [files[m]._cols["uid"] for m in items]
    left = base[0] if len(base) == 1 else np.concatenate(base)
    keep = np.ones(len(left), dtype=bool)
    gathered: list[tuple[str, np.ndarray, np.ndarray | None]] = []  # (field, values, row index or None)
    matches: list[tuple[np.ndarray, np.ndarray | None]] = []  # uid columns already matched, by content
    for column in columns:
        parts = [files[s.metafile] for s in column.sources]
        uids = parts[0]._cols["uid"] if len(parts) == 1 else np.concatenate([p._cols["uid"] for p in parts])
        index = next((i for u, i in matches if u is uids or (len(u) == len(uids) and np.array_equal(u, uids))),
                     False)
        if index is False:
            index = _match(left, uids, keep, column, items_label, single_item_pairs)
            matches.append((uids, index))
        source = column.sources[0]
        for f in [f for f in parts[0]._cols if f.startswith(source.prefix + "/")]:
            values = parts[0]._cols[f] if len(parts) == 1 else concat_columns(
                [p._cols[f.replace(source.prefix + "/", s.prefix + "/", 1)] for p, s in zip(parts, column.sources)])
            gathered.append((column.name + f[len(source.prefix):], values, index))
    rows = None if keep.all() else np.flatnonzero(keep)
    cols: dict[str, np.ndarray] = {"uid": left if rows is None else left[rows]}
    tasks, seen = [], {"uid"}
    for task in gathered:  # a field named twice keeps its first binding
        if task[0] not in seen:
            seen.add(task[0])
            tasks.append(task)

    def gather(task: tuple[str, np.ndarray, np.ndarray | None]) -> np.ndarray:
        _, values, index = task
        if index is None:
            return values if rows is None else take(values, rows)
        return take(values, index if rows is None else index[rows])

    total = len(cols["uid"]) * sum(v.itemsize * (v[:1].size or 1) for _, v, _ in tasks)
    for (name, _, _), values in zip(tasks, parallel_map(gather, tasks, total_bytes=total)):
        cols[name] = values
    return Dataset._from_cols(cols)


def _match(left: np.ndarray, uids: np.ndarray, keep: np.ndarray, column: Column, items_label: str,
           single_item_pairs: bool) -> np.ndarray | None:
    """Row index into ``uids`` for each item (None: the same uids in the same order); clears ``keep``."""
    if len(uids) == len(left) and np.array_equal(uids, left):
        return None
    if single_item_pairs and len(left) == 1 and len(uids) == 1:
        return np.zeros(1, dtype=np.intp)  # one volume or mask is one item, whatever job made it
    index, found = match_last(left, uids)
    if len(left) and len(uids) and not found.any():
        raise ResultError(f"{column.label} shares no item (uid) with {items_label}: the result belongs to other "
                          "items; bind a result of the same items")
    keep &= found
    return index


# ------------------------------------------------------------------------------------------ outputs
def _chosen(slots: LoadableSlots, default: list[str], passthrough: list[str], what: str) -> list[str]:
    if slots == "default":
        return default
    if slots == "passthrough":
        return passthrough
    if slots == "all":
        return [*default, *passthrough]
    if isinstance(slots, str):
        slots = [slots]
    known = [*default, *passthrough]
    unknown = [s for s in slots if s not in known]
    if unknown:
        raise NotFoundError(f"{what} has no result {unknown[0]!r} (results: {', '.join(known) or 'none'})")
    return list(dict.fromkeys(slots))


def load_output(project_dir: str | Path, record: JobRecord, group_name: str, lookup: Lookup, *,
                slots: LoadableSlots = "all", version: int | str = FINAL) -> Dataset:
    """One version of an output group as one dataset, passthroughs joined in.

    For a version ``n``, each result the job made is taken at its latest version up to ``n``.
    """
    group = saved_group(record, group_name)
    table = table_at(record, group, version)
    made = [r.name for r in group.results.values() if not r.passthrough]
    passed = [r.name for r in group.results.values() if r.passthrough]
    names = _chosen(slots, made, passed, f"{record.uid}.{group_name}")
    explicit = not isinstance(slots, str) or slots not in ("default", "passthrough", "all")
    columns = []
    for name in names:
        result = group.results[name]
        if result.passthrough:
            sources, label = result_sources(result, record, group_name, FINAL)
        else:
            upto = [v for v in result.versions if v <= table.version]
            if not upto:
                if explicit:
                    raise ResultError(f"{record.uid}.{group_name}.{name} has no version up to {table.version} "
                                      f"(saved versions: {', '.join(map(str, result.versions))})")
                continue
            sources, label = result_sources(result, record, group_name, upto[-1])
        columns.append(Column(name, sources, label))
    return join_tables(project_dir, [table.metafile], columns, f"{record.uid}.{group_name}.{table.version}")


# ------------------------------------------------------------------------------------------ inputs
def connection_columns(bindings: Sequence[Bound], lookup: Lookup) -> list[Column]:
    columns = []
    for b in bindings:
        if b.ref is None:
            continue
        sources, label, _ = resolve(b.ref, lookup)
        columns.append(Column(b.name, sources, label))
    return columns


def input_names(binding: InputBinding, slots: LoadableSlots) -> list[str]:
    """The result names a load of this input with ``slots`` gives."""
    first = binding.connections[0] if binding.connections else None
    default = [b.name for b in first.slots if b.ref is not None] if first else []
    passed = [b.name for b in first.passthroughs] if first else []
    return _chosen(slots, default, passed, f"input {binding.name!r}")


def load_input(project_dir: str | Path, record: JobRecord, name: str, lookup: Lookup, *,
               slots: LoadableSlots = "all") -> Dataset:
    """An input group as the job sees it: each connection's slots joined on uid, the groups appended."""
    binding = bind_input(record, name, lookup)
    if binding.problems:
        raise ResultError(f"job {record.uid}: " + "; ".join(binding.problems))
    names = set(input_names(binding, slots))
    parts = []
    for cb in binding.connections:
        source = lookup(cb.connection.job)
        group = saved_group(source, cb.connection.group)
        chosen = [b for b in [*cb.slots, *cb.passthroughs] if b.name in names]
        columns = connection_columns(chosen, lookup)
        label = f"{cb.connection}.{group.tables[-1].version}"
        parts.append(join_tables(project_dir, [group.tables[-1].metafile], columns, label))
    if not parts:
        return Dataset()
    if len(parts) == 1:
        return parts[0]
    if not binding.spec.repeat_allowed:
        _no_shared_items(parts, binding, record)
    try:
        return Dataset.append_many(*parts, repeat_allowed=binding.spec.repeat_allowed)
    except DatasetError as err:
        raise ResultError(f"job {record.uid}, input {name!r}: the connected groups cannot be appended: {err}") from None


def _no_shared_items(parts: Sequence[Dataset], binding: InputBinding, record: JobRecord) -> None:
    """Appended groups must not hold the same item twice (unless the input allows repeats)."""
    uids = np.concatenate([p["uid"] for p in parts])
    owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    order = np.argsort(uids, kind="stable")
    same = np.flatnonzero(uids[order][1:] == uids[order][:-1])
    if len(same):
        a, b = (binding.connections[owner[order][k]] for k in (same[0], same[0] + 1))
        where = "twice" if a.index == b.index else f"and {b.label(binding.name)}"
        raise ResultError(f"job {record.uid}: {a.label(binding.name)} {where} hold the same item (uid "
                          f"{int(uids[order][same[0]])}, {len(same):,} in all); input {binding.name!r} takes each "
                          "item once: disconnect one of them")


def input_uids(project_dir: str | Path, record: JobRecord, name: str, lookup: Lookup) -> np.ndarray:
    """The uids of an input group's items (only uid columns are read)."""
    return load_input(project_dir, record, name, lookup, slots=[])["uid"]
