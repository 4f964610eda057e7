"""What a running job sees: its parameters, its assembled inputs, and where its outputs go.

A job never touches the database or the project directory itself; it works through a
:class:`JobContext`, so the same job code runs in a script (external jobs), in a local worker or
on a cluster node.

>>> ctx = JobContext(store, "P1", "J7")                            # doctest: +SKIP
>>> particles = ctx.load_input("particles")                        # slots joined on uid, groups appended
>>> ctx.save_output("particles", particles.mask(particles["ctf/df1_A"] < 20000))
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from cryoweave.atomic import atomic_write
from cryoweave.builder import loading, saving
from cryoweave.builder.bindings import Lookup, bind_input, cached
from cryoweave.dataset import Dataset
from cryoweave.dataset.combine import match_last
from cryoweave.errors import ParamError, ResultError, StatusError
from cryoweave.formats.png import PNG_SIGNATURE, png_bytes
from cryoweave.model.jobspec import OutputSpec
from cryoweave.model.records import JobRecord, OutputGroup
from cryoweave.model.status import JobStatus
from cryoweave.spec import LoadableSlots
from cryoweave.spec.addresses import FINAL
from cryoweave.store import Store
from cryoweave.store.transaction import ProjectTx

PROGRESS_EVERY_S = 1.0

RUNNING = frozenset({JobStatus.STARTED, JobStatus.RUNNING, JobStatus.WAITING})


def store_lookup(store: Store, project: str) -> Lookup:
    """Jobs of a project read from the store, each once."""
    return cached(lambda uid: store.get_job(project, uid))


def read_output(store: Store, project: str, record: JobRecord, group: str, *, slots: LoadableSlots = "all",
                version: int | str = FINAL) -> Dataset:
    """One version of a job's output group, passthroughs joined in."""
    directory = store.get_project(project).directory
    return loading.load_output(directory, record, group, store_lookup(store, project), slots=slots, version=version)


def read_input(store: Store, project: str, record: JobRecord, name: str, *, slots: LoadableSlots = "all") -> Dataset:
    """A job's input group, assembled as the job sees it when it runs."""
    directory = store.get_project(project).directory
    return loading.load_input(directory, record, name, store_lookup(store, project), slots=slots)


