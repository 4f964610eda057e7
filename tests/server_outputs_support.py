"""A small real project for the output and data route tests: a phantom, simulated particles, a
reconstruction (maps, ``fsc.txt``) and an external job that saved three versions of ``ctf``.

>>> jobs = build_project(project)                                   # doctest: +SKIP
>>> jobs["external"].outputs["particles"].versions
[0, 1, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from library_support import run

PARTICLES = 200
KEPT_AT_LAST = 150
"""Items the external job keeps in its last version (the first ones of its input)."""
NAN_ROWS = (3, 7)
"""Rows whose ctf/df1_A is NaN in every version (plots drop them)."""


def build_project(project: Any, *, reconstruct: bool = True) -> dict[str, Any]:
    """Run the jobs (about a second, box 32) and return them by role."""
    phantom = run(project, "generate_phantom", {"box": 32, "psize_A": 3.0, "num_atoms": 400, "seed": 5})
    particles = run(project, "simulate_data", {"num_particles": PARTICLES, "snr": 0.5, "seed": 6},
                    {"volume": f"{phantom.uid}.volume"})
    jobs = {"phantom": phantom, "particles": particles}
    if reconstruct:
        jobs["recon"] = run(project, "homo_reconstruct", {}, {"particles": f"{particles.uid}.particles"})
    external = project.create_external_job(title="Shift defocus")
    external.add_input("particle", "particles", slots=["ctf"])
    external.add_output("particle", "particles", slots=["ctf"], passthrough="particles")
    external.connect("particles", f"{particles.uid}.particles")
    with external.run():
        data = external.load_input("particles").filter_prefixes(["ctf"])
        data["ctf/df1_A"][list(NAN_ROWS)] = np.nan
        for version in range(3):
            data["ctf/df1_A"] += 100.0
            saved = data if version < 2 else data.take(np.arange(KEPT_AT_LAST))
            external.save_output("particles", saved, version=version)
    jobs["external"] = external.refresh()
    return jobs
