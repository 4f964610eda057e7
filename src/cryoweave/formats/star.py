"""RELION ``.star`` particle files ↔ particle datasets (``blob``, ``ctf``, alignments, ``location``).

Reads RELION 3.1+ files (``data_optics`` + ``data_particles``) and 3.0 files (one particle block,
optics values per particle); writes 3.1+. What maps (RELION label ↔ field):

* blob: ``_rlnImageName`` ``"{idx+1:06d}@{path}"`` ↔ ``path``, ``idx``; optics ``_rlnImagePixelSize``
  (3.0: ``_rlnDetectorPixelSize``·1e4/``_rlnMagnification``) ↔ ``psize_A``, ``_rlnImageSize`` ↔
  ``shape`` (square; [0, 0] when a 3.0 file does not say). Read: ``sign`` from ``_cryoweaveBlobSign``
  (else −1, dark particles as extracted), ``import_sig`` 0.
* ctf: ``_rlnDefocusU/V`` ↔ ``df1_A/df2_A``, ``_rlnDefocusAngle`` (deg) ↔ ``df_angle_rad``,
  ``_rlnPhaseShift`` (deg) ↔ ``phase_shift_rad``, ``_rlnCtfBfactor`` ↔ ``bfactor``,
  ``_rlnCtfScalefactor`` ↔ ``scale``; optics ``_rlnVoltage``, ``_rlnSphericalAberration``,
  ``_rlnAmplitudeContrast`` ↔ ``accel_kv``, ``cs_mm``, ``amp_contrast``. Read: ``type`` "imported",
  ``scale`` 1 when absent, all other fields (``anisomag`` included, as cryoSPARC allocates it) 0.
* alignments3D: ``_rlnAngleRot/Tilt/Psi`` ↔ ``pose`` (see `geometry`); ``_rlnOriginX/YAngst`` ↔
  ``shift`` × ``blob/psize_A`` (3.0 ``_rlnOriginX/Y`` in pixels); ``_rlnRandomSubset`` 1/2 ↔ ``split`` 0/1;
  ``_rlnClassNumber`` ↔ ``class`` + 1; ``psize_A`` = pixel size. A dataset with only alignments2D
  writes ``_rlnAnglePsi`` = degrees(``pose``); a file with ``_rlnAnglePsi`` but no rot/tilt reads
  as alignments2D.
* location: ``_rlnCoordinateX`` = ``center_x_frac`` × ``micrograph_shape[1]``, ``_rlnCoordinateY`` =
  ``center_y_frac`` × ``micrograph_shape[0]`` (shape is [y, x]; no y flip), ``_rlnMicrographName``
  ↔ ``micrograph_path``.
* cryoweave's own labels (RELION ignores them) keep the rest: ``_cryoweaveUid``,
  ``_cryoweaveMicrographUid``, ``_cryoweaveMicrographShapeY/X``, ``_cryoweaveExpGroupId``,
  ``_cryoweaveBlobSign``.
  Without them a read makes new uids, micrograph uids from the name (SHA-1, first 8 bytes
  little-endian), shapes from ``micrograph_shape=`` and exp_group_id from ``_rlnOpticsGroup``.

Not written: every other field (``ctf/tilt_A``, ``alignments*/error`` …) and other
results. Optics groups: one per distinct (exposure group, voltage, Cs, amplitude contrast, pixel
size, box), the exposure group being ``ctf/exp_group_id`` (else ``location/exp_group_id``, else 1),
numbered 1..K in sorted order because RELION indexes its optics table by number − 1: ids 1..K keep
their numbers, 0..K−1 become id+1, others are renumbered; a group whose rows disagree is split
(``UserWarning``). Numbers are written with 6 decimals; optics values as the shortest text that
reads back as the same float32.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from cryoweave.atomic import atomic_write
from cryoweave.dataset import Dataset, generate_uids
from cryoweave.errors import FormatError
from cryoweave.formats.geometry import relion_euler_to_rotvec, rotvec_to_relion_euler
from cryoweave.formats.star_text import write_loop
from cryoweave.spec.results import result_fields

_STRINGS = ["rlnImageName", "rlnMicrographName", "cryoweaveUid", "cryoweaveMicrographUid"]
_CTF = {"df1_A": "rlnDefocusU", "df2_A": "rlnDefocusV", "bfactor": "rlnCtfBfactor",
        "scale": "rlnCtfScalefactor"}
_CTF_DEG = {"df_angle_rad": "rlnDefocusAngle", "phase_shift_rad": "rlnPhaseShift"}
_OPTICS_CTF = {"accel_kv": "rlnVoltage", "cs_mm": "rlnSphericalAberration",
               "amp_contrast": "rlnAmplitudeContrast"}


class _Particles:
    """The particle rows of a parsed file; a label's values come from the row or its optics group."""

    def __init__(self, path: Path):
        self.path, self.rows = path, None
        if not path.is_file():
            raise FormatError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
        try:
            blocks = starfile.read(path, always_dict=True, parse_as_string=_STRINGS)
        except Exception as err:  # starfile and pandas raise many kinds on bad text
            detail = " ".join(str(err).split())
            raise FormatError(f"{path}: not a readable STAR file ({type(err).__name__}: {detail})") from None
        if not blocks:
            raise FormatError(f"{path}: not a STAR file (no data_ block)")
        frames = {k: pd.DataFrame([v]) if isinstance(v, dict) else v for k, v in blocks.items()}
        named = [k for k, v in frames.items() if "rlnImageName" in v.columns]
        if not named:
            raise FormatError(f"{path}: no particle block: none of data_{', data_'.join(frames)} has an "
                              "_rlnImageName column")
        self.block = "particles" if "particles" in named else named[0]
        self.frame, self.optics = frames[self.block], frames.get("optics")
        self.n = len(self.frame)
        if self.optics is None or "rlnImageName" in self.optics.columns:
            return
        if "rlnOpticsGroup" in self.frame.columns and "rlnOpticsGroup" in self.optics.columns:
            groups = self.integers("rlnOpticsGroup")
            known = pd.Index(self._checked(self.optics, "optics", "rlnOpticsGroup").astype(np.int64))
            if not known.is_unique:
                raise FormatError(f"{path}: data_optics defines optics group(s) "
                                  f"{sorted(set(known[known.duplicated()].tolist()))} more than once")
            self.rows = known.get_indexer(groups)
            if (self.rows < 0).any():
                missing = sorted(set(groups[self.rows < 0].tolist()))
                raise FormatError(f"{path}: particles refer to optics group(s) {missing} that data_optics "
                                  "does not define")
        elif len(self.optics) == 1 or self.n == 0:
            self.rows = np.zeros(self.n, dtype=np.intp)
        else:
            raise FormatError(f"{path}: data_optics has {len(self.optics)} groups but no _rlnOpticsGroup "
                              "column in data_optics and data_particles to tell which is whose")

    def has(self, label: str) -> bool:
        return label in self.frame.columns or (self.rows is not None and label in self.optics.columns)

    def _checked(self, frame: pd.DataFrame, block: str, label: str) -> np.ndarray:
        column = frame[label]
        if not pd.api.types.is_numeric_dtype(column.dtype):
            bad = pd.to_numeric(column, errors="coerce").isna().to_numpy().nonzero()[0][0]
            raise FormatError(f"{self.path}: column _{label} of data_{block} must be numeric, but row "
                              f"{bad + 1} holds {column.iloc[bad]!r}")
        return column.to_numpy(dtype=np.float64)

    def numbers(self, label: str, default: float = np.nan) -> np.ndarray:
        """float64 values of ``label`` per particle (``default`` where the file lacks it)."""
        if label in self.frame.columns:
            return self._checked(self.frame, self.block, label)
        if self.rows is not None and label in self.optics.columns:
            return self._checked(self.optics, "optics", label)[self.rows]
        return np.full(self.n, default)

    def integers(self, label: str, default: int = 0) -> np.ndarray:
        values = self.numbers(label, default)
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise FormatError(f"{self.path}: column _{label} must hold integers")
        return values.astype(np.int64)

    def strings(self, label: str) -> np.ndarray:
        if label not in self.frame.columns:
            return np.full(self.n, "", dtype=object)
        return np.array([str(s) for s in self.frame[label].tolist()], dtype=object)

    def uint64(self, label: str) -> np.ndarray:
        """Exact u64 values of a decimal column (parsed from the text, never through float)."""
        text = self.strings(label).astype(str)
        try:
            return text.astype(np.uint64)
        except (ValueError, OverflowError):
            bad = next(i for i, s in enumerate(text) if not s.isdigit() or int(s) >= 2**64)
            raise FormatError(f"{self.path}: column _{label} must hold unsigned 64-bit integers, but row "
                              f"{bad + 1} holds {text[bad]!r}") from None


