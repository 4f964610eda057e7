"""External jobs: results computed by your own script, saved as outputs like any job's.

The way labs plug their own tools in (as cryosparc-tools allows): declare inputs and outputs,
connect inputs, start the job, load the inputs, compute, save outputs (with passthrough from an
input, and as many versions as you like), stop.

>>> job = project.create_external_job(title="My picker cleanup")        # doctest: +SKIP
>>> job.add_input("particle", "particles", slots=["blob", "?ctf"])
>>> job.add_output("particle", "particles", slots=["alignments2D"], passthrough="particles")
>>> job.connect("particles", "J5.particles")
>>> with job.run():                       # running; completed at the end, failed on an exception
...     particles = job.load_input("particles")
...     job.save_output("particles", compute(particles))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from cryoweave.api.objects import Job
from cryoweave.builder import lifecycle
from cryoweave.builder.context import JobContext
from cryoweave.dataset import Dataset
from cryoweave.errors import ParamError
from cryoweave.model.jobspec import InputSpec, OutputSpec, describe
from cryoweave.model.records import OutputGroup


class ExternalJob(Job):
    """A job of type ``external``: its inputs and outputs are declared by the script that runs it."""

    def add_input(self, type: str, name: str, *, slots: list[Any] = (), min: int = 1, max: int | None = 1,
                  repeat_allowed: bool = False, title: str = "") -> ExternalJob:
        """Declare an input group: a datatype, its slots (``"blob"``, ``"?ctf"``), how many groups connect."""
        spec = _validated(InputSpec, {"name": name, "type": type, "slots": list(slots), "count_min": min,
                                      "count_max": max, "repeat_allowed": repeat_allowed, "title": title})
        return self._edit(lifecycle.add_input(spec))

    def add_output(self, type: str, name: str, *, slots: list[Any] = (), passthrough: str | None = None,
                   title: str = "") -> ExternalJob:
        """Declare an output group: the results the script makes; ``passthrough`` names the input whose
        other results it carries along (by reference)."""
        spec = _validated(OutputSpec, {"name": name, "type": type, "slots": list(slots), "passthrough": passthrough,
                                       "title": title})
        return self._edit(lifecycle.add_output(spec))

    def start(self) -> ExternalJob:
        """Mark the job running (its inputs must be complete); outputs can then be saved."""
        return self._edit(lifecycle.start("external job started"))

    def stop(self, error: str | None = None) -> ExternalJob:
        """Mark the job completed, or failed with ``error``."""
        return self._edit(lifecycle.finish(error))

    @contextmanager
    def run(self) -> Iterator[ExternalJob]:
        """Running inside the block; completed after it, failed (with the reason) if it raises."""
        self.start()
        try:
            yield self
        except BaseException as err:
            self.stop(f"{type(err).__name__}: {err}")
            raise
        self.stop()

    def _context(self) -> JobContext:
        return JobContext(self.project._store, self.project.uid, self.uid)

    def save_output(self, name: str, dataset: Dataset, version: int | None = None) -> OutputGroup:
        """Save one version of an output: the dataset's results are written, the rest pass through."""
        group = self._context().save_output(name, dataset, version)
        self.refresh()
        return group

    def log(self, text: str, level: str = "info") -> None:
        self._context().log(text, level)


def _validated(model: type, data: dict[str, Any]):
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ParamError(f"{model.__name__.removesuffix('Spec').lower()} {data.get('name')!r}: {describe(err)}") \
            from None
