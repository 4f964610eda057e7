"""Writing a file so that it appears complete or not at all.

The data goes to a temporary file in the destination's folder, is flushed to disk and renamed
over the destination. Readers never see a partial file; a failed or interrupted write leaves the
old file as it was and no temporary file behind. The new file gets the mode an ordinary
``open()`` would give it (``0o666`` less the umask), or the mode of the file it replaces.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from cryoweave.errors import CryoweaveError


def _umask() -> int:
    try:  # Linux >= 4.7 reports it without changing it (os.umask would race with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | os.PathLike, *, text: bool = False,
                 error: type[CryoweaveError] = CryoweaveError) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    >>> with atomic_write("/tmp/example.txt", text=True) as f:  # doctest: +SKIP
    ...     f.write("all or nothing")
    """
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise error(f"cannot write {path}: directory {directory} does not exist")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise error(f"cannot write {path}: {err.strerror or err}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise error(f"cannot write {path}: {err.strerror or err}") from None
        raise