def read_star(path: str | os.PathLike, *, micrograph_shape: tuple[int, int] | None = None) -> Dataset:
    """The particles of a RELION 3.0 or 3.1+ ``.star`` file as a dataset with cryoSPARC's field types.

    ``micrograph_shape`` (ny, nx) turns coordinates into ``location/center_*_frac`` when the file
    has no ``_cryoweaveMicrographShapeY/X``; without either those fields are left out (warning).

    >>> d = read_star("tests/data/star/relion31.star", micrograph_shape=(4000, 6000))
    >>> d["blob/idx"].tolist(), d["blob/psize_A"].tolist()
    ([0, 1, 2], [1.25, 1.25, 2.5])
    """
    src = _Particles(Path(path))
    psize = _pixel_size(src)
    exp = src.integers("cryoweaveExpGroupId" if src.has("cryoweaveExpGroupId") else "rlnOpticsGroup", 1)
    results: dict[str, dict[str, np.ndarray]] = {"blob": _read_blob(src, psize)}
    if src.has("rlnDefocusU"):
        results["ctf"] = _read_ctf(src, exp)
    results.update(_read_alignments(src, psize))
    if src.has("rlnCoordinateX") or src.has("rlnMicrographName"):
        results["location"] = _read_location(src, exp, micrograph_shape)
    fields = [f for name, values in results.items() for f in result_fields(name)
              if f[0].split("/", 1)[1] in values or name != "location"]
    dset = Dataset.allocate(src.n, fields)
    for name, values in results.items():
        for field, array in values.items():
            dset[f"{name}/{field}"] = array
    dset["uid"] = src.uint64("cryoweaveUid") if src.has("cryoweaveUid") else generate_uids(src.n)
    return dset


