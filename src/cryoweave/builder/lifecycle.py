"""The status changes of a run: queue (inputs checked), start, finish; and external jobs' own inputs/outputs.

A job is queued only when every input group's requirements hold (number of connected groups,
repeats, a result for every required slot, overrides that exist) and no job it takes from is
building, killed or failed; the error lists every unmet requirement, naming the input and why.
A job starts running only once the jobs it takes from have completed.

>>> store.edit_job("P1", "J7", queue())   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from cryoweave.builder import usage
from cryoweave.builder.bindings import Lookup, bind_inputs, cached, group_results
from cryoweave.builder.edits import Change, editable, transition
from cryoweave.builder.loading import resolve
from cryoweave.errors import CryoweaveError, ParamError, StatusError
from cryoweave.model.jobspec import InputSpec, JobTypeSpec, OutputSpec
from cryoweave.model.records import JobRecord, ResultRef, RunInfo
from cryoweave.model.status import JobStatus
from cryoweave.store.transaction import ProjectTx, input_parents

EXTERNAL = "external"
"""The job type of jobs whose inputs, outputs and work come from a user's script."""

EXTERNAL_SPEC = JobTypeSpec(type=EXTERNAL, title="External job", category="external",
                            description="Results computed by a script outside cryoweave, saved through the API.")

_NOT_RUNNABLE = {JobStatus.BUILDING: "is building: queue it first, or connect a completed job",
                 JobStatus.KILLED: "was killed: clear and re-run it, or mark it completed if its outputs are usable",
                 JobStatus.FAILED: "failed: clear and re-run it, or mark it completed if its outputs are usable"}


def _override_problem(label: str, ref: ResultRef, dtype: str, lookup: Lookup) -> str | None:
    try:
        source = lookup(ref.job)
        if source.outputs.get(ref.group) is not None and source.outputs[ref.group].tables:
            _, _, found = resolve(ref, lookup)
        else:
            held = group_results(source, ref.group, lookup) or {}
            if ref.result not in held and held:
                return f"{label} is bound to {ref}, but {ref.job}.{ref.group} has no result {ref.result!r}"
            found = held[ref.result].dtype if ref.result in held else dtype
    except CryoweaveError as err:
        return f"{label} is bound to {ref}: {err}"
    if found != dtype:
        return f"{label} takes {dtype} but is bound to {ref}, a {found} result"
    return None


def requirements(record: JobRecord, lookup: Lookup, *, running: bool = False) -> list[str]:
    """Every unmet requirement of a job's inputs (empty when it can be queued; ``running``: started)."""
    problems = []
    for binding in bind_inputs(record, lookup):
        problems.extend(binding.problems)
        for cb in binding.connections:
            for b in cb.slots:
                if b.how == "override" and b.ref is not None:
                    problem = _override_problem(f"slot {binding.name}.{cb.index}.{b.name}", b.ref, b.dtype, lookup)
                    if problem:
                        problems.append(problem)
    for number in sorted(input_parents(record)):
        try:
            parent = lookup(f"J{number}")
        except CryoweaveError as err:
            problems.append(str(err))
            continue
        if parent.status in _NOT_RUNNABLE:
            problems.append(f"J{number}, which {record.uid} takes input from, {_NOT_RUNNABLE[parent.status]}")
        elif running and parent.status != JobStatus.COMPLETED:
            problems.append(f"J{number}, which {record.uid} takes input from, is {parent.status.value}; "
                            f"{record.uid} can run once it has completed")
    return problems


def _check(tx: ProjectTx, record: JobRecord, what: str, running: bool) -> None:
    problems = requirements(record, cached(lambda uid: tx.job(uid)[1]), running=running)
    if problems:
        raise ParamError(f"cannot {what} {record.uid}: " + "; ".join(problems))


def queue(note: str = "", run: RunInfo | None = None) -> Change:
    """Queue a building job, after checking its inputs' requirements (``run``: its lane and priority)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        if record.status != JobStatus.BUILDING:
            raise StatusError(f"job {record.uid} is {record.status.value}; only a building job can be queued "
                              "(clear it first to run it again)")
        _check(tx, record, "queue", running=False)
        record.run = run
        where = f" on lane {run.lane}" + (f", priority {run.priority}" if run.priority else "") if run else ""
        return transition(JobStatus.QUEUED, note)(tx, record) + where
    return change


def launch(token: str, **given: Any) -> Change:
    """A queued job handed to its lane (``given``: host, cpu, gpus, ram_gb, cluster fields …) as run ``token``."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        if record.status != JobStatus.QUEUED or record.run is None:
            raise StatusError(f"job {record.uid} is {record.status.value}, no longer queued")
        record.run = record.run.model_copy(update={"token": token, "waiting": "", "message": "", **given})
        where = f"{given['host']}" if given.get("host") else record.run.lane
        return transition(JobStatus.LAUNCHED, f"lane {record.run.lane} ({where})")(tx, record)
    return change


def update_run(token: str, event: str | None = None, **fields: Any) -> Change:
    """Change what the record says of run ``token`` (a cluster job id, a waiting reason …), not its status."""
    def change(tx: ProjectTx, record: JobRecord) -> str | None:
        _own(record, token)
        if not record.status.active:
            raise StatusError(f"job {record.uid} is {record.status.value}, not queued or running")
        record.run = record.run.model_copy(update=fields)
        return event
    return change


