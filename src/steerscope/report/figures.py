"""Images for the report as PNG data URIs: a run's own files, or a result's figures drawn in memory (nothing
written to disk; the figures are bare ``matplotlib.figure.Figure`` objects, so the user's backend is never switched).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for inlining a PNG into a self-contained HTML file."""
    return f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str | None:
    """Data URI of a PNG file (the report shows the run's ``*.png``), or None when it is not a readable PNG."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data_uri(data) if data.startswith(PNG_MAGIC) else None


def render(fig) -> str:
    """A matplotlib Figure as a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return data_uri(buf.getvalue())
