"""How a dataset prints: in a terminal (``repr``) and in Jupyter (an HTML table).

Only the rows shown are decoded: printing a loaded dataset leaves its text columns compact.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryoweave.dataset.core import Dataset


def dataset_repr(dset: Dataset) -> str:
    n = len(dset)
    lines = [f"{type(dset).__name__}([  # {n} items, {len(dset.fields())} fields"]
    for f in dset.fields():
        if n <= 6:
            text = str(dset._values(f))
        else:
            text = f"{str(dset._values(f, slice(0, 3)))[:-1]} ... {str(dset._values(f, slice(n - 3, n)))[1:]}"
        lines.append(f"    ('{f}', {' '.join(text.split())}),")
    return "\n".join([*lines, "])"])


def dataset_html(dset: Dataset) -> str:
    n, names = len(dset), dset.fields()
    shown = list(range(min(n, 5))) + list(range(max(5, n - 4), n))
    values = {f: dset._values(f, shown) for f in names}
    head = "".join(f"<th>{escape(f)}</th>" for f in names)
    body = []
    for pos, i in enumerate(shown):
        if pos == 5 and n > 10:
            body.append("<tr><td>...</td>" + "<td>...</td>" * len(names) + "</tr>")
        cells = "".join(f"<td>{escape(str(values[f][pos]))}</td>" for f in names)
        body.append(f"<tr><td>{i}</td>{cells}</tr>")
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
