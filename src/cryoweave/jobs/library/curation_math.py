"""The numeric cores of the curation jobs (:mod:`cryoweave.jobs.library.curation`), plain numpy.

- :func:`find_duplicates`: which particles to keep when some lie closer than a distance on the same
  micrograph (:func:`close_pairs` on a grid, never all pairs; :func:`greedy_keep` in score order);
- :func:`fit_gmm`, :func:`gmm_assign`, :func:`boundaries`: a 1-D Gaussian mixture fitted by EM.
"""

from __future__ import annotations

import numpy as np

from cryoweave.errors import DataError


# ------------------------------------------------------------------------------------ duplicates
def close_pairs(group: np.ndarray, x: np.ndarray, y: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j), i < j, of points of the same group closer than ``distance`` (strictly).

    ``group``: an integer per point (the micrograph); ``x``, ``y``: positions. A grid of cells
    ``distance`` wide; each point meets the points of its cell and of 4 neighbouring cells.

    >>> close_pairs(np.array([0, 0, 0, 1]), np.array([0., 5., 30., 1.]), np.array([0., 0., 0., 0.]), 10.0)
    (array([0]), array([1]))
    """
    n = len(x)
    if n < 2:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cell = distance * (1 + 1e-9)  # a pair closer than distance always lies in the same or adjacent cells
    cx, cy = np.floor(x / cell).astype(np.int64), np.floor(y / cell).astype(np.int64)
    cx -= cx.min() - 1
    cy -= cy.min() - 1
    width, height = int(cx.max()) + 2, int(cy.max()) + 2
    group = np.asarray(group, np.int64)
    if (int(group.max()) + 1) * width * height >= 2**62:
        raise DataError(f"the micrographs are too large for a {distance} Å grid ({width} × {height} cells each); "
                        "choose a larger distance")
    key = (group * width + cx) * height + cy
    order = np.argsort(key, kind="stable")
    key = key[order]
    xs, ys = x[order], y[order]
    new = np.empty(n, bool)
    new[0], new[1:] = True, key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    cell_of = np.cumsum(new) - 1
    cells = key[starts]
    pos = np.arange(n)
    found_i, found_j = [], []

    def emit(first: np.ndarray, count: np.ndarray) -> None:
        """Pairs (pos, first + 0 … count - 1), kept when closer than the distance."""
        total = int(count.sum())
        if not total:
            return
        i = np.repeat(pos, count)
        j = np.repeat(first - np.cumsum(count) + count, count) + np.arange(total)
        near = (xs[i] - xs[j]) ** 2 + (ys[i] - ys[j]) ** 2 < distance * distance
        found_i.append(i[near])
        found_j.append(j[near])

    emit(pos + 1, ends[cell_of] - pos - 1)  # the same cell, later in it
    for dx, dy in ((0, 1), (1, -1), (1, 0), (1, 1)):
        target = cells + dx * height + dy
        t = np.minimum(np.searchsorted(cells, target), len(cells) - 1)
        hit = cells[t] == target
        count = np.where(hit, ends[t] - starts[t], 0)[cell_of]
        emit(starts[t][cell_of], count)
    if not found_i:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    i, j = order[np.concatenate(found_i)], order[np.concatenate(found_j)]
    return np.minimum(i, j), np.maximum(i, j)


def greedy_keep(n: int, i: np.ndarray, j: np.ndarray, rank: np.ndarray, remove_all: bool = False) -> np.ndarray:
    """Which of ``n`` points to keep, given the close pairs (i, j) and each point's rank (0 = best, all
    different): in rank order, a point is kept unless a kept point is close to it (or, with
    ``remove_all``, every point of a pair is dropped)."""
    keep = np.ones(n, bool)
    if not len(i):
        return keep
    if remove_all:
        keep[i] = keep[j] = False
        return keep
    undecided = np.zeros(n, bool)
    undecided[i] = undecided[j] = True
    a, b = i.copy(), j.copy()
    while len(a):
        loses = np.zeros(n, bool)  # has an undecided neighbour of better rank
        worse_a = rank[a] > rank[b]
        loses[a[worse_a]] = True
        loses[b[~worse_a]] = True
        kept = undecided & ~loses
        undecided &= loses
        rejected = np.concatenate([b[kept[a]], a[kept[b]]])
        keep[rejected] = False
        undecided[rejected] = False
        live = undecided[a] & undecided[b]
        a, b = a[live], b[live]
    return keep  # a point left undecided has no undecided neighbour any more, and no kept one: kept


def score_rank(score: np.ndarray, uid: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """Each item's rank (0 = best): by score, then by lower uid; NaN scores last."""
    value = np.asarray(score, np.float64)
    value = np.where(np.isnan(value), np.inf, value if lower_is_better else -value)
    order = np.lexsort((uid, value))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def find_duplicates(micrograph: np.ndarray, x: np.ndarray, y: np.ndarray, distance: float, score: np.ndarray,
                    uid: np.ndarray, lower_is_better: bool = False, remove_all: bool = False,
                    ) -> tuple[np.ndarray, int]:
    """The mask of the particles to keep, and how many close pairs there were (see the module)."""
    group = np.unique(micrograph, return_inverse=True)[1].reshape(-1)
    i, j = close_pairs(group, x, y, distance)
    involved = np.unique(np.concatenate([i, j]))
    rank = np.zeros(len(x), np.int64)
    rank[involved] = score_rank(score[involved], uid[involved], lower_is_better)
    return greedy_keep(len(x), i, j, rank, remove_all), len(i)


