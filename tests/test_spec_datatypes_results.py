"""Datatypes, result types and their fields, as a user of cryoweave.spec sees them."""

from __future__ import annotations

import pytest

from cryoweave.errors import SpecError
from cryoweave.spec import (
    Datatype,
    ResultType,
    content,
    content_type_for,
    infer_result_dtype,
    normalize_field,
    parse_datatype,
    parse_result_type_string,
    result_fields,
    result_type,
    result_type_string,
    result_types,
)

ALL_DATATYPES = ["exposure", "particle", "template", "volume", "volume_multi", "mask", "live", "ml_model",
                 "symmetry_candidate", "flex_mesh", "flex_model", "hyperparameter", "denoise_model",
                 "annotation_model"]

STANDARD_RESULT_TYPES = ["blob", "ctf", "alignments2D", "alignments3D", "location", "pick_stats",
                         "quality_stats", "movie_blob", "micrograph_blob", "gain_ref_blob", "mscope_params",
                         "stat_blob", "motion", "ctf_stats", "thumbnail_blob", "sym_expand", "filament",
                         "components"]

CTF_FIELDS = (
    ("type", "|O"), ("exp_group_id", "<u4"), ("accel_kv", "<f4"), ("cs_mm", "<f4"),
    ("amp_contrast", "<f4"), ("df1_A", "<f4"), ("df2_A", "<f4"), ("df_angle_rad", "<f4"),
    ("phase_shift_rad", "<f4"), ("scale", "<f4"), ("scale_const", "<f4"), ("shift_A", "<f4", (2,)),
    ("tilt_A", "<f4", (2,)), ("trefoil_A", "<f4", (2,)), ("tetra_A", "<f4", (4,)),
    ("anisomag", "<f4", (4,)), ("bfactor", "<f4"),
)
ALIGNMENT_STATS = (
    ("psize_A", "<f4"), ("error", "<f4"), ("error_min", "<f4"), ("resid_pow", "<f4"),
    ("slice_pow", "<f4"), ("image_pow", "<f4"), ("cross_cor", "<f4"), ("alpha", "<f4"),
    ("alpha_min", "<f4"), ("weight", "<f4"), ("pose_ess", "<f4"), ("shift_ess", "<f4"),
    ("class_posterior", "<f4"), ("class", "<u4"), ("class_ess", "<f4"),
)
ALIGNMENTS3D_FIELDS = (("split", "<u4"), ("shift", "<f4", (2,)), ("pose", "<f4", (3,)), *ALIGNMENT_STATS)
ALIGNMENTS2D_FIELDS = (("split", "<u4"), ("shift", "<f4", (2,)), ("pose", "<f4"), *ALIGNMENT_STATS)
LOCATION_FIELDS = (
    ("micrograph_uid", "<u8"), ("exp_group_id", "<u4"), ("micrograph_path", "|O"),
    ("micrograph_shape", "<u4", (2,)), ("center_x_frac", "<f4"), ("center_y_frac", "<f4"),
    ("min_dist_A", "<f4"), ("micrograph_psize_A", "<f4"),
)
BLOB_FIELDS = (("path", "|O"), ("idx", "<u4"), ("shape", "<u4", (2,)), ("psize_A", "<f4"),
               ("sign", "<f4"), ("import_sig", "<u8"))
VOLUME_BLOB_FIELDS = (("path", "|O"), ("shape", "<u4", (3,)), ("psize_A", "<f4"))


# --- datatypes -------------------------------------------------------------------------------------

def test_datatype_has_exactly_the_fourteen_cryosparc_names() -> None:
    assert [d.value for d in Datatype] == ALL_DATATYPES
    assert Datatype.VOLUME_MULTI == "volume_multi"
    assert str(Datatype.ML_MODEL) == "ml_model"


@pytest.mark.parametrize("name", ALL_DATATYPES)
def test_parse_datatype_accepts_every_name(name: str) -> None:
    parsed = parse_datatype(name)
    assert isinstance(parsed, Datatype)
    assert parsed.value == name
    assert parse_datatype(parsed) is parsed


