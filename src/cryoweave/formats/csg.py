"""``.csg`` result-group files: the YAML that names an output group and the ``.cs`` files of its results.

A ``.csg`` as CryoSPARC writes it (and as users hand-edit it to re-import a filtered subset)::

    created: 2024-09-23 21:07:31.234595
    group: {description: All particles, name: particles, title: Particles, type: particle}
    results:
      blob: {metafile: '>J12_particles.cs', num_items: 456024, type: particle.blob}
      ctf: {metafile: '>J12_passthrough_particles.cs', num_items: 456024, type: particle.ctf}
    version: v4.4.1

A ``metafile`` starting with ``>`` is relative to the ``.csg``'s own folder; an absolute path is
used as it is; any other relative path is relative to the project directory when one is
given, else to the ``.csg``'s folder. Loading a group inner-joins its metafiles on ``uid``: the
items of the group are those present in every file.

cryoweave adds three optional keys, which tools that do not know them ignore: a top-level
``items`` (the job's own table, whose uids define the group's items when passthrough results
point at bigger ancestor files), and per result ``metafiles`` (more files to append, for a
passthrough that came through several connections) and ``prefix`` (the fields' prefix in the
files when it is not the result's name).

>>> group = ResultGroupFile(name="particles", type="particle",
...                         results={"blob": CsgResult(">p.cs", 10, "particle.blob")})
>>> group.results["blob"].dtype
'blob'
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryoweave.atomic import atomic_write
from cryoweave.dataset import Dataset
from cryoweave.errors import CryoweaveError, DatasetLoadError, FormatError
from cryoweave.spec import parse_datatype, parse_result_type_string
from cryoweave.spec.results import IDENTIFIER


@dataclass(frozen=True)
class CsgResult:
    """One result of a group: where its fields are, how many items, and its type string."""

    metafile: str
    num_items: int
    type: str
    extra: tuple[str, ...] = ()
    prefix: str | None = None

    @property
    def dtype(self) -> str:
        """The result type (``blob`` for ``particle.blob``)."""
        return self.type.split(".", 1)[1]


@dataclass(frozen=True)
class ResultGroupFile:
    """The content of a ``.csg`` file; ``path`` is where it was read from, if anywhere."""

    name: str
    type: str
    results: dict[str, CsgResult]
    title: str = ""
    description: str = ""
    created: dt.datetime | str | None = None
    version: str = ""
    items: CsgResult | None = None
    path: Path | None = field(default=None, compare=False)

    def metafile_path(self, slot: str, project_dir: str | os.PathLike | None = None) -> Path:
        """The file holding a result's fields, resolved as the module docstring says."""
        return self.resolve(self.results[slot].metafile, project_dir)

    def resolve(self, metafile: str, project_dir: str | os.PathLike | None = None) -> Path:
        base = self.path.parent if self.path is not None else Path.cwd()
        if metafile.startswith(">"):
            return base / metafile[1:].lstrip("/")
        target = Path(metafile)
        if target.is_absolute():
            return target
        return (Path(project_dir) if project_dir is not None else base) / target

    def load(self, slots: Iterable[str] | None = None,
             project_dir: str | os.PathLike | None = None) -> Dataset:
        """The group's items: the metafiles of the chosen slots (default all) joined on uid."""
        chosen = list(self.results) if slots is None else list(slots)
        where = self.path or "<.csg>"
        unknown = [s for s in chosen if s not in self.results]
        if unknown:
            raise FormatError(f"{where}: group {self.name!r} has no result {unknown[0]!r} "
                              f"(it has {', '.join(self.results)})")
        if self.items is not None or any(self.results[s].extra or self.results[s].prefix for s in chosen):
            return self._load_composed(chosen, project_dir)
        by_file: dict[Path, list[str]] = {}
        for slot in chosen:
            by_file.setdefault(self.metafile_path(slot, project_dir), []).append(slot)
        parts = []
        for metafile, file_slots in by_file.items():
            if not metafile.is_file():
                raise FormatError(f"{where}: metafile of result {file_slots[0]!r} not found: {metafile}")
            try:
                part = Dataset.load(metafile, prefixes=file_slots)
            except DatasetLoadError as err:
                named = ", ".join(repr(s) for s in file_slots)
                raise FormatError(f"{where}: result{'s' * (len(file_slots) > 1)} {named}: {err}") from None
            present = set(part.prefixes())
            for slot in file_slots:
                if slot not in present:
                    raise FormatError(f"{where}: result {slot!r} points to {metafile}, which has no "
                                      f"'{slot}/...' fields (it has: {', '.join(sorted(present)) or 'none'})")
                if len(part) != self.results[slot].num_items:
                    warnings.warn(f"{where}: result {slot!r} says num_items "
                                  f"{self.results[slot].num_items} but {metafile} holds {len(part)} items; "
                                  "using the file", UserWarning, stacklevel=2)
            parts.append(part)
        if not parts:
            return Dataset()
        return parts[0] if len(parts) == 1 else Dataset.innerjoin_many(*parts)

    def _load(self, metafile: str, prefixes: list[str], what: str, project_dir: str | os.PathLike | None) -> Dataset:
        path = self.resolve(metafile, project_dir)
        where = self.path or "<.csg>"
        if not path.is_file():
            raise FormatError(f"{where}: metafile of {what} not found: {path}")
        try:
            part = Dataset.load(path, prefixes=prefixes)
        except DatasetLoadError as err:
            raise FormatError(f"{where}: {what}: {err}") from None
        lacking = sorted(set(prefixes) - set(part.prefixes()))
        if lacking:
            raise FormatError(f"{where}: {what} points to {path}, which has no '{lacking[0]}/...' fields")
        return part

    def _load_composed(self, chosen: list[str], project_dir: str | os.PathLike | None) -> Dataset:
        """Load with cryoweave's keys: the items table first, results renamed and appended as declared."""
        tables = []
        if self.items is not None:
            tables.append(self._load(self.items.metafile, [], "the items table", project_dir))
        for slot in chosen:
            r = self.results[slot]
            prefix = r.prefix or slot
            parts = [self._load(m, [prefix], f"result {slot!r}", project_dir) for m in (r.metafile, *r.extra)]
            part = parts[0] if len(parts) == 1 else Dataset.append_many(*parts, repeat_allowed=True)
            if prefix != slot:
                part = part.rename_prefix(prefix, slot)
            tables.append(part)
        if not tables:
            return Dataset()
        return tables[0] if len(tables) == 1 else Dataset.innerjoin_many(*tables)