# ------------------------------------------------------------------------------------------ subset
def _log_pdf(x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log(w_k · N(x; μ_k, σ²_k)) for every value (rows) and component (columns)."""
    d = x[:, None] - means[None, :]
    return np.log(weights) - 0.5 * (np.log(2 * np.pi * variances) + d * d / variances)


def fit_gmm(values: np.ndarray, components: int, seed: int | None = 0, restarts: int = 3, iterations: int = 500,
            tolerance: float = 1e-9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1-D Gaussian mixture fitted by EM: (weights, means, variances), sorted by mean.

    The first start puts the means at quantiles, the others at values drawn with ``seed``; the fit
    with the highest likelihood wins, so the result is the same for the same data and seed.
    """
    x = np.asarray(values, np.float64)
    spread = float(x.var())
    floor = max(spread, 1e-300) * 1e-8  # keeps a component from collapsing onto one value
    rng = np.random.default_rng(seed)
    best, best_ll = None, -np.inf
    for start in range(max(restarts, 1)):
        if start == 0:
            means = np.quantile(x, (np.arange(components) + 0.5) / components)
        else:
            means = np.sort(rng.choice(x, components, replace=len(x) < components))
        variances = np.full(components, max(spread / components**2, floor))
        weights = np.full(components, 1 / components)
        previous = -np.inf
        for _ in range(iterations):
            logp = _log_pdf(x, weights, means, variances)
            top = logp.max(axis=1, keepdims=True)
            total = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))
            ll = float(total.mean())
            resp = np.exp(logp - total[:, None])
            mass = resp.sum(axis=0) + 1e-300
            weights = np.maximum(mass / len(x), 1e-12)
            means = (resp * x[:, None]).sum(axis=0) / mass
            variances = np.maximum((resp * (x[:, None] - means) ** 2).sum(axis=0) / mass, floor)
            if ll - previous < tolerance * max(abs(ll), 1.0):
                break
            previous = ll
        if ll > best_ll:
            best, best_ll = (weights, means, variances), ll
    weights, means, variances = best
    order = np.argsort(means)
    return weights[order] / weights.sum(), means[order], variances[order]


def gmm_assign(values: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Each value's most probable component."""
    out = np.empty(len(values), np.int64)
    for start in range(0, len(values), 1_000_000):
        part = np.asarray(values[start:start + 1_000_000], np.float64)
        out[start:start + len(part)] = _log_pdf(part, weights, means, variances).argmax(axis=1)
    return out


def boundaries(low: float, high: float, model: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[float]:
    """The values in [low, high] where the most probable component changes (found on a grid, then by bisection)."""
    grid = np.linspace(low, high, 4001)
    label = gmm_assign(grid, *model)
    out = []
    for k in np.flatnonzero(label[1:] != label[:-1]):
        a, b = grid[k], grid[k + 1]
        for _ in range(60):
            mid = (a + b) / 2
            a, b = (mid, b) if gmm_assign(np.array([mid]), *model)[0] == label[k] else (a, mid)
        out.append((a + b) / 2)
    return out
