"""Content types (MIME) and file formats (extensions) of job assets and data files.

The names follow CryoSPARC's: text and image assets shown in the job log, micrograph files,
and dataset files.

>>> content_type_for("J12/J12_volume_map.mrc")
'image/x-mrc'
>>> content_type_for(".cs")
'application/x-cryosparc-dataset'
"""

from __future__ import annotations

import posixpath
from typing import Literal, get_args

TextContentType = Literal["text/plain", "text/csv", "text/html", "application/json", "application/xml",
                          "application/x-troff"]
ImageContentType = Literal["application/pdf", "image/gif", "image/jpeg", "image/png", "image/svg+xml"]
MicrographContentType = Literal["image/x-mrc", "image/tiff", "application/x-eer", "application/x-bzip2"]
DatasetContentType = Literal["application/x-cryosparc-dataset", "application/x-numpy"]
OctetStreamContentType = Literal["application/octet-stream"]
AssetContentType = TextContentType | ImageContentType | OctetStreamContentType
AnyContentType = (TextContentType | ImageContentType | MicrographContentType | DatasetContentType
                  | OctetStreamContentType)

TextFormat = Literal["txt", "csv", "html", "json", "xml", "bild", "bld", "log"]
ImageFormat = Literal["pdf", "gif", "jpg", "jpeg", "png", "svg"]
MicrographFormat = Literal["mrc", "mrcs", "stk", "tif", "tiff", "eer", "ecc", "bz2", "cmrcbz2"]
DatasetFormat = Literal["cs", "npy"]
AssetFormat = TextFormat | ImageFormat
AnyFormat = TextFormat | ImageFormat | MicrographFormat | DatasetFormat

OCTET_STREAM: OctetStreamContentType = "application/octet-stream"

TEXT_CONTENT_TYPES: frozenset[str] = frozenset(get_args(TextContentType))
IMAGE_CONTENT_TYPES: frozenset[str] = frozenset(get_args(ImageContentType))
MICROGRAPH_CONTENT_TYPES: frozenset[str] = frozenset(get_args(MicrographContentType))
DATASET_CONTENT_TYPES: frozenset[str] = frozenset(get_args(DatasetContentType))
ASSET_CONTENT_TYPES: frozenset[str] = TEXT_CONTENT_TYPES | IMAGE_CONTENT_TYPES | {OCTET_STREAM}
CONTENT_TYPES: frozenset[str] = ASSET_CONTENT_TYPES | MICROGRAPH_CONTENT_TYPES | DATASET_CONTENT_TYPES

TEXT_FORMATS: frozenset[str] = frozenset(get_args(TextFormat))
IMAGE_FORMATS: frozenset[str] = frozenset(get_args(ImageFormat))
MICROGRAPH_FORMATS: frozenset[str] = frozenset(get_args(MicrographFormat))
DATASET_FORMATS: frozenset[str] = frozenset(get_args(DatasetFormat))
ASSET_FORMATS: frozenset[str] = TEXT_FORMATS | IMAGE_FORMATS
FORMATS: frozenset[str] = ASSET_FORMATS | MICROGRAPH_FORMATS | DATASET_FORMATS

EXTENSION_CONTENT_TYPES: dict[str, str] = {
    "txt": "text/plain", "log": "text/plain", "csv": "text/csv", "html": "text/html",
    "json": "application/json", "xml": "application/xml",
    "bild": "application/x-troff", "bld": "application/x-troff",  # ChimeraX BILD graphics
    "pdf": "application/pdf", "gif": "image/gif", "jpg": "image/jpeg", "jpeg": "image/jpeg",
    "png": "image/png", "svg": "image/svg+xml",
    "mrc": "image/x-mrc", "mrcs": "image/x-mrc", "stk": "image/x-mrc",
    "tif": "image/tiff", "tiff": "image/tiff", "eer": "application/x-eer", "ecc": "application/x-eer",
    "bz2": "application/x-bzip2", "cmrcbz2": "application/x-bzip2",
    "cs": "application/x-cryosparc-dataset", "npy": "application/x-numpy",
}
"""The content type of each known format (file extension, lower case, no dot)."""


def content_type_for(path_or_ext: str) -> str:
    """The content type of a file path or an extension (``"map.mrc"``, ``".mrc"``, ``"mrc"``).

    The extension is matched case-insensitively; unknown ones give
    ``"application/octet-stream"``.

    >>> content_type_for("movie.TIFF")
    'image/tiff'
    >>> content_type_for("notes.docx")
    'application/octet-stream'
    """
    text = str(path_or_ext).replace("\\", "/")
    base = posixpath.basename(text)
    if "." not in base and base != text:  # a path whose file has no extension
        return OCTET_STREAM
    ext = base.rsplit(".", 1)[-1].lower()
    return EXTENSION_CONTENT_TYPES.get(ext, OCTET_STREAM)