@pytest.mark.parametrize("bad", ["particles", "Particle", "", "volume-multi", None, 3])
def test_parse_datatype_rejects_other_text_listing_the_valid_names(bad: object) -> None:
    with pytest.raises(SpecError) as info:
        parse_datatype(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert all(name in message for name in ALL_DATATYPES)


def test_parse_datatype_suggests_the_singular() -> None:
    with pytest.raises(SpecError, match="did you mean 'particle'"):
        parse_datatype("particles")


# --- result types ----------------------------------------------------------------------------------

def test_result_types_lists_the_standard_types_sorted() -> None:
    names = result_types()
    assert names == sorted(STANDARD_RESULT_TYPES)


@pytest.mark.parametrize(("dtype", "fields"), [
    ("ctf", CTF_FIELDS), ("alignments3D", ALIGNMENTS3D_FIELDS), ("alignments2D", ALIGNMENTS2D_FIELDS),
    ("location", LOCATION_FIELDS), ("blob", BLOB_FIELDS),
])
def test_exact_fields_of_confirmed_result_types(dtype: str, fields: tuple) -> None:
    rt = result_type(dtype)
    assert isinstance(rt, ResultType)
    assert rt.name == dtype
    assert rt.fields == fields
    assert rt.confirmed is True


@pytest.mark.parametrize("datatype", ["volume", "volume_multi", "mask", Datatype.MASK])
def test_blob_of_volume_datatypes_is_the_3d_map(datatype: str) -> None:
    rt = result_type("blob", datatype)
    assert rt.name == "blob"
    assert rt.fields == VOLUME_BLOB_FIELDS
    assert rt.field_names == ("path", "shape", "psize_A")


@pytest.mark.parametrize("datatype", [None, "particle", "template", Datatype.PARTICLE])
def test_blob_of_image_datatypes_is_the_image_stack(datatype: str | None) -> None:
    assert result_type("blob", datatype).fields == BLOB_FIELDS


def test_datatype_only_changes_blob() -> None:
    assert result_type("ctf", "volume") == result_type("ctf")


@pytest.mark.parametrize(("dtype", "expected"), [
    ("pick_stats", (("ncc_score", "<f4"), ("power", "<f4"), ("template_idx", "<u4"), ("angle_rad", "<f4"))),
    ("quality_stats", (("slice_mse", "<f4"), ("slice_sobel", "<f4"), ("lpradwn_denoised", "<f4"))),
    ("movie_blob", (("path", "|O"), ("shape", "<u4", (3,)), ("psize_A", "<f4"), ("is_gain_corrected", "<u4"),
                    ("format", "|O"), ("has_defect_file", "<u4"), ("import_sig", "<u8"))),
    ("micrograph_blob", (("path", "|O"), ("idx", "<u4"), ("shape", "<u4", (2,)), ("psize_A", "<f4"),
                         ("format", "|O"), ("is_background_subtracted", "<u4"), ("vmin", "<f4"),
                         ("vmax", "<f4"), ("import_sig", "<u8"))),
    ("gain_ref_blob", (("path", "|O"), ("idx", "<u4"), ("shape", "<u4", (2,)), ("flip_x", "<u4"),
                       ("flip_y", "<u4"), ("rotate_num", "<u4"))),
    ("mscope_params", (("accel_kv", "<f4"), ("cs_mm", "<f4"), ("total_dose_e_per_A2", "<f4"),
                       ("phase_plate", "<u4"), ("neg_stain", "<u4"), ("exp_group_id", "<u4"),
                       ("defect_path", "|O"))),
])
def test_fields_of_other_confirmed_types(dtype: str, expected: tuple) -> None:
    assert result_type(dtype).fields == expected
    assert result_type(dtype).confirmed


def test_sym_expand_uses_the_chosen_dtypes_and_is_not_confirmed() -> None:
    rt = result_type("sym_expand")
    assert rt.fields == (("src_uid", "<u8"), ("idx", "<u4"), ("symmetry", "|O"), ("is_helix", "<u4"),
                         ("helix_num_rises", "<u4"), ("helix_rise_A", "<f4"), ("helix_twist_rad", "<f4"))
    assert rt.confirmed is False


@pytest.mark.parametrize(("dtype", "names"), [
    ("stat_blob", {"binfactor", "idx", "path", "psize_A", "shape"}),
    ("motion", {"type", "path", "idx", "frame_start", "frame_end", "zero_shift_frame", "psize_A"}),
    ("ctf_stats", {"type", "cross_corr", "ctf_fit_to_A", "df_range", "df_tilt_normal", "diag_image_path",
                   "fit_data_path", "ice_thickness_rel", "spectrum_dim"}),
    ("filament", {"filament_uid", "filament_pose", "position_A", "inter_box_dist_A", "arc_length_A"}),
    ("components", {"component", "value"}),
])
def test_inferred_types_have_the_reference_names_and_are_not_confirmed(dtype: str, names: set) -> None:
    rt = result_type(dtype)
    assert set(rt.field_names) == names
    assert rt.confirmed is False


def test_types_with_unpublished_dtypes_are_not_confirmed() -> None:
    assert result_type("thumbnail_blob").confirmed is False
    assert result_type("thumbnail_blob").field_names[:3] == ("path", "idx", "shape")
    assert result_type("blob", "volume").confirmed is False


@pytest.mark.parametrize("dtype", STANDARD_RESULT_TYPES)
def test_every_field_is_normalized_and_unprefixed(dtype: str) -> None:
    rt = result_type(dtype)
    assert rt.description
    assert len(set(rt.field_names)) == len(rt.fields)
    for field in rt.fields:
        assert "/" not in field[0]
        assert normalize_field(field[0], field[1] if len(field) == 2 else (field[1], field[2])) == field


def test_result_type_is_frozen() -> None:
    with pytest.raises(AttributeError):
        result_type("ctf").name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["alignments", "CTF", "", "alignments3D_multi"])
