"""One contract, two implementations: the same lane tests on a local lane and on a real SLURM cluster.

Jobs are the lane-test plugin's (``tests/runjobs``), run by real workers: forked by the local
lane's launcher, or started by ``slurmd`` from the submitted script of the session's one-node
SLURM cluster (``slurm_cluster`` in conftest). The scheduler runs in the test process, as
``job.wait()`` runs it when no other scheduler does. Heartbeats are fast here (every 0.5 s,
lost after 6 s) so that the dead-worker cases finish quickly.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cryoweave.api import Instance
from cryoweave.errors import CryoweaveError, ParamError
from cryoweave.jobs import Registry

RUNJOBS = Path(__file__).parent / "runjobs"
SLURM_LANE = Path(__file__).parent.parent / "examples" / "lanes" / "slurm"
HEARTBEAT_TIMEOUT_S = 6.0
_lane_databases = itertools.count()


@pytest.fixture
def runjobs_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Workers (forked or on the cluster) load the lane-test plugin and beat fast."""
    monkeypatch.syspath_prepend(str(RUNJOBS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(RUNJOBS), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("CRYOWEAVE_JOB_PACKAGES", "runjobs")
    monkeypatch.setenv("CRYOWEAVE_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("CRYOWEAVE_HEARTBEAT_TIMEOUT_S", str(HEARTBEAT_TIMEOUT_S))
    monkeypatch.setenv("CRYOWEAVE_CLUSTER_POLL_S", "0.5")
    home = tmp_path / "home"
    monkeypatch.setenv("CRYOWEAVE_HOME", str(home))
    return home


@pytest.fixture(params=["local", "slurm", "local-postgresql"])
def lane(request: pytest.FixtureRequest, runjobs_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An instance with one lane to test (named ``lane``), and the project to run jobs in.

    ``local-postgresql``: the local lane of an instance whose database is PostgreSQL, as a
    facility runs it (its workers reach the same server).
    """
    url = None
    if request.param == "local-postgresql":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"lanes_{next(_lane_databases)}")
        monkeypatch.setenv("CRYOWEAVE_DATABASE_URL", url)
    inst = Instance(runjobs_env, url, registry=Registry(["runjobs"]))
    if request.param.startswith("local"):
        inst.add_local_lane("lane", cpu=2, ram_gb=4)
    else:
        request.getfixturevalue("slurm_cluster")
        inst.add_cluster_lane(SLURM_LANE, name="lane")
    project = inst.create_project("Lanes", tmp_path / "projects")
    scheduler = inst.scheduler()
    yield inst, project, scheduler, request.param.split("-")[0]
    for summary in project.jobs():
        if summary.status in ("queued", "launched", "started", "running", "waiting"):
            with contextlib.suppress(CryoweaveError):
                project.job(summary.uid).kill()
    scheduler.close()
    inst.close()
    if url is not None:
        server.drop_database(url.rsplit("/", 1)[1])


def until(condition: Callable[[], object], scheduler, timeout: float = 60, what: str = "") -> object:
    """Tick the scheduler until ``condition()`` is true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scheduler.tick()
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def finish(job, scheduler, timeout: float = 90):
    """Tick the scheduler until the job has ended (as ``job.wait()`` does when no other scheduler runs)."""
    until(lambda: not job.refresh().record.status.active, scheduler, timeout, f"{job.uid} to end")
    return job


def body(job) -> dict:
    """What the job's code noted about its run (start, end, pid, host, CUDA_VISIBLE_DEVICES)."""
    return next(e.data for e in job.events() if "start" in e.data)


def test_chain_waits_for_its_parent_and_jobs_run_at_once(lane) -> None:
    _inst, project, scheduler, kind = lane
    first = project.create_job("make_particles", params={"seconds": 4, "n": 25})
    child = project.create_job("sleeper", params={"seconds": 0.2})
    child.connect("particles", f"{first.uid}.particles")
    other = project.create_job("quick", params={"seconds": 4})
    first.queue(lane="lane")
    child.queue(lane="lane")
    other.queue(lane="lane")

    why = until(lambda: child.refresh().record.run.waiting, scheduler, what="the child's waiting reason")
    assert f"{first.uid}, which {child.uid} takes input from" in why and child.record.status.value == "queued"
    child.wait(timeout=120)
    other.wait(timeout=60)
    for job in (first, child, other):
        assert job.refresh().status == "completed", (job.uid, job.record.run)
    a, b = body(first), body(other)
    assert a["start"] < b["end"] and b["start"] < a["end"], "the two independent jobs did not run at once"
    assert body(child)["start"] >= a["end"]
    assert len(child.load_output("particles")) == 25
    assert "made particles" in first.log()
    if kind == "slurm":
        assert first.record.run.cluster_job_id and (project.directory / first.uid / "queue_sub_script.sh").is_file()


def test_a_job_whose_code_raises_fails_with_its_message(lane) -> None:
    _inst, project, _scheduler, _kind = lane
    job = project.create_job("crasher")
    job.queue(lane="lane").wait(timeout=90)
    assert job.status == "failed"
    assert job.record.run.message == "RuntimeError: the job's own bug"
    assert "Traceback" in job.log() and "about to fail" in job.log()
    assert any(e.level == "error" and "traceback" in e.data for e in job.events())


def test_kill_stops_the_worker_or_the_cluster_job(lane, slurm_state) -> None:
    _inst, project, scheduler, kind = lane
    job = project.create_job("quick", params={"seconds": 120})
    job.queue(lane="lane")
    until(lambda: job.refresh().record.status.value == "running", scheduler, what="the job to run")
    pid = job.record.run.pid
    job.kill()
    assert job.status == "killed"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the killed job's worker is still there"
    if kind == "slurm":
        assert until(lambda: slurm_state(job.record.run.cluster_job_id) == "CANCELLED", scheduler, 30)
    for _ in range(5):  # the scheduler does not revive or re-fail it
        scheduler.tick()
    assert job.status == "killed" and job.record.run.message == "killed by the user"


def test_a_worker_killed_with_sigkill_fails_its_job_and_registers_no_partial_output(lane) -> None:
    _inst, project, scheduler, _kind = lane
    job = project.create_job("half_writer", params={"n": 5})
    job.queue(lane="lane")
    until(lambda: any(e.text == "hanging" for e in job.events()), scheduler, what="the job to hang")
    pid = job.refresh().record.run.pid
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    until(lambda: job.refresh().record.status.value == "failed", scheduler, 60, "the job to fail")
    assert time.monotonic() - started < HEARTBEAT_TIMEOUT_S + 10
    message = job.record.run.message
    assert any(word in message for word in ("ended without finishing", "no heartbeat", "before the job finished")), \
        message
    group = job.record.outputs["particles"]
    assert group.versions == [0] and len(job.load_output("particles", version=0)) == 5
    assert (project.directory / job.uid / f"{job.uid}_001_particles.cs").exists()  # written, never registered
    job.clear()
    assert not (project.directory / job.uid / f"{job.uid}_001_particles.cs").exists()


def test_a_silent_worker_is_failed_after_the_heartbeat_timeout(lane) -> None:
    """A worker that stops answering (its node lost, the process frozen) but whose process is still there."""
    _inst, project, scheduler, _kind = lane
    job = project.create_job("quick", params={"seconds": 120})
    job.queue(lane="lane")
    until(lambda: job.refresh().record.status.value == "running", scheduler, what="the job to run")
    pid = job.record.run.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        until(lambda: job.refresh().record.status.value == "failed", scheduler, 60, "the silent job to fail")
        assert HEARTBEAT_TIMEOUT_S - 1 < time.monotonic() - started < HEARTBEAT_TIMEOUT_S + 10
        assert "no heartbeat from its worker" in job.record.run.message
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        assert not _alive(pid), "the silent worker was left behind"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_more_gpus_than_the_lane_has(lane) -> None:
    _inst, project, _scheduler, kind = lane
    job = project.create_job("greedy")
    if kind == "local":
        with pytest.raises(ParamError, match="needs 4 GPUs but lane 'lane' has 0"):
            job.queue(lane="lane")
        assert job.status == "building"
        return
    job.queue(lane="lane").wait(timeout=60)  # the cluster refuses it: the job fails with sbatch's words
    assert job.status == "failed"
    assert "submit command failed" in job.record.run.message and "sbatch" in job.record.run.message


def test_clear_with_descendants_restart_and_clone(lane) -> None:
    _inst, project, _scheduler, _kind = lane
    first = project.create_job("make_particles", params={"n": 7})
    child = project.create_job("sleeper")
    child.connect("particles", f"{first.uid}.particles")
    first.queue(lane="lane")
    child.queue(lane="lane").wait(timeout=120)
    assert child.status == "completed"
    copy = child.clone()
    assert copy.status == "building" and copy.params == child.params
    assert copy.inputs["particles"][0].job == first.uid

    with pytest.raises(CryoweaveError, match="kill"):
        busy = project.create_job("quick", params={"seconds": 60})
        busy.queue(lane="lane")
        busy.clear()
    busy.kill()

    first.clear(descendants=True)
    assert first.status == "building" and child.refresh().status == "building"
    assert child.outputs == {} and child.inputs["particles"][0].job == first.uid
    assert not list((project.directory / child.uid).glob("*.cs"))
    first.restart()  # queues it again, to the lane it ran on
    assert first.record.run.lane == "lane"
    first.wait(timeout=90)
    assert first.status == "completed"


@pytest.fixture
def slurm_state(request: pytest.FixtureRequest) -> Callable[[str], str]:
    def state(job_id: str) -> str:
        out = subprocess.run(["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip()
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------- local only
@pytest.fixture
def instance(runjobs_env: Path, tmp_path: Path):
    inst = Instance(runjobs_env, registry=Registry(["runjobs"]))
    project = inst.create_project("Lanes", tmp_path / "projects")
    scheduler = inst.scheduler()
    yield inst, project, scheduler
    for summary in project.jobs():
        if summary.status in ("queued", "launched", "started", "running"):
            project.job(summary.uid).kill()
    scheduler.close()
    inst.close()


def test_gpu_jobs_get_their_own_gpus_and_the_lane_never_overcommits(instance) -> None:
    inst, project, scheduler = instance
    inst.add_local_lane("gpus", cpu=4, gpus=[0, 1], ram_gb=8)
    gpu_jobs = [project.create_job("gpu_sleeper", params={"seconds": 1.5}) for _ in range(3)]
    cpu_job = project.create_job("quick", params={"seconds": 0.2})
    for job in [*gpu_jobs, cpu_job]:
        job.queue(lane="gpus")
    running = until(lambda: [j for j in gpu_jobs if j.refresh().record.status.value == "running"], scheduler)
    lanes = {lane.name: lane for lane in inst.lanes()}
    assert lanes["gpus"].gpus == [0, 1]
    for job in gpu_jobs:
        job.wait(timeout=60)
    cpu_job.wait(timeout=60)
    notes = [body(j) for j in gpu_jobs]
    assert sorted(n["cuda"] for n in notes[:2]) == ["0", "1"] and notes[2]["cuda"] in ("0", "1")
    third = notes[2]
    assert all(third["start"] >= n["end"] or n["cuda"] != third["cuda"] for n in notes[:2])
    assert max_overlap([(n["start"], n["end"]) for n in notes]) <= 2
    assert body(cpu_job)["cuda"] == ""  # CPU jobs see no GPU
    assert running


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_priority_then_first_queued_first(instance) -> None:
    inst, project, scheduler = instance
    inst.add_local_lane("one", cpu=1, ram_gb=4)
    blocker = project.create_job("quick", params={"seconds": 2})
    blocker.queue(lane="one")
    until(lambda: blocker.refresh().record.status.value != "queued", scheduler)
    a, b, c = (project.create_job("quick", params={"seconds": 0.1}) for _ in range(3))
    a.queue(lane="one")
    b.queue(lane="one")
    c.queue(lane="one", priority=5)
    for job in (a, b, c):
        job.wait(timeout=60)
    starts = {job.uid: body(job)["start"] for job in (a, b, c)}
    assert sorted(starts, key=starts.get) == [c.uid, a.uid, b.uid]


def _tick_elsewhere(home: Path) -> bool:
    """One scheduler tick in another process: whether it could schedule."""
    code = ("import sys; from cryoweave.api import Instance; inst = Instance(sys.argv[1]); s = inst.scheduler(); "
            "print(s.tick()); s.close()")
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def test_a_waiting_job_says_why_and_only_one_process_schedules(instance, runjobs_env: Path) -> None:
    inst, project, scheduler = instance
    inst.add_local_lane("one", cpu=1, ram_gb=4)
    blocker = project.create_job("quick", params={"seconds": 2})
    second = project.create_job("quick", params={"seconds": 0.1})
    blocker.queue(lane="one")
    second.queue(lane="one")
    assert scheduler.tick() and not _tick_elsewhere(runjobs_env)  # the lease is this process's
    why = until(lambda: second.refresh().record.run.waiting, scheduler)
    assert "waiting for lane one to have 1 CPU" in why
    scheduler.close()  # releases the lease: another process takes over
    assert _tick_elsewhere(runjobs_env)
    finish(second, scheduler)
    assert second.status == "completed" and blocker.refresh().status == "completed"


# ---------------------------------------------------------------------------------------- SLURM only
@pytest.fixture
def slurm(instance, slurm_cluster, tmp_path: Path):
    inst, project, scheduler = instance
    inst.add_cluster_lane(SLURM_LANE)
    return inst, project, scheduler, slurm_cluster


def _lane_dir(tmp_path: Path, name: str, **changes: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    info = _json(SLURM_LANE / "cluster_info.json") | {"name": name} | changes
    (folder / "cluster_info.json").write_text(json.dumps(info))
    (folder / "cluster_script.sh").write_text((SLURM_LANE / "cluster_script.sh").read_text())
    return folder


def test_slurm_cancelled_outside_or_lost_jobs_fail_with_the_reason(slurm, slurm_state) -> None:
    inst, project, scheduler, _cluster = slurm
    cancelled, lost = (project.create_job("quick", params={"seconds": 120}) for _ in range(2))
    cancelled.queue(lane="slurm")
    lost.queue(lane="slurm")
    until(lambda: cancelled.refresh().record.status.value == "running"
          and lost.refresh().record.status.value == "running", scheduler)
    subprocess.run(["scancel", cancelled.record.run.cluster_job_id], check=True, timeout=30)
    cancelled.wait(timeout=60)
    assert cancelled.status in ("failed", "killed")
    assert "cancelled outside cryoweave" in cancelled.record.run.message or \
        "SIGTERM from outside cryoweave" in cancelled.record.run.message

    # SLURM forgets the job (its controller restarted without state, the job was purged): lost
    real_id = lost.record.run.cluster_job_id
    from cryoweave.builder import lifecycle

    inst.store.edit_job(project.uid, lost.uid, lifecycle.update_run(lost.record.run.token, cluster_job_id="999999"))
    lost.wait(timeout=60)
    assert lost.status == "failed" and "no longer knows its job 999999" in lost.record.run.message
    subprocess.run(["scancel", real_id], timeout=30)


def test_slurm_submit_faults_end_in_a_clear_status(slurm, tmp_path: Path) -> None:
    inst, project, _scheduler, _cluster = slurm
    inst.add_cluster_lane(_lane_dir(tmp_path, "broken-submit", submit_cmd_tpl="sbatch --no-such-option "
                                    "{{ script_path_abs }}"))
    inst.add_cluster_lane(_lane_dir(tmp_path, "silent-submit", submit_cmd_tpl="true {{ script_path_abs }}"))
    fails, silent = project.create_job("quick"), project.create_job("quick")
    fails.queue(lane="broken-submit").wait(timeout=60)
    silent.queue(lane="silent-submit").wait(timeout=60)
    assert fails.status == "failed" and "the submit command failed" in fails.record.run.message
    assert "no-such-option" in fails.record.run.message
    assert silent.status == "failed" and "printed no job id" in silent.record.run.message
    assert "printed no job id" in (project.directory / silent.uid / "job.log").read_text()


def test_slurm_templates_are_checked_before_anything_is_submitted(slurm, tmp_path: Path) -> None:
    inst, project, _scheduler, _cluster = slurm
    bad = _lane_dir(tmp_path, "bad-syntax")
    (bad / "cluster_script.sh").write_text("#!/bin/bash\n#SBATCH -p {{ partition \n{{ run_cmd }}\n")
    with pytest.raises(ParamError, match=r"syntax error on line [23]"):
        inst.add_cluster_lane(bad)
    unknown = _lane_dir(tmp_path, "unknown-var")
    (unknown / "cluster_script.sh").write_text("#!/bin/bash\n#SBATCH --account={{ account }}\n"
                                               "#SBATCH --output={{ job_log_path_abs }}\n{{ run_cmd }}\n")
    inst.add_cluster_lane(unknown)
    job = project.create_job("quick")
    with pytest.raises(ParamError, match=r"uses \{\{ account \}\}.*--var account=VALUE"):
        job.queue(lane="unknown-var")
    assert job.status == "building"
    job.queue(lane="unknown-var", cluster_vars={"account": ""}).wait(timeout=60)  # empty: the line is left out
    assert job.status == "completed"
    script = (project.directory / job.uid / "queue_sub_script.sh").read_text()
    assert not [line for line in script.splitlines() if line.startswith("#SBATCH --account")]
    assert "# cryoweave: '#SBATCH --account' left out: its value is empty" in script


def test_slurm_a_job_whose_script_fails_on_the_node_is_not_left_launched(slurm, tmp_path: Path) -> None:
    """The nodes lack the Python the lane names: SLURM ends the job FAILED before any worker starts."""
    inst, project, scheduler, _cluster = slurm
    inst.add_cluster_lane(_lane_dir(tmp_path, "wrong-python", python="/nowhere/bin/python3"))
    job = project.create_job("quick")
    job.queue(lane="wrong-python")
    finish(job, scheduler, 60)
    assert job.status == "failed"
    message = job.record.run.message
    assert f"its cluster job {job.record.run.cluster_job_id} ended (FAILED) before the job finished" in message
    assert "/nowhere/bin/python3" in message  # the tail of job.log, where the script's error went
