"""Job types and datasets for the builder tests: real particle and volume tables on real files."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cryoweave import Dataset
from cryoweave.api import Instance
from cryoweave.jobs import Registry
from cryoweave.spec import result_fields


def particles(uids, *results: str, **values) -> Dataset:
    """A particle table with full result fields; ``values`` fill fields (``ctf__df1_A`` for ``ctf/df1_A``)."""
    fields = [("uid", "<u8")] + [f for r in results for f in result_fields(r)]
    d = Dataset.allocate(len(uids), fields)
    d["uid"] = np.asarray(uids, dtype=np.uint64)
    for key, value in values.items():
        d[key.replace("__", "/")] = value
    return d


def volume(uid: int, *slots: str, path: str = "map.mrc") -> Dataset:
    fields = [("uid", "<u8")] + [f for s in slots for f in result_fields(s, "blob", "volume")]
    d = Dataset.allocate(1, fields)
    d["uid"] = np.array([uid], dtype=np.uint64)
    for s in slots:
        d[f"{s}/path"] = [f"{path}:{s}"]
    return d


def _import(ctx):
    n, first = ctx.params["n"], ctx.params["first_uid"]
    uids = np.arange(first, first + n, dtype=np.uint64)
    ctx.save_output("particles", particles(uids, "blob", "ctf", "location", blob__idx=np.arange(n),
                                           ctf__df1_A=10000 + np.arange(n), location__center_x_frac=0.5))


def _subset(ctx):
    data = ctx.load_input("particles", slots=[])
    keep = data.slice(0, int(len(data) * ctx.params["fraction"]))
    ctx.save_output("particles", keep)


def _keep_all(ctx):
    ctx.save_output("particles", ctx.load_input("particles", slots=[]))


def _refine(ctx):
    data = ctx.load_input("particles")
    out = particles(data["uid"], "alignments3D")
    for it in range(ctx.params["iterations"]):
        out["alignments3D/error"] = float(it)
        ctx.save_output("particles", out, version=it)


def _broken(ctx):
    raise RuntimeError("the job's own bug")


TYPES = [
    SimpleNamespace(spec={
        "type": "lab_import_particles", "title": "Import particles",
        "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf", "location"]}],
        "params": [{"name": "n", "type": "integer", "default": 100}, {"name": "first_uid", "type": "integer",
                                                                       "default": 1000}]}, run=_import),
    SimpleNamespace(spec={
        "type": "subset_particles", "title": "Subset particles",
        "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"]}],
        "outputs": [{"name": "particles", "type": "particle", "passthrough": "particles"}],
        "params": [{"name": "fraction", "type": "number", "default": 0.5}]}, run=_subset),
    SimpleNamespace(spec={
        "type": "refine", "title": "Refine",
        "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
        "outputs": [{"name": "particles", "type": "particle", "slots": ["alignments3D"], "passthrough": "particles"}],
        "params": [{"name": "iterations", "type": "integer", "default": 4}]}, run=_refine),
    SimpleNamespace(spec={
        "type": "join_particles", "title": "Join particles",
        "inputs": [{"name": "particles", "type": "particle", "slots": ["blob"], "count_min": 2, "count_max": None}],
        "outputs": [{"name": "particles", "type": "particle", "passthrough": "particles"}]}, run=_keep_all),
    SimpleNamespace(spec={
        "type": "local_resolution", "title": "Local resolution",
        "inputs": [{"name": "volume", "type": "volume", "slots": ["map_half_A", "map_half_B", "?mask"]}],
        "outputs": []}),
    SimpleNamespace(spec={"type": "broken", "title": "Broken",
                          "outputs": [{"name": "particles", "type": "particle", "slots": ["blob"]}]}, run=_broken),
]


def registry() -> Registry:
    reg = Registry()
    reg._loaded = True
    for t in TYPES:
        reg.register(t, "tests")
    return reg


def instance(tmp_path, database_url=None) -> Instance:
    return Instance(home=tmp_path / "home", database_url=database_url, registry=registry())
