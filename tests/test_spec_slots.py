"""Slot specs in all their written forms, and their errors."""

from __future__ import annotations

import typing

import pytest

from cryoweave.errors import SpecError
from cryoweave.spec import LoadableSlots, Slot, parse_slot, parse_slots


@pytest.mark.parametrize(("spec", "expected"), [
    ("ctf", Slot("ctf", "ctf", True)),
    ("micrograph_blob", Slot("micrograph_blob", "micrograph_blob", True)),
    ("?background_blob", Slot("background_blob", "stat_blob", False)),
    ("alignments_class_3", Slot("alignments_class_3", "alignments3D")),
    ("map_half_A", Slot("map_half_A", "blob")),
    ({"name": "ctf", "dtype": "ctf"}, Slot("ctf", "ctf", True)),
    ({"name": "micrograph_blob", "dtype": "micrograph_blob", "required": True},
     Slot("micrograph_blob", "micrograph_blob", True)),
    ({"name": "background_blob", "dtype": "stat_blob", "required": False},
     Slot("background_blob", "stat_blob", False)),
    ({"name": "components_mode_1", "dtype": "components", "required": False},
     Slot("components_mode_1", "components", False)),
    ({"name": "lab_scores", "dtype": "lab_score_v2"}, Slot("lab_scores", "lab_score_v2", True)),
    ({"prefix": "ctf", "dtype": "ctf"}, Slot("ctf", "ctf", True)),
    ({"dtype": "stat_blob", "prefix": "background_blob", "required": False},
     Slot("background_blob", "stat_blob", False)),
    (Slot("blob", "blob"), Slot("blob", "blob", True)),
])
def test_parse_slot_forms(spec: object, expected: Slot) -> None:
    slot = parse_slot(spec)
    assert slot == expected
    assert (slot.name, slot.dtype, slot.required) == (expected.name, expected.dtype, expected.required)


def test_slot_defaults_to_required_and_is_frozen() -> None:
    slot = Slot("ctf", "ctf")
    assert slot.required is True
    with pytest.raises(AttributeError):
        slot.name = "x"  # type: ignore[misc]


def test_to_dict_round_trips_through_parse_slot() -> None:
    slot = Slot("background_blob", "stat_blob", required=False)
    assert slot.to_dict() == {"name": "background_blob", "dtype": "stat_blob", "required": False}
    assert parse_slot(slot.to_dict()) == slot
    assert Slot("ctf", "ctf").to_dict() == {"name": "ctf", "dtype": "ctf", "required": True}


@pytest.mark.parametrize("spec", ["?ctf", {"name": "ctf", "dtype": "ctf", "required": False},
                                  {"prefix": "ctf", "dtype": "ctf", "required": False},
                                  Slot("ctf", "ctf", False)])
def test_output_slots_cannot_be_optional(spec: object) -> None:
    with pytest.raises(SpecError, match="cannot be optional"):
        parse_slot(spec, allow_optional=False)


def test_required_slots_pass_when_optional_is_not_allowed() -> None:
    assert parse_slot("ctf", allow_optional=False) == Slot("ctf", "ctf")
    assert parse_slot({"name": "ctf", "dtype": "ctf", "required": True}, allow_optional=False).required


@pytest.mark.parametrize(("spec", "words"), [
    ("", "slot name"),
    ("?", "slot name"),
    ("??ctf", "slot name"),
    ("1ctf", "slot name"),
    ("ctf/df1_A", "slot name"),
    (" ctf", "slot name"),
    ("my_custom", "'dtype'"),           # unknown names need the dict form
    ("components_mode_x", "'dtype'"),
    ({"name": "ctf"}, "required"),
    ({"dtype": "ctf"}, "required"),
    ({"name": "ctf", "dtype": "ctf", "optional": True}, "'optional'"),
    ({"name": "ctf", "prefix": "ctf", "dtype": "ctf"}, "both"),
    ({"name": "ctf", "dtype": "ctf", "required": "yes"}, "True or False"),
    ({"name": "ctf", "dtype": "ctf", "required": 0}, "True or False"),
    ({"name": "1x", "dtype": "ctf"}, "slot name"),
    ({"name": "x", "dtype": "lab-type"}, "slot dtype"),
    ({"name": "x", "dtype": ""}, "slot dtype"),
    ({"name": "x", "dtype": None}, "slot dtype"),
    ({"name": 3, "dtype": "ctf"}, "slot name"),
    (3, "string, a dict or a Slot"),
    (None, "string, a dict or a Slot"),
    (("ctf", "ctf"), "string, a dict or a Slot"),
])
def test_parse_slot_errors(spec: object, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_slot(spec)
    assert words in str(info.value)


def test_slot_constructor_validates() -> None:
    with pytest.raises(SpecError):
        Slot("ctf x", "ctf")
    with pytest.raises(SpecError):
        Slot("ctf", "3D")


def test_parse_slots_mixes_forms_in_order() -> None:
    slots = parse_slots([
        "blob",
        "?location",
        {"name": "components_mode_0", "dtype": "components"},
        {"name": "components_mode_1", "dtype": "components", "required": False},
        {"prefix": "ctf", "dtype": "ctf"},
    ])
    assert slots == [Slot("blob", "blob"), Slot("location", "location", False),
                     Slot("components_mode_0", "components"), Slot("components_mode_1", "components", False),
                     Slot("ctf", "ctf")]
    assert parse_slots(iter(["ctf"])) == [Slot("ctf", "ctf")]
    assert parse_slots([]) == []


@pytest.mark.parametrize("specs", [["ctf", "?ctf"], ["ctf", {"name": "ctf", "dtype": "ctf"}],
                                   ["map", {"prefix": "map", "dtype": "blob"}]])
def test_parse_slots_rejects_duplicate_names(specs: list) -> None:
    with pytest.raises(SpecError, match="twice"):
        parse_slots(specs)


def test_parse_slots_rejects_a_single_spec_and_optional_outputs() -> None:
    with pytest.raises(SpecError, match="must be a list"):
        parse_slots("ctf")
    with pytest.raises(SpecError, match="must be a list"):
        parse_slots({"name": "ctf", "dtype": "ctf"})
    with pytest.raises(SpecError, match="cannot be optional"):
        parse_slots(["blob", "?ctf"], allow_optional=False)


def test_loadable_slots_alias() -> None:
    literal, listing = typing.get_args(LoadableSlots)
    assert typing.get_args(literal) == ("default", "passthrough", "all")
    assert listing == list[str]
