"""`cryoweave lane ...`, `cryoweave job queue|wait|kill|restart|clone|log|clear` and `cryoweave scheduler`,
run as a user runs them: real processes, each test on a fresh instance (SQLite).

The job types are the lane tests' (``tests/runjobs``): ``make_particles`` warns, shows an image,
reports progress and prints to its job.log; ``sleeper`` sleeps on its input; ``crasher`` raises;
``greedy`` needs four GPUs. Independent calls run concurrently (see :mod:`test_cli_projects`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryoweave.run.local import process_alive
from test_cli_projects import Cryoweave, at_once, run

RUNJOBS = Path(__file__).parent / "runjobs"
SLURM = Path(__file__).parent.parent / "examples" / "lanes" / "slurm"


def _instance(tmp_path: Path) -> tuple[Cryoweave, Path]:
    """A fresh instance that knows the runjobs job types, with one project (P1); and its directory."""
    cw = Cryoweave(tmp_path / "home", None)
    cw.env["PYTHONPATH"] = os.pathsep.join([str(RUNJOBS), *filter(None, [os.environ.get("PYTHONPATH")])])
    cw.env["CRYOWEAVE_JOB_PACKAGES"] = "runjobs"
    return cw, Path(cw.json("project", "create", "Lanes", "--dir", tmp_path / "projects")["directory"])


def _until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def _status(cw: Cryoweave, job: str) -> str:
    return cw.json("job", "info", "P1", job)["status"]


def test_local_lanes_queue_wait_and_log(tmp_path):
    cw, directory = _instance(tmp_path)
    text, listed = at_once(cw.later("ok", "lane", "list"), cw.later("json", "lane", "list"))
    added = cw.json("lane", "add-local", "small", "--cpus", "2", "--ram-gb", "4", "--gpus", "0")
    assert text.splitlines()[0].startswith("scheduler: none running; queued jobs start when one runs (cryoweave "
                                           "scheduler")
    assert "local  (local lane)" in text and "no queued or running jobs" in text
    assert [lane["name"] for lane in listed["lanes"]] == ["local"] and listed["scheduler"] is None
    assert listed["lanes"][0]["kind"] == "local" and listed["lanes"][0]["jobs"] == []
    assert (added["name"], added["cpu"], added["gpus"], added["ram_gb"]) == ("small", 2, [0], 4.0)
    assert added["free"] == {"cpu": 2, "gpus": [0], "ram_gb": 4.0}

    for args in [("make_particles", "-p", "seconds=0.3"), ("sleeper",), ("crasher",), ("greedy",)]:
        cw.ok("job", "create", "P1", *args)
    cw.ok("job", "connect", "P1", "J2", "particles", "J1.particles")
    listed, queued = at_once(cw.later("json", "lane", "list"),
                             lambda: run(["job", "queue", "P1", "J1", "--lane", "small"], cw.env))
    assert [lane["name"] for lane in listed["lanes"]] == ["local", "small"]
    assert queued.returncode == 0 and queued.stdout == "P1 J1: queued on lane small\n"
    assert "no scheduler is running; J1 starts when one runs" in queued.stderr
    text = cw.ok("lane", "list")
    assert " ".join(text.split()).count("P1 J1 make_particles queued 0") == 1

    # Waiting schedules both (J2 waits for J1); the crasher fails; greedy never fits the lane's one GPU.
    chain, crashed, greedy = at_once(
        cw.later("ok", "job", "queue", "P1", "J2", "--lane", "small", "--wait", "--timeout", "60"),
        cw.later("fails", "job", "queue", "P1", "J3", "--wait"),
        cw.later("fails", "job", "queue", "P1", "J4", "--lane", "small"))
    assert chain.startswith("P1 J2: completed in ") and chain.endswith(" s; outputs: particles (10 items)\n")
    assert crashed == "job J3 failed: RuntimeError: the job's own bug (cryoweave job log P1 J3 shows its log)"
    assert "needs 4 GPUs but lane 'small' has 1" in greedy
    first, crasher, log, logged, waited = at_once(
        cw.later("json", "job", "info", "P1", "J1"), cw.later("ok", "job", "info", "P1", "J3"),
        cw.later("ok", "job", "log", "P1", "J1"), cw.later("json", "job", "log", "P1", "J1"),
        cw.later("ok", "job", "wait", "P1", "J1"))
    assert first["status"] == "completed" and first["run"]["lane"] == "small" and first["run"]["pid"] > 0
    assert (first["run"]["cpu"], first["run"]["gpus"], first["run"]["ram_gb"]) == (1, [], 0.5)
    assert "token" not in first["run"]
    assert "message   RuntimeError: the job's own bug" in crasher and "lane      local" in crasher
    assert waited.startswith("P1 J1: completed in ")

    lines = log.splitlines()
    image = directory / "J1" / "images" / "ramp.png"
    assert image.is_file()
    assert any(line.endswith("warning  these particles are made up") for line in lines)
    assert any(re.search(r"  info     \[(\d+)/\1\] sleeping$", line) for line in lines)  # the last progress
    assert any(line.endswith(f"info     a test image: {image}") for line in lines)
    assert lines.index(f"job.log (stdout and stderr): {image.parent.parent / 'job.log'}") > 5
    assert "made particles" in lines and "sleeper J1: pid " in log
    assert logged["status"] == "completed" and "made particles\n" in logged["log"]
    assert [e["image_path"] for e in logged["events"] if "image_path" in e] == [str(image)]


def test_scheduler_kill_restart_clone_and_clear(tmp_path):
    cw, _ = _instance(tmp_path)
    cw.ok("job", "create", "P1", "make_particles", "-p", "n=7")
    cw.ok("job", "create", "P1", "sleeper", "-p", "seconds=30")
    cw.ok("job", "connect", "P1", "J2", "particles", "J1.particles")
    cw.ok("job", "queue", "P1", "J1")
    cw.ok("job", "queue", "P1", "J2", "--priority", "3")
    scheduler = subprocess.Popen([sys.executable, "-m", "cryoweave", "scheduler", "--interval", "0.1"],
                                 env=cw.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running = _until("J2 running", lambda: (info := cw.json("job", "info", "P1", "J2"))["status"] == "running"
                         and info)
        pid = running["run"]["pid"]
        assert running["run"]["priority"] == 3 and process_alive(pid)
        listed = cw.json("lane", "list")
        assert listed["scheduler"]["who"]
        [on_local] = listed["lanes"][0]["jobs"]
        assert (on_local["job"], on_local["status"], on_local["pid"]) == ("J2", "running", pid)

        killed = cw.ok("job", "kill", "P1", "J2")
        assert killed.startswith(f"P1 J2: killed (was running; its worker (pid {pid} on ")
        _until(f"worker pid {pid} gone", lambda: not process_alive(pid), timeout=10)
        after, again = at_once(cw.later("json", "job", "info", "P1", "J2"),
                               cw.later("fails", "job", "kill", "P1", "J2"))
        assert after["status"] == "killed" and after["run"]["message"] == "killed by the user"
        assert again == "job J2 is killed; only queued or running jobs can be killed"

        # Restart J1 (cleared and queued again, run by the scheduler), clone J2, clear J1 with its descendants.
        restarted = cw.json("job", "restart", "P1", "J1")
        assert restarted["status"] in {"queued", "launched", "running", "completed"}
        assert restarted["run"]["lane"] == "local"
        assert cw.ok("job", "wait", "P1", "J1", "--timeout", "30").startswith("P1 J1: completed in ")
        clone = cw.json("job", "clone", "P1", "J2", "-w", "W1", "--title", "again")
        assert (clone["uid"], clone["status"], clone["title"], clone["workspaces"]) == ("J3", "building", "again",
                                                                                        ["W1"])
        assert clone["params"]["seconds"] == {"value": 30, "default": 0.0, "set": True, "type": "number"}
        assert [c["source"] for c in clone["inputs"]["particles"]["connections"]] == ["J1.particles"]
        cleared = cw.ok("job", "clear", "P1", "J1", "--descendants", "--yes")
        assert cleared == "P1 J1: cleared (was completed); it is building again; descendants cleared: J2\n"
        assert [j["status"] for j in cw.json("job", "list", "P1")] == ["building"] * 3
    finally:
        scheduler.send_signal(signal.SIGTERM)
        out, err = scheduler.communicate(timeout=20)
    assert scheduler.returncode == 0, err
    assert "P1 J2 (sleeper) running on lane local" in out and "P1 J2 (sleeper) killed: killed by the user" in out
    assert out.endswith("scheduler stopped; its lease is released\n")
    once, listed = cw.ok("scheduler", "--once"), cw.json("lane", "list")
    assert once == "scheduler: one round done, holding the lease; no queued or running jobs\n"
    assert listed["scheduler"] is None


def test_cluster_lanes_render_the_job_script(tmp_path):
    cw, _ = _instance(tmp_path)
    bad, undefined = tmp_path / "bad", tmp_path / "undefined"
    for folder, script in [(bad, "#!/bin/bash\n#SBATCH -p {{ partition | }}\n{{ run_cmd }}\n"),
                           (undefined, "#!/bin/bash\n#SBATCH --account={{ account }}\n{{ run_cmd }}\n")]:
        folder.mkdir()
        (folder / "cluster_info.json").write_text(json.dumps({"name": folder.name}))
        (folder / "cluster_script.sh").write_text(script)
    cw.ok("job", "create", "P1", "sleeper")
    cw.ok("job", "create", "P1", "make_particles")
    slurm, refused, account = at_once(cw.later("json", "lane", "add-cluster", SLURM),
                                      cw.later("fails", "lane", "add-cluster", bad),
                                      cw.later("ok", "lane", "add-cluster", undefined))
    assert slurm["name"] == "slurm" and slurm["kind"] == "cluster"
    assert slurm["custom_var_names"] == ["partition", "time_requested"] and "script_tpl" not in slurm
    assert refused.startswith("lane 'bad': the job script (cluster_script.sh) has a template syntax error on line 2")
    assert account.startswith("lane undefined added (cluster: sbatch)\n") and "account (no default)" in account

    plain, partition, queued, not_queued, local, unset = at_once(
        cw.later("ok", "lane", "render", "P1", "J1", "--lane", "slurm"),
        cw.later("ok", "lane", "render", "P1", "J1", "--lane", "slurm", "--var", "partition=gpu"),
        cw.later("ok", "job", "queue", "P1", "J2", "--lane", "slurm", "--var", "partition=short"),
        cw.later("fails", "lane", "render", "P1", "J1"),
        cw.later("fails", "lane", "render", "P1", "J1", "--lane", "local"),
        cw.later("fails", "lane", "render", "P1", "J1", "--lane", "undefined"))
    lines = plain.splitlines()
    assert "#SBATCH --cpus-per-task=1" in lines and "#SBATCH --job-name=cryoweave_P1_J1" in lines
    assert not any(line.startswith("#SBATCH --partition") for line in lines)
    assert any("--token preview" in line for line in lines)
    assert "#SBATCH --partition=gpu" in partition.splitlines()
    assert queued == "P1 J2: queued on lane slurm\n"
    assert not_queued.startswith("job J1 is not queued to a lane; name the cluster lane")
    assert local.startswith("lane 'local' is a local lane: only cluster lanes have job scripts")
    assert unset.startswith("lane 'undefined': the job script uses {{ account }}, which is not a built-in variable")

    from_queue, info, removed, busy = at_once(
        cw.later("ok", "lane", "render", "P1", "J2"), cw.later("json", "job", "info", "P1", "J2"),
        cw.later("ok", "lane", "remove", "undefined"), cw.later("fails", "lane", "remove", "slurm"))
    assert "#SBATCH --partition=short" in from_queue.splitlines()
    assert info["run"]["custom_vars"] == {"partition": "short"} and info["run"]["lane"] == "slurm"
    assert removed == "lane undefined removed\n"
    assert busy.startswith("lane 'slurm' has queued or running jobs (P1 J2)")
    assert cw.ok("job", "kill", "P1", "J2") == "P1 J2: killed (was queued)\n"
    assert cw.fails("lane", "remove", "local").startswith("the built-in lane 'local' (all of this machine) cannot")


def test_scheduler_has_help_with_an_example():
    from typer.testing import CliRunner

    from cryoweave.cli import app

    result = CliRunner().invoke(app, ["scheduler", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0 and "Example: cryoweave scheduler --interval 1" in result.output


def test_log_follow_prints_events_and_job_log_as_they_come(tmp_path):
    cw, _directory = _instance(tmp_path)
    cw.ok("job", "create", "P1", "make_particles", "-p", "seconds=3")
    cw.ok("job", "queue", "P1", "J1")
    follow = subprocess.Popen([sys.executable, "-m", "cryoweave", "job", "log", "P1", "J1", "--follow"], env=cw.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        waited = run(["job", "wait", "P1", "J1", "--timeout", "60"], cw.env)  # schedules it meanwhile
        out, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert waited.returncode == 0, waited.stderr
    assert follow.returncode == 0, err
    lines = out.splitlines()
    progress = [line for line in lines if re.search(r"\[\d/5\] sleeping", line)]
    assert len(progress) >= 2, out  # several steps of the 3 s job, printed as they came
    assert any("these particles are made up" in line for line in lines)
    assert any("made particles" in line for line in lines)  # its stdout, from job.log
    assert lines[-1] == "P1 J1: completed", lines[-3:]
    assert lines.index(progress[0]) < lines.index(progress[-1]) < len(lines) - 1
