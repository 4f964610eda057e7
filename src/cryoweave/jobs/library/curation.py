"""Particle curation: Remove Duplicate Particles and Subset Particles by Statistic.

Both jobs save only the uids of their two outputs; every result of the input passes through.

**remove_duplicate_particles**: two particles of the same micrograph (``location/micrograph_uid``)
whose centres lie *closer* than ``min_distance_A`` (a distance exactly equal is not a duplicate)
are duplicates. Centres in Å: ``x = center_x_frac · shape[1] · psize``, ``y = center_y_frac ·
shape[0] · psize`` (``location/micrograph_shape`` is [y, x]; ``psize`` is
``location/micrograph_psize_A``, or the ``micrograph_psize_A`` parameter where that is 0).
Which one is kept is decided **greedily in score order**: particles are taken best score first
(``score_field``; higher is better unless ``lower_is_better``; ties and missing scores go to the
lower uid, a NaN score is the worst) and a particle is kept unless a particle already kept lies
within the distance. So in a chain A–B–C (A close to B, B close to C, A far from C) with A best,
A and C are kept and B rejected; with B best only B is kept. ``remove_all_duplicates`` rejects
every particle that has any other particle within the distance.

The search never compares all pairs: particles are binned into square cells one distance wide
keyed by (micrograph, cell x, cell y); after one sort, each particle is compared only with those of
its own cell and of the 4 cells ahead of it (the other 4 neighbours see it from their side). The
greedy order is then applied to the (few) particles that have a neighbour, in vectorised rounds:
a particle whose rank beats every undecided neighbour's is kept and its neighbours rejected; this
gives exactly the sequential greedy result.

**subset_particles_by_statistic**: split particles by a numeric field, by a ``range`` (min and/or
max, inclusive) or by a Gaussian mixture (``gmm``) fitted by EM, keeping the particles most
probably drawn from component ``keep_cluster`` (components numbered by increasing mean).
"""

from __future__ import annotations

import difflib
import itertools
import time
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import CryoweaveError, DataError, ParamError
from cryoweave.formats.plots import histogram_plot
from cryoweave.jobs.library.common import LibraryJob, listing, param, positive
from cryoweave.jobs.library.curation_math import boundaries, find_duplicates, fit_gmm, gmm_assign
from cryoweave.spec import result_fields

LOWER_IS_BETTER = ("error", "error_min", "resid_pow")
"""Score fields (last name component) for which a lower value is better."""


