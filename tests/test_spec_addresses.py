"""Output and input-slot addresses: parsing, printing, round trips and errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryoweave.errors import AddressError, SpecError
from cryoweave.spec import (
    InputSlotAddress,
    OutputAddress,
    parse_input_slot_address,
    parse_output_address,
)

EXPECTED_FORM = "J12.particles.alignments3D.3"


@pytest.mark.parametrize(("text", "expected", "canonical"), [
    ("J12.particles", OutputAddress("J12", "particles"), "J12.particles"),
    ("J12.particles.blob", OutputAddress("J12", "particles", "blob", "F"), "J12.particles.blob"),
    ("J12.particles.blob.F", OutputAddress("J12", "particles", "blob", "F"), "J12.particles.blob"),
    ("J12.particles.alignments3D.3", OutputAddress("J12", "particles", "alignments3D", 3),
     "J12.particles.alignments3D.3"),
    ("J1.volume.map_half_A.0", OutputAddress("J1", "volume", "map_half_A", 0), "J1.volume.map_half_A.0"),
    ("J2.particles.blob.003", OutputAddress("J2", "particles", "blob", 3), "J2.particles.blob.3"),
    ("J1000.exposures_accepted", OutputAddress("J1000", "exposures_accepted"), "J1000.exposures_accepted"),
])
def test_parse_output_address(text: str, expected: OutputAddress, canonical: str) -> None:
    address = parse_output_address(text)
    assert address == expected
    assert str(address) == canonical
    assert parse_output_address(str(address)) == address


def test_output_address_parts() -> None:
    address = parse_output_address("J12.particles.alignments3D.3")
    assert (address.job, address.group, address.result, address.version) == ("J12", "particles",
                                                                            "alignments3D", 3)
    assert address.job_number == 12
    assert parse_output_address("J7.volume").result is None
    assert parse_output_address("J7.volume").version == "F"
    assert parse_output_address("J307.volume").job_number == 307


@pytest.mark.parametrize(("text", "part"), [
    ("J12", "group"),
    ("12.particles", "job"),
    ("J0.particles", "job"),
    ("J012.particles", "job"),
    ("j12.particles", "job"),
    ("J12..blob", "group"),
    ("J12.particles.blob.-1", "version"),
    ("J12.particles.blob.X", "version"),
    ("J12.particles.blob.f", "version"),
    ("J12.particles.blob.3.4", "parts"),
    ("", "empty"),
    ("J12.1abc", "group"),
    ("J12.particles.", "result"),
    ("J12.particles.1blob", "result"),
    ("J12.particles.F", "result"),
    ("J12.particles.3", "result"),
    ("J12.particles blob", "group"),
    (" J12.particles", "job"),
    ("J12.particles.blob.", "version"),
])
def test_bad_output_addresses(text: str, part: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_output_address(text)
    message = str(info.value)
    assert repr(text) in message
    assert part in message
    assert EXPECTED_FORM in message


def test_address_error_is_a_spec_error_and_non_strings_fail() -> None:
    with pytest.raises(SpecError):
        parse_output_address("J12")
    with pytest.raises(AddressError, match="must be a string"):
        parse_output_address(12)  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="must be a string"):
        parse_input_slot_address(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [("12", "particles"), ("J1", "1x"), ("J1", "p", None, 3),
                                  ("J1", "p", "blob", -1), ("J1", "p", "blob", True),
                                  ("J1", "p", "blob", "3"), ("J1", "p", "F")])
def test_output_address_constructor_validates(args: tuple) -> None:
    with pytest.raises(AddressError):
        OutputAddress(*args)


def test_output_address_is_frozen_and_hashable() -> None:
    address = OutputAddress("J3", "volume", "map", 7)
    assert str(address) == "J3.volume.map.7"
    assert {address: 1}[parse_output_address("J3.volume.map.7")] == 1
    with pytest.raises(AttributeError):
        address.version = 8  # type: ignore[misc]


_identifiers = st.from_regex(r"\A[A-Za-z][0-9A-Za-z_]{0,12}\Z").filter(lambda s: s != "F")


@st.composite
def output_addresses(draw: st.DrawFn) -> OutputAddress:
    job = f"J{draw(st.integers(min_value=1, max_value=10**9))}"
    group = draw(_identifiers)
    result = draw(st.none() | _identifiers)
    version = "F" if result is None else draw(st.just("F") | st.integers(min_value=0, max_value=10**6))
    return OutputAddress(job, group, result, version)


@given(output_addresses())
def test_output_address_round_trip(address: OutputAddress) -> None:
    text = str(address)
    assert parse_output_address(text) == address
    assert str(parse_output_address(text)) == text
    if address.result is not None and address.version == "F":
        assert parse_output_address(text + ".F") == address


# --- input slot addresses --------------------------------------------------------------------------

def test_parse_input_slot_address() -> None:
    address = parse_input_slot_address("particles.0.blob")
    assert address == InputSlotAddress("particles", 0, "blob")
    assert (address.group, address.connection, address.slot) == ("particles", 0, "blob")
    assert str(address) == "particles.0.blob"
    assert parse_input_slot_address("volume.12.map_half_A") == InputSlotAddress("volume", 12, "map_half_A")


@pytest.mark.parametrize(("text", "part"), [
    ("", "empty"), ("particles", "parts"), ("particles.0", "parts"), ("particles.0.blob.F", "parts"),
    ("particles.x.blob", "connection"), ("particles.-1.blob", "connection"), (".0.blob", "group"),
    ("1p.0.blob", "group"), ("particles.0.", "slot"), ("particles.0.2D", "slot"),
    ("J12.particles.blob", "connection"),
])
def test_bad_input_slot_addresses(text: str, part: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_input_slot_address(text)
    message = str(info.value)
    assert repr(text) in message
    assert part in message
    assert "particles.0.blob" in message


@given(_identifiers, st.integers(min_value=0, max_value=10**6), _identifiers)
def test_input_slot_address_round_trip(group: str, connection: int, slot: str) -> None:
    address = InputSlotAddress(group, connection, slot)
    assert parse_input_slot_address(str(address)) == address
