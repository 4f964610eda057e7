"""Particle Sets Tool and Exposure Sets Tool: split a group into batches, or intersect and subtract two.

One implementation serves both job types (``particle_sets`` on ``particles_A``/``particles_B``,
``exposure_sets`` on ``exposures_A``/``exposures_B``). Every output saves only the uids of its
items; all their results pass through from the input they came from. The outputs are declared
when the job runs, since they depend on the action (and on the number of batches).

**split** (only A): ``num_batches`` batches, ``split_0`` … ``split_{N-1}``, plus ``remainder``.
Without ``batch_size`` the batches are as equal as can be (sizes differ by at most one, the first
ones larger; the remainder is empty); with it each batch holds exactly ``batch_size`` items and
the ``remainder`` the rest. ``randomize`` draws the batches at random (the same for the same
``seed``); within each output the items keep the input's order.

**intersect** (A and B), on ``uid`` or on a field's values (``field``: a field name such as
``location/micrograph_uid``, several joined with ``+``, or ``path``: ``blob/path+blob/idx`` for
particles, ``micrograph_blob/path`` (else ``movie_blob/path``) for exposures). An item *matches*
when the other group has an item with the same value(s):

- ``intersect``: A's items that match B (A's results, passthrough from A);
- ``intersect_B``: B's items that match A (B's results, passthrough from B);
- ``A_minus_B``: A's items that match nothing in B; ``B_minus_A``: B's that match nothing in A.

On ``uid`` this is exactly set algebra; on a field that several items share (a micrograph uid) it
is a semi-join: every item of A whose value occurs in B is in ``intersect``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import DataError, ParamError
from cryoweave.jobs.library.common import LibraryJob, listing, param

LEADING_UID = re.compile(r"^\d{21}_")
"""The 21-digit uid CryoSPARC puts in front of the names of files it imports or writes."""


@dataclass(frozen=True)
class Kind:
    """What differs between the particle and the exposure sets tools."""

    noun: str  # "particles": the inputs' prefix and the word for the items
    datatype: str
    paths: tuple[tuple[str, ...], ...]  # the fields of "path" mode, the first whose result both inputs have


PARTICLES = Kind("particles", "particle", (("blob/path", "blob/idx"),))
EXPOSURES = Kind("exposures", "exposure", (("micrograph_blob/path",), ("movie_blob/path",)))


# ------------------------------------------------------------------------------------------- split
def split_indices(total: int, num_batches: int, batch_size: int | None = None, randomize: bool = False,
                  seed: int | None = 0, noun: str = "items") -> tuple[list[np.ndarray], np.ndarray]:
    """Row indices of each batch and of the remainder (each sorted, every row exactly once).

    >>> [b.tolist() for b in split_indices(7, 3)[0]]
    [[0, 1, 2], [3, 4], [5, 6]]
    >>> batches, rest = split_indices(7, 2, batch_size=3)
    >>> [b.tolist() for b in batches], rest.tolist()
    ([[0, 1, 2], [3, 4, 5]], [6])
    """
    if num_batches is None or num_batches < 1:
        raise ParamError(f"parameter 'num_batches' must be at least 1, not {num_batches!r}")
    if batch_size is not None and batch_size < 1:
        raise ParamError(f"parameter 'batch_size' must be at least 1 (or unset for equal batches), not {batch_size}")
    if batch_size is None and num_batches > total:
        raise ParamError(f"cannot split {total:,} {noun} into {num_batches:,} batches: each batch needs at least "
                         f"one; ask for at most {total:,}")
    if batch_size is not None and batch_size * num_batches > total:
        raise ParamError(f"{num_batches:,} batches of {batch_size:,} need {batch_size * num_batches:,} {noun}, but "
                         f"the input has {total:,}; ask for fewer or smaller batches")
    order = np.random.default_rng(seed).permutation(total) if randomize else np.arange(total)
    if batch_size is None:
        return [np.sort(part) for part in np.array_split(order, num_batches)], np.empty(0, np.intp)
    batches = [np.sort(order[k * batch_size:(k + 1) * batch_size]) for k in range(num_batches)]
    return batches, np.sort(order[num_batches * batch_size:])


# --------------------------------------------------------------------------------------- intersect
def _comparable(name: str, values: np.ndarray, ignore_leading_uid: bool) -> np.ndarray:
    """A field's values as a 1-D array that ``np.unique`` can compare (rows of vectors as bytes)."""
    if values.dtype.kind in "OUS":
        text = values.astype(str).astype(object)
        if ignore_leading_uid and name.endswith("path"):
            text = np.array([os.path.join(os.path.dirname(t), LEADING_UID.sub("", os.path.basename(t)))
                             for t in text], dtype=object)
        return text
    if values.ndim > 1:
        flat = np.ascontiguousarray(values.reshape(len(values), -1))
        return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    return values