# ------------------------------------------------------------------------------------ duplicates
def positions_A(location: Dataset, psize: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Particle centres in Å on their micrographs (see the module for the formula)."""
    shape = np.asarray(location["location/micrograph_shape"], np.float64)
    size = np.asarray(location["location/micrograph_psize_A"], np.float64)
    unset = ~(size > 0)
    if unset.any():
        if psize is None:
            raise ParamError(f"{int(unset.sum()):,} particles have no micrograph pixel size (location/"
                             "micrograph_psize_A is 0): set parameter 'micrograph_psize_A'")
        size = np.where(unset, psize, size)
    if len(shape) and not (shape > 0).all():
        bad = int((~(shape > 0).all(axis=1)).sum())
        raise DataError(f"{bad:,} particles have no micrograph shape (location/micrograph_shape is 0), so their "
                        "positions on the micrograph are unknown")
    x = np.asarray(location["location/center_x_frac"], np.float64) * shape[:, 1] * size
    y = np.asarray(location["location/center_y_frac"], np.float64) * shape[:, 0] * size
    return x, y


def run_remove_duplicates(ctx: Any) -> None:
    p = ctx.params
    distance = positive(p, "min_distance_A", "the minimum separation in Å")
    psize = p["micrograph_psize_A"]
    if psize is not None:
        positive(p, "micrograph_psize_A", "the micrographs' pixel size in Å")
    held = input_fields(ctx, "particles")
    field = p["score_field"]
    if field is None:
        field = "pick_stats/ncc_score" if "pick_stats/ncc_score" in held else "none"
    if field != "none":
        check_field(field, held, "particles", "score_field")
    lower = p["lower_is_better"]
    if lower is None:
        lower = field.rsplit("/", 1)[-1] in LOWER_IS_BETTER
    slots = list(dict.fromkeys(["location"] + ([field.split("/")[0]] if field != "none" else [])))
    data = ctx.load_input("particles", slots=slots)
    score = np.zeros(len(data)) if field == "none" else numeric(data, field, "particles")
    x, y = positions_A(data, psize)
    started = time.perf_counter()
    keep, pairs = find_duplicates(np.asarray(data["location/micrograph_uid"]), x, y, distance, score,
                                  np.asarray(data["uid"]), lower, p["remove_all_duplicates"])
    uids = np.asarray(data["uid"])
    micrographs = len(np.unique(data["location/micrograph_uid"]))
    how = "every particle of a close pair removed" if p["remove_all_duplicates"] else (
        "no score: lower uid kept" if field == "none" else f"{'lowest' if lower else 'highest'} {field} kept")
    ctx.log(f"{len(uids):,} particles on {micrographs:,} micrographs: {pairs:,} pairs closer than {distance:g} Å "
            f"({how}); kept {int(keep.sum()):,}, rejected {int((~keep).sum()):,} "
            f"(search {time.perf_counter() - started:.2f} s)")
    ctx.save_output("particles_kept", Dataset([("uid", uids[keep])]))
    ctx.save_output("particles_rejected", Dataset([("uid", uids[~keep])]))


# ------------------------------------------------------------------------------------------ fields
def input_fields(ctx: Any, name: str) -> list[str]:
    """The field names an input's results have (from their types, nothing loaded)."""
    fields = ["uid"]
    for result, dtype in ctx.input_results(name).items():
        try:
            fields += [f[0] for f in result_fields(result, dtype, "particle")]
        except CryoweaveError:
            fields.append(f"{result}/…")
    return fields


def check_field(field: str | None, held: list[str], input_name: str, param_name: str) -> None:
    """An error naming similar fields when the input has no such field."""
    if not field:
        raise ParamError(f"parameter {param_name!r}: say which field to use (e.g. ctf/df1_A)")
    prefix = field.split("/")[0]
    if field in held or f"{prefix}/…" in held:
        return
    near = difflib.get_close_matches(field, held, n=6, cutoff=0.5)
    near += [f for f in held if f.rsplit("/", 1)[-1] == field.rsplit("/", 1)[-1] and f not in near]
    raise DataError(f"input {input_name} has no field {field!r}" + (f"; similar: {listing(near, 6)}" if near else "")
                    + f" (its results: {listing(list(dict.fromkeys(f.split('/')[0] for f in held[1:])), 12)})")


def numeric(data: Dataset, field: str, input_name: str) -> np.ndarray:
    """A field's values as float64, checked to be numbers, one per item."""
    if field not in data:
        raise DataError(f"input {input_name} has no field {field!r}")
    values = np.asarray(data[field])
    if values.dtype.kind not in "biuf":
        raise DataError(f"field {field!r} of input {input_name} holds {values.dtype} values, not numbers")
    if values.ndim != 1:
        raise DataError(f"field {field!r} of input {input_name} holds a vector of shape {values.shape[1:]} per "
                        "item; choose a field with one number per item")
    return values.astype(np.float64)


# ------------------------------------------------------------------------------------------ subset
def run_subset_by_statistic(ctx: Any) -> None:
    p = ctx.params
    field = p["field"]
    check_field(field, input_fields(ctx, "particles"), "particles", "field")
    if p["mode"] == "range" and p["min_value"] is not None and p["max_value"] is not None \
            and p["min_value"] > p["max_value"]:
        raise ParamError(f"min_value {p['min_value']:g} is above max_value {p['max_value']:g}: nothing could be "
                         "selected")
    data = ctx.load_input("particles", slots=[field.split("/")[0]] if field != "uid" else [])
    values = numeric(data, field, "particles")
    finite = np.isfinite(values)
    shown = values[finite]
    if p["mode"] == "range":
        low, high = p["min_value"], p["max_value"]
        above = values >= (-np.inf if low is None else low)
        selected = finite & above & (values <= (np.inf if high is None else high))
        text = f"range [{'−∞' if low is None else f'{low:g}'}, {'∞' if high is None else f'{high:g}'}]"
        plot = {"shade": [(low, high)], "lines": [v for v in (low, high) if v is not None]}
    else:
        k, keep = p["num_components"], p["keep_cluster"]
        if not 0 <= keep < k:
            raise ParamError(f"keep_cluster {keep} must be a component number from 0 to {k - 1} (by increasing mean)")
        if len(np.unique(shown)) < k:
            raise DataError(f"field {field!r} has {len(np.unique(shown)):,} distinct finite values: too few for "
                            f"a mixture of {k} components")
        sample = shown
        if len(shown) > p["max_fit_particles"]:
            rng = np.random.default_rng(p["seed"])
            sample = shown[rng.choice(len(shown), p["max_fit_particles"], replace=False)]
        model = fit_gmm(sample, k, p["seed"])
        label = np.full(len(values), -1)
        label[finite] = gmm_assign(shown, *model)
        selected = label == keep
        cuts = boundaries(float(shown.min()), float(shown.max()), model)
        parts = [f"{c}: mean {m:.4g}, sd {np.sqrt(v):.4g}, weight {w:.3f}, {int((label == c).sum()):,} particles"
                 for c, (w, m, v) in enumerate(zip(*model))]
        text = (f"a mixture of {k} Gaussians (EM, seed {p['seed']}): " + "; ".join(parts) + f"; boundaries "
                f"{', '.join(f'{c:.4g}' for c in cuts) or 'none'}; keeping component {keep}")
        edges = [shown.min(), *cuts, shown.max()]
        grid = np.linspace(shown.min(), shown.max(), 400)
        plot = {"lines": cuts, "shade": [(a, b) for a, b in itertools.pairwise(edges)
                                         if gmm_assign(np.array([(a + b) / 2]), *model)[0] == keep],
                "curves": [(grid, w * np.exp(-(grid - m) ** 2 / (2 * v)) / np.sqrt(2 * np.pi * v))
                           for w, m, v in zip(*model)]}
    if (~finite).any():
        ctx.warning(f"{int((~finite).sum()):,} particles have no finite {field}; they are rejected")
    n_sel = int(selected.sum())
    mean_sel = f", mean {values[selected].mean():.4g}" if n_sel else ""
    mean_rej = f", mean {values[~selected & finite].mean():.4g}" if (~selected & finite).any() else ""
    ctx.log(f"{field} of {len(values):,} particles (mean {shown.mean() if len(shown) else float('nan'):.4g}) "
            f"split by {text}: selected {n_sel:,}{mean_sel}, rejected {len(values) - n_sel:,}{mean_rej}")
    if len(shown):
        image = histogram_plot(shown, p["histogram_bins"], **plot)
        ctx.image(image, "histogram", f"histogram of {field}: {n_sel:,} selected (shaded), {len(values):,} in all")
    if not n_sel:
        ctx.warning(f"no particle was selected by the {text} of {field}")
    uids = np.asarray(data["uid"])
    ctx.save_output("particles_selected", Dataset([("uid", uids[selected])]))
    ctx.save_output("particles_rejected", Dataset([("uid", uids[~selected])]))


# ------------------------------------------------------------------------------------------- specs
def _outputs(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "type": "particle", "slots": [], "passthrough": "particles",
             "title": n.removeprefix("particles_").capitalize()} for n in names]


