"""Figures for the report, rendered straight to PNG data URIs (nothing written to disk, no pyplot state).

``matplotlib.figure.Figure`` is used without pyplot so building a report never switches the user's backend
(e.g. inside a notebook).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".svg": "image/svg+xml"}


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:image/png;base64,...`` for inlining an image into a self-contained HTML file."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str | None:
    """Data URI of an image file, or None when it is not a readable PNG/JPEG/GIF/SVG."""
    mime = MIME.get(path.suffix.lower())
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if mime is None or (mime == "image/png" and not data.startswith(PNG_MAGIC)):
        return None
    return data_uri(data, mime)


def _render(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return data_uri(buf.getvalue())


def _figure(width: float = 7.0, height: float = 3.6):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def loss_curves(losses: dict[int, list[tuple[float, float]]], max_legend: int = 12, item: str = "vector") -> str:
    """One line per vector (or adapter): loss against optimisation step."""
    fig = _figure()
    ax = fig.add_subplot()
    for vector, points in losses.items():
        steps, values = zip(*points)
        ax.plot(steps, values, lw=1.2, label=f"{item} {vector}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss curves")
    ax.grid(alpha=0.3)
    if len(losses) <= max_legend:
        ax.legend(fontsize=7, ncol=2)
    return _render(fig)


def ortho_curves(rows: list[dict]) -> str:
    """MELBO-ortho: KL to the base (raw, moving average, rescaled) and vector magnitude per index."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(9.0, 3.4)
    kl_ax, norm_ax = fig.subplots(1, 2)
    index = [r.get("index") if r.get("index") is not None else n for n, r in enumerate(rows)]
    for key, style in (("kl", "-o"), ("kl_moving_avg", "-"), ("kl_rescaled", "--")):
        values = [r.get(key) for r in rows]
        points = [(i, v) for i, v in zip(index, values) if isinstance(v, float)]
        if points:
            kl_ax.plot(*zip(*points), style, ms=3, lw=1.2, label=key)
    kl_ax.set_xlabel("vector index")
    kl_ax.set_ylabel("KL to base")
    kl_ax.set_title("KL per orthogonal vector")
    kl_ax.grid(alpha=0.3)
    if kl_ax.lines:
        kl_ax.legend(fontsize=7)
    norms = [(i, r.get("norm")) for i, r in zip(index, rows) if isinstance(r.get("norm"), float)]
    if norms:
        norm_ax.plot(*zip(*norms), "-o", ms=3, lw=1.2, color="tab:green")
    norm_ax.set_xlabel("vector index")
    norm_ax.set_ylabel("norm")
    norm_ax.set_title("magnitude")
    norm_ax.grid(alpha=0.3)
    for ax in (kl_ax, norm_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _render(fig)
