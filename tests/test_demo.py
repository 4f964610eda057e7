"""`make demo`: the phantom-to-map pipeline as queued jobs, its summary, and a project another instance attaches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryoweave.api import Instance


def test_the_demo_runs_the_pipeline_and_leaves_a_project_that_attaches_elsewhere(tmp_path: Path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "cryoweave.demo", "--particles", "1200", "--box", "32", "--out",
                           str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    for uid, kind in (("J1", "generate_phantom"), ("J2", "simulate_data"), ("J3", "particle_sets"),
                      ("J4", "homo_reconstruct"), ("J6", "homo_reconstruct"), ("J7", "validation_fsc"),
                      ("J8", "export_relion")):
        assert any(line.split("│")[1:3] and uid in line and kind in line and "completed" in line
                   for line in text.splitlines()), (uid, text)
    assert "particles 1,200" in text and "split_0 600" in text
    assert "resolution" in text and "FSC plot:" in text
    plot = Path(text.split("FSC plot:")[1].split()[0])
    assert plot.read_bytes().startswith(b"\x89PNG")
    projects = list((out / "projects").iterdir())
    assert len(projects) == 1 and (projects[0] / "J8" / "particles.star").is_file()
    # the project directory attaches to a second, fresh instance, with its jobs and outputs
    with Instance(home=tmp_path / "elsewhere") as other:
        project = other.attach(projects[0], take_over=True)
        jobs = {job.uid: job for job in project.jobs()}
        assert len(jobs) == 8 and all(job.status == "completed" for job in jobs.values())
        assert len(project.job("J6").load_output("particles", slots=["alignments3D"])) == 1200
    # a second run replaces its own output, and an unrelated folder is refused
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    refused = subprocess.run([sys.executable, "-m", "cryoweave.demo", "--out", str(stranger)], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0 and "was not made by this demo" in refused.stderr
    assert (stranger / "keep.txt").read_text() == "mine"