def match_keys(a: dict[str, np.ndarray], b: dict[str, np.ndarray], ignore_leading_uid: bool = False,
               ) -> tuple[np.ndarray, np.ndarray]:
    """For each item of A, whether B has one with equal values in every field, and the same for B.

    >>> match_keys({"k": np.array([1, 2, 2, 3])}, {"k": np.array([2, 5])})
    (array([False,  True,  True, False]), array([ True, False]))
    """
    if list(a) == ["uid"]:
        return np.isin(a["uid"], b["uid"]), np.isin(b["uid"], a["uid"])
    n_a = len(next(iter(a.values())))
    key = np.zeros(n_a + len(next(iter(b.values()))), np.int64)
    for name in a:
        va, vb = a[name], b[name]
        if (va.dtype.kind in "OUS") != (vb.dtype.kind in "OUS") or va.shape[1:] != vb.shape[1:]:
            raise DataError(f"field {name!r} holds {va.dtype}{va.shape[1:] or ''} in A but {vb.dtype}"
                            f"{vb.shape[1:] or ''} in B: their values cannot be compared")
        if va.dtype.kind not in "OUS" and va.dtype != vb.dtype:
            common = np.result_type(va.dtype, vb.dtype)
            va, vb = va.astype(common), vb.astype(common)
        both = np.concatenate([_comparable(name, va, ignore_leading_uid), _comparable(name, vb, ignore_leading_uid)])
        codes = np.unique(both, return_inverse=True)[1].reshape(-1).astype(np.int64)
        key = np.unique(key * (int(codes.max(initial=0)) + 1) + codes, return_inverse=True)[1].reshape(-1)
    return np.isin(key[:n_a], key[n_a:]), np.isin(key[n_a:], key[:n_a])


def _results(ctx: Any, name: str) -> list[str]:
    """The results an input holds (its slots and passthroughs), without loading any."""
    return list(ctx.input_results(name))


def key_fields(text: str | None, kind: Kind, held_a: list[str], held_b: list[str], names: tuple[str, str]) -> list[str]:
    """The fields to intersect on, checked to be in both inputs' results."""
    text = (text or "uid").strip()
    if text == "uid":
        return ["uid"]
    if text == "path":
        for fields in kind.paths:
            prefix = fields[0].split("/")[0]
            if prefix in held_a and prefix in held_b:
                return list(fields)
        wanted = " or ".join(f[0].split("/")[0] for f in kind.paths)
        raise DataError(f"intersecting on 'path' needs a {wanted} result in both {names[0]} (has "
                        f"{listing(held_a, 12) or 'none'}) and {names[1]} (has {listing(held_b, 12) or 'none'})")
    fields = [f.strip() for f in text.split("+")]
    for field in fields:
        if field == "uid":
            continue
        if "/" not in field:
            raise ParamError(f"parameter 'field': {field!r} is not a field name (<result>/<field>, e.g. "
                             "location/micrograph_uid), 'uid' or 'path'")
        for name, held in zip(names, (held_a, held_b)):
            if field.split("/")[0] not in held:
                raise DataError(f"input {name} has no {field.split('/')[0]!r} result, so it cannot be intersected "
                                f"on {field!r}; its results: {listing(held, 12) or 'none'}")
    return fields


