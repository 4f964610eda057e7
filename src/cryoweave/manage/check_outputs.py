"""The integrity check's second part: each job's output tables, ``.csg`` files and passthroughs.

For every output group a job has saved: each version's own table exists, is a complete ``.cs`` and
holds the number of items its record says; each result the job made is in the files its versions
name (``<name>/...`` fields); the group's ``.csg`` exists and names what the record says (repair
rewrites it from the record); and each passthrough's source file exists, has the ``<prefix>/...``
fields, and is still held by the job that made it. A cleared ancestor breaks the passthroughs of the
jobs after it: each is reported, and the ancestor's own missing file lists them.

Headers are read once per file (:class:`Headers`), whatever the number of results naming it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any

from cryoweave.builder.saving import group_file, write_group_file
from cryoweave.errors import FormatError
from cryoweave.formats.csg import CsgResult, ResultGroupFile, read_csg
from cryoweave.manage.check_records import Snapshot
from cryoweave.manage.metafiles import TableHeader, read_header
from cryoweave.manage.problems import Problem, ProblemKind, Repair
from cryoweave.model.records import JobRecord, OutputGroup
from cryoweave.store import ProjectTx


class Headers:
    """The header of each ``.cs`` file (project-relative name), read on first use."""

    def __init__(self, snap: Snapshot):
        self.root = snap.root
        self.cache: dict[str, TableHeader] = {}

    def __call__(self, metafile: str) -> TableHeader:
        head = self.cache.get(metafile)
        if head is None:
            head = self.cache[metafile] = read_header(self.root / metafile)
        return head


def held_files(record: JobRecord) -> set[str]:
    """The ``.cs`` files a job's record names as its own (every version's table and result files)."""
    held = {t.metafile for g in record.outputs.values() for t in g.tables}
    held |= {m for g in record.outputs.values() for r in g.results.values() if not r.passthrough for m in r.metafiles}
    return held


def passthrough_users(snap: Snapshot) -> dict[str, list[str]]:
    """For each ``.cs`` file, the output groups that pass results through from it (``J4.particles``)."""
    users: dict[str, list[str]] = defaultdict(list)
    for uid, record in snap.records.items():
        for name, group in record.outputs.items():
            for metafile in dict.fromkeys(s.metafile for r in group.results.values() if r.passthrough
                                          for s in r.sources):
                users[metafile].append(f"{uid}.{name}")
    return users


def check_outputs(snap: Snapshot, uid: str, headers: Headers, users: dict[str, list[str]]) -> list[Problem]:
    """Every saved output group of one job: tables, results, ``.csg``, passthroughs."""
    record = snap.records[uid]
    problems: list[Problem] = []
    for name, group in record.outputs.items():
        if not group.tables:
            continue
        where = f"{uid}.{name}"
        problems += _tables(snap, record, group, where, headers, users)
        problems += _made_results(record, group, where, headers)
        problems += _passthroughs(snap, record, group, where, headers)
        problems += _group_file(snap, record, group, where)
    return problems


def _rerun(snap: Snapshot, uid: str) -> str:
    return (f"clear {uid} and run it again (cryoweave job clear {snap.uid} {uid} --descendants clears the jobs "
            "after it too)")


def _tables(snap: Snapshot, record: JobRecord, group: OutputGroup, where: str, headers: Headers,
            users: dict[str, list[str]]) -> list[Problem]:
    problems = []
    for table in group.tables:
        head = headers(table.metafile)
        final = table is group.tables[-1]
        label = f"{where} version {table.version}" + (" (F)" if final else "")
        if not head.ok:
            dependents = [u for u in users.get(table.metafile, []) if not u.startswith(f"{record.uid}.")]
            also = (f"; {len(dependents)} output group(s) pass results through from it: {', '.join(dependents[:10])}"
                    + (" ..." if len(dependents) > 10 else "")) if dependents else ""
            problems.append(Problem(ProblemKind.METAFILE, label, f"{table.metafile} is {head.problem}{also}",
                                    f"restore the file, or {_rerun(snap, record.uid)}"))
        elif head.length != table.num_items:
            problems.append(Problem(ProblemKind.METAFILE, label,
                                    f"{table.metafile} holds {head.length:,} items; the record says "
                                    f"{table.num_items:,}",
                                    f"restore the file, or {_rerun(snap, record.uid)}"))
    return problems


def _made_results(record: JobRecord, group: OutputGroup, where: str, headers: Headers) -> list[Problem]:
    tables = {t.metafile for t in group.tables}
    problems = []
    for result in group.results.values():
        if result.passthrough:
            continue
        for version, metafile in zip(result.versions, result.metafiles):
            head = headers(metafile)
            if not head.ok:
                if metafile not in tables:  # a table's trouble is reported once, above
                    problems.append(Problem(ProblemKind.METAFILE, f"{where}.{result.name}.{version}",
                                            f"{metafile} is {head.problem}",
                                            f"restore the file, or clear {record.uid} and run it again"))
            elif result.name not in head.prefixes():
                problems.append(Problem(ProblemKind.METAFILE, f"{where}.{result.name}.{version}",
                                        f"{metafile} has no '{result.name}/...' fields (it has: "
                                        f"{', '.join(sorted(head.prefixes())) or 'uid only'})",
                                        f"restore the file, or clear {record.uid} and run it again"))
    return problems


def _passthroughs(snap: Snapshot, record: JobRecord, group: OutputGroup, where: str,
                  headers: Headers) -> list[Problem]:
    by_file: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for result in group.results.values():
        if result.passthrough:
            for source in result.sources:
                by_file[source.metafile].append((result.name, source.prefix))
    problems = []
    for metafile, results in by_file.items():
        names = ", ".join(dict.fromkeys(n for n, _ in results))
        owner = metafile.split("/", 1)[0]
        source = snap.records.get(owner)
        head = headers(metafile)
        if source is None:
            trouble = f"{owner}, which made it, no longer exists"
        elif metafile not in held_files(source):
            trouble = (f"{owner} no longer holds it (it was cleared{' or run again' if source.outputs else ''}; "
                       f"{owner} is {source.status.value})")
        elif not head.ok:
            trouble = f"it is {head.problem}"
        else:
            lacking = sorted({p for _, p in results if p not in head.prefixes()})
            trouble = f"it has no {', '.join(f'{p!r}/...' for p in lacking)} fields" if lacking else ""
        if not trouble:
            continue
        if source is not None and metafile not in held_files(source) and head.ok:
            trouble += "; the file is still there but may hold other items"
        problems.append(Problem(ProblemKind.PASSTHROUGH, where,
                                f"passes {names} through from {metafile}: {trouble}",
                                f"re-run {owner}, then {record.uid}; or clear {record.uid} "
                                f"(cryoweave job clear {snap.uid} {record.uid} --descendants)"))
    return problems


def _rewrite_group_file(uid: str, name: str) -> Repair:
    def repair(tx: ProjectTx) -> None:
        record = tx.job(uid)[1]
        group = record.outputs.get(name)
        if group is not None and group.tables:
            write_group_file(tx.directory.path, record, group)
    return repair


def _comparable(group: ResultGroupFile) -> ResultGroupFile:
    return dataclasses.replace(group, created=None, version="", description="", path=None)


def _entry(result: CsgResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"metafile": result.metafile, "num_items": result.num_items, "type": result.type}
    if result.extra:
        entry["metafiles"] = list(result.extra)
    if result.prefix:
        entry["prefix"] = result.prefix
    return entry


def _written_as_expected(path: Path, expected: ResultGroupFile) -> bool:
    """Whether a ``.csg`` holds exactly what cryoweave writes for ``expected`` (the common case), parsed
    with libyaml when present: ten times faster than the full reader, which is kept for the rest."""
    import yaml

    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(doc, dict):
        return False
    want: dict[str, Any] = {
        "group": {"description": "", "name": expected.name, "title": expected.title or expected.name,
                  "type": expected.type},
        "results": {slot: _entry(r) for slot, r in expected.results.items()}}
    if expected.items is not None:
        want["items"] = {"metafile": expected.items.metafile, "num_items": expected.items.num_items}
    return {k: v for k, v in doc.items() if k not in ("created", "version")} == want


def _group_file(snap: Snapshot, record: JobRecord, group: OutputGroup, where: str) -> list[Problem]:
    relative = f"{record.uid}/{record.uid}_{group.name}.csg"
    path = snap.root / relative
    fix = "rewrite it from the job's record"
    repair = _rewrite_group_file(record.uid, group.name)
    if not path.exists():
        return [Problem(ProblemKind.CSG, where, f"{relative} is missing", fix, repair_with=repair)]
    expected = group_file(snap.root, record, group)
    if _written_as_expected(path, expected):
        return []
    try:
        found = read_csg(path)
    except FormatError as err:
        return [Problem(ProblemKind.CSG, where, f"{relative} cannot be read: {err}", fix, repair_with=repair)]
    if _comparable(found) != _comparable(expected):
        differ = sorted(set(found.results) ^ set(expected.results)) or \
            [n for n in expected.results if found.results.get(n) != expected.results[n]]
        what = f"results {', '.join(differ[:5])}" if differ else "its group or items"
        return [Problem(ProblemKind.CSG, where, f"{relative} does not name what the record says ({what} differ)",
                        fix, repair_with=repair)]
    return []
