"""Matplotlib figures rendered to embedded PNG data (no files, no URLs).

matplotlib is imported lazily with the non-interactive Agg backend so that
reports render on headless machines and commands that write no report do
not pay for the import.
"""

from __future__ import annotations

import base64
import io
from typing import Any


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float = 6.4, height: float = 3.6) -> tuple[Any, Any]:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def figure_png(fig: Any) -> bytes:
    """Render and close a figure; returns PNG bytes."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
