"""Saving a job's outputs: only what the job made is written; what it received passes through.

A save of output group ``particles`` at version ``v`` writes one ``.cs`` file in the job's folder
(``J7_particles.cs`` for a job's first plain save, ``J7_003_particles.cs`` for version 3) with the
items' ``uid`` and the results the job created or changed. The group's other results are
**passthroughs**: references to the files that already hold them (found through the input's
bindings, so a chain of passthroughs resolves in one hop), never copies. The job's own table
defines the group's items; the join on ``uid`` cuts bigger ancestor tables down to them. After
every save the group's ``J7_particles.csg`` names the final version of each result.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryoweave.builder.bindings import InputBinding, Lookup
from cryoweave.builder.loading import resolve
from cryoweave.dataset import Dataset
from cryoweave.errors import CryoweaveError, ResultError
from cryoweave.formats.csg import CsgResult, ResultGroupFile, write_csg
from cryoweave.model.jobspec import OutputSpec
from cryoweave.model.records import JobRecord, OutputGroup, OutputResult, OutputTable, ResultSource
from cryoweave.spec import infer_result_dtype, result_fields, result_type_string


def check_dataset(record: JobRecord, spec: OutputSpec, dataset: Dataset) -> list[str]:
    """The results a dataset holds for an output, after checking it can be saved as one."""
    where = f"output {spec.name!r} of {record.uid}"
    if not isinstance(dataset, Dataset):
        raise ResultError(f"{where}: save a cryoweave Dataset, not {type(dataset).__name__}")
    if "uid" not in dataset:
        raise ResultError(f"{where}: the dataset has no 'uid' field; every item needs its uid")
    uids = np.sort(dataset["uid"])
    if len(uids) > 1 and (uids[1:] == uids[:-1]).any():
        dup = int(uids[1:][uids[1:] == uids[:-1]][0])
        raise ResultError(f"{where}: uid {dup} is in the dataset more than once; each item appears once")
    loose = [f for f in dataset.fields() if f != "uid" and "/" not in f]
    if loose:
        raise ResultError(f"{where}: field {loose[0]!r} is not named <result>/<field> (e.g. ctf/df1_A)")
    present = set(dataset.fields())
    for slot in spec.slots:
        if slot.name not in dataset.prefixes():
            continue
        try:
            expected = [f[0] for f in result_fields(slot.name, slot.dtype, spec.type)]
        except CryoweaveError:
            continue  # a result type cryoweave does not know: no field list to check against
        missing = [f for f in expected if f not in present]
        if missing:
            raise ResultError(f"{where}: result {slot.name!r} ({slot.dtype}) lacks fields {', '.join(missing)}; "
                              f"it has {', '.join(f for f in dataset.fields() if f.startswith(slot.name + '/'))}")
    return list(dataset.prefixes())


def next_version(group: OutputGroup | None, version: int | None, where: str) -> int:
    last = group.tables[-1].version if group is not None and group.tables else None
    if version is None:
        return 0 if last is None else last + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ResultError(f"{where}: a version is a number from 0, not {version!r}")
    if last is not None and version <= last:
        raise ResultError(f"{where}: version {version} cannot be saved after version {last}; versions increase "
                          "(each saved version is kept)")
    return version


def metafile_name(record: JobRecord, group: str, version: int, numbered: bool) -> str:
    """The project-relative path of one saved version of an output group's own table."""
    if numbered:
        return f"{record.uid}/{record.uid}_{version:03d}_{group}.cs"
    return f"{record.uid}/{record.uid}_{group}.cs"


