"""Write a small particle data set as RELION would hand it over: ``.mrcs`` stacks and a ``.star`` file.

Used by the README to try the job library without a microscope::

    python examples/sample_particles.py /tmp/sample --particles 2000 --box 64

writes ``/tmp/sample/Extract/mic_000.mrcs`` … (one stack per micrograph) and
``/tmp/sample/particles.star`` (RELION 3.1: an optics block, then per particle its image, CTF,
pose, shift, half set and position on its micrograph), with image paths relative to the
``.star`` file. The images are noise around a bright blob; the metadata are random but
plausible (defocus 1–3 µm, uniform poses, shifts of a few Å).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile


def images(n: int, box: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[:box, :box] - box / 2
    blob = np.exp(-(x * x + y * y) / (2 * (box / 10) ** 2))
    return (rng.normal(size=(n, box, box)) + 4 * blob).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write into (made if missing)")
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--micrographs", type=int, default=8)
    parser.add_argument("--pixel-size", type=float, default=1.2, help="Å per pixel")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    n, box = args.particles, args.box
    micrograph = np.sort(rng.integers(0, args.micrographs, n))
    index = np.zeros(n, int)
    (args.out / "Extract").mkdir(parents=True, exist_ok=True)
    names = []
    for m in range(args.micrographs):
        rows = np.flatnonzero(micrograph == m)
        index[rows] = np.arange(len(rows))
        stack = args.out / "Extract" / f"mic_{m:03d}.mrcs"
        with mrcfile.new(stack, overwrite=True) as mrc:
            mrc.set_data(images(max(len(rows), 1), box, rng))
            mrc.set_image_stack()
            mrc.voxel_size = args.pixel_size
        names.append(f"Extract/mic_{m:03d}.mrcs")
    defocus = rng.uniform(10_000, 30_000, n)
    optics = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
                           "rlnMicrographOriginalPixelSize": [args.pixel_size], "rlnVoltage": [300.0],
                           "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1],
                           "rlnImagePixelSize": [args.pixel_size], "rlnImageSize": [box],
                           "rlnImageDimensionality": [2]})
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@{names[m]}" for i, m in zip(index, micrograph)],
        "rlnMicrographName": [f"MotionCorr/mic_{m:03d}.mrc" for m in micrograph],
        "rlnCoordinateX": rng.uniform(box, 4096 - box, n), "rlnCoordinateY": rng.uniform(box, 4096 - box, n),
        "rlnDefocusU": defocus, "rlnDefocusV": defocus - rng.uniform(0, 400, n),
        "rlnDefocusAngle": rng.uniform(0, 180, n),
        "rlnAngleRot": rng.uniform(-180, 180, n), "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1, 1, n))),
        "rlnAnglePsi": rng.uniform(-180, 180, n),
        "rlnOriginXAngst": rng.normal(0, 2, n), "rlnOriginYAngst": rng.normal(0, 2, n),
        "rlnRandomSubset": rng.integers(1, 3, n), "rlnOpticsGroup": np.ones(n, int),
    })
    starfile.write({"optics": optics, "particles": particles}, args.out / "particles.star", overwrite=True)
    print(f"{n} particles of box {box} ({args.pixel_size} Å/px) in {args.micrographs} stacks: "
          f"{args.out / 'particles.star'}")


if __name__ == "__main__":
    main()