def _pixel_size(src: _Particles) -> np.ndarray:
    if src.has("rlnImagePixelSize"):
        return src.numbers("rlnImagePixelSize")
    if src.has("rlnDetectorPixelSize") and src.has("rlnMagnification"):
        return src.numbers("rlnDetectorPixelSize") * 1e4 / src.numbers("rlnMagnification")
    raise FormatError(f"{src.path}: no pixel size: the file needs _rlnImagePixelSize (RELION 3.1 optics) "
                      "or _rlnDetectorPixelSize and _rlnMagnification (RELION 3.0)")


def _read_blob(src: _Particles, psize: np.ndarray) -> dict[str, np.ndarray]:
    parts = [s.partition("@") for s in src.strings("rlnImageName")]
    index = pd.to_numeric(pd.Series([p[0] for p in parts], dtype=object), errors="coerce").to_numpy(float)
    no_at = np.array([not p[1] for p in parts], dtype=bool)
    bad = np.flatnonzero(no_at | ~((index >= 1) & (index <= 2**32)) | (index % 1 != 0))
    if len(bad):
        raise FormatError(f"{src.path}: _rlnImageName of particle row {bad[0] + 1} is "
                          f"{''.join(parts[bad[0]])!r}, not <index>@<stack path> with an integer index >= 1")
    box = src.integers("rlnImageSize", 0)
    return {"path": np.array([p[2] for p in parts], dtype=object), "idx": index - 1, "psize_A": psize,
            "shape": np.column_stack([box, box]), "sign": src.numbers("cryoweaveBlobSign", -1.0)}


def _read_ctf(src: _Particles, exp: np.ndarray) -> dict[str, np.ndarray]:
    values = {f: src.numbers(label, 1.0 if f == "scale" else 0.0) for f, label in _CTF.items()}
    values |= {f: np.deg2rad(src.numbers(label, 0.0)) for f, label in _CTF_DEG.items()}
    values |= {f: src.numbers(label, 0.0) for f, label in _OPTICS_CTF.items()}
    return values | {"type": np.full(src.n, "imported", dtype=object), "exp_group_id": exp}


