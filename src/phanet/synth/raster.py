"""Z-buffered triangle rasterisation in bulk numpy operations.

Every triangle's bounding box is expanded into candidate pixels at once, barycentric coordinates of
all candidates are computed together, and the depth test is one sort: for each pixel the fragment
nearest to the camera wins. Colours are interpolated from the vertices (Gouraud shading). There is
no per-triangle Python loop, so a 20,000-triangle head renders in a few milliseconds.

Screen coordinates are in pixels with the centre of pixel (row i, column j) at (j + 0.5, i + 0.5),
so the image spans [0, width] x [0, height] and a horizontal flip is exactly x -> width - x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Raster:
    """Result of :func:`rasterize`: colour (H, W, 3) float32, coverage mask, and triangle index per pixel."""

    color: np.ndarray
    mask: np.ndarray
    triangle: np.ndarray


def rasterize(
    xy: np.ndarray, depth: np.ndarray, colors: np.ndarray, triangles: np.ndarray, width: int, height: int, chunk: int = 4096
) -> Raster:
    """Draw ``triangles`` (M, 3) of vertices ``xy`` (N, 2, pixels) with per-vertex ``colors`` (N, C).

    ``depth`` grows towards the camera. Triangles whose screen winding is clockwise in a y-up frame
    (that is, facing away from the camera for outward-wound meshes) are culled. Pixels no triangle
    covers keep colour 0, mask False and triangle -1. Triangles are drawn ``chunk`` at a time so the
    working arrays stay small (and in cache); the result does not depend on ``chunk``.
    """
    channels = colors.shape[1]
    color = np.zeros((height * width, channels), np.float32)
    owner = np.full(height * width, -1, np.int64)
    zbuf = np.full(height * width, -np.inf)

    xs = xy[:, 0].astype(np.float32)
    ys = xy[:, 1].astype(np.float32)
    x0, x1, x2 = xs[triangles[:, 0]], xs[triangles[:, 1]], xs[triangles[:, 2]]
    y0, y1, y2 = ys[triangles[:, 0]], ys[triangles[:, 1]], ys[triangles[:, 2]]
    # Twice the signed area in pixel coordinates (y down): negative for counter-clockwise y-up winding.
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    ix0 = np.ceil(np.minimum(np.minimum(x0, x1), x2) - 0.5)
    ix1 = np.floor(np.maximum(np.maximum(x0, x1), x2) - 0.5)
    iy0 = np.ceil(np.minimum(np.minimum(y0, y1), y2) - 0.5)
    iy1 = np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5)
    np.maximum(ix0, 0, out=ix0)
    np.maximum(iy0, 0, out=iy0)
    np.minimum(ix1, width - 1, out=ix1)
    np.minimum(iy1, height - 1, out=iy1)
    visible = np.flatnonzero((area < -1e-6) & (ix1 >= ix0) & (iy1 >= iy0))
    for lo in range(0, visible.size, chunk):
        ids = visible[lo : lo + chunk]
        boxes = [b[ids].astype(np.int64) for b in (ix0, iy0, ix1, iy1)]
        _draw(
            ids,
            triangles[ids],
            x0[ids],
            y0[ids],
            x1[ids],
            y1[ids],
            x2[ids],
            y2[ids],
            area[ids],
            *boxes,
            depth,
            colors,
            width,
            zbuf,
            color,
            owner,
        )
    mask = owner >= 0
    return Raster(color.reshape(height, width, channels), mask.reshape(height, width), owner.reshape(height, width))


def _draw(ids, faces, x0, y0, x1, y1, x2, y2, area, ix0, iy0, ix1, iy1, depth, colors, width, zbuf, color, owner):
    """Rasterise one chunk of triangles into the shared buffers (strictly nearer fragments win)."""
    bw = ix1 - ix0 + 1
    counts = bw * (iy1 - iy0 + 1)
    starts = np.cumsum(counts) - counts
    tri = np.repeat(np.arange(ids.size), counts)
    local = np.arange(tri.size, dtype=np.int64) - starts[tri]
    row_len = bw[tri]
    col = ix0[tri] + local % row_len
    row = iy0[tri] + local // row_len

    # Barycentric coordinates l1, l2 are affine in the pixel centre; l0 = 1 - l1 - l2.
    inv = 1.0 / area
    a1 = (y2 - y0) * inv
    b1 = (x0 - x2) * inv
    a2 = (y0 - y1) * inv
    b2 = (x1 - x0) * inv
    dx = (col.astype(np.float32) + 0.5) - x0[tri]
    dy = (row.astype(np.float32) + 0.5) - y0[tri]
    l1 = a1[tri] * dx + b1[tri] * dy
    l2 = a2[tri] * dx + b2[tri] * dy
    eps = np.float32(-1e-6)
    inside = np.flatnonzero((l1 >= eps) & (l2 >= eps) & (l1 + l2 <= 1.0 - eps))
    if inside.size == 0:
        return
    tri = tri[inside]
    l1 = l1[inside]
    l2 = l2[inside]
    pix = row[inside] * width + col[inside]
    f = faces[tri]
    z0 = depth[f[:, 0]]
    z = z0 + l1 * (depth[f[:, 1]] - z0) + l2 * (depth[f[:, 2]] - z0)

    # Depth test: a fragment wins if it is the nearest of its pixel in this chunk and strictly nearer
    # than what earlier chunks drew; exact ties inside the chunk go to the later fragment.
    before = zbuf[pix]
    np.maximum.at(zbuf, pix, z)
    nearest = np.flatnonzero((z == zbuf[pix]) & (z > before))
    if nearest.size == 0:
        return
    last = np.full(zbuf.size, -1, np.int64)
    np.maximum.at(last, pix[nearest], nearest)
    win = nearest[last[pix[nearest]] == nearest]
    wpix = pix[win]
    wf = f[win]
    w1 = l1[win, None]
    w2 = l2[win, None]
    c0 = colors[wf[:, 0]]
    color[wpix] = c0 + w1 * (colors[wf[:, 1]] - c0) + w2 * (colors[wf[:, 2]] - c0)
    owner[wpix] = ids[tri[win]]