def test_unknown_result_type_names_it_and_lists_the_known_ones(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        result_type(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "alignments3D" in message and "sym_expand" in message


def test_result_type_rejects_a_bad_datatype() -> None:
    with pytest.raises(SpecError, match="'volumes' is not a datatype"):
        result_type("blob", "volumes")


# --- slot names -> result types --------------------------------------------------------------------

@pytest.mark.parametrize(("slot", "dtype"), [
    *((name, name) for name in STANDARD_RESULT_TYPES),
    ("background_blob", "stat_blob"),
    ("micrograph_blob_non_dw", "micrograph_blob"),
    ("micrograph_blob_non_dw_AB", "micrograph_blob"),
    ("rigid_motion", "motion"),
    ("spline_motion", "motion"),
    ("micrograph_thumbnail_blob_1x", "thumbnail_blob"),
    ("micrograph_thumbnail_blob_2x", "thumbnail_blob"),
    ("alignments_class_0", "alignments3D"),
    ("alignments_class_17", "alignments3D"),
    ("alignments_class3D_2", "alignments3D"),
    ("alignments_class2D_5", "alignments2D"),
    ("components_mode_0", "components"),
    ("components_mode_12", "components"),
    *((name, "blob") for name in ["map", "map_sharp", "map_half_A", "map_half_B", "mask", "mask_refine",
                                  "mask_fsc", "mask_fsc_auto", "precision"]),
])
def test_infer_result_dtype(slot: str, dtype: str) -> None:
    assert infer_result_dtype(slot) == dtype


@pytest.mark.parametrize("slot", ["alignments_class_", "alignments_class_x", "components_mode",
                                  "components_mode_1a", "map_half_C", "series", "my_lab_slot", ""])
def test_infer_result_dtype_rejects_unknown_names_pointing_at_the_dict_form(slot: str) -> None:
    with pytest.raises(SpecError) as info:
        infer_result_dtype(slot)
    message = str(info.value)
    assert repr(slot) in message
    assert "'name'" in message and "'dtype'" in message


def test_result_fields_are_prefixed_with_the_slot_name() -> None:
    assert result_fields("ctf") == [(f"ctf/{f[0]}", *f[1:]) for f in CTF_FIELDS]
    assert result_fields("ctf")[5] == ("ctf/df1_A", "<f4")
    assert result_fields("location")[3] == ("location/micrograph_shape", "<u4", (2,))


def test_result_fields_infer_the_type_from_the_name() -> None:
    fields = result_fields("alignments_class_2")
    assert fields[0] == ("alignments_class_2/split", "<u4")
    assert fields[2] == ("alignments_class_2/pose", "<f4", (3,))
    assert len(fields) == len(ALIGNMENTS3D_FIELDS)
    assert [f[0] for f in result_fields("background_blob")][:1] == ["background_blob/path"]


def test_result_fields_of_volume_slots_use_the_volume_blob() -> None:
    assert result_fields("map_half_A") == [("map_half_A/path", "|O"), ("map_half_A/shape", "<u4", (3,)),
                                           ("map_half_A/psize_A", "<f4")]
    assert result_fields("map", "blob", "particle") == [(f"map/{f[0]}", *f[1:]) for f in BLOB_FIELDS]


def test_result_fields_with_explicit_dtype_and_datatype() -> None:
    assert result_fields("components_mode_x", "components") == [("components_mode_x/component", "<u4"),
                                                                ("components_mode_x/value", "<f4")]
    assert result_fields("blob", "blob", "mask")[1] == ("blob/shape", "<u4", (3,))
    assert result_fields("blob")[2] == ("blob/shape", "<u4", (2,))


@pytest.mark.parametrize(("slot", "dtype"), [("ctf/x", "ctf"), ("1ctf", "ctf"), ("ctf", "nope"),
                                             ("unknown_slot", None)])
def test_result_fields_errors(slot: str, dtype: str | None) -> None:
    with pytest.raises(SpecError):
        result_fields(slot, dtype)


# --- result type strings ---------------------------------------------------------------------------

def test_result_type_string_round_trip() -> None:
    assert result_type_string("particle", "blob") == "particle.blob"
    assert result_type_string(Datatype.EXPOSURE, "micrograph_blob") == "exposure.micrograph_blob"
    assert parse_result_type_string("particle.alignments3D") == (Datatype.PARTICLE, "alignments3D")
    for datatype in Datatype:
        text = result_type_string(datatype, "my_custom_type")
        assert parse_result_type_string(text) == (datatype, "my_custom_type")


@pytest.mark.parametrize("bad", ["particle", "particle.", ".blob", "particles.blob", "particle.blob.F",
                                 "particle.3D", "", "particle.ctf/x", None])
def test_parse_result_type_string_errors(bad: object) -> None:
    with pytest.raises(SpecError) as info:
        parse_result_type_string(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(("datatype", "dtype"), [("particles", "blob"), ("particle", "1x"),
                                                 ("particle", "a.b"), ("particle", "")])
def test_result_type_string_errors(datatype: str, dtype: str) -> None:
    with pytest.raises(SpecError):
        result_type_string(datatype, dtype)


# --- content types ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "expected"), [
    ("map.mrc", "image/x-mrc"), ("J12/J12_particles.mrcs", "image/x-mrc"),
    ("x.cs", "application/x-cryosparc-dataset"),
    ("cs", "application/x-cryosparc-dataset"), (".npy", "application/x-numpy"), ("movie.TIFF", "image/tiff"),
    ("a.eer", "application/x-eer"), ("a.mrc.bz2", "application/x-bzip2"), ("plot.png", "image/png"),
    ("job.log", "text/plain"), ("arrows.bild", "application/x-troff"), ("arrows.bld", "application/x-troff"),
    ("fig.svg", "image/svg+xml"),
    ("C:\\data\\a.jpg", "image/jpeg"), ("notes.docx", "application/octet-stream"),
    ("J12/mrc", "application/octet-stream"), ("", "application/octet-stream"),
])
def test_content_type_for(path: str, expected: str) -> None:
    assert content_type_for(path) == expected


def test_every_known_format_maps_to_a_known_content_type() -> None:
    assert set(content.EXTENSION_CONTENT_TYPES) == content.FORMATS
    assert set(content.EXTENSION_CONTENT_TYPES.values()) <= content.CONTENT_TYPES
    assert {"cs", "npy"} == content.DATASET_FORMATS
    micrograph_types = {"image/x-mrc", "image/tiff", "application/x-eer", "application/x-bzip2"}
    assert micrograph_types == content.MICROGRAPH_CONTENT_TYPES
    assert "application/octet-stream" in content.ASSET_CONTENT_TYPES
    assert len(content.CONTENT_TYPES) == 6 + 5 + 4 + 2 + 1
    for fmt in content.IMAGE_FORMATS:
        assert content_type_for(fmt) in content.IMAGE_CONTENT_TYPES
    for fmt in content.TEXT_FORMATS:
        assert content_type_for(fmt) in content.TEXT_CONTENT_TYPES
