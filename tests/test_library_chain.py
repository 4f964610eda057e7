"""The job library chained as a user would: import from a .star, split, downsample one half, curate by
statistic, override the full-size blob back in, export to RELION — from Python on the local lane
(real queued jobs run by workers) and from the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from cryoweave.api import Instance

ROOT = Path(__file__).parent.parent


def _sample(folder: Path, n: int = 240, box: int = 32) -> Path:
    """The README's sample data: stacks and a RELION 3.1 .star with relative image paths."""
    subprocess.run([sys.executable, str(ROOT / "examples" / "sample_particles.py"), str(folder), "--particles", str(n),
                    "--box", str(box), "--micrographs", "4"], check=True, capture_output=True)
    return folder / "particles.star"


def _fourier_crop(image: np.ndarray, box: int) -> np.ndarray:
    """An independent Fourier crop: scipy's FFT resampling along each axis (values keep their scale)."""
    from scipy.signal import resample

    return resample(resample(image.astype(np.float64), box, axis=0), box, axis=1)


def _image(project_dir: Path, path: str, idx: int) -> np.ndarray:
    with mrcfile.mmap(project_dir / path if not os.path.isabs(path) else path, permissive=True) as mrc:
        return np.array(mrc.data[idx])


def test_chain_from_python_on_the_local_lane(tmp_path):
    star = _sample(tmp_path / "sample")
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Chain", tmp_path / "projects")
        imp = project.create_job("import_particles", params={"particle_meta_path": str(star),
                                                             "micrograph_shape": "4096x4096"})
        split = project.create_job("particle_sets", params={"action": "split", "num_batches": 2})
        split.connect("particles_A", "J1.imported_particles")
        imp.queue()
        split.queue()
        split.wait(timeout=120)
        assert (imp.refresh().status, split.refresh().status) == ("completed", "completed")
        assert sorted(split.outputs) == ["remainder", "split_0", "split_1"]

        down = project.create_job("downsample_particles", params={"fourier_box": 16})
        down.connect("particles", "J2.split_0")
        curate = project.create_job("subset_particles_by_statistic",
                                    params={"field": "ctf/df1_A", "mode": "range", "max_value": 20000.0})
        curate.connect("particles", "J3.particles")
        export = project.create_job("export_relion")
        export.connect("particles", "J4.particles_selected")
        export.connect_result("particles", 0, "blob", "J1.imported_particles.blob.F")  # the full-size images back
        for job in (down, curate, export):
            job.queue()
        export.wait(timeout=180)
        assert [j.refresh().status for j in (down, curate, export)] == ["completed"] * 3

        everything = imp.load_output("imported_particles")
        half = split.load_output("split_0")
        small = down.load_output("particles")
        chosen = curate.load_output("particles_selected")
        assert len(everything) == 240 and len(half) == 120
        assert (small["uid"] == half["uid"]).all() and (small["blob/shape"] == 16).all()
        assert np.allclose(small["blob/psize_A"], 1.2 * 32 / 16)
        picked = 4
        original = _image(project.directory, half["blob/path"][picked], half["blob/idx"][picked])
        cropped = _image(project.directory, small["blob/path"][picked], small["blob/idx"][picked])
        assert np.allclose(cropped, _fourier_crop(original, 16), atol=1e-4)
        assert (chosen["ctf/df1_A"] <= 20000).all() and set(chosen["uid"]) < set(half["uid"])
        assert len(chosen) == int((half["ctf/df1_A"] <= 20000).sum()) > 0
        assert set(chosen.prefixes()) >= {"blob", "ctf", "alignments3D", "location"}  # passed through all along

        written = starfile.read(export.directory / "particles.star")["particles"]
        assert len(written) == len(chosen)
        by_uid = dict(zip(everything["uid"].tolist(), range(len(everything))))
        rows = [by_uid[int(u)] for u in written["cryoweaveUid"]]
        assert np.allclose(written["rlnDefocusU"], everything["ctf/df1_A"][rows], rtol=1e-6)
        first = written["rlnImageName"][0]
        index, name = first.split("@")
        stack = (export.directory / name).resolve()  # relative to the .star's folder, full-size again
        assert mrcfile.open(stack, header_only=True).header.nx == 32
        assert np.array_equal(mrcfile.mmap(stack).data[int(index) - 1],
                              _image(project.directory, everything["blob/path"][rows[0]],
                                     everything["blob/idx"][rows[0]]))


def _cli(home: Path, *args: object) -> str:
    env = dict(os.environ, CRYOWEAVE_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "cryoweave", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.mark.slow
def test_chain_from_the_command_line(tmp_path):
    star = _sample(tmp_path / "sample", n=100)
    home = tmp_path / "home"
    _cli(home, "project", "create", "Chain", "--dir", tmp_path / "projects")
    steps = [("import_particles", ["-p", f"particle_meta_path={star}"], []),
             ("particle_sets", ["-p", "action=split", "-p", "num_batches=2"], ["particles_A", "J1.imported_particles"]),
             ("downsample_particles", ["-p", "fourier_box=16", "-p", "float16=true"], ["particles", "J2.split_1"]),
             ("subset_particles_by_statistic", ["-p", "field=alignments3D/split", "-p", "max_value=0"],
              ["particles", "J3.particles"]),
             ("export_relion", ["-p", f"output_path={tmp_path / 'out' / 'final.star'}"],
              ["particles", "J4.particles_selected"])]
    (tmp_path / "out").mkdir()
    for number, (job_type, params, connection) in enumerate(steps, start=1):
        _cli(home, "job", "create", "P1", job_type, *params)
        if connection:
            _cli(home, "job", "connect", "P1", f"J{number}", *connection)
    _cli(home, "job", "connect-result", "P1", "J5", "particles.0.blob", "J1.imported_particles.blob.F")
    for number in range(1, 6):
        _cli(home, "job", "queue", "P1", f"J{number}")
    _cli(home, "job", "wait", "P1", "J5", "--timeout", "240")
    jobs = json.loads(_cli(home, "job", "list", "P1", "--json"))
    assert [j["status"] for j in jobs] == ["completed"] * 5
    outputs = _cli(home, "job", "outputs", "P1", "J4")
    assert "particles_selected" in outputs and "particles_rejected" in outputs
    final = starfile.read(tmp_path / "out" / "final.star")["particles"]
    assert len(final) > 0 and (final["rlnRandomSubset"] == 1).all()  # split 0 is RELION's subset 1
    _, name = final["rlnImageName"][0].split("@")
    assert not name.startswith("/") and (tmp_path / "out" / name).exists()  # relative to where it was written
    assert mrcfile.open(tmp_path / "out" / name, header_only=True).header.nx == 32  # the full-size blob