def passthroughs(binding: InputBinding | None, lookup: Lookup) -> dict[str, OutputResult]:
    """The results an output passes through from its input (``binding``): where each is already kept,
    in one hop."""
    if binding is None:
        return {}
    carried: dict[str, OutputResult] | None = None
    for cb in binding.connections:
        here: dict[str, OutputResult] = {}
        for b in [*cb.slots, *cb.passthroughs]:
            if b.ref is None:
                continue
            sources, label, dtype = resolve(b.ref, lookup)
            here[b.name] = OutputResult(name=b.name, dtype=b.dtype or dtype, versions=[0], passthrough=True,
                                        sources=[ResultSource(metafile=s.metafile, prefix=s.prefix,
                                                              origin=s.origin or label) for s in sources])
        if carried is None:
            carried = here
        else:
            carried = {n: r.model_copy(update={"sources": [*r.sources, *here[n].sources]})
                       for n, r in carried.items() if n in here}
    return carried or {}


def record_save(record: JobRecord, spec: OutputSpec, version: int, metafile: str, made: dict[str, str],
                num_items: int, carried: dict[str, OutputResult]) -> str:
    """Add one saved version to the job's record (``carried``: its passthroughs); the event text."""
    group = record.outputs.get(spec.name) or OutputGroup(name=spec.name, type=spec.type, title=spec.title,
                                                           passthrough=spec.passthrough)
    group.tables.append(OutputTable(version=version, metafile=metafile, num_items=num_items))
    group.num_items = num_items
    for name, dtype in made.items():
        result = group.results.get(name)
        if result is None or result.passthrough:
            result = OutputResult(name=name, dtype=dtype)
        result.versions.append(version)
        result.metafiles.append(metafile)
        result.num_items.append(num_items)
        group.results[name] = result
    created = {n for n, r in group.results.items() if not r.passthrough}
    for name, result in carried.items():
        if name not in created:
            result.num_items = [num_items]
            group.results[name] = result
    order = [s.name for s in spec.slots]
    group.results = dict(sorted(group.results.items(), key=lambda kv: (kv[1].passthrough, kv[0] not in order,
                                                                          order.index(kv[0]) if kv[0] in order else 0)))
    record.outputs[spec.name] = group
    passed = sum(r.passthrough for r in group.results.values())
    items = "1 item" if num_items == 1 else f"{num_items:,} items"
    return (f"saved output {spec.name} version {version}: {items}, results "
            f"{', '.join(made) or 'none (uid only)'}" + (f"; {passed} passed through" if passed else ""))


def result_dtype(spec: OutputSpec, name: str, received: dict[str, str], where: str) -> str:
    for slot in spec.slots:
        if slot.name == name:
            return slot.dtype
    if name in received:
        return received[name]
    try:
        return infer_result_dtype(name)
    except CryoweaveError:
        raise ResultError(f"{where}: result {name!r} is neither declared by the output nor received from its "
                          "input, and its type cannot be told from its name; declare it as an output slot") from None


def group_file(project_dir: Path, record: JobRecord, group: OutputGroup) -> ResultGroupFile:
    """The ``.csg`` of an output group: the final version of every result (paths relative to the file)."""
    folder = project_dir / record.uid

    def ref(metafile: str) -> str:
        return ">" + Path(os.path.relpath(project_dir / metafile, folder)).as_posix()

    results = {}
    for r in group.results.values():
        typ = result_type_string(group.type, r.dtype)
        if r.passthrough:
            first, *more = r.sources
            results[r.name] = CsgResult(ref(first.metafile), group.num_items, typ,
                                        extra=tuple(ref(s.metafile) for s in more),
                                        prefix=first.prefix if first.prefix != r.name else None)
        else:
            results[r.name] = CsgResult(ref(r.metafiles[-1]), r.num_items[-1], typ)
    last = group.tables[-1]
    return ResultGroupFile(name=group.name, type=group.type.value, results=results, title=group.title or group.name,
                           items=CsgResult(ref(last.metafile), last.num_items, ""))


def write_group_file(project_dir: Path, record: JobRecord, group: OutputGroup) -> Path:
    path = project_dir / record.uid / f"{record.uid}_{group.name}.csg"
    write_csg(group_file(project_dir, record, group), path)
    return path
