"""Signed-distance primitives and smooth blends used to sculpt the head.

The head surface is the zero level set of a function built from ellipsoids, capsules and cylinders
joined with polynomial smooth minima (Quilez), so features blend into one another like soft tissue.
Every function takes a point array ``p`` of shape (..., 3) in millimetres and returns (...) distances
that are negative inside. The ellipsoid distance is the usual first-order bound, exact enough for
ray casting with a bisection refinement.
"""

from __future__ import annotations

import numpy as np


def ellipsoid(p: np.ndarray, center, radii) -> np.ndarray:
    (cx, cy, cz), (rx, ry, rz) = center, radii
    x = (p[..., 0] - cx) / rx
    y = (p[..., 1] - cy) / ry
    z = (p[..., 2] - cz) / rz
    k0 = np.sqrt(x * x + y * y + z * z)
    x /= rx
    y /= ry
    z /= rz
    k1 = np.sqrt(x * x + y * y + z * z)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def round_cone(p: np.ndarray, a, b, ra: float, rb: float) -> np.ndarray:
    """Distance to the segment a-b swept by a sphere whose radius goes linearly from ``ra`` to ``rb``."""
    a = np.asarray(a, p.dtype)
    ba = np.asarray(b, p.dtype) - a
    pa = p - a
    h = np.clip(np.einsum("...i,i->...", pa, ba) / float(ba @ ba), 0.0, 1.0)
    d = pa - h[..., None] * ba
    return np.sqrt(np.einsum("...i,...i->...", d, d)) - (ra + (rb - ra) * h)


def sphere(p: np.ndarray, center, radius: float) -> np.ndarray:
    x = p[..., 0] - center[0]
    y = p[..., 1] - center[1]
    z = p[..., 2] - center[2]
    return np.sqrt(x * x + y * y + z * z) - radius


def vertical_cylinder(p: np.ndarray, cx: float, cz: float, rx: float, rz: float, top: float, lean: float = 0.0) -> np.ndarray:
    """Elliptic cylinder along y, closed at ``top``; ``lean`` moves its axis forward per mm of height."""
    x = (p[..., 0] - cx) / rx
    z = (p[..., 2] - cz - lean * p[..., 1]) / rz
    side = (np.sqrt(x * x + z * z) - 1.0) * min(rx, rz)
    return np.maximum(side, p[..., 1] - top)


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union with blend radius ``k`` (mm)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth intersection; ``smax(a, -b, k)`` carves ``b`` out of ``a``."""
    return -smin(-a, -b, k)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def superellipsoid(p: np.ndarray, center, radii, n: float) -> np.ndarray:
    """Ellipsoid whose horizontal (x-z) sections are superellipses of exponent ``n`` (flatter sides for n > 2)."""
    q = np.abs((p - np.asarray(center, p.dtype)) / np.asarray(radii, p.dtype))
    horizontal = (q[..., 0] ** n + q[..., 2] ** n) ** (2.0 / n)
    k = np.sqrt(horizontal + q[..., 1] ** 2)
    return (k - 1.0) * float(min(radii))
