"""Vocabulary of cryoweave: datatypes, result types and their fields, slot specs, addresses.

>>> from cryoweave.spec import parse_slot, result_fields
>>> parse_slot("?background_blob").dtype
'stat_blob'
>>> result_fields("ctf")[0]
('ctf/type', '|O')
"""

from cryoweave.dataset.dtypes import Field, dtype_notation, normalize_field, parse_dtype
from cryoweave.spec.addresses import (
    InputSlotAddress,
    OutputAddress,
    parse_input_slot_address,
    parse_output_address,
)
from cryoweave.spec.content import (
    AnyContentType,
    AnyFormat,
    AssetContentType,
    AssetFormat,
    DatasetContentType,
    DatasetFormat,
    ImageContentType,
    ImageFormat,
    MicrographContentType,
    MicrographFormat,
    TextContentType,
    TextFormat,
    content_type_for,
)
from cryoweave.spec.datatypes import Datatype, parse_datatype
from cryoweave.spec.results import (
    ResultType,
    infer_result_dtype,
    parse_result_type_string,
    result_fields,
    result_type,
    result_type_string,
    result_types,
)
from cryoweave.spec.slots import LoadableSlots, Slot, parse_slot, parse_slots

__all__ = [
    "AnyContentType",
    "AnyFormat",
    "AssetContentType",
    "AssetFormat",
    "DatasetContentType",
    "DatasetFormat",
    "Datatype",
    "Field",
    "ImageContentType",
    "ImageFormat",
    "InputSlotAddress",
    "LoadableSlots",
    "MicrographContentType",
    "MicrographFormat",
    "OutputAddress",
    "ResultType",
    "Slot",
    "TextContentType",
    "TextFormat",
    "content_type_for",
    "dtype_notation",
    "infer_result_dtype",
    "normalize_field",
    "parse_datatype",
    "parse_dtype",
    "parse_input_slot_address",
    "parse_output_address",
    "parse_result_type_string",
    "parse_slot",
    "parse_slots",
    "result_fields",
    "result_type",
    "result_type_string",
    "result_types",
]