def _fail(path: Path, problem: str) -> FormatError:
    return FormatError(f"cannot read result group {path}: {problem}")


def read_csg(path: str | os.PathLike) -> ResultGroupFile:
    """Read and check a ``.csg`` file (metafiles are checked when loading, not here)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(path, str(err)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _fail(path, f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("group"), dict) or not isinstance(
            doc.get("results"), dict):
        raise _fail(path, "a .csg must be a YAML mapping with 'group' and 'results' mappings")
    group = doc["group"]
    name, gtype = group.get("name"), group.get("type")
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise _fail(path, f"group name {name!r} must be a letter then letters, digits or '_'")
    try:
        parse_datatype(str(gtype))
    except CryoweaveError as err:
        raise _fail(path, f"group type: {err}") from None
    results = {}
    for slot, entry in doc["results"].items():
        if not isinstance(slot, str) or not IDENTIFIER.match(slot):
            raise _fail(path, f"result name {slot!r} must be a letter then letters, digits or '_'")
        if not isinstance(entry, dict):
            raise _fail(path, f"result {slot!r} must be a mapping with metafile, num_items and type")
        metafile, num_items, rtype = entry.get("metafile"), entry.get("num_items"), entry.get("type")
        if not isinstance(metafile, str) or not metafile.strip(">"):
            raise _fail(path, f"result {slot!r} has no metafile")
        if not isinstance(num_items, int) or isinstance(num_items, bool) or num_items < 0:
            raise _fail(path, f"result {slot!r} num_items must be a non-negative integer, not {num_items!r}")
        try:
            parse_result_type_string(str(rtype))
        except CryoweaveError as err:
            raise _fail(path, f"result {slot!r} type: {err}") from None
        extra, prefix = entry.get("metafiles", []), entry.get("prefix")
        if not isinstance(extra, list) or not all(isinstance(m, str) and m.strip(">") for m in extra):
            raise _fail(path, f"result {slot!r} metafiles must be a list of paths")
        if prefix is not None and (not isinstance(prefix, str) or not IDENTIFIER.match(prefix)):
            raise _fail(path, f"result {slot!r} prefix {prefix!r} must be a letter then letters, digits or '_'")
        results[slot] = CsgResult(metafile, num_items, str(rtype), tuple(extra), prefix)
    items = doc.get("items")
    if items is not None:
        if not isinstance(items, dict) or not isinstance(items.get("metafile"), str) or not isinstance(
                items.get("num_items"), int):
            raise _fail(path, "items must be a mapping with metafile and num_items")
        items = CsgResult(items["metafile"], items["num_items"], "")
    return ResultGroupFile(name=name, type=str(gtype), results=results, title=str(group.get("title") or ""),
                           description=str(group.get("description") or ""), created=doc.get("created"),
                           version=str(doc.get("version") or ""), items=items, path=path)


def write_csg(group: ResultGroupFile, path: str | os.PathLike) -> None:
    """Write a ``.csg`` atomically (a temporary file renamed into place)."""
    import yaml

    from cryoweave import __version__

    path = Path(path)
    doc: dict[str, Any] = {
        "created": group.created or dt.datetime.now(),
        "group": {"description": group.description, "name": group.name, "title": group.title or group.name,
                  "type": group.type},
        "results": {slot: _result_entry(r) for slot, r in group.results.items()},
        "version": group.version or f"cryoweave-{__version__}",
    }
    if group.items is not None:
        doc["items"] = {"metafile": group.items.metafile, "num_items": int(group.items.num_items)}
    text = yaml.safe_dump(doc, sort_keys=True, default_flow_style=None, allow_unicode=True)
    with atomic_write(path, text=True, error=FormatError) as f:
        f.write(text)


def _result_entry(r: CsgResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"metafile": r.metafile, "num_items": int(r.num_items), "type": r.type}
    if r.extra:
        entry["metafiles"] = list(r.extra)
    if r.prefix:
        entry["prefix"] = r.prefix
    return entry


def metafile_ref(metafile: str | os.PathLike, csg_path: str | os.PathLike) -> str:
    """How a ``.csg`` at ``csg_path`` should name ``metafile``: ``>relative`` when it lies in the
    ``.csg``'s folder or below, else its absolute path."""
    target, folder = Path(metafile).resolve(), Path(csg_path).resolve().parent
    try:
        return ">" + target.relative_to(folder).as_posix()
    except ValueError:
        return str(target)


