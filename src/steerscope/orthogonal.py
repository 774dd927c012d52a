"""Projections and retractions for optimising vectors on spheres, Stiefel manifolds and orthogonal complements.

Vectors are rows: ``theta`` (k, D); ``basis`` (m, D) has orthonormal rows (the directions found so far).
"""

from __future__ import annotations

import torch
from torch import Tensor


def remove_span(x: Tensor, basis: Tensor | None) -> Tensor:
    """x − (x Bᵀ) B: the part of each row of x (…, D) orthogonal to the orthonormal rows of ``basis`` (m, D)."""
    if basis is None or basis.numel() == 0:
        return x
    return x - (x @ basis.T) @ basis


def orthonormal_rows(x: Tensor) -> Tensor:
    """Rows of x (k, D) made orthonormal by QR, signs fixed so each row keeps its direction (continuous retraction)."""
    q, r = torch.linalg.qr(x.T)  # q (D, k)
    signs = torch.sign(torch.diagonal(r))
    return (q * torch.where(signs == 0, 1.0, signs)).T


def sphere_tangent(grad: Tensor, theta: Tensor) -> Tensor:
    """Project each row of ``grad`` onto the tangent space of the sphere at the matching row of ``theta``."""
    unit = theta / theta.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return grad - (grad * unit).sum(-1, keepdim=True) * unit


def stiefel_tangent(grad: Tensor, frame: Tensor) -> Tensor:
    """Tangent projection at a frame with orthonormal rows (k, D): G − sym(G Fᵀ) F."""
    inner = grad @ frame.T
    return grad - 0.5 * (inner + inner.T) @ frame


def extend_basis(basis: Tensor | None, rows: Tensor, min_norm: float = 1e-8) -> Tensor:
    """Append the (already mutually orthogonal) rows to an orthonormal basis, re-orthogonalising for safety."""
    rows = remove_span(rows, basis)
    norms = rows.norm(dim=-1, keepdim=True)
    keep = norms.squeeze(-1) > min_norm
    new = rows[keep] / norms[keep]
    return append_rows(basis, orthonormal_rows(new) if new.shape[0] > 1 else new)


def append_rows(basis: Tensor | None, rows: Tensor) -> Tensor:
    """``rows`` (n, D) appended to ``basis`` (m, D); a missing or empty basis gives ``rows`` itself."""
    return rows if basis is None or basis.numel() == 0 else torch.cat([basis, rows])


def gram_schmidt_rows(x: Tensor, basis: Tensor | None) -> Tensor:
    """Make each row orthogonal to ``basis`` and to the rows before it, keeping row norms' natural scale
    (no normalisation): row j loses its components along basis and along rows 0..j−1."""
    out, current = [], basis
    for row in x.split(1):  # (1, D) rows
        row = remove_span(row, current)
        out.append(row)
        norm = row.norm()
        if norm > 1e-12:
            current = append_rows(current, row / norm)
    return torch.cat(out)
