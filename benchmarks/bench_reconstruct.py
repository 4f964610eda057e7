"""Homogeneous Reconstruction at box 128 on the CPU: ours, a straightforward numpy one, and cryoDRGN's.

    python benchmarks/bench_reconstruct.py [--particles 4000] [--box 128] [--naive 1000]
                                           [--cryodrgn-python .venv-cryodrgn/bin/python] [--out bench-output]

The particles: a phantom (Generate Phantom Volume, box 128, 1.5 Å/px) and ``--particles`` images of it
(Simulate Data: uniform poses, CTF with 1–2.5 µm defocus and astigmatism, shifts up to 3 px, noise at
SNR 0.1), made as jobs in a fresh instance under ``<out>/home``. Each method reconstructs the same
particles with the true poses, and each map is compared with the phantom (FSC against the ground truth:
the resolution where it falls below 0.5, and its mean up to Nyquist). Three ways:

- **ours**: the Homogeneous Reconstruction Only job in the foreground (``job.execute()``), once with its
  default padding (2) and once with ``padding_factor`` 1: reading, insertion of both halves (trilinear,
  CTF-weighted), half maps, mask, four FSC curves with
  noise substitution, Wiener map, sharpened map, files. Reported end to end and for the insertion alone
  (its own log line);
- **numpy, straightforward** (a baseline, in this script): the textbook version of the same algorithm,
  in plain numpy: per image, pad to 2×, ``np.fft.fft2`` of the whole plane, CTF and shift phase on it,
  trilinear insertion of every sample within Nyquist with ``np.add.at`` into a full complex grid (no
  Hermitian half), one map, divided by the CTF² weights. On the first ``--naive`` particles (its rate
  is per particle; its map is compared only when it saw every particle);
- **cryoDRGN** ``backproject_voxel`` (cryodrgn 4.3.1, CPU PyTorch), when ``--cryodrgn-python`` names a
  Python with it (``scripts/cryodrgn-venv.sh`` makes one): poses and CTF converted from our ``.cs`` by
  cryoDRGN's own ``parse_pose_csparc`` / ``parse_ctf_csparc``, the stacks listed in a ``.txt``,
  ``--uninvert-data`` (our images are dark, as CryoSPARC's), full map and half maps as it does by default,
  ``--no-fsc-vals``. Reported from its own "Backprojected N images in X s" line and end to end (wall time
  of the command, Python and PyTorch start-up included).

Figures go to ``<out>/reconstruct.json``. The goal: ours faster than both, with a map at least as good.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from cryoweave.api import Instance
from cryoweave.formats.ctf import ctf
from cryoweave.formats.geometry import rotvec_to_matrix
from cryoweave.formats.mrc import read_header, read_images
from cryoweave.jobs.library import fsc as F
from cryoweave.jobs.library.common import blob_headers, read_blobs
from cryoweave.jobs.library.reconstruction import corner_mask


def simulate(out: Path, particles: int, box: int) -> tuple[object, object, np.ndarray, float]:
    instance = Instance(home=out / "home")
    project = instance.create_project("Reconstruction benchmark", out / "projects")
    psize = 1.5 * 128 / box
    phantom = project.create_job("generate_phantom", params={"box": box, "psize_A": psize, "num_atoms": 8000,
                                                             "num_chains": 12, "seed": 1})
    phantom.execute()
    sim = project.create_job("simulate_data", params={"num_particles": particles, "snr": 0.1, "shift_max_px": 3.0,
                                                      "seed": 2})
    sim.connect("volume", f"{phantom.uid}.volume")
    started = time.perf_counter()
    sim.execute()
    print(f"simulated {particles:,} particles of {box} px in {time.perf_counter() - started:.1f} s")
    truth = read_images(read_header(project.directory / phantom.load_output("volume")["map/path"][0]))
    return project, sim, truth.astype(np.float64), psize


def quality(volume: np.ndarray, truth: np.ndarray, psize: float) -> dict[str, float]:
    """FSC against the ground truth: of the maps as they are, within the soft sphere our job masks its maps
    with (so that a map whose corners were not masked is not judged by the noise there), and within a soft
    mask around the molecule (the phantom's automatic mask: what a user measures in)."""
    out = {}
    sphere = corner_mask(len(truth))
    tight = F.auto_mask(truth, psize)
    for name, mask in (("", None), ("in_sphere_", sphere), ("in_molecule_mask_", tight)):
        freqs, curve = F.fsc(np.asarray(volume, np.float64), truth, mask, psize=psize)
        out |= {f"{name}resolution_at_0.5_A": round(F.resolution_at(curve, freqs, 0.5), 3),
                f"{name}mean_fsc_to_nyquist": round(float(curve[1:].mean()), 4),
                f"{name}fsc_at_0.8_nyquist": round(float(curve[int(0.8 * (len(curve) - 1))]), 4)}
    return out


# ------------------------------------------------------------------------------------------------ ours
def ours(project, sim, truth: np.ndarray, psize: float, pad: int) -> dict[str, object]:
    job = project.create_job("homo_reconstruct", params={"padding_factor": pad})
    job.connect("particles", f"{sim.uid}.particles")
    started = time.perf_counter()
    job.execute()
    seconds = time.perf_counter() - started
    assert job.status == "completed", job.record.run.message
    count = len(sim.load_output("particles", slots=[]))
    line = next(e.text for e in job.events() if e.text.startswith("inserted") and "particles/s" in e.text)
    insert_s = float(re.search(r"in ([\d.]+) s", line).group(1))
    volume = read_images(read_header(project.directory / job.load_output("volume")["map/path"][0]))
    return {"end_to_end_s": round(seconds, 2), "end_to_end_particles_per_s": round(count / seconds, 1),
            "insertion_s": insert_s, "insertion_particles_per_s": round(count / insert_s, 1),
            "map": quality(volume, truth, psize), "log": line}


# ----------------------------------------------------------------------------------------------- numpy
def naive(images: np.ndarray, rotations: np.ndarray, shifts: np.ndarray, ctf_params: dict[str, np.ndarray],
          psize: float) -> np.ndarray:
    """The straightforward numpy reconstruction (see the module's docstring); images already bright."""
    count, box = len(images), images.shape[-1]
    n = 2 * box
    k = np.fft.fftfreq(n, 1.0 / n)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    inside = kx * kx + ky * ky <= (n // 2 - 1) ** 2
    kx, ky = kx[inside], ky[inside]
    data = np.zeros((n, n, n), np.complex128)
    weight = np.zeros((n, n, n))
    start = n // 2 - box // 2
    for i in range(count):
        padded = np.zeros((n, n))
        padded[start:start + box, start:start + box] = images[i]
        spectrum = np.fft.fft2(np.fft.ifftshift(padded))[inside]
        spectrum *= np.exp(-2j * np.pi * (kx * -shifts[i, 0] + ky * -shifts[i, 1]) / n)  # translate by +shift
        c = -ctf(kx / (n * psize), ky / (n * psize), *(ctf_params[key][i] for key in
                 ("df1_A", "df2_A", "df_angle_rad", "accel_kv", "cs_mm", "amp_contrast")))
        p = rotations[i][:, :2] @ np.stack([kx, ky])  # x, y, z of each sample
        base = np.floor(p).astype(np.int64)
        frac = p - base
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    w = (frac[2] if dz else 1 - frac[2]) * (frac[1] if dy else 1 - frac[1]) \
                        * (frac[0] if dx else 1 - frac[0])
                    where = ((base[2] + dz) % n, (base[1] + dy) % n, (base[0] + dx) % n)
                    np.add.at(data, where, w * c * spectrum)
                    np.add.at(weight, where, w * c * c)
    volume = np.fft.fftshift(np.fft.ifftn(data / np.maximum(weight, 1e-3 * weight.mean())).real)
    volume = volume[start:start + box, start:start + box, start:start + box]
    axis = np.sinc((np.arange(box) - box // 2) / n) ** 2
    return volume / (axis[:, None, None] * axis[None, :, None] * axis[None, None, :])


def numpy_way(project, sim, count: int, truth: np.ndarray, psize: float, total: int) -> dict[str, object]:
    particles = sim.load_output("particles").slice(0, count)

    class Where:
        @staticmethod
        def file(path):
            return project.directory / path

    paths = particles["blob/path"].astype(str)
    headers = blob_headers(Where, paths, "stacks")
    images = read_blobs(headers, paths, particles["blob/idx"].astype(np.int64)) * particles["blob/sign"][:, None, None]
    params = {k: particles[f"ctf/{k}"].astype(np.float64) for k in
              ("df1_A", "df2_A", "df_angle_rad", "accel_kv", "cs_mm", "amp_contrast")}
    started = time.perf_counter()
    volume = naive(images, rotvec_to_matrix(particles["alignments3D/pose"]), particles["alignments3D/shift"]
                   .astype(np.float64), params, psize)
    seconds = time.perf_counter() - started
    out: dict[str, object] = {"particles": count, "seconds": round(seconds, 2),
                              "particles_per_s": round(count / seconds, 1)}
    if count == total:
        out["map"] = quality(volume, truth, psize)
    return out


# -------------------------------------------------------------------------------------------- cryoDRGN
def cryodrgn(python: str, project, sim, out: Path, truth: np.ndarray, psize: float, box: int) -> dict[str, object]:
    work = out / "cryodrgn"
    work.mkdir(parents=True, exist_ok=True)
    particles = sim.load_output("particles", slots=["blob"])
    stacks = list(dict.fromkeys(particles["blob/path"].astype(str)))  # in row order
    (work / "stacks.txt").write_text("".join(f"{project.directory / s}\n" for s in stacks))
    cs = project.directory / sim.uid / f"{sim.uid}_particles.cs"
    env = {**os.environ, "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0)))}
    parse = (f"from cryodrgn.commands import parse_pose_csparc as pp, parse_ctf_csparc as pc\n"
             f"import argparse\n"
             f"a = argparse.ArgumentParser(); pp.add_args(a); pp.main(a.parse_args(['{cs}', '-D', '{box}', "
             f"'-o', 'pose.pkl']))\n"
             f"a = argparse.ArgumentParser(); pc.add_args(a); pc.main(a.parse_args(['{cs}', '-o', 'ctf.pkl']))\n")
    subprocess.run([python, "-c", parse], cwd=work, env=env, check=True, capture_output=True)
    argv = ["stacks.txt", "--poses", "pose.pkl", "--ctf", "ctf.pkl", "--uninvert-data", "--no-fsc-vals", "-o",
            "result"]
    command = [python, "-c", "import argparse; from cryodrgn.commands import backproject_voxel as bv; "
               f"a = argparse.ArgumentParser(); bv.add_args(a); bv.main(a.parse_args({argv!r}))"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"cryoDRGN failed:\n{done.stderr[-3000:]}")
    match = re.search(r"Backprojected ([\d,]+) images in ([\d.]+)s", done.stderr + done.stdout)
    count = int(match.group(1).replace(",", ""))
    loop = float(match.group(2))
    volume = read_images(read_header(work / "result" / "backproject.mrc"))
    return {"end_to_end_s": round(seconds, 2), "end_to_end_particles_per_s": round(count / seconds, 1),
            "backprojection_s": loop, "backprojection_particles_per_s": round(count / loop, 1),
            "map": quality(volume, truth, psize), "version": subprocess.run(
                [python, "-c", "import cryodrgn, torch; print(cryodrgn.__version__, torch.__version__)"],
                capture_output=True, text=True).stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=4000)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--naive", type=int, default=1000, help="particles the straightforward numpy way inserts")
    parser.add_argument("--cryodrgn-python", default=".venv-cryodrgn/bin/python")
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    args = parser.parse_args()
    out = args.out / "reconstruct"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    project, sim, truth, psize = simulate(out, args.particles, args.box)
    results: dict[str, object] = {"particles": args.particles, "box": args.box, "psize_A": psize,
                                  "cpus": len(os.sched_getaffinity(0)), "machine": platform.processor() or
                                  platform.machine()}
    results["ours"] = ours(project, sim, truth, psize, 2)
    print("ours:", results["ours"])
    results["ours_padding_1"] = ours(project, sim, truth, psize, 1)
    print("ours, padding 1:", results["ours_padding_1"])
    results["numpy"] = numpy_way(project, sim, min(args.naive, args.particles), truth, psize, args.particles)
    print("numpy:", results["numpy"])
    if Path(args.cryodrgn_python).exists():
        python = str(Path(args.cryodrgn_python).absolute())
        results["cryodrgn"] = cryodrgn(python, project, sim, out, truth, psize, args.box)
        print("cryoDRGN:", results["cryodrgn"])
    else:
        results["cryodrgn"] = f"not measured: {args.cryodrgn_python} does not exist (scripts/cryodrgn-venv.sh)"
        print(results["cryodrgn"])
    ours_rate = results["ours"]["end_to_end_particles_per_s"]
    results["speedup_end_to_end_vs_numpy"] = round(ours_rate / results["numpy"]["particles_per_s"], 2)
    if isinstance(results["cryodrgn"], dict):
        results["speedup_end_to_end_vs_cryodrgn"] = round(
            ours_rate / results["cryodrgn"]["end_to_end_particles_per_s"], 2)
        results["speedup_insertion_vs_cryodrgn_backprojection"] = round(
            results["ours"]["insertion_particles_per_s"] / results["cryodrgn"]["backprojection_particles_per_s"], 2)
    (out / "reconstruct.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k.startswith("speedup")}, indent=2))
    print(f"figures in {out / 'reconstruct.json'}")


if __name__ == "__main__":
    main()
