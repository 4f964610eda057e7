"""Helpers for the tests of the built-in job library: an instance, real image files, one-call runs.

Data is made by the tests themselves: MRC files with ``mrcfile``, ``.star`` files with
``starfile``, ``.cs`` / ``.csg`` files with cryosparc-tools where a test checks compatibility.

>>> with library_instance(tmp_path) as project:                                   # doctest: +SKIP
...     stack = write_stack(tmp_path / "raw" / "a.mrcs", random_images(10, 32))
...     job = run(project, "import_volumes", {"map_path": str(tmp_path / "map.mrc")})
...     job.load_output("imported_volume")
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from cryoweave.api import Instance


@contextlib.contextmanager
def library_instance(tmp_path: Path, title: str = "Library") -> Iterator[Any]:
    """A fresh SQLite instance under ``tmp_path/home`` with one project; yields the project."""
    with Instance(home=tmp_path / "home") as inst:
        yield inst.create_project(title, tmp_path / "projects")


def run(project: Any, job_type: str, params: dict[str, Any] | None = None,
        inputs: dict[str, str | list[str]] | None = None, *, expect: str = "completed") -> Any:
    """Create a job, connect its inputs (``{"particles": "J1.particles"}``), run it in the
    foreground, and check it ended as expected (``completed`` or ``failed``)."""
    job = project.create_job(job_type, params=params or {})
    for name, sources in (inputs or {}).items():
        for source in [sources] if isinstance(sources, str) else sources:
            job.connect(name, source)
    job.execute()
    if job.status != expect:
        message = job.record.run.message if job.record.run else ""
        raise AssertionError(f"{job.uid} ({job_type}) is {job.status}, not {expect}: {message}")
    return job


def failure(job: Any) -> str:
    """Why a failed job failed (its run's message)."""
    return job.record.run.message if job.record.run else ""


def random_images(n: int, box: int, seed: int = 0, dtype: str = "float32") -> np.ndarray:
    """``n`` images of noise plus a smooth blob, different per image, so any mix-up shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:box, :box] - box / 2
    blob = np.exp(-(x * x + y * y) / (2 * (box / 8) ** 2))
    images = rng.normal(size=(n, box, box)) + blob * rng.uniform(1, 5, size=(n, 1, 1))
    return images.astype(dtype)


def write_stack(path: Path, images: np.ndarray, pixel_size: float = 1.0) -> Path:
    """An MRC image stack (``.mrcs``) written with mrcfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(images))
        mrc.set_image_stack()
        mrc.voxel_size = pixel_size
    return path


def write_volume(path: Path, volume: np.ndarray, pixel_size: float = 1.0) -> Path:
    """An MRC 3D map written with mrcfile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
        mrc.set_volume()
        mrc.voxel_size = pixel_size
    return path


def read_mrc(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=False) as mrc:
        return np.array(mrc.data)