def _own(record: JobRecord, token: str | None) -> None:
    if token is not None and token != "" and (record.run is None or record.run.token != token):
        raise StatusError(f"job {record.uid} was cleared or re-queued since this worker was launched; "
                          "this worker's run is over")


def begin(token: str, host: str, pid: int) -> Change:
    """The worker of run ``token`` has started on ``host``: launched → started → running."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        _own(record, token)
        if record.status != JobStatus.LAUNCHED:
            raise StatusError(f"job {record.uid} is {record.status.value}; its worker can start only a launched job")
        _check(tx, record, "start", running=True)
        record.run = record.run.model_copy(update={"host": host, "pid": pid, "cluster_state": ""})
        transition(JobStatus.STARTED)(tx, record)
        transition(JobStatus.RUNNING)(tx, record)
        return f"running on {host} (pid {pid})"
    return change


def end_run(status: JobStatus, message: str, token: str | None = None) -> Change:
    """Stop an active job as ``killed`` or ``failed`` with the reason (only the run ``token``, if given)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        _own(record, token)
        if not record.status.active:
            raise StatusError(f"job {record.uid} is {record.status.value}, not queued or running")
        if record.run is not None:
            record.run = record.run.model_copy(update={"message": message, "waiting": ""})
        return transition(status, message)(tx, record)
    return change


def start(note: str = "", run: RunInfo | None = None) -> Change:
    """Bring a building or queued job to running here (its inputs checked, its parents completed)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        if record.status not in (JobStatus.BUILDING, JobStatus.QUEUED):
            raise StatusError(f"job {record.uid} is {record.status.value}; only a building or queued job can start "
                              "(clear it first to run it again)")
        _check(tx, record, "start", running=True)
        steps = [JobStatus.QUEUED] if record.status == JobStatus.BUILDING else []
        if run is not None:
            record.run = run
        for status in [*steps, JobStatus.LAUNCHED, JobStatus.STARTED, JobStatus.RUNNING]:
            transition(status)(tx, record)
        return "running" + (f": {note}" if note else "")
    return change


def finish(error: str | None = None, token: str | None = None) -> Change:
    """End a running job: completed, or failed with ``error`` (only the run ``token``, if given)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        _own(record, token)
        if record.status not in (JobStatus.STARTED, JobStatus.RUNNING, JobStatus.WAITING):
            raise StatusError(f"job {record.uid} is {record.status.value}, not running; there is nothing to stop")
        if error is None:
            unsaved = [o.name for o in record.spec.outputs if not (record.outputs.get(o.name)
                                                                   and record.outputs[o.name].tables)]
            if unsaved and record.type != EXTERNAL:
                if record.run is not None:
                    record.run = record.run.model_copy(update={"message": f"never saved {', '.join(unsaved)}"})
                return transition(JobStatus.FAILED, f"output{'s' * (len(unsaved) > 1)} {', '.join(unsaved)} "
                                  "never saved")(tx, record)
            done = transition(JobStatus.COMPLETED)(tx, record)
            if tx.row.keep_final_only:
                done += keep_final_only(tx, record)
            return done
        if record.run is not None:
            record.run = record.run.model_copy(update={"message": error})
        return transition(JobStatus.FAILED, error)(tx, record)
    return change


def keep_final_only(tx: ProjectTx, record: JobRecord) -> str:
    """The project's policy at a job's completion: its intermediate results that no job uses are deleted."""
    records = tx.records()
    records[record.uid] = record
    plan = usage.plan_intermediate(tx.directory.path, record, records)
    if not plan.tables:
        return ""
    freed = usage.apply_intermediate(tx.directory.path, record, plan)
    versions = "; ".join(f"{g} {', '.join(map(str, v))}" for g, v in plan.versions.items())
    return f"; intermediate results deleted (project policy keep final only): versions {versions}, {freed:,} bytes"


def _external(record: JobRecord, what: str) -> None:
    if record.type != EXTERNAL:
        raise ParamError(f"job {record.uid} is a {record.type} job; only external jobs can {what} (their type "
                         "declares the rest)")
    editable(record, "its inputs and outputs")


def _respec(record: JobRecord, **changes: Any) -> None:
    data = record.spec.model_dump(mode="json") | changes
    record.spec = JobTypeSpec.parse(data, f"job {record.uid}")


def add_input(spec: InputSpec | dict[str, Any]) -> Change:
    """Declare an input group of an external job."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        _external(record, "add inputs")
        new = InputSpec.model_validate(spec) if isinstance(spec, dict) else spec
        _respec(record, inputs=[*(i.model_dump(mode="json") for i in record.spec.inputs), new.model_dump(mode="json")])
        return f"input {new.name} ({new.type.value}) added"
    return change


def add_output(spec: OutputSpec | dict[str, Any]) -> Change:
    """Declare an output group of an external job (``passthrough``: an input whose other results it carries)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        _external(record, "add outputs")
        new = OutputSpec.model_validate(spec) if isinstance(spec, dict) else spec
        _respec(record, outputs=[*(o.model_dump(mode="json") for o in record.spec.outputs),
                                 new.model_dump(mode="json")])
        return f"output {new.name} ({new.type.value}) added" + (f", passing through {new.passthrough}"
                                                               if new.passthrough else "")
    return change
