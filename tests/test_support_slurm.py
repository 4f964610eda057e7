"""The test SLURM cluster really runs jobs: sbatch, squeue and scancel against slurmctld and slurmd.

These tests also pin down what the SLURM commands print, which the code that drives SLURM parses:
``squeue`` lists finished jobs only with ``--states=all``, and a job id it does not know is an
error (exit status 1), not an empty answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.slurm import SlurmCluster, find_slurm_program

JOB_TIMEOUT_S = 20
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def _slurm(program: str, *args: object) -> subprocess.CompletedProcess[str]:
    # No env=: the fixture's SLURM_CONF in os.environ must be enough, as for the code under test.
    argv = [str(find_slurm_program(program)), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _submit(tmp_path: Path, name: str, body: str) -> str:
    script = tmp_path / f"{name}.sh"
    script.write_text("#!/bin/bash\n" + body)
    result = _slurm("sbatch", "--parsable", f"--job-name={name}", f"--output={tmp_path / name}-%j.out", script)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert job_id.isdigit(), result.stdout
    return job_id


def _state(job_id: str) -> str:
    result = _slurm("squeue", "-h", f"--jobs={job_id}", "--states=all", "-o", "%T")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _wait_for(what: str, check: Callable[[], bool], timeout: float = JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def _wait_for_state(job_id: str, states: set[str]) -> str:
    seen: list[str] = []

    def reached() -> bool:
        seen.append(_state(job_id))
        return seen[-1] in states

    _wait_for(f"job {job_id} to be in {sorted(states)} (last state {seen[-1:]})", reached)
    return seen[-1]


def test_the_cluster_has_one_idle_node(slurm_cluster: SlurmCluster):
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    result = _slurm("sinfo", "-h", "-o", "%P %T %N %c")
    assert result.stdout.split() == [f"{slurm_cluster.partition}*", "idle", slurm_cluster.hostname,
                                     str(slurm_cluster.cpus)]  # fmt: skip


def test_sbatch_runs_a_job_to_completion(slurm_cluster: SlurmCluster, tmp_path: Path):
    marker = tmp_path / "marker.txt"
    job_id = _submit(tmp_path, "write", f"echo hello from $SLURM_JOB_ID > {marker}\n")

    # squeue reports some state at once, without --states=all too while the job is not finished.
    state = _slurm("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip()
    assert state in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", ""}  # "" only if already done

    _wait_for(f"{marker} to appear", marker.exists)
    assert _wait_for_state(job_id, FINISHED_STATES) == "COMPLETED"
    assert marker.read_text() == f"hello from {job_id}\n"


def test_a_finished_job_is_listed_only_with_states_all(slurm_cluster: SlurmCluster, tmp_path: Path):
    job_id = _submit(tmp_path, "quick", "true\n")
    assert _wait_for_state(job_id, FINISHED_STATES) == "COMPLETED"

    default = _slurm("squeue", "-h", "-j", job_id, "-o", "%T")
    assert (default.returncode, default.stdout, default.stderr) == (0, "", "")


def test_an_unknown_job_id_is_an_error_when_asked_for_alone(slurm_cluster: SlurmCluster, tmp_path: Path):
    for extra in ([], ["--states=all"]):
        result = _slurm("squeue", "-h", "-j", "999999", "-o", "%T", *extra)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "slurm_load_jobs error: Invalid job id specified\n"

    # In a list of several ids, unknown ones are left out silently, even when none is known.
    result = _slurm("squeue", "-h", "-j", "999999,999998", "-o", "%T")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    job_id = _submit(tmp_path, "known", "true\n")
    _wait_for_state(job_id, FINISHED_STATES)
    result = _slurm("squeue", "-h", "-j", f"{job_id},999999", "--states=all", "-o", "%i %T")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{job_id} COMPLETED\n", "")


def test_two_one_cpu_jobs_run_at_the_same_time(slurm_cluster: SlurmCluster, tmp_path: Path):
    if slurm_cluster.cpus < 2:
        pytest.skip("the machine has one CPU")
    body = "date +%s.%N > {dir}/$SLURM_JOB_ID.start\nsleep 3\ndate +%s.%N > {dir}/$SLURM_JOB_ID.end\n"
    jobs = [_submit(tmp_path, f"overlap{n}", body.format(dir=tmp_path)) for n in range(2)]

    for job_id in jobs:
        assert _wait_for_state(job_id, FINISHED_STATES) == "COMPLETED"
    (start_a, end_a), (start_b, end_b) = (
        [float((tmp_path / f"{job_id}.{edge}").read_text()) for edge in ("start", "end")] for job_id in jobs
    )
    assert start_a < end_b and start_b < end_a, "the jobs ran one after the other"


def test_scancel_cancels_a_running_job(slurm_cluster: SlurmCluster, tmp_path: Path):
    job_id = _submit(tmp_path, "sleeper", "sleep 100\n")
    _wait_for_state(job_id, {"RUNNING"})

    result = _slurm("scancel", job_id)
    assert result.returncode == 0, result.stderr
    assert _wait_for_state(job_id, FINISHED_STATES) == "CANCELLED"


def test_a_job_that_exits_1_failed(slurm_cluster: SlurmCluster, tmp_path: Path):
    job_id = _submit(tmp_path, "exit1", "exit 1\n")
    assert _wait_for_state(job_id, FINISHED_STATES) == "FAILED"
    reason = _slurm("squeue", "-h", f"--jobs={job_id}", "--states=all", "-o", "%r").stdout.strip()
    assert reason == "NonZeroExitCode"


def test_a_job_whose_batch_shell_is_killed_failed(slurm_cluster: SlurmCluster, tmp_path: Path):
    shell_pid, sleep_pid = tmp_path / "shell.pid", tmp_path / "sleep.pid"
    job_id = _submit(tmp_path, "killed", f"echo $$ > {shell_pid}\nsleep 100 &\necho $! > {sleep_pid}\nwait\n")
    _wait_for(f"{sleep_pid} to be written", lambda: sleep_pid.exists() and sleep_pid.read_text().strip() != "")
    try:
        os.kill(int(shell_pid.read_text()), signal.SIGKILL)
        assert _wait_for_state(job_id, FINISHED_STATES) == "FAILED"
        reason = _slurm("squeue", "-h", f"--jobs={job_id}", "--states=all", "-o", "%r").stdout.strip()
        assert reason == "JobLaunchFailure"
    finally:
        # The orphaned sleep outlives the job: proctrack/linuxproc loses it once its parent is gone.
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(sleep_pid.read_text()), signal.SIGKILL)