def _read_alignments(src: _Particles, psize: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    if not any(src.has(f"rlnAngle{a}") for a in ("Rot", "Tilt", "Psi")):
        return {}
    angles = np.column_stack([src.numbers(f"rlnAngle{a}", 0.0) for a in ("Rot", "Tilt", "Psi")])
    three_d = src.has("rlnAngleRot") or src.has("rlnAngleTilt")
    if src.has("rlnOriginXAngst") or not src.has("rlnOriginX"):
        shift = np.column_stack([src.numbers(f"rlnOrigin{a}Angst", 0.0) for a in "XY"]) / psize[:, None]
    else:
        shift = np.column_stack([src.numbers(f"rlnOrigin{a}", 0.0) for a in "XY"])
    values = {"pose": relion_euler_to_rotvec(angles) if three_d else np.deg2rad(angles[:, 2]), "shift": shift,
              "psize_A": psize, "split": np.maximum(src.integers("rlnRandomSubset", 1) - 1, 0),
              "class": np.maximum(src.integers("rlnClassNumber", 1) - 1, 0)}
    return {"alignments3D" if three_d else "alignments2D": values}


def _read_location(src: _Particles, exp: np.ndarray, shape: tuple[int, int] | None) -> dict[str, np.ndarray]:
    names = src.strings("rlnMicrographName")
    if src.has("cryoweaveMicrographUid"):
        mic_uid = src.uint64("cryoweaveMicrographUid")
    else:
        codes, uniques = pd.factorize(names)
        hashes = [int.from_bytes(hashlib.sha1(str(u).encode()).digest()[:8], "little") for u in uniques]
        mic_uid = np.array(hashes, dtype=np.uint64)[codes] if src.n else np.zeros(0, np.uint64)
    values = {"micrograph_path": names, "micrograph_uid": mic_uid, "exp_group_id": exp}
    if not src.has("rlnCoordinateX"):
        return values
    if src.has("cryoweaveMicrographShapeY") and src.has("cryoweaveMicrographShapeX"):
        dims = np.column_stack([src.integers(f"cryoweaveMicrographShape{a}") for a in "YX"])
    elif shape is not None:
        if len(shape) != 2 or min(shape) < 1:
            raise FormatError(f"{src.path}: micrograph_shape must be (ny, nx) in pixels, not {shape!r}")
        dims = np.tile(np.asarray(shape, dtype=np.int64), (src.n, 1))
    else:
        warnings.warn(f"{src.path}: the micrograph size is unknown, so location/center_x_frac, "
                      "center_y_frac and micrograph_shape are left out; pass micrograph_shape=(ny, nx) "
                      "(CLI: --micrograph-shape NYxNX)", UserWarning, stacklevel=3)
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        fracs = [np.where(dims[:, i] > 0, src.numbers(f"rlnCoordinate{a}", 0.0) / dims[:, i], 0.0)
                 for i, a in ((1, "X"), (0, "Y"))]
    return values | {"micrograph_shape": dims, "center_x_frac": fracs[0], "center_y_frac": fracs[1]}


def write_star(dataset: Dataset, path: str | os.PathLike) -> None:
    """Write the particles of ``dataset`` as a RELION 3.1+ ``.star`` file, atomically.

    Needs ``blob/path``, ``blob/idx``, ``blob/psize_A`` and ``blob/shape``; writes the ctf,
    alignments3D (else alignments2D) and location fields that RELION has labels for.

    >>> from cryoweave.spec.examples import particle_dataset
    >>> import tempfile; out = Path(tempfile.mkdtemp()) / "particles.star"
    >>> write_star(particle_dataset(10, seed=1), out)
    >>> len(read_star(out))
    10
    """
    path = Path(path)
    missing = [f for f in ("blob/path", "blob/idx", "blob/psize_A", "blob/shape") if f not in dataset]
    if missing:
        raise FormatError(f"cannot write {path}: the dataset lacks {', '.join(missing)} (RELION needs "
                          "each particle's image)")
    col = {f: np.asarray(dataset[f]) for f in dataset.fields()}
    n, shape = len(dataset), col["blob/shape"]
    if (shape[:, 0] != shape[:, 1]).any():
        raise FormatError(f"cannot write {path}: RELION particle images are square, blob/shape is not")
    exp = col.get("ctf/exp_group_id", col.get("location/exp_group_id", np.ones(n, np.uint32)))
    optics = {"exp": exp, "rlnImagePixelSize": col["blob/psize_A"], "rlnImageSize": shape[:, 0]}
    optics |= {label: col[f"ctf/{f}"] for f, label in _OPTICS_CTF.items() if f"ctf/{f}" in col}
    keys = pd.DataFrame(optics)
    group = keys.groupby(list(keys.columns), sort=True, dropna=False).ngroup().to_numpy()
    first = np.unique(group, return_index=True)[1]
    ids, counts = np.unique(exp[first], return_counts=True)
    if (counts > 1).any():
        warnings.warn(f"{path}: the particles of exposure group(s) {ids[counts > 1].tolist()} differ in "
                      "voltage, Cs, amplitude contrast, pixel size or box size; each is split into several "
                      "optics groups", UserWarning, stacklevel=2)
    k = len(first)
    table = {"rlnOpticsGroup": np.arange(1, k + 1),
             "rlnOpticsGroupName": np.array([f"opticsGroup{i}" for i in range(1, k + 1)], dtype=object)}
    # optics values as the shortest text that reads back as the same float32 (pixel size exact)
    table |= {key: np.array([np.format_float_positional(v, trim="-") for v in np.float32(values[first])],
                            dtype=object) for key, values in optics.items() if key != "exp"}
    table["rlnImageDimensionality"] = np.full(k, 2)
    with atomic_write(path, error=FormatError) as fh:
        write_loop(fh, "optics", table, k)
        # starfile cannot read an empty loop followed by a comment: no version line then
        write_loop(fh, "particles", _particle_columns(col, group + 1, exp), n, version=n > 0)


def _particle_columns(col: dict[str, np.ndarray], optics_group: np.ndarray, exp: np.ndarray) -> dict:
    out: dict[str, object] = {"rlnImageName": (col["blob/idx"].astype(np.int64) + 1, col["blob/path"])}
    if "location/micrograph_path" in col:
        out["rlnMicrographName"] = col["location/micrograph_path"]
    has_xy = all(f"location/{f}" in col for f in ("center_x_frac", "center_y_frac", "micrograph_shape"))
    if has_xy:
        dims = col["location/micrograph_shape"]
        out["rlnCoordinateX"] = col["location/center_x_frac"] * dims[:, 1].astype(np.float64)
        out["rlnCoordinateY"] = col["location/center_y_frac"] * dims[:, 0].astype(np.float64)
    out["rlnOpticsGroup"] = optics_group
    out |= {label: col[f"ctf/{f}"] for f, label in _CTF.items() if f"ctf/{f}" in col}
    out |= {label: np.rad2deg(col[f"ctf/{f}"]) for f, label in _CTF_DEG.items() if f"ctf/{f}" in col}
    slot = "alignments3D" if "alignments3D/pose" in col else "alignments2D"
    if f"{slot}/pose" in col:
        pose = col[f"{slot}/pose"]
        if slot == "alignments3D":
            out |= dict(zip(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"), rotvec_to_relion_euler(pose).T))
        else:
            out["rlnAnglePsi"] = np.rad2deg(pose)
        if f"{slot}/shift" in col:  # pixels of the particle image, as cryoSPARC
            shift_A = col[f"{slot}/shift"] * col["blob/psize_A"][:, None].astype(np.float64)
            out |= {"rlnOriginXAngst": shift_A[:, 0], "rlnOriginYAngst": shift_A[:, 1]}
        for f, label in (("class", "rlnClassNumber"), ("split", "rlnRandomSubset")):
            if f"{slot}/{f}" in col:
                out[label] = col[f"{slot}/{f}"].astype(np.int64) + 1
    out["cryoweaveUid"] = col["uid"]
    if "location/micrograph_uid" in col:
        out["cryoweaveMicrographUid"] = col["location/micrograph_uid"]
    if has_xy:
        out |= {"cryoweaveMicrographShapeY": dims[:, 0], "cryoweaveMicrographShapeX": dims[:, 1]}
    out["cryoweaveExpGroupId"] = exp
    if "blob/sign" in col:
        out["cryoweaveBlobSign"] = col["blob/sign"]
    return out
