"""Scheduler load: many short jobs queued at once on a local lane with two slots.

    python benchmarks/bench_scheduler.py [--jobs 200] [--seconds 0.2] [--slots 2] [--out bench-output]

The target (issue 5, "Speed and load"): 200 short jobs queued at once on the local lane with 2
slots finish with never more than 2 running, none lost, none run twice, and a scheduling
overhead per job under 0.5 s.

Each job (``quick``, from the lane tests' plugin ``tests/runjobs``) sleeps ``--seconds``, notes
when its code started and ended and in which process, and saves a small output. The scheduler
runs in this process (as ``cryoweave scheduler`` would); workers are forked by its launcher.

- **concurrency**: the most job bodies running at the same moment, from the start and end
  times the jobs recorded (must be ≤ slots);
- **lost / twice**: jobs not completed; jobs whose event log shows more than one launch or start;
- **overhead per job** = (wall time × slots − Σ time in job code) / jobs: the slot time each job
  cost beyond its own work (queueing, launching, status changes, saving, heartbeats);
- **baseline**: the same jobs run one after another in the foreground in this process
  (``job.execute()``, no scheduler, no worker processes): its overhead per job, measured the
  same way with one slot, and the ratio.

Figures go to ``<out>/scheduler.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RUNJOBS = Path(__file__).resolve().parent.parent / "tests" / "runjobs"
os.environ["PYTHONPATH"] = os.pathsep.join([str(RUNJOBS), *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ["CRYOWEAVE_JOB_PACKAGES"] = "runjobs"
sys.path.insert(0, str(RUNJOBS))

from cryoweave.api import Instance  # noqa: E402


def body_times(job) -> tuple[float, float, int]:
    """When the job's code started and ended, and its pid (from the event it logged)."""
    for event in job.events():
        if "start" in event.data and "end" in event.data:
            return event.data["start"], event.data["end"], event.data["pid"]
    raise RuntimeError(f"{job.uid} logged no start/end")


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def launches(job) -> int:
    """How many times the job was launched (its event log keeps every status change)."""
    return sum(1 for e in job.events() if e.text.startswith("status queued → launched"))


def run(args: argparse.Namespace, home: Path) -> dict:
    os.environ["CRYOWEAVE_HOME"] = str(home)
    inst = Instance(home)
    inst.add_local_lane("bench", cpu=args.slots, ram_gb=64)
    project = inst.create_project("Scheduler load", home / "projects")
    jobs = [project.create_job("quick", params={"seconds": args.seconds, "n": 10}) for _ in range(args.jobs)]

    # the baseline: the same work in the foreground, one job after another
    base_jobs = [project.create_job("quick", params={"seconds": args.seconds, "n": 10}) for _ in range(args.base)]
    started = time.perf_counter()
    for job in base_jobs:
        job.execute()
    base_wall = time.perf_counter() - started
    base_body = sum(e - s for s, e, _ in map(body_times, base_jobs))

    started = time.perf_counter()
    for job in jobs:
        job.queue(lane="bench")
    queued = time.perf_counter() - started
    scheduler = inst.scheduler()
    deadline = time.monotonic() + args.timeout
    uids = {j.uid for j in jobs}
    while True:
        scheduler.tick()
        left = [s for s in project.jobs() if s.uid in uids and s.status not in ("completed", "failed", "killed")]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    scheduler.close()

    for job in jobs:
        job.refresh()
    statuses = {}
    for job in jobs:
        statuses[job.record.status.value] = statuses.get(job.record.status.value, 0) + 1
    done = [j for j in jobs if j.record.status.value == "completed"]
    spans = [body_times(j) for j in done]
    body = sum(e - s for s, e, _ in spans)
    twice = [j.uid for j in jobs if launches(j) > 1]
    result = {
        "jobs": args.jobs, "seconds_each": args.seconds, "slots": args.slots, "statuses": statuses,
        "lost": args.jobs - len(done), "run_twice": twice, "max_running": max_overlap([(s, e) for s, e, _ in spans]),
        "distinct_worker_pids": len({pid for _, _, pid in spans}),
        "queue_200_s": round(queued, 3), "wall_s": round(wall, 2), "body_s": round(body, 2),
        "overhead_per_job_s": round((wall * args.slots - body) / args.jobs, 3),
        "baseline_jobs": args.base, "baseline_wall_s": round(base_wall, 2),
        "baseline_overhead_per_job_s": round((base_wall - base_body) / args.base, 3),
    }
    result["overhead_ratio_vs_foreground"] = round(result["overhead_per_job_s"]
                                                   / max(result["baseline_overhead_per_job_s"], 1e-9), 2)
    inst.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--base", type=int, default=40, help="jobs in the foreground baseline")
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-sched-") as tmp:
        result = run(args, Path(tmp))
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    ok = (result["lost"] == 0 and not result["run_twice"] and result["max_running"] <= args.slots
          and result["overhead_per_job_s"] < 0.5)
    print(f"scheduler load: {args.jobs} jobs of {args.seconds:g} s on a local lane with {args.slots} slots")
    for key in ("statuses", "lost", "run_twice", "max_running", "distinct_worker_pids", "queue_200_s", "wall_s",
                "body_s", "overhead_per_job_s", "baseline_overhead_per_job_s", "overhead_ratio_vs_foreground"):
        print(f"  {key:<30} {result[key]}")
    print(f"  target (≤{args.slots} running, none lost or twice, overhead < 0.5 s/job): {'met' if ok else 'MISSED'}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scheduler.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