def contained_metafiles(group: ResultGroupFile) -> dict[str, Path]:
    """Every metafile a ``.csg`` read from a file names (its results' files, their extra files, the items
    table), resolved and checked to lie inside the ``.csg``'s folder: an absolute path, a ``..`` step, or
    a symlink that leads out of the folder is refused, so a ``.csg`` from elsewhere cannot make cryoweave
    read files outside the folder it was given in. Missing files are not checked here.

    >>> contained_metafiles(read_csg("export/particles.csg"))   # doctest: +SKIP
    {'>particles.cs': PosixPath('export/particles.cs')}
    """
    if group.path is None:
        raise FormatError("the result group was not read from a file, so its metafiles have no folder")
    folder = group.path.parent
    inside = os.path.realpath(folder)
    named = [(f"result {slot!r}", m) for slot, r in group.results.items() for m in (r.metafile, *r.extra)]
    named += [("the items table", group.items.metafile)] if group.items is not None else []
    out: dict[str, Path] = {}
    for what, metafile in named:
        text = metafile[1:] if metafile.startswith(">") else metafile
        if not metafile.startswith(">") and Path(text).is_absolute():
            problem = "is an absolute path"
        elif ".." in Path(text.replace("\\", "/")).parts:
            problem = "climbs out of the folder with '..'"
        else:
            path = group.resolve(metafile)
            real = os.path.realpath(path)
            if os.path.commonpath([real, inside]) == inside:
                out[metafile] = path
                continue
            problem = f"leads out of the folder through a symlink (to {real})"
        raise _fail(group.path, f"the metafile of {what}, {metafile!r}, {problem}; a .csg may only name "
                                f"files in its own folder ({folder}) or below it (copy the tables there, or, for a "
                                f"group of a job in the same project, connect its output instead)")
    return out


def load_csg(path: str | os.PathLike, *, slots: Iterable[str] | None = None,
             project_dir: str | os.PathLike | None = None) -> Dataset:
    """Read a ``.csg`` and load its items (the joined metafiles of the chosen slots).

    >>> load_csg("exports/groups/P1_J12_particles/P1_J12_particles_exported.csg")  # doctest: +SKIP
    """
    return read_csg(path).load(slots, project_dir)