def _load_keys(ctx: Any, name: str, fields: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    prefixes = list(dict.fromkeys(f.split("/")[0] for f in fields if f != "uid"))
    data = ctx.load_input(name, slots=prefixes)
    for field in fields:
        if field not in data:
            prefix = field.split("/")[0]
            have = [f for f in data.fields() if f.startswith(prefix + "/")]
            raise DataError(f"input {name} has no field {field!r}; its {prefix!r} fields: {listing(have, 12)}")
    return np.asarray(data["uid"]), {f: np.asarray(data[f]) for f in fields}


# ------------------------------------------------------------------------------------------ the job
def _save(ctx: Any, kind: Kind, name: str, uids: np.ndarray, source: str, title: str) -> None:
    ctx.add_output(name, kind.datatype, passthrough=source, title=title)
    ctx.save_output(name, Dataset([("uid", uids)]))


def outputs_for(kind: Kind, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The outputs an action makes, declared as soon as the parameters say so (so later jobs can be
    connected to ``split_1`` before this one runs)."""
    a_name, b_name = f"{kind.noun}_A", f"{kind.noun}_B"

    def out(name: str, source: str, title: str) -> dict[str, Any]:
        return {"name": name, "type": kind.datatype, "passthrough": source, "title": title}

    if params.get("action") == "split":
        count = params.get("num_batches") or 0
        return [*(out(f"split_{k}", a_name, f"Split {k}") for k in range(count)),
                out("remainder", a_name, "Remainder")]
    return [out("intersect", a_name, "A ∩ B (results of A)"), out("intersect_B", b_name, "A ∩ B (results of B)"),
            out("A_minus_B", a_name, "A − B"), out("B_minus_A", b_name, "B − A")]


def run_sets(ctx: Any, kind: Kind) -> None:
    p = ctx.params
    a_name, b_name = f"{kind.noun}_A", f"{kind.noun}_B"
    has_b = bool(ctx.record.inputs.get(b_name))
    if p["action"] == "split":
        uids = np.asarray(ctx.load_input(a_name, slots=[])["uid"])
        batches, rest = split_indices(len(uids), p["num_batches"], p["batch_size"], p["randomize"], p["seed"],
                                      kind.noun)
        if has_b:
            ctx.warning(f"action 'split' uses only {a_name}; {b_name} is ignored")
        how = "at random" + (f" (seed {p['seed']})" if p["seed"] is not None else "") if p["randomize"] else "in order"
        sizes = ", ".join(f"{len(b):,}" for b in batches[:8]) + (" …" if len(batches) > 8 else "")
        ctx.log(f"split {len(uids):,} {kind.noun} {how} into {len(batches):,} batches of {sizes}; "
                f"{len(rest):,} in the remainder")
        for k, rows in enumerate(batches):
            _save(ctx, kind, f"split_{k}", uids[rows], a_name, f"Split {k}")
        _save(ctx, kind, "remainder", uids[rest], a_name, "Remainder")
        return
    if not has_b:
        raise ParamError(f"action 'intersect' needs two groups: connect {b_name} (or choose action 'split')")
    names = (a_name, b_name)
    fields = key_fields(p["field"], kind, _results(ctx, a_name), _results(ctx, b_name), names)
    uids_a, keys_a = _load_keys(ctx, a_name, fields)
    uids_b, keys_b = _load_keys(ctx, b_name, fields)
    in_b, in_a = match_keys(keys_a, keys_b, p["ignore_leading_uid"])
    on = "uid" if fields == ["uid"] else "+".join(fields)
    ctx.log(f"intersect on {on}: A {len(uids_a):,}, B {len(uids_b):,} {kind.noun}; A∩B {int(in_b.sum()):,} of A "
            f"({int(in_a.sum()):,} of B), A−B {int((~in_b).sum()):,}, B−A {int((~in_a).sum()):,}")
    _save(ctx, kind, "intersect", uids_a[in_b], a_name, "A ∩ B (results of A)")
    _save(ctx, kind, "intersect_B", uids_b[in_a], b_name, "A ∩ B (results of B)")
    _save(ctx, kind, "A_minus_B", uids_a[~in_b], a_name, "A − B")
    _save(ctx, kind, "B_minus_A", uids_b[~in_a], b_name, "B − A")


def _spec(kind: Kind, type: str, title: str, description: str) -> dict[str, Any]:
    noun = kind.noun
    path = " or ".join("+".join(f) for f in kind.paths)
    return {
        "type": type, "title": title, "description": description, "category": "utilities",
        "inputs": [
            {"name": f"{noun}_A", "type": kind.datatype, "title": f"{noun.capitalize()} A", "slots": []},
            {"name": f"{noun}_B", "type": kind.datatype, "title": f"{noun.capitalize()} B", "slots": [],
             "count_min": 0},
        ],
        "outputs": outputs_for(kind, {"action": "split", "num_batches": 2}),  # for the default parameters
        "run_outputs": "split_0 … split_<num_batches - 1> and remainder (split); intersect, intersect_B, "
                       "A_minus_B and B_minus_A (intersect) — declared as the parameters are set",
        "params": [
            param("action", "enum", "split: A into batches; intersect: A∩B, A−B and B−A", "split",
                  choices=["split", "intersect"]),
            param("num_batches", "integer", "Split: how many batches", 2, minimum=1),
            param("batch_size", "integer", f"Split: {noun} per batch (unset: equal batches, nothing left over)",
                  minimum=1),
            param("randomize", "boolean", "Split: draw the batches at random instead of in order", False),
            param("seed", "integer", "Split: random seed of the randomized split", 0),
            param("field", "string", f"Intersect on: uid, path ({path}) or field names joined with '+' "
                  "(e.g. location/micrograph_uid)", "uid"),
            param("ignore_leading_uid", "boolean", "Intersect on paths: ignore the 21-digit uid CryoSPARC puts in "
                  "front of file names", False),
        ],
    }


JOBS = [
    LibraryJob(_spec(PARTICLES, "particle_sets", "Particle Sets Tool",
                     "Split particles into batches, or intersect and subtract two particle groups; every "
                     "result passes through."), lambda ctx: run_sets(ctx, PARTICLES),
               lambda params: outputs_for(PARTICLES, params)),
    LibraryJob(_spec(EXPOSURES, "exposure_sets", "Exposure Sets Tool",
                     "Split exposures into batches, or intersect and subtract two exposure groups; every "
                     "result passes through."), lambda ctx: run_sets(ctx, EXPOSURES),
               lambda params: outputs_for(EXPOSURES, params)),
]
