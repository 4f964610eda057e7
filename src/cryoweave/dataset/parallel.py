"""Run independent column work on a few threads.

numpy copies, gathers and sorts, and LZ4, release the GIL, so on a multi-core machine the
columns of a large table are processed side by side. Small work stays on the calling thread,
where a pool would cost more than it saves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Work smaller than this (in bytes touched) runs on the calling thread."""

_pool: ThreadPoolExecutor | None = None


def worker_count() -> int:
    """Threads to use: ``CRYOWEAVE_THREADS`` if set, else the CPUs this process may run on (≤ 8)."""
    configured = os.environ.get("CRYOWEAVE_THREADS")
    if configured and configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=worker_count(), thread_name_prefix="cryoweave")
    return _pool


def parallel_map(fn: Callable[[T], U], items: Iterable[T], *, total_bytes: int) -> list[U]:
    """``[fn(x) for x in items]``, on worker threads when the work is large enough."""
    items = list(items)
    if len(items) < 2 or total_bytes < PARALLEL_MIN_BYTES or worker_count() < 2:
        return [fn(x) for x in items]
    return list(_executor().map(fn, items))


def parallel_workers(fn: Callable[[int, int], None], *, total_bytes: int) -> None:
    """Call ``fn(worker_index, worker_count)`` once per worker and wait for all of them."""
    count = worker_count() if total_bytes >= PARALLEL_MIN_BYTES else 1
    if count < 2:
        fn(0, 1)
        return
    futures = [_executor().submit(fn, i, count) for i in range(count)]
    for future in futures:
        future.result()
