"""Result types: the field layout behind each result (slot) of an item.

A result is every column of a dataset that shares one prefix, e.g. ``ctf/df1_A``,
``ctf/df2_A`` … A result has a *name* (the prefix, ``alignments_class_0``) and a *result type*
(its ``dtype``, ``alignments3D``) which fixes its fields. Fields are kept here without the
prefix; `result_fields` adds it.

CryoSPARC does not publish its registry; the tables below follow the public reference
(``shared/reference/cryosparc-docs.md`` §1.2). Where only field names are known, the dtypes
are our choice and the result type says ``confirmed=False``.

>>> result_type("location").fields[0]
('micrograph_uid', '<u8')
>>> result_fields("alignments_class_0")[:2]
[('alignments_class_0/split', '<u4'), ('alignments_class_0/shift', '<f4', (2,))]
>>> result_type_string("particle", "blob")
'particle.blob'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cryoweave.dataset.dtypes import Field, normalize_field
from cryoweave.errors import SpecError
from cryoweave.spec.datatypes import VOLUME_DATATYPES, Datatype, parse_datatype

IDENTIFIER = re.compile(r"^[A-Za-z][0-9A-Za-z_]*$")
"""Slot, group and result-type names: a letter, then letters, digits or underscores."""


@dataclass(frozen=True)
class ResultType:
    """The fields of one result type, without the slot prefix.

    Attributes
    ----------
    name : str
        The result type (slot ``dtype``), e.g. ``"ctf"``.
    fields : tuple of Field
        Normalized field tuples, e.g. ``("df1_A", "<f4")``, ``("shift_A", "<f4", (2,))``.
    description : str
        One line on what the result holds.
    confirmed : bool
        False where the reference gives only field names and the dtypes are our choice.
    """

    name: str
    fields: tuple[Field, ...]
    description: str = ""
    confirmed: bool = True

    @property
    def field_names(self) -> tuple[str, ...]:
        """The field names in order, e.g. ``("path", "idx", "shape", …)``."""
        return tuple(f[0] for f in self.fields)


def _declare(name: str, description: str, fields: str, *, confirmed: bool = True) -> ResultType:
    """A result type from ``"name notation, name notation, …"`` (notation as in ``parse_dtype``)."""
    pairs = (item.split() for item in fields.split(","))
    return ResultType(name, tuple(normalize_field(f, t) for f, t in pairs), description, confirmed)


_ALIGNMENT_STATS = ("psize_A f4, error f4, error_min f4, resid_pow f4, slice_pow f4, image_pow f4, "
                    "cross_cor f4, alpha f4, alpha_min f4, weight f4, pose_ess f4, shift_ess f4, "
                    "class_posterior f4, class u4, class_ess f4")

_REGISTRY: dict[str, ResultType] = {rt.name: rt for rt in (
    _declare("blob", "particle or template image in a stack",
             "path O, idx u4, shape 2u4, psize_A f4, sign f4, import_sig u8"),
    _declare("ctf", "per-item CTF parameters",
             "type O, exp_group_id u4, accel_kv f4, cs_mm f4, amp_contrast f4, df1_A f4, df2_A f4, "
             "df_angle_rad f4, phase_shift_rad f4, scale f4, scale_const f4, shift_A 2f4, tilt_A 2f4, "
             "trefoil_A 2f4, tetra_A 4f4, anisomag 4f4, bfactor f4"),
    _declare("alignments2D", "2D class assignment, in-plane pose (rad) and shift (px)",
             "split u4, shift 2f4, pose f4, " + _ALIGNMENT_STATS),
    _declare("alignments3D", "3D pose (axis-angle, rad), shift (px) and half-set split",
             "split u4, shift 2f4, pose 3f4, " + _ALIGNMENT_STATS),
    _declare("location", "particle position on its micrograph (fractions of its size)",
             "micrograph_uid u8, exp_group_id u4, micrograph_path O, micrograph_shape 2u4, "
             "center_x_frac f4, center_y_frac f4, min_dist_A f4, micrograph_psize_A f4"),
    _declare("pick_stats", "particle picking scores",
             "ncc_score f4, power f4, template_idx u4, angle_rad f4"),
    _declare("quality_stats", "per-particle quality statistics of a refinement",
             "slice_mse f4, slice_sobel f4, lpradwn_denoised f4"),
    _declare("movie_blob", "movie file (frames, y, x)",
             "path O, shape 3u4, psize_A f4, is_gain_corrected u4, format O, has_defect_file u4, "
             "import_sig u8"),
    _declare("micrograph_blob", "micrograph image",
             "path O, idx u4, shape 2u4, psize_A f4, format O, is_background_subtracted u4, "
             "vmin f4, vmax f4, import_sig u8"),
    _declare("gain_ref_blob", "gain reference image and its orientation",
             "path O, idx u4, shape 2u4, flip_x u4, flip_y u4, rotate_num u4"),
    _declare("mscope_params", "microscope parameters of an exposure",
             "accel_kv f4, cs_mm f4, total_dose_e_per_A2 f4, phase_plate u4, neg_stain u4, "
             "exp_group_id u4, defect_path O"),
    _declare("stat_blob", "micrograph background estimate (slot background_blob)",
             "path O, idx u4, shape 2u4, psize_A f4, binfactor u4", confirmed=False),
    _declare("motion", "motion trajectory file (slots rigid_motion, spline_motion)",
             "type O, path O, idx u4, frame_start u4, frame_end u4, zero_shift_frame u4, psize_A f4",
             confirmed=False),
    _declare("ctf_stats", "CTF fit diagnostics of an exposure",
             "type O, cross_corr f4, ctf_fit_to_A f4, df_range 2f4, df_tilt_normal 2f4, "
             "diag_image_path O, fit_data_path O, ice_thickness_rel f4, spectrum_dim u4",
             confirmed=False),
    _declare("thumbnail_blob", "downsampled micrograph image (slots micrograph_thumbnail_blob_*)",
             "path O, idx u4, shape 2u4, format O, binfactor u4, micrograph_path O, vmin f4, vmax f4",
             confirmed=False),
    _declare("sym_expand", "symmetry-expanded copy: source uid and copy index",
             "src_uid u8, idx u4, symmetry O, is_helix u4, helix_num_rises u4, helix_rise_A f4, "
             "helix_twist_rad f4", confirmed=False),
    _declare("filament", "filament membership and position along it",
             "filament_uid u8, filament_pose f4, position_A f4, inter_box_dist_A f4, arc_length_A f4",
             confirmed=False),
    _declare("components", "one latent coordinate (slots components_mode_<N>)",
             "component u4, value f4", confirmed=False),
)}

VOLUME_BLOB = _declare("blob", "3D map of a volume or mask (slots map, map_half_A, mask_refine …)",
                       "path O, shape 3u4, psize_A f4", confirmed=False)
"""The ``blob`` result type of the volume, volume_multi and mask datatypes."""

VOLUME_SLOTS = frozenset({"map", "map_sharp", "map_half_A", "map_half_B", "mask", "mask_refine",
                          "mask_fsc", "mask_fsc_auto", "precision"})
"""Slot names of volume and mask groups; their result type is the volume ``blob``."""

_ALIASES = {"background_blob": "stat_blob", "micrograph_blob_non_dw": "micrograph_blob",
            "micrograph_blob_non_dw_AB": "micrograph_blob", "rigid_motion": "motion",
            "spline_motion": "motion", "micrograph_thumbnail_blob_1x": "thumbnail_blob",
            "micrograph_thumbnail_blob_2x": "thumbnail_blob"} | dict.fromkeys(VOLUME_SLOTS, "blob")
_NUMBERED_ALIASES = ((re.compile(r"^alignments_class(?:3D)?_\d+$"), "alignments3D"),
                     (re.compile(r"^alignments_class2D_\d+$"), "alignments2D"),
                     (re.compile(r"^components_mode_\d+$"), "components"))


def result_types() -> list[str]:
    """The names of the known result types, sorted.

    >>> "alignments3D" in result_types()
    True
    """
    return sorted(_REGISTRY)


def result_type(dtype: str, datatype: str | Datatype | None = None) -> ResultType:
    """The known result type ``dtype``; ``blob`` of a volume, volume_multi or mask is the 3D map.

    Raises
    ------
    SpecError
        If ``dtype`` is not a known result type (the message lists the known ones) or
        ``datatype`` is not a datatype.

    >>> result_type("blob", "volume").field_names
    ('path', 'shape', 'psize_A')
    """
    kind = parse_datatype(datatype) if datatype is not None else None
    if dtype == "blob" and kind in VOLUME_DATATYPES:
        return VOLUME_BLOB
    if isinstance(dtype, str) and dtype in _REGISTRY:
        return _REGISTRY[dtype]
    raise SpecError(f"{dtype!r} is not a known result type; known: {', '.join(result_types())}")


def infer_result_dtype(slot_name: str) -> str:
    """The result type of a slot named ``slot_name`` (e.g. ``background_blob`` → ``stat_blob``).

    Raises
    ------
    SpecError
        If the name neither is a result type nor follows a known naming pattern.

    >>> infer_result_dtype("alignments_class_3")
    'alignments3D'
    """
    if isinstance(slot_name, str):
        if slot_name in _REGISTRY:
            return slot_name
        if slot_name in _ALIASES:
            return _ALIASES[slot_name]
        for pattern, dtype in _NUMBERED_ALIASES:
            if pattern.match(slot_name):
                return dtype
    raise SpecError(f"cannot tell the result type of slot {slot_name!r} from its name; use the full "
                    f"dict form {{'name': {slot_name!r}, 'dtype': ...}} with dtype one of: "
                    f"{', '.join(result_types())}")


def result_fields(slot_name: str, dtype: str | None = None,
                  datatype: str | Datatype | None = None) -> list[Field]:
    """The dataset fields of a slot: its result type's fields prefixed ``<slot_name>/``.

    ``dtype`` defaults to `infer_result_dtype` of the name; a volume slot name such as ``map``
    implies the volume datatype when ``datatype`` is not given.

    >>> result_fields("ctf")[5]
    ('ctf/df1_A', '<f4')
    >>> result_fields("map")[1]
    ('map/shape', '<u4', (3,))
    """
    if not isinstance(slot_name, str) or not IDENTIFIER.match(slot_name):
        raise SpecError(f"slot name {slot_name!r} must be a letter followed by letters, digits or '_'")
    if dtype is None:
        dtype = infer_result_dtype(slot_name)
        if datatype is None and slot_name in VOLUME_SLOTS:
            datatype = Datatype.VOLUME
    rt = result_type(dtype, datatype)
    return [(f"{slot_name}/{f[0]}", *f[1:]) for f in rt.fields]  # type: ignore[misc]


def is_path_field(name: str) -> bool:
    """Whether a field names files by its name: ``<result>/path`` or ``<result>/…_path`` (when it holds text).

    >>> is_path_field("blob/path"), is_path_field("location/micrograph_path"), is_path_field("ctf/df1_A")
    (True, True, False)
    """
    result, sep, last = name.rpartition("/")
    return bool(result and sep) and (last == "path" or last.endswith("_path"))


def result_type_string(datatype: str | Datatype, dtype: str) -> str:
    """The group-qualified result type written in ``.csg`` files, ``<datatype>.<dtype>``.

    >>> result_type_string("particle", "alignments3D")
    'particle.alignments3D'
    """
    kind = parse_datatype(datatype)
    _check_dtype_name(dtype, f"{kind}.{dtype}")
    return f"{kind.value}.{dtype}"


def parse_result_type_string(text: Any) -> tuple[Datatype, str]:
    """Split ``"particle.alignments3D"`` into ``(Datatype.PARTICLE, "alignments3D")``.

    The result type need not be a known one (labs define their own) but must be an identifier.

    >>> parse_result_type_string("exposure.micrograph_blob")
    (<Datatype.EXPOSURE: 'exposure'>, 'micrograph_blob')
    """
    parts = text.split(".") if isinstance(text, str) else []
    if len(parts) != 2:
        raise SpecError(f"{text!r} is not a result type string; write <datatype>.<result type>, "
                        "e.g. 'particle.blob' or 'particle.alignments3D'")
    try:
        kind = parse_datatype(parts[0])
    except SpecError as exc:
        raise SpecError(f"result type string {text!r}: {exc}") from None
    _check_dtype_name(parts[1], text)
    return kind, parts[1]


def _check_dtype_name(dtype: Any, context: str) -> None:
    if not isinstance(dtype, str) or not IDENTIFIER.match(dtype):
        raise SpecError(f"{context!r}: result type {dtype!r} must be a letter followed by letters, "
                        "digits or '_', e.g. 'alignments3D'")