REMOVE_DUPLICATES = {
    "type": "remove_duplicate_particles", "title": "Remove Duplicate Particles", "category": "particle curation",
    "description": "Remove particles closer than a distance to a better-scoring particle of the same micrograph.",
    "inputs": [{"name": "particles", "type": "particle", "title": "Particles",
                "slots": ["location", "?pick_stats", "?alignments2D", "?alignments3D"]}],
    "outputs": _outputs("particles_kept", "particles_rejected"),
    "params": [
        param("min_distance_A", "number", "Minimum separation distance (Å): closer particles are duplicates", 20.0),
        param("micrograph_psize_A", "number", "Micrograph pixel size (Å), for particles whose "
              "location/micrograph_psize_A is 0"),
        param("score_field", "string", "Field deciding which duplicate to keep (unset: pick_stats/ncc_score if "
              "present; 'none': the lower uid)"),
        param("lower_is_better", "boolean", "A lower score is better (unset: true for error, error_min, resid_pow)"),
        param("remove_all_duplicates", "boolean", "Remove every particle of a close pair, keeping none", False),
    ],
}

SUBSET_BY_STATISTIC = {
    "type": "subset_particles_by_statistic", "title": "Subset Particles by Statistic",
    "category": "particle curation",
    "description": "Split particles by the value of a field: a range, or the clusters of a Gaussian mixture.",
    "inputs": [{"name": "particles", "type": "particle", "title": "Particles", "slots": []}],
    "outputs": _outputs("particles_selected", "particles_rejected"),
    "params": [
        param("field", "string", "The numeric field to subset by (e.g. ctf/df1_A, pick_stats/ncc_score)"),
        param("mode", "enum", "range: keep values between min and max; gmm: keep one cluster of a Gaussian mixture",
              "range", choices=["range", "gmm"]),
        param("min_value", "number", "Range: lowest value kept (unset: no lower bound)"),
        param("max_value", "number", "Range: highest value kept (unset: no upper bound)"),
        param("num_components", "integer", "GMM: number of Gaussian components", 2, minimum=1, maximum=20),
        param("keep_cluster", "integer", "GMM: the component kept, numbered by increasing mean from 0", 0, minimum=0),
        param("seed", "integer", "GMM: random seed of the EM starts", 0),
        param("max_fit_particles", "integer", "GMM: fit on at most this many particles (drawn at random)",
              1_000_000, minimum=100),
        param("histogram_bins", "integer", "Bins of the histogram shown in the event log", 100, minimum=2,
              maximum=1000),
    ],
}

JOBS = [LibraryJob(REMOVE_DUPLICATES, run_remove_duplicates), LibraryJob(SUBSET_BY_STATISTIC, run_subset_by_statistic)]
