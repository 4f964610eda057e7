"""Job types for the lane tests, loaded by workers the way an installed plugin is.

``tests/runjobs`` goes on ``PYTHONPATH`` and ``CRYOWEAVE_JOB_PACKAGES=runjobs``; the entry points
are in ``runjobs-1.0.dist-info``. Each job notes what it saw (its pid, host, start and end
times, ``CUDA_VISIBLE_DEVICES``) in its output table's ``note`` result and in its job.log, so
the tests can check from the outside how many ran at once, where, and with which GPUs.
"""

from __future__ import annotations

import os
import socket
import time
from types import SimpleNamespace

import numpy as np

from cryoweave import Dataset


def _spec(type_: str, title: str, *, inputs=(), outputs=("particles",), params=(), cpu=1, gpu=0, ram_gb=0.5):
    return {"type": type_, "title": title, "description": f"{title} (lane test job)", "category": "testing",
            "inputs": [{"name": name, "type": "particle", "title": name, "slots": ["blob"], "count_min": 1,
                        "count_max": 1} for name in inputs],
            "outputs": [{"name": name, "type": "particle", "title": name, "slots": ["blob"],
                         **({"passthrough": inputs[0]} if inputs else {})} for name in outputs],
            "params": [{"name": "seconds", "type": "number", "default": 0.0, "title": "Seconds",
                        "help": "How long the job sleeps before saving its output."},
                       {"name": "n", "type": "integer", "default": 10, "title": "Particles",
                        "help": "How many particles it makes."}, *params],
            "resources": {"cpu": cpu, "gpu": gpu, "ram_gb": ram_gb}}


def _particles(n: int, first: int = 1) -> Dataset:
    data = Dataset.allocate(n, [("blob/path", "O"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)),
                                ("blob/psize_A", "<f4"), ("blob/sign", "<f4"), ("blob/import_sig", "<u8")])
    data["uid"] = np.arange(first, first + n, dtype=np.uint64)
    data["blob/path"] = np.array(["stack.mrcs"] * n, dtype=object)
    data["blob/idx"] = np.arange(n)
    return data


def _note(ctx) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}


def run_sleeper(ctx) -> None:
    started = time.time()
    note = _note(ctx)
    print(f"sleeper {ctx.uid}: pid {note['pid']} cuda={note['cuda']!r}", flush=True)
    steps = 5 if ctx.params["seconds"] >= 1 else 1
    for step in range(steps):
        time.sleep(ctx.params["seconds"] / steps)
        ctx.progress(step + 1, steps, "sleeping")
    ctx.log(f"ran from {started:.3f} to {time.time():.3f}", data={"start": started, "end": time.time(), **note})
    if "particles" in [i.name for i in ctx.record.spec.inputs]:
        ctx.save_output("particles", ctx.load_input("particles", slots=[]))
    else:
        ctx.save_output("particles", _particles(ctx.params["n"]))


def run_make_particles(ctx) -> None:
    ctx.warning("these particles are made up")
    ctx.image(np.outer(np.arange(16), np.arange(16)), "ramp", "a test image")
    print("made particles", flush=True)
    run_sleeper(ctx)


def run_crasher(ctx) -> None:
    print("about to fail", flush=True)
    raise RuntimeError("the job's own bug")


def run_half_writer(ctx) -> None:
    """Saves a first version, then writes half a file and hangs: the worker gets killed meanwhile."""
    ctx.save_output("particles", _particles(ctx.params["n"]), version=0)
    (ctx.directory / f"{ctx.uid}_001_particles.cs").write_bytes(b"\x93NUMPY half a file")
    print("wrote half a file; hanging", flush=True)
    ctx.log("hanging", data=_note(ctx))
    time.sleep(3600)


MAKE_PARTICLES = SimpleNamespace(spec=_spec("make_particles", "Make particles"), run=run_make_particles)
SLEEPER = SimpleNamespace(spec=_spec("sleeper", "Sleep on particles", inputs=("particles",)), run=run_sleeper)
GPU_SLEEPER = SimpleNamespace(spec=_spec("gpu_sleeper", "Sleep on a GPU", gpu=1), run=run_sleeper)
GREEDY = SimpleNamespace(spec=_spec("greedy", "Needs four GPUs", gpu=4), run=run_sleeper)
CRASHER = SimpleNamespace(spec=_spec("crasher", "Crash"), run=run_crasher)
HALF_WRITER = SimpleNamespace(spec=_spec("half_writer", "Write half a file and hang"), run=run_half_writer)
QUICK = SimpleNamespace(spec=_spec("quick", "Sleep a little, make particles"), run=run_sleeper)