class JobContext:
    """One job of one project, as its running code uses it."""

    def __init__(self, store: Store, project: str, job: str, *, token: str | None = None):
        self.store, self.project, self.token = store, project, token
        self.record = store.get_job(project, job)
        self.uid = self.record.uid
        self.project_dir = store.get_project(project).directory
        self._last_progress = float("-inf")

    @property
    def directory(self) -> Path:
        """The job's own folder, where it may write its files (created when first asked for)."""
        path = self.project_dir / self.uid
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def params(self) -> dict[str, Any]:
        return self.record.param_values()

    def refresh(self) -> JobRecord:
        self.record = self.store.get_job(self.project, self.uid)
        return self.record

    def load_input(self, name: str, slots: LoadableSlots = "all") -> Dataset:
        """An input group: each connection's slots joined on uid (intersection), the groups appended."""
        return read_input(self.store, self.project, self.refresh(), name, slots=slots)

    def input_results(self, name: str) -> dict[str, str]:
        """The results an input holds, name → result type (its bound slots, then its passthroughs), as
        the first connection gives them; nothing is loaded."""
        binding = bind_input(self.refresh(), name, store_lookup(self.store, self.project))
        first = binding.connections[0] if binding.connections else None
        bound = [*first.slots, *first.passthroughs] if first else []
        return {b.name: b.dtype for b in bound if b.ref is not None}

    def log(self, text: str, level: str = "info", data: dict[str, Any] | None = None) -> None:
        """Add a line to the job's event log (``level``: info, warning or error)."""
        self.store.add_event(self.project, self.uid, text, level=level, data=data)

    def warning(self, text: str) -> None:
        self.log(text, level="warning")

    def progress(self, done: int, total: int, text: str = "") -> None:
        """Report progress through a long step (written at most once a second, and at the end)."""
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        self.log(text or f"{done:,} of {total:,}", data={"progress": {"done": int(done), "total": int(total)}})

    def image(self, image: bytes | str | Path | np.ndarray, name: str, title: str = "") -> Path:
        """Show a PNG image in the event log: PNG bytes, a ``.png`` file, or a grey/RGB array.

        It is kept as ``<job>/images/<name>.png``; the event names it.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
            raise ParamError(f"image name {name!r} must be letters, digits, '_', '.' or '-'")
        if isinstance(image, np.ndarray):
            data = png_bytes(image)
        elif isinstance(image, bytes):
            data = image
        else:
            data = Path(image).read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise ParamError(f"image {name!r} of job {self.uid} is not a PNG")
        path = self.directory / "images" / f"{name.removesuffix('.png')}.png"
        path.parent.mkdir(exist_ok=True)
        with atomic_write(path) as f:
            f.write(data)
        relative = path.relative_to(self.project_dir).as_posix()
        self.log(title or name, data={"image": relative})
        return path

    def add_output(self, name: str, type: str, *, slots: list[Any] = (), passthrough: str | None = None,
                   title: str = "", description: str = "") -> OutputSpec:
        """Declare an output group while the job runs, for outputs that depend on the data or the
        parameters (``split_0`` … ``split_N``). Declaring one that exists with the same datatype and
        passthrough changes nothing; the job's clear removes those declared here."""
        wanted = OutputSpec.model_validate({"name": name, "type": type, "slots": list(slots),
                                            "passthrough": passthrough, "title": title,
                                            "description": description, "made_at_run": True})

        def change(tx: ProjectTx, current: JobRecord) -> str | None:
            if current.status not in RUNNING:
                raise StatusError(f"job {self.uid} is {current.status.value}; outputs are declared while it runs")
            existing = next((o for o in current.spec.outputs if o.name == name), None)
            if existing is not None and (existing.type, existing.passthrough) == (wanted.type, wanted.passthrough):
                return None  # declared already (by an earlier call, or from the parameters when it was built)
            if existing is not None:
                raise ResultError(f"job {self.uid} already has an output {name!r} ({existing.type.value}); "
                                  "an output declared at run time needs a name of its own")
            current.spec = current.spec.with_outputs([*current.spec.outputs, wanted])
            return f"output {name!r} ({wanted.type.value}) declared"

        self.record = self.store.edit_job(self.project, self.uid, change)
        return wanted

    def file(self, path: str | Path) -> Path:
        """A data path as results hold it (project-relative like ``J7/stack.mrcs``, or absolute) as a file."""
        return self.project_dir / path

    def relative(self, path: str | Path) -> str:
        """How a result names a file: project-relative when it lies in the project, else absolute."""
        path = Path(path)
        try:
            return path.relative_to(self.project_dir).as_posix()
        except ValueError:
            return str(path)

    def save_output(self, name: str, dataset: Dataset, version: int | None = None) -> OutputGroup:
        """Save one version of an output group: the dataset's results (and uids) are written; the
        results it does not hold pass through from the input, by reference.

        ``version``: an iteration number (increasing); by default the next one, from 0.
        """
        record = self.refresh()
        if record.status not in RUNNING:
            raise StatusError(f"job {self.uid} is {record.status.value}; outputs are saved while it runs "
                              "(start it first)")
        spec = record.spec.output(name)
        where = f"output {name!r} of {self.uid}"
        prefixes = saving.check_dataset(record, spec, dataset)
        group = record.outputs.get(name)
        number = saving.next_version(group, version, where)
        numbered = version is not None or bool(group and group.tables)
        metafile = saving.metafile_name(record, name, number, numbered)
        if spec.passthrough is not None:
            self._check_items(record, spec.passthrough, dataset["uid"], where)
        path = self.project_dir / metafile
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.save(path)

        def change(tx: ProjectTx, current: JobRecord) -> str:
            if current.status not in RUNNING:
                raise StatusError(f"job {self.uid} is {current.status.value}; it stopped while the output was saved")
            if self.token is not None and (current.run is None or current.run.token != self.token):
                raise StatusError(f"job {self.uid} was cleared or re-queued while this run saved {name!r}")
            saving.next_version(current.outputs.get(name), number, where)  # another save may have taken it
            lookup = cached(lambda uid: tx.job(uid)[1])
            binding = None if spec.passthrough is None else bind_input(current, spec.passthrough, lookup)
            received = {b.name: b.dtype for cb in (binding.connections if binding else [])
                        for b in [*cb.slots, *cb.passthroughs] if b.ref is not None}
            made = {p: saving.result_dtype(spec, p, received, where) for p in prefixes}
            text = saving.record_save(current, spec, number, metafile, made, len(dataset),
                                      saving.passthroughs(binding, lookup))
            saving.write_group_file(tx.directory.path, current, current.outputs[name])
            return text

        try:
            self.record = self.store.edit_job(self.project, self.uid, change)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self.record.outputs[name]

    def _check_items(self, record: JobRecord, input_name: str, uids: np.ndarray, where: str) -> None:
        """Passthrough results are joined on uid: every saved item must come from the input."""
        if not record.inputs.get(input_name):
            return
        received = loading.input_uids(self.project_dir, record, input_name, store_lookup(self.store, self.project))
        if len(uids) == len(received) and np.array_equal(uids, received):
            return
        strangers = ~match_last(uids, received)[1]
        if strangers.any():
            raise ResultError(f"{where}: {int(strangers.sum()):,} items (e.g. uid {int(uids[strangers][0])}) are not "
                              f"in input {input_name!r}, whose other results pass through by uid; a job that makes "
                              "new items must save every result of them (declare them as output slots, no passthrough)")
