"""The procedural 3D head: skull, face, ears, neck and hair, eyes with lids and irises, brows, nose,
lips, teeth and a mouth cavity, built from an :class:`~phanet.synth.identity.Identity`.

Head coordinates are millimetres: x towards the subject's left (the viewer's right in a frontal
view), y up, z out of the face; the pupils lie on the line y = 0 and the ear canals near z = 0.

The skin is one grid of vertices found by casting rays outwards from the head's vertical axis onto a
signed-distance sculpture (:mod:`phanet.synth.sdf`): horizontal rays for the neck and face band,
rays fanning upwards for the crown. The grid is dense around the eyes and mouth and sparse at the back
of the head, its columns are symmetric about the midline, and quads are split with mirrored diagonals
on the two sides, so a symmetric identity gives an exactly mirror-symmetric mesh. The row through the
mouth line is duplicated between the mouth corners, which cuts the lips apart: when the lips part,
the teeth, tongue and the dark mouth cavity behind them show through. The eye opening is made per
image by pushing the skin inside the lid margins back behind the eyeball (see :class:`EyeRig`), so
lid movements are continuous and need no change of topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from phanet.synth import sdf
from phanet.synth.identity import Identity

#: Eyeball radius (mm).
EYE_RADIUS = 12.0
#: Albedo of the sclera.
SCLERA = (0.7, 0.66, 0.62)
#: The share of the light around it that reaches the eyeball, sunk in its socket under the lids and the
#: brow ridge (the skin's own occlusion is computed from the head's shape; the eyeballs are separate meshes).
EYEBALL_OCCLUSION = 0.8
#: Radius of the iris (mm), and how far the cornea over it stands out of the eyeball's sphere at its apex.
IRIS_RADIUS = 5.9
CORNEA_BULGE = 0.7
#: Depth of the cornea apex (mm); the face is laid out around it.
CORNEA_Z = 84.0
#: Rays for the skin leave the vertical axis at this depth (inside the head and neck at every height).
AXIS_Z = -8.0
#: Forward lean of the neck (mm forward per mm up).
NECK_LEAN = 0.12
#: Named facial points the renderer projects into every image. "left" and "right" are the subject's own
#: sides (left: x > 0, the viewer's right in a frontal view); ``mouth`` is the middle of the mouth line.
LANDMARKS = ("left_eye", "right_eye", "left_brow", "right_brow", "nose", "mouth", "mouth_left", "mouth_right")


class Part(IntEnum):
    """What a triangle belongs to; the renderer can report the part visible at each pixel."""

    SKIN = 0
    HAIR = 1
    EYE_RIGHT = 2  # the subject's right eye (x < 0)
    EYE_LEFT = 3
    MOUTH = 4  # cavity and tongue
    TEETH = 5
    EAR = 6
    GLASSES = 7


@dataclass(frozen=True)
class Layout:
    """Landmark measurements derived from an identity (mm, neutral face). Index 0 = right, 1 = left side."""

    eye_x: tuple[float, float]
    eye_y: tuple[float, float]
    eye_width: float
    eye_open: float
    eye_tilt: float
    brow_y: tuple[float, float]
    brow_thickness: float
    brow_arch: float
    nose_base_y: float
    nose_tip: tuple[float, float, float]
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_z: float
    upper_lip: float
    lower_lip: float
    chin_y: float
    chin_z: float
    jaw_width: float
    face_width: float
    jaw_pivot: tuple[float, float]
    teeth_z: float
    hairline_y: float


@dataclass
class EyeRig:
    """The skin around one eye: which vertices may be pushed behind the eyeball to open the eye.

    Lid margins are curves between the inner and outer eye corners; per image the action units move
    them and every rig vertex inside the opening is pushed back along ``inward`` (see
    :func:`phanet.synth.expressions.deform`).
    """

    side: int
    vertices: np.ndarray
    x: np.ndarray
    y: np.ndarray
    inward: np.ndarray
    inner_x: float
    outer_x: float
    inner_y: float
    outer_y: float
    upper: float
    lower: float


@dataclass
class HeadModel:
    """A neutral head mesh plus what expressions need to deform it.

    ``seam`` pairs the upper-lip and lower-lip copies of the mouth-line vertices (one row per pair).
    ``landmarks`` maps each name of :data:`LANDMARKS` to the vertices whose mean is that point, so the
    points move with the expression: eye centres are the pupils (the apex of each eyeball); brow centres
    and the nose tip are skin vertices; the mouth centre and corners are the means of the upper-lip and
    lower-lip copies of mouth-line vertices, midway between the lips when they part. ``eyeballs``: the
    vertex range (start, stop) of each eyeball, right then left.
    """

    identity: Identity
    layout: Layout
    vertices: np.ndarray
    triangles: np.ndarray
    parts: np.ndarray
    albedo: np.ndarray
    specular: np.ndarray
    shininess: np.ndarray
    jaw: np.ndarray
    lip_side: np.ndarray
    seam: np.ndarray
    skin_count: int
    eyes: tuple[EyeRig, EyeRig]
    box: np.ndarray
    landmarks: dict[str, np.ndarray]
    eyeballs: tuple[tuple[int, int], ...] = ()
    actions: dict = field(default_factory=dict)


def cornea_bulge(polar: np.ndarray) -> np.ndarray:
    """How far (mm, along the eye's axis) the cornea stands out of the eyeball's sphere at ``polar``
    radians from the axis: :data:`CORNEA_BULGE` at the apex, 0 from the rim of the iris outwards."""
    return CORNEA_BULGE * np.clip(1.0 - polar / np.arcsin(IRIS_RADIUS / EYE_RADIUS), 0.0, 1.0) ** 0.5


def mesh_spacing(size: int) -> float:
    """Skin grid spacing (mm) for images of ``size`` pixels: 3.1 mm at 112 px, finer (sub-linearly) above."""
    return float(np.clip(3.1 * (112.0 / max(int(size), 16)) ** 0.75, 1.2, 4.5))


def make_layout(ident: Identity) -> Layout:
    s, a = ident.shape, ident.asymmetry
    nose_base = -s["nose_length"]
    tip = (a["nose_dx"], nose_base + 7.0, CORNEA_Z + s["nose_projection"])
    mouth_y = nose_base - s["lip_gap"]
    chin_y = -s["face_length"]
    return Layout(
        eye_x=(-s["eye_spacing"], s["eye_spacing"]),
        eye_y=(-0.5 * a["eye_dy"], 0.5 * a["eye_dy"]),
        eye_width=s["eye_width"],
        eye_open=s["eye_openness"],
        eye_tilt=s["eye_tilt"],
        brow_y=(s["brow_height"] - 0.5 * a["brow_dy"], s["brow_height"] + 0.5 * a["brow_dy"]),
        brow_thickness=s["brow_thickness"],
        brow_arch=s["brow_arch"],
        nose_base_y=nose_base,
        nose_tip=tip,
        nose_width=s["nose_width"],
        mouth_y=mouth_y,
        mouth_width=s["mouth_width"],
        lip_z=CORNEA_Z + 6.0 + s["lip_protrusion"],
        upper_lip=s["upper_lip"],
        lower_lip=s["lower_lip"],
        chin_y=chin_y,
        chin_z=CORNEA_Z - 4.0 + s["chin_protrusion"],
        jaw_width=s["jaw_width"],
        face_width=s["face_width"],
        jaw_pivot=(-14.0, 2.0),
        teeth_z=CORNEA_Z + s["lip_protrusion"] - 4.0,
        hairline_y=62.0 + ident.hairline,
    )


# ---------------------------------------------------------------------------------------------------
# The sculpture


def head_sdf(p: np.ndarray, ident: Identity, lay: Layout) -> np.ndarray:
    """Signed distance (approximate, mm) to the skin of ``ident``'s neutral head; negative inside."""
    s = ident.shape
    front = 92.0 - 3.0 * s["forehead_slope"]
    f = sdf.ellipsoid(p, (0.0, 28.0, -8.0), (s["head_width"], s["head_height"] - 28.0, front))
    back = sdf.ellipsoid(p, (0.0, 30.0, -8.0), (s["head_width"], s["head_height"] - 30.0, s["head_length"] - 8.0))
    f = np.where(p[..., 2] < -8.0, back, f)
    face = sdf.superellipsoid(p, (0.0, -24.0, 16.0), (lay.face_width, 46.0, 64.0), 2.6)
    f = sdf.smin(f, face, 14.0)
    jaw = sdf.superellipsoid(p, (0.0, lay.chin_y + 40.0, 16.0), (lay.jaw_width + 2.0, 40.0, 58.0), 2.1)
    f = sdf.smin(f, jaw, 12.0)
    chin = sdf.ellipsoid(p, (0.0, lay.chin_y + 14.0, lay.chin_z - 17.0), (s["chin_width"] + 8.0, 15.0, 17.0))
    f = sdf.smin(f, chin, 10.0)
    neck = sdf.vertical_cylinder(p, 0.0, -22.0, 44.0 * s["neck_width"], 50.0 * s["neck_width"], -40.0, lean=NECK_LEAN)
    f = sdf.smin(f, neck, 18.0)
    fullness = s["cheek_fullness"]
    for side in (-1.0, 1.0):
        cheek = sdf.ellipsoid(p, (side * 35.0, -32.0, 52.0), (21.0 * fullness, 18.0 * fullness, 17.0 * fullness))
        f = sdf.smin(f, cheek, 14.0)
        zygoma = sdf.ellipsoid(p, (side * (lay.face_width - 20.0), -7.0, 47.0), (15.0, 9.0, 20.0))
        f = sdf.smin(f, zygoma, 9.0)
    ridge_front = CORNEA_Z + s["brow_ridge"] + 2.0
    ridge = sdf.ellipsoid(p, (0.0, 0.5 * (lay.brow_y[0] + lay.brow_y[1]) - 3.0, ridge_front - 15.0), (54.0, 12.0, 15.0))
    f = sdf.smin(f, ridge, 10.0)
    # The frontal bone is broad: above the brows the forehead stays close to the ridge out to the temples.
    frontal = sdf.ellipsoid(p, (0.0, 0.5 * (lay.brow_y[0] + lay.brow_y[1]) + 16.0, ridge_front - 30.0), (54.0, 22.0, 26.0))
    f = sdf.smin(f, frontal, 16.0)
    muzzle = sdf.ellipsoid(p, (0.0, lay.mouth_y + 2.0, CORNEA_Z - 34.0), (lay.mouth_width + 11.0, 27.0, 36.0))
    f = sdf.smin(f, muzzle, 10.0)
    # Orbits: carve the sockets, then put back the eyeballs covered by the lids.
    for i in (0, 1):
        orbit = sdf.ellipsoid(p, (lay.eye_x[i], lay.eye_y[i] + 2.0, CORNEA_Z + 1.0), (17.0, 11.5, 10.0))
        f = sdf.smax(f, -orbit, 6.0)
    for i in (0, 1):
        lid = sdf.sphere(p, (lay.eye_x[i], lay.eye_y[i], CORNEA_Z - EYE_RADIUS), EYE_RADIUS + 0.9)
        f = sdf.smin(f, lid, 5.0)
    # Nose: bridge, tip, wings and columella.
    tx, ty, tz = lay.nose_tip
    tip_r = 7.0 * s["nose_tip"]
    nasion = (0.0, 9.0, CORNEA_Z - 1.0 + s["nose_bridge"])
    bridge = sdf.round_cone(p, nasion, (tx, ty + 5.0, tz - tip_r - 2.5), 6.5, 7.5)
    base = sdf.ellipsoid(p, (tx, lay.nose_base_y + 12.0, CORNEA_Z - 4.0), (lay.nose_width - 2.0, 14.0, 12.0))
    nose = sdf.smin(bridge, base, 6.0)
    nose = sdf.smin(nose, sdf.sphere(p, (tx, ty, tz - tip_r), tip_r), 5.0)
    for side in (-1.0, 1.0):
        wing_center = (tx + side * (lay.nose_width - 6.0), lay.nose_base_y + 4.5, CORNEA_Z + 1.0)
        wing = sdf.ellipsoid(p, wing_center, (6.5, 6.0, 9.0))
        nose = sdf.smin(nose, wing, 4.0)
    columella = sdf.round_cone(p, (tx, ty - 2.0, tz - tip_r), (0.0, lay.nose_base_y + 1.0, CORNEA_Z + 3.0), 3.2, 3.5)
    nose = sdf.smin(nose, columella, 3.0)
    f = sdf.smin(f, nose, 6.0)
    # Lips: two rolls meeting along the mouth line, which leaves a crease there.
    upper = sdf.ellipsoid(
        p, (0.0, lay.mouth_y + 0.5 * lay.upper_lip, lay.lip_z - 9.0), (lay.mouth_width + 1.0, 0.5 * lay.upper_lip + 1.5, 9.0)
    )
    lower = sdf.ellipsoid(
        p, (0.0, lay.mouth_y - 0.5 * lay.lower_lip, lay.lip_z - 10.0), (lay.mouth_width - 1.0, 0.5 * lay.lower_lip + 1.5, 9.0)
    )
    lips = sdf.smin(upper, lower, 1.0)
    f = sdf.smin(f, lips, 3.0)
    return f


def cast_rays(
    origins: np.ndarray,
    dirs: np.ndarray,
    fn,
    outer: np.ndarray | float = 175.0,
    inner: np.ndarray | float = 4.0,
    step: float = 2.5,
    chunk: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the outermost zero crossing of ``fn`` between ``inner`` and ``outer``.

    Marches inwards from ``outer`` in ``step`` increments and refines the first crossing by bisection.
    Returns the distances and a flag per ray: False where ``outer`` was already inside the surface or
    no crossing was found (the caller may retry those rays over a wider range).
    """
    n = len(origins)
    outer = np.broadcast_to(np.asarray(outer, float), (n,))
    inner = np.broadcast_to(np.asarray(inner, float), (n,))
    steps = int(np.ceil(float(np.max(outer - inner)) / step)) + 1
    out = np.empty(n)
    ok = np.empty(n, bool)
    offsets = np.arange(steps, dtype=np.float32) * step
    for lo in range(0, n, chunk):
        o = origins[lo : lo + chunk].astype(np.float32)
        d = dirs[lo : lo + chunk].astype(np.float32)
        r0 = outer[lo : lo + chunk].astype(np.float32)
        radii = r0[:, None] - offsets[None, :]
        values = fn(o[:, None, :] + radii[..., None] * d[:, None, :])
        hit = (values < 0) & (radii >= inner[lo : lo + chunk, None] - step)
        first = np.argmax(hit, axis=1)
        found = hit.any(axis=1) & (first > 0)
        first = np.maximum(first, 1)
        a = np.take_along_axis(radii, first[:, None], 1)[:, 0]
        b = a + step
        for _ in range(9):
            mid = 0.5 * (a + b)
            inside = fn(o + mid[:, None] * d) < 0
            a = np.where(inside, mid, a)
            b = np.where(inside, b, mid)
        out[lo : lo + chunk] = 0.5 * (a + b)
        ok[lo : lo + chunk] = found
    return out, ok


def cast_grid(origins: np.ndarray, dirs: np.ndarray, fn, coarse: int = 3, margin: float = 8.0) -> np.ndarray:
    """:func:`cast_rays` over a rows x columns grid of rays, coarse to fine.

    Every ``coarse``-th ray is cast over the full range; the others search only between the nearest
    coarse distances around them (plus ``margin``), and fall back to the full range when that window
    holds no crossing.
    """
    rows, cols = origins.shape[:2]
    rs = np.unique(np.r_[np.arange(0, rows, coarse), rows - 1])
    cs = np.unique(np.r_[np.arange(0, cols, coarse), cols - 1])
    sub_o = origins[np.ix_(rs, cs)].reshape(-1, 3)
    sub_d = dirs[np.ix_(rs, cs)].reshape(-1, 3)
    coarse_dist, _ = cast_rays(sub_o, sub_d, fn)
    coarse_dist = coarse_dist.reshape(len(rs), len(cs))
    r_hi = np.clip(np.searchsorted(rs, np.arange(rows)), 1, len(rs) - 1)
    c_hi = np.searchsorted(cs, np.arange(cols))
    c_hi_wrap = c_hi % len(cs)
    c_lo = np.maximum(c_hi - 1, 0)
    c_lo = np.where(np.isin(np.arange(cols), cs), c_hi, c_lo)
    corners = [
        coarse_dist[np.ix_(r_hi - 1, c_lo)],
        coarse_dist[np.ix_(r_hi, c_lo)],
        coarse_dist[np.ix_(r_hi - 1, c_hi_wrap)],
        coarse_dist[np.ix_(r_hi, c_hi_wrap)],
    ]
    hi = np.maximum.reduce(corners) + margin
    lo = np.maximum(np.minimum.reduce(corners) - margin, 4.0)
    dist, ok = cast_rays(origins.reshape(-1, 3), dirs.reshape(-1, 3), fn, hi.reshape(-1), lo.reshape(-1), step=2.0)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        redo, found = cast_rays(origins.reshape(-1, 3)[bad], dirs.reshape(-1, 3)[bad], fn)
        # A ray that never leaves the surface stays at the axis, hidden inside the head.
        dist[bad] = np.where(found, redo, 4.0)
    return dist.reshape(rows, cols)


# ---------------------------------------------------------------------------------------------------
# Grids


def _graded(start: float, stop: float, spacing) -> np.ndarray:
    """Samples from ``start`` to ``stop`` (both included) whose local gap follows ``spacing(x)``."""
    xs = np.linspace(start, stop, 4001)
    density = 1.0 / spacing(xs)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(xs))])
    n = max(1, int(round(abs(cum[-1]))))
    return np.interp(np.linspace(0.0, cum[-1], n + 1), cum, xs)


def _bump(x: np.ndarray, center: float, half_width: float) -> np.ndarray:
    return np.clip(1.0 - np.abs(x - center) / half_width, 0.0, 1.0)


def _skin_grid(lay: Layout, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Ray origins and directions of the skin grid (rows x columns x 3) and the mouth-line row index."""
    eye_y = 0.5 * (lay.eye_y[0] + lay.eye_y[1])

    def row_spacing(y):
        fine = np.maximum.reduce(
            [
                0.7 * np.clip(1.6 * _bump(y, eye_y, 12.0), 0.0, 1.0),
                0.4 * _bump(y, 0.5 * (lay.brow_y[0] + lay.brow_y[1]), 7.0),
                0.45 * _bump(y, lay.mouth_y, 10.0),
                0.35 * _bump(y, lay.nose_base_y + 3.0, 7.0),
            ]
        )
        sp = h * (1.0 - fine)
        return np.where(y < lay.chin_y - 25.0, np.minimum(4.0 * h, h + 0.3 * (lay.chin_y - 25.0 - y)), sp)

    below = _graded(-240.0, lay.mouth_y, row_spacing)
    above = _graded(lay.mouth_y, 30.0, row_spacing)
    rows_y = np.concatenate([below, above[1:]])
    seam_row = len(below) - 1
    cap = _graded(0.0, 0.5 * np.pi, lambda a: (h / 92.0) * (1.0 + 1.5 * np.clip((a - 0.35) / 0.5, 0.0, 1.0)))[1:]

    eye_theta = np.arctan2(abs(lay.eye_x[1]), CORNEA_Z - AXIS_Z)

    def col_spacing(t):
        base = (h / 95.0) * (1.0 + 2.5 * np.clip((t - 0.8) / 1.0, 0.0, 1.0))
        fine = np.maximum(0.4 * _bump(t, eye_theta, 0.22), 0.3 * _bump(t, 0.0, 0.35))
        return base * (1.0 - fine)

    half = _graded(0.0, np.pi, col_spacing)
    theta = np.concatenate([-half[1:-1][::-1], half])

    n_rows = len(rows_y) + len(cap)
    origins = np.zeros((n_rows, len(theta), 3))
    dirs = np.zeros((n_rows, len(theta), 3))
    origins[:, :, 2] = AXIS_Z
    # Below the jaw the axis leans back with the neck, so that it stays inside it.
    origins[: len(rows_y), :, 2] += NECK_LEAN * np.minimum(rows_y + 60.0, 0.0)[:, None]
    origins[: len(rows_y), :, 1] = rows_y[:, None]
    origins[len(rows_y) :, :, 1] = 30.0
    elevation = np.concatenate([np.zeros(len(rows_y)), cap])
    dirs[:, :, 0] = np.sin(theta)[None, :] * np.cos(elevation)[:, None]
    dirs[:, :, 1] = np.sin(elevation)[:, None]
    dirs[:, :, 2] = np.cos(theta)[None, :] * np.cos(elevation)[:, None]
    # Exact values on the midline and the pole keep the mesh exactly symmetric.
    dirs[:, np.isclose(theta, 0.0), 0] = 0.0
    dirs[:, np.isclose(theta, np.pi), 0] = 0.0
    return origins, dirs, theta, seam_row


def _grid_triangles(index: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Triangles of a row x column index grid that wraps around in columns, outward-wound."""
    rows, cols = index.shape
    c0 = np.arange(cols)
    c1 = (c0 + 1) % cols
    a = index[:-1][:, c0]
    b = index[:-1][:, c1]
    c = index[1:][:, c0]
    d = index[1:][:, c1]
    left = ((theta >= 0.0) & (theta < np.pi - 1e-9))[None, :].repeat(rows - 1, 0)
    t1 = np.where(left[..., None], np.stack([a, b, d], -1), np.stack([a, b, c], -1))
    t2 = np.where(left[..., None], np.stack([a, d, c], -1), np.stack([b, d, c], -1))
    return np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)])


def _sphere_cap(center, radius, axis_rings: np.ndarray, segments: int, rotate_x: float = 0.0):
    """Vertices and triangles of a spherical cap around +z, rings at the given polar angles (radians)."""
    az = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    verts = [np.array([[0.0, 0.0, radius]])]
    for pol in axis_rings:
        ring = np.stack(
            [radius * np.sin(pol) * np.cos(az), radius * np.sin(pol) * np.sin(az), np.full(segments, radius * np.cos(pol))], -1
        )
        verts.append(ring)
    v = np.concatenate(verts)
    tris = [np.stack([np.zeros(segments, int), 1 + np.arange(segments), 1 + (np.arange(segments) + 1) % segments], -1)]
    for k in range(len(axis_rings) - 1):
        r0 = 1 + k * segments
        r1 = r0 + segments
        i = np.arange(segments)
        j = (i + 1) % segments
        tris.append(np.stack([r0 + i, r1 + i, r1 + j], -1))
        tris.append(np.stack([r0 + i, r1 + j, r0 + j], -1))
    t = np.concatenate(tris)
    if rotate_x:
        cy, sy = np.cos(rotate_x), np.sin(rotate_x)
        v = np.stack([v[:, 0], cy * v[:, 1] - sy * v[:, 2], sy * v[:, 1] + cy * v[:, 2]], -1)
    return v + np.asarray(center), t


def vertex_normals(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Unit vertex normals: the area-weighted sum of the normals of the triangles around each vertex."""
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.empty_like(v)
    for c in range(3):
        n[:, c] = (
            np.bincount(t[:, 0], fn[:, c], len(v))
            + np.bincount(t[:, 1], fn[:, c], len(v))
            + np.bincount(t[:, 2], fn[:, c], len(v))
        )
    return n / np.maximum(np.sqrt((n * n).sum(1, keepdims=True)), 1e-12)


class Noise:
    """Smooth random field on 3D points (sum of random plane waves); mirror-symmetric on request."""

    def __init__(self, rng: np.random.Generator, wavelength: float, waves: int = 8, mirror: bool = False):
        dirs = rng.normal(size=(waves, 3))
        unit = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self.k = unit * (2 * np.pi / wavelength) * rng.uniform(0.7, 1.3, (waves, 1))
        self.phase = rng.uniform(0, 2 * np.pi, waves)
        self.mirror = mirror

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.mirror:
            p = np.stack([np.abs(p[:, 0]), p[:, 1], p[:, 2]], -1)
        return np.sin(np.einsum("ni,ki->nk", p, self.k) + self.phase).sum(1) / np.sqrt(len(self.phase) / 2.0)


# ---------------------------------------------------------------------------------------------------
# Parts other than the skin


def _ear(ident: Identity, side: int, attach_x: float):
    """A thin ear shell (front and back sheets joined at the rim), attached near x = ``attach_x``."""
    size = ident.shape["ear_size"]
    half_w, half_h = 15.5 * size, 30.0 * size
    rings = np.linspace(0.0, 1.0, 9)[1:]
    segs = 28
    ang = np.linspace(0.0, 2 * np.pi, segs, endpoint=False)
    # Local frame: u backwards (-z), v up, w outward (+x on the left side).
    verts_front, verts_back = [np.array([[0.0, -0.25 * half_h, -3.5]])], [np.array([[0.0, -0.25 * half_h, -4.5]])]
    for r in rings:
        widen = 1.0 + 0.12 * np.sin(ang)  # wider at the top
        u = r * half_w * np.cos(ang) * widen
        v = r * half_h * np.sin(ang) - (1 - r) * 0.25 * half_h
        lower_rim = sdf.smoothstep(-0.2, -0.9, np.sin(ang))
        helix = 3.2 * sdf.smoothstep(0.72, 0.95, np.full(segs, r)) * (1.0 - 0.6 * lower_rim)
        antihelix = 1.6 * np.exp(-(((r - 0.6) / 0.1) ** 2)) * (np.sin(ang) > -0.3)
        concha = -3.5 * np.exp(-((r / 0.35) ** 2))
        lobe = np.sin(ang) < -0.5
        w = helix + antihelix + concha + np.where(lobe, 1.0 * r, 0.0)
        verts_front.append(np.stack([u, v, w], -1))
        back_w = np.full(segs, -4.5) * (1 - r) - 0.5 * r + np.where(r == 1.0, w, 0.0)
        verts_back.append(np.stack([u * 0.97, v * 0.97, back_w], -1))
    front = np.concatenate(verts_front)
    back = np.concatenate(verts_back)
    back[-segs:] = front[-segs:]  # shared rim

    def fan(offset):
        ring0 = offset + 1 + np.arange(segs)
        tris = [np.stack([np.full(segs, offset), ring0, offset + 1 + (np.arange(segs) + 1) % segs], -1)]
        for k in range(len(rings) - 1):
            r0 = offset + 1 + k * segs
            i = np.arange(segs)
            j = (i + 1) % segs
            tris.append(np.stack([r0 + i, r0 + segs + i, r0 + segs + j], -1))
            tris.append(np.stack([r0 + i, r0 + segs + j, r0 + j], -1))
        return np.concatenate(tris)

    n_front = len(front)
    t_front = fan(0)
    t_back = fan(n_front)[:, ::-1]
    # Rim of the back sheet reuses the front rim vertices.
    rim_back = np.arange(n_front + 1 + (len(rings) - 1) * segs, 2 * n_front)
    rim_front = np.arange(1 + (len(rings) - 1) * segs, n_front)
    remap = np.arange(2 * n_front)
    remap[rim_back] = rim_front
    tris = np.concatenate([t_front, remap[t_back]])
    local = np.concatenate([front, back])
    # Place: the ear's front edge (u = -half_w) is the hinge; rotate the ear away from the head around it.
    hinge_u = -half_w
    angle = np.radians(ident.shape["ear_protrusion"])
    uu = local[:, 0] - hinge_u
    ww = local[:, 2]
    u_rot = uu * np.cos(angle) - ww * np.sin(angle)
    w_rot = uu * np.sin(angle) + ww * np.cos(angle)
    tilt = np.radians(12.0)
    vv = local[:, 1]
    z = 4.0 - (u_rot * np.cos(tilt) + vv * np.sin(tilt))
    y = -14.0 + (vv * np.cos(tilt) - u_rot * np.sin(tilt))
    x = side * (attach_x - 2.0 + w_rot)
    verts = np.stack([x, y, z], -1)
    if side < 0:
        tris = tris[:, ::-1]
    # Hollows of the front sheet (the concha, inside the rim) are darker; so is the back sheet.
    shade = np.concatenate([0.55 + 0.45 * sdf.smoothstep(-3.5, 2.0, front[:, 2]), np.full(n_front, 0.8)])
    return verts, tris, shade


def _mouth_interior(lay: Layout):
    """Cavity (seen from inside), tongue, upper and lower teeth with gums.

    Returns vertices, triangles, parts per triangle, albedo, jaw weights.
    """
    pieces = []
    mw = lay.mouth_width
    # Cavity: back half of an ellipsoid, wound to face forwards (into the mouth).
    cav_c = np.array([0.0, lay.mouth_y - 3.0, lay.teeth_z - 26.0])
    # Wide enough to stay behind the lip corners when AU20 stretches them sideways; short enough not to
    # poke out under a short jaw.
    cav_r = np.array([mw + 12.0, 18.0, 28.0])
    pol = np.linspace(0.0, np.pi * 0.5, 8)
    az = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    P, A = np.meshgrid(pol, az, indexing="ij")
    unit = np.stack([np.sin(P) * np.cos(A), np.sin(P) * np.sin(A), -np.cos(P)], -1).reshape(-1, 3)
    cv = cav_c + unit * cav_r
    idx = np.arange(len(pol) * len(az)).reshape(len(pol), len(az))
    ct = _grid_triangles(idx, np.full(len(az), -1.0))[:, ::-1]
    jaw = sdf.smoothstep(lay.mouth_y + 4.0, lay.mouth_y - 12.0, cv[:, 1])
    # Light reaches the inside of the mouth only through the lips' opening, so cavity, tongue and gums
    # stay in deep shadow and an open mouth reads as a dark hole; the albedos carry that shadow.
    pieces.append((cv, ct, Part.MOUTH, np.tile([0.07, 0.015, 0.015], (len(cv), 1)), jaw))
    # Tongue: a flattened dome resting on the floor of the mouth.
    tv, tt = _sphere_cap((0.0, 0.0, 0.0), 1.0, np.linspace(0.2, 1.5, 6), 16, rotate_x=-np.pi / 2)
    # Its tip stays behind the lower incisors, inside the lip-chin fold of every face.
    tv = tv * np.array([mw * 0.75, 7.0, 20.0]) + np.array([0.0, lay.mouth_y - 13.0, lay.teeth_z - 26.0])
    pieces.append((tv, tt, Part.MOUTH, np.tile([0.22, 0.07, 0.07], (len(tv), 1)), np.ones(len(tv))))
    # Teeth: bands following the dental arch, front faces forward.
    for upper in (True, False):
        u = np.linspace(-1.0, 1.0, 17)
        arch_x = (mw - 4.0) * np.sin(u * 1.2) / np.sin(1.2)
        depth = 1.0 if upper else 3.0
        arch_z = lay.teeth_z - depth - 14.0 * u**2
        if upper:
            # Crowns about as tall as real incisors (the lips hide them until they part).
            ys = lay.mouth_y + np.array([12.0, 7.0, 5.5, -1.5])
            color_rows = [(0.35, 0.15, 0.15), (0.35, 0.15, 0.15), (0.9, 0.86, 0.78), (0.86, 0.82, 0.74)]
        else:
            ys = lay.mouth_y + np.array([-1.0, -5.0, -6.5, -13.0])
            color_rows = [(0.86, 0.82, 0.74), (0.9, 0.86, 0.78), (0.35, 0.15, 0.15), (0.35, 0.15, 0.15)]
        verts = np.stack([np.tile(arch_x, len(ys)), np.repeat(ys, len(u)), np.tile(arch_z, len(ys))], -1)
        gi = np.arange(len(ys) * len(u)).reshape(len(ys), len(u))
        if upper:
            gi = gi[::-1]
        a, b, c, d = gi[:-1, :-1], gi[:-1, 1:], gi[1:, :-1], gi[1:, 1:]
        tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
        color = np.repeat(np.array(color_rows), len(u), axis=0)
        gaps = (np.abs(np.sin(np.tile(u, len(ys)) * 9.0)) < 0.12) & (color[:, 0] > 0.8)
        color[gaps] *= 0.7
        # Teeth further back along the arch get less light through the opening.
        color *= (1.0 - 0.5 * np.tile(u, len(ys)) ** 2)[:, None]
        jaw = np.zeros(len(verts)) if upper else np.ones(len(verts))
        part = np.where(color[tris[:, 0], 0] > 0.8, Part.TEETH, Part.MOUTH)
        pieces.append((verts, tris, part, color, jaw))
    return pieces


def _glasses(lay: Layout, color, attach_x: float):
    """Frames: two rounded rims, a bridge and two temples, as thin tubes."""
    tubes = []
    z = CORNEA_Z + 13.0
    for i in (0, 1):
        cx, cy = lay.eye_x[i], lay.eye_y[i] + 1.0
        t = np.linspace(0.0, 2 * np.pi, 33)
        px = cx + 22.0 * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.7
        py = cy + 15.0 * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.8
        pz = z - 0.004 * (px - cx) ** 2 - 2.0 * (np.abs(px) > abs(cx))
        tubes.append(np.stack([px, py, pz], -1))
        temple_x = np.sign(cx) * np.linspace(abs(cx) + 22.0, attach_x + 1.5, 8)
        temple = np.stack([temple_x, np.full(8, cy + 3.0), np.linspace(z - 6.0, 0.0, 8)], -1)
        tubes.append(temple)
    bx = np.linspace(lay.eye_x[0] + 20.0, lay.eye_x[1] - 20.0, 7)
    tubes.append(np.stack([bx, lay.eye_y[0] + 5.0 + 2.0 * np.cos(bx / 12.0), np.full(7, z + 1.0)], -1))
    verts, tris = [], []
    offset = 0
    sides = 6
    for path in tubes:
        tangent = np.gradient(path, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        ref = np.where(np.abs(tangent[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]])
        n1 = np.cross(tangent, ref)
        n1 /= np.linalg.norm(n1, axis=1, keepdims=True)
        n2 = np.cross(tangent, n1)
        ang = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
        radial = np.cos(ang)[None, :, None] * n1[:, None, :] + np.sin(ang)[None, :, None] * n2[:, None, :]
        ring = path[:, None, :] + 1.3 * radial
        verts.append(ring.reshape(-1, 3))
        gi = offset + np.arange(len(path) * sides).reshape(len(path), sides)
        a, b = gi[:-1], np.roll(gi[:-1], -1, axis=1)
        c, d = gi[1:], np.roll(gi[1:], -1, axis=1)
        tris.append(np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)]))
        offset += len(path) * sides
    v = np.concatenate(verts)
    # (ring k, ring k + 1) quads wound so that the normals point away from the tube's axis.
    return v, np.concatenate(tris), np.tile(np.asarray(color), (len(v), 1))


# ---------------------------------------------------------------------------------------------------
# Assembly


def build_head(ident: Identity, spacing: float = 2.0) -> HeadModel:
    """Mesh ``ident``'s neutral head with skin grid ``spacing`` (mm; see :func:`mesh_spacing`)."""
    lay = make_layout(ident)
    rng = np.random.default_rng(ident.texture_seed)
    origins, dirs, theta, seam_row = _skin_grid(lay, spacing)
    n_rows, n_cols = origins.shape[:2]
    fn = lambda p: head_sdf(p, ident, lay)  # noqa: E731
    dist = cast_grid(origins, dirs, fn)
    grid = origins + dist[..., None] * dirs
    index = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    verts = grid.reshape(-1, 3)
    inward = -dirs.reshape(-1, 3)

    # Cut the lips apart along the mouth line.
    seam_x = grid[seam_row, :, 0]
    mouth_cols = np.flatnonzero((np.abs(seam_x) < lay.mouth_width) & (grid[seam_row, :, 2] > 0))
    lower_index = index.copy()
    lower_index[seam_row, mouth_cols] = len(verts) + np.arange(len(mouth_cols))
    verts = np.concatenate([verts, verts[index[seam_row, mouth_cols]]])
    inward = np.concatenate([inward, inward[index[seam_row, mouth_cols]]])
    tri_lower = _grid_triangles(lower_index[: seam_row + 1], theta)
    tri_upper = _grid_triangles(index[seam_row:], theta)
    skin_tris = np.concatenate([tri_lower, tri_upper])
    n_skin = len(verts)
    lip_side = np.sign(verts[:, 1] - lay.mouth_y)
    lip_side[index[seam_row]] = 0.0
    lip_side[index[seam_row, mouth_cols]] = 1.0
    lip_side[n_rows * n_cols :] = -1.0

    normals = vertex_normals(verts, skin_tris)
    occlusion = np.zeros(n_skin)
    for delta in (2.0, 5.0, 10.0):
        occlusion += np.clip(fn(verts + delta * normals) / delta, 0.0, 1.0)
    occlusion /= 3.0

    albedo, specular, hair = _skin_colors(ident, lay, verts, normals, rng)
    if ident.hair_style == "long":
        _long_hair(ident, dist, origins, theta, albedo, hair, rng)
    albedo *= (0.45 + 0.55 * occlusion)[:, None]
    verts = verts - inward * hair[:, None]
    skin_parts = np.where(hair[skin_tris].mean(1) > 0.3, Part.HAIR, Part.SKIN)

    jaw = _jaw_weights(lay, verts, lip_side)

    pieces_v = [verts]
    pieces_t = [skin_tris]
    pieces_p = [skin_parts]
    pieces_a = [albedo]
    pieces_s = [specular]
    pieces_j = [jaw]
    shininess = [np.where(hair > 0.3, 12.0, 18.0)]
    offset = n_skin

    def add(v, t, part, color, spec, shine, jaw_w):
        nonlocal offset
        pieces_v.append(v)
        pieces_t.append(t + offset)
        pieces_p.append(np.broadcast_to(np.asarray(part, np.uint8), (len(t),)).copy())
        pieces_a.append(np.asarray(color, float))
        pieces_s.append(np.full(len(v), spec))
        shininess.append(np.full(len(v), shine))
        pieces_j.append(np.asarray(jaw_w, float))
        offset += len(v)

    # Eyeballs: pupil, iris (with a dark limbal ring) and sclera as rings around the gaze axis.
    iris_angle = np.arcsin(IRIS_RADIUS / EYE_RADIUS)
    pupil_angle = np.arcsin(2.1 / EYE_RADIUS)
    rings = np.array([0.5, 1.0, 1.0001, 1.5, 2.2, 2.7, 2.9999, 3.0]) / 3.0 * iris_angle
    rings[1] = pupil_angle
    rings[2] = pupil_angle + 1e-3
    rings = np.concatenate([rings, np.linspace(iris_angle + 0.08, np.radians(105.0), 8)])
    pupils = []
    eyeballs = []
    for i, part in ((0, Part.EYE_RIGHT), (1, Part.EYE_LEFT)):
        center = (lay.eye_x[i], lay.eye_y[i], CORNEA_Z - EYE_RADIUS)
        ev, et = _sphere_cap(center, EYE_RADIUS, rings, 28)
        pupils.append(offset)  # the cap's first vertex is its apex
        polar = np.arccos(np.clip((ev[:, 2] - center[2]) / EYE_RADIUS, -1, 1))
        ev[:, 2] += cornea_bulge(polar)
        iris = np.array(ident.iris)
        color = np.where(
            (polar <= pupil_angle)[:, None],
            [[0.02, 0.02, 0.02]],
            np.where(
                (polar <= iris_angle - 1e-6)[:, None],
                iris * (0.6 + 0.5 * (polar / iris_angle))[:, None],
                [SCLERA] * (1.0 - 0.4 * sdf.smoothstep(0.6, 1.4, polar))[:, None],
            ),
        )
        color[np.isclose(polar, rings[6]) | np.isclose(polar, rings[7])] = iris * 0.4
        color = color * EYEBALL_OCCLUSION
        # The lids' shadow on the eyeball follows the lid margin per expression (expressions._open_eyes).
        eyeballs.append((offset, offset + len(ev)))
        add(ev, et, part, color, 0.5, 60.0, np.zeros(len(ev)))

    # Ears attach to the side of the skull near the ear canal.
    band_rows = np.flatnonzero(dirs[:, 0, 1] == 0.0)
    ear_row = int(band_rows[np.argmin(np.abs(origins[band_rows, 0, 1] + 14.0))])
    for side in () if ident.hair_style == "long" else (-1, 1):  # long hair covers the ears
        col = int(np.argmin(np.abs(theta - side * np.pi / 2)))
        ev, et, shade = _ear(ident, side, abs(grid[ear_row, col, 0]))
        ecol = np.array(ident.skin) * np.array([1.02, 0.95, 0.95]) * shade[:, None]
        add(ev, et, Part.EAR, ecol, 0.04, 15.0, np.zeros(len(ev)))

    for v, t, part, color, jaw_w in _mouth_interior(lay):
        add(v, t, part, color, 0.25 if np.any(part == Part.TEETH) else 0.1, 30.0, jaw_w)

    if ident.glasses is not None:
        col = int(np.argmin(np.abs(theta - np.pi / 2)))
        gv, gt, gc = _glasses(lay, ident.glasses, abs(grid[ear_row, col, 0]) + 6.0)
        add(gv, gt, Part.GLASSES, gc, 0.5, 40.0, np.zeros(len(gv)))

    vertices = np.concatenate(pieces_v)
    eyes = tuple(_eye_rig(lay, i, verts[:n_skin], inward) for i in (0, 1))
    box = _box_vertices(lay, verts[:n_skin])
    seam = np.stack([index[seam_row, mouth_cols], lower_index[seam_row, mouth_cols]], -1)
    landmarks = _landmark_vertices(lay, verts[:n_skin], seam, pupils)
    return HeadModel(
        identity=ident,
        layout=lay,
        vertices=vertices,
        triangles=np.concatenate(pieces_t).astype(np.int32),
        parts=np.concatenate(pieces_p).astype(np.uint8),
        albedo=np.concatenate(pieces_a).astype(np.float32),
        specular=np.concatenate(pieces_s).astype(np.float32),
        shininess=np.concatenate(shininess).astype(np.float32),
        jaw=np.concatenate(pieces_j).astype(np.float32),
        lip_side=np.concatenate([lip_side, np.zeros(len(vertices) - n_skin)]).astype(np.float32),
        seam=seam,
        skin_count=n_skin,
        eyes=eyes,
        box=box,
        landmarks=landmarks,
        eyeballs=tuple(eyeballs),
    )


def _eye_rig(lay: Layout, i: int, skin: np.ndarray, inward: np.ndarray) -> EyeRig:
    side = -1 if i == 0 else 1
    ex, ey = lay.eye_x[i], lay.eye_y[i]
    region = np.flatnonzero(
        (np.abs(skin[:, 0] - ex) < lay.eye_width + 5.0) & (np.abs(skin[:, 1] - ey) < 11.0) & (skin[:, 2] > CORNEA_Z - 14.0)
    )
    inner_x = ex - side * 0.95 * lay.eye_width
    outer_x = ex + side * 1.05 * lay.eye_width
    return EyeRig(
        side=side,
        vertices=region,
        x=skin[region, 0].copy(),
        y=skin[region, 1].copy(),
        inward=inward[region].copy(),
        inner_x=inner_x,
        outer_x=outer_x,
        # The corner line passes just below the pupil whatever the tilt, so that a relaxed upper lid
        # overlaps the top of the iris and the lower lid meets its bottom (pupil to upper margin about
        # 4 mm, to lower margin about 5 mm).
        inner_y=ey - 0.2 - 0.5 * lay.eye_tilt,
        outer_y=ey - 0.2 + 0.5 * lay.eye_tilt,
        upper=lay.eye_open * 0.9,
        lower=lay.eye_open * 0.95,
    )


def _brow_centre(lay: Layout, i: int) -> tuple[float, float]:
    """(x, y) of the middle of brow ``i`` (0 = right, 1 = left): the band :func:`_skin_colors` draws, at t = 1/2."""
    ex = lay.eye_x[i]
    inner = abs(ex) - lay.eye_width + 1.0
    outer = abs(ex) + lay.eye_width + 7.0
    x = np.sign(ex) * 0.5 * (inner + outer)
    y = lay.brow_y[i] - 1.5 + lay.brow_arch * np.sin(np.pi * 0.5**0.8)
    return float(x), float(y)


def _landmark_vertices(lay: Layout, skin: np.ndarray, seam: np.ndarray, pupils: list[int]) -> dict[str, np.ndarray]:
    """Vertices of every :data:`LANDMARKS` point (see :class:`HeadModel`)."""

    def nearest_front(x: float, y: float, min_z: float) -> np.ndarray:
        d = np.hypot(skin[:, 0] - x, skin[:, 1] - y)
        return np.array([int(np.argmin(np.where(skin[:, 2] > min_z, d, np.inf)))])

    seam_x = skin[seam[:, 0], 0]
    tx, ty, _ = lay.nose_tip
    return {
        "left_eye": np.array([pupils[1]]),
        "right_eye": np.array([pupils[0]]),
        "left_brow": nearest_front(*_brow_centre(lay, 1), min_z=30.0),
        "right_brow": nearest_front(*_brow_centre(lay, 0), min_z=30.0),
        "nose": nearest_front(tx, ty, min_z=CORNEA_Z),
        "mouth": seam[int(np.argmin(np.abs(seam_x)))],
        "mouth_left": seam[int(np.argmax(seam_x))],
        "mouth_right": seam[int(np.argmin(seam_x))],
    }


def _box_vertices(lay: Layout, skin: np.ndarray) -> np.ndarray:
    """Skin vertices whose projections bound the face the way a face detector's box would."""
    targets = [
        (0.0, max(lay.brow_y) + 14.0, 200.0),
        (0.0, lay.chin_y, 200.0),
        (-lay.face_width, -5.0, 0.0),
        (lay.face_width, -5.0, 0.0),
        (-lay.jaw_width, lay.chin_y + 30.0, 0.0),
        (lay.jaw_width, lay.chin_y + 30.0, 0.0),
        (-lay.face_width + 8.0, max(lay.brow_y) + 10.0, 0.0),
        (lay.face_width - 8.0, max(lay.brow_y) + 10.0, 0.0),
        lay.nose_tip,
    ]
    candidates = np.flatnonzero(skin[:, 2] > -10.0)
    pts = skin[candidates]
    midline = np.abs(pts[:, 0]) < 1e-6
    out = []
    for tx, ty, tz in targets:
        if tz == 200.0 and ty == lay.chin_y:
            # The lowest point of the chin's front on the midline.
            chin_front = midline & (pts[:, 2] > lay.chin_z - 25.0) & (pts[:, 1] > lay.chin_y - 30.0)
            score = np.where(chin_front, pts[:, 1], np.inf)
        elif tz == 200.0:
            score = np.where(midline, np.abs(pts[:, 1] - ty), np.inf)
        else:
            score = np.abs(pts[:, 0] - tx) + np.abs(pts[:, 1] - ty) + np.abs(pts[:, 2] - tz) * 0.2
        out.append(candidates[int(np.argmin(score))])
    return np.array(out)


def _jaw_weights(lay: Layout, v: np.ndarray, lip_side: np.ndarray) -> np.ndarray:
    """How much each skin vertex follows the jaw when it opens (1 = rigidly)."""
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    ax = np.abs(x)
    # Boundary: the mouth line between the corners, then a line up and back towards the jaw joint.
    corner = lay.mouth_width
    rise = np.clip(ax - corner, 0.0, None)
    boundary = lay.mouth_y + 0.55 * rise
    width = 0.5 + 0.35 * rise
    w = sdf.smoothstep(width, -width, y - boundary)
    inside = ax < corner
    w = np.where(inside & (lip_side < 0), 1.0, w)
    w = np.where(inside & (lip_side > 0), 0.0, w)
    # The lip corners are anchored in the cheek (the modiolus) and stay closed, the skin around them
    # follows the jaw more with distance, so an open mouth is an oval, not a rectangle.
    w = w * (1.0 - np.exp(-(((ax - corner) / 8.0) ** 2) - ((y - lay.mouth_y) / 7.0) ** 2))
    # Behind the jaw and down the neck the skin stays with the skull.
    w = w * sdf.smoothstep(lay.chin_y - 35.0, lay.chin_y - 10.0, y + 0.25 * np.clip(z, 0, None))
    w = w * sdf.smoothstep(-15.0, 15.0, z)
    return w


def _skin_colors(ident: Identity, lay: Layout, v: np.ndarray, n: np.ndarray, rng: np.random.Generator):
    """Per-vertex albedo and specular strength of the skin grid, and the hair thickness to add."""
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    ax = np.abs(x)
    mirror = ident.mirror_texture
    skin = np.array(ident.skin)
    blotch = Noise(rng, 40.0, mirror=mirror)(v)
    fine = Noise(rng, 9.0, waves=10, mirror=mirror)(v)
    albedo = skin[None, :] * (1.0 + 0.045 * blotch[:, None] + 0.025 * fine[:, None])
    spec = np.full(len(v), 0.05)
    front = sdf.smoothstep(-10.0, 30.0, z)

    # Cheeks and nose a little redder, eye surroundings a little darker.
    for i in (0, 1):
        cx = lay.eye_x[i] * 1.25
        blush = np.exp(-(((x - cx) / 16.0) ** 2 + ((y + 28.0) / 14.0) ** 2)) * front
        albedo *= 1.0 + blush[:, None] * np.array([0.03, -0.035, -0.03])
        under = np.exp(-(((x - lay.eye_x[i]) / 12.0) ** 2 + ((y - lay.eye_y[i] + 9.0) / 4.0) ** 2)) * front
        albedo *= (1.0 - 0.08 * under)[:, None]
    nose = np.exp(-((x / 10.0) ** 2 + ((y - lay.nose_tip[1]) / 9.0) ** 2)) * front
    albedo *= 1.0 + nose[:, None] * np.array([0.04, -0.03, -0.03])
    spec += 0.06 * nose + 0.04 * np.exp(-((x / 30.0) ** 2 + ((y - 45.0) / 20.0) ** 2)) * front

    # Nostrils: dark ellipses on the underside of the nose.
    for side in (-1.0, 1.0):
        nx = lay.nose_tip[0] + side * (lay.nose_width * 0.42)
        d = ((x - nx) / (lay.nose_width * 0.3)) ** 2 + ((y - lay.nose_base_y - 2.5) / 2.6) ** 2
        nostril = np.clip(1.4 - d, 0, 1) * (n[:, 1] < -0.35) * (z > CORNEA_Z + 2.0)
        albedo *= (1.0 - 0.8 * nostril)[:, None]

    # Lips: the red part, with a cupid's bow on the upper lip; both lips thin out towards the corners,
    # the upper one over its outer half, the fuller lower one over its outer third.
    u = np.clip(ax / lay.mouth_width, 0.0, 1.0)
    bow = 0.85 + 0.25 * np.exp(-(((ax - 5.0) / 3.5) ** 2)) - 0.2 * np.exp(-((x / 2.0) ** 2))
    upper_edge = lay.mouth_y + lay.upper_lip * bow * (1 - u**1.6)
    lower_edge = lay.mouth_y - lay.lower_lip * (1 - u**2.2) ** 0.9
    below_top = sdf.smoothstep(upper_edge + 0.7, upper_edge - 0.7, y)
    between = below_top * sdf.smoothstep(lower_edge - 0.7, lower_edge + 0.7, y)
    lip_mask = between * sdf.smoothstep(lay.mouth_width + 1.0, lay.mouth_width - 2.0, ax) * (z > lay.lip_z - 16.0)
    lip = np.array(ident.lip_color)
    albedo = albedo * (1 - lip_mask[:, None]) + lip[None, :] * (1.0 + 0.03 * fine[:, None]) * lip_mask[:, None]
    # Where the lips meet, each shades the other: closed lips show a dark line, not a pale band.
    stomion = np.exp(-(((y - lay.mouth_y) / 1.6) ** 2)) * lip_mask
    # The corners (commissures) are small recesses where the lips fold into the cheek: the darkest
    # points of a closed mouth.
    commissure = np.exp(-(((ax - lay.mouth_width) / 2.5) ** 2) - ((y - lay.mouth_y) / 2.0) ** 2) * (z > lay.lip_z - 16.0)
    albedo *= np.clip(1.0 - 0.55 * stomion - 0.45 * commissure, 0.3, 1.0)[:, None]
    spec += 0.12 * lip_mask * (1.0 - stomion)

    # Brows: a tapered band along an arched curve, hair-coloured with soft edges.
    brow_color = np.array(ident.brow_color)
    brow_alpha = np.zeros(len(v))
    for i in (0, 1):
        ex = lay.eye_x[i]
        sgn = np.sign(ex)
        inner = abs(ex) - lay.eye_width + 1.0
        outer = abs(ex) + lay.eye_width + 7.0
        t = (sgn * x - inner) / (outer - inner)
        arch = lay.brow_arch * np.sin(np.pi * np.clip(t, 0, 1) ** 0.8)
        centre = lay.brow_y[i] - 1.5 + arch - 8.0 * np.clip(t - 0.75, 0, 1)
        thick = lay.brow_thickness * (1.0 - 0.55 * np.clip(t, 0, 1))
        d = np.abs(y - centre) / (0.5 * thick)
        along = sdf.smoothstep(-0.05, 0.04, t) * sdf.smoothstep(1.05, 0.95, t)
        brow_alpha = np.maximum(brow_alpha, sdf.smoothstep(1.3, 0.55, d) * along * (z > 30.0))
    brow_alpha *= 0.9 + 0.1 * fine
    albedo = albedo * (1 - brow_alpha[:, None]) + brow_color[None, :] * brow_alpha[:, None]

    # Beard and stubble.
    if ident.beard > 0:
        below_cheeks = sdf.smoothstep(-5.0, -20.0, y)
        jaw_region = below_cheeks * sdf.smoothstep(lay.chin_y - 30.0, lay.chin_y - 15.0, y) * (z > -10.0)
        cheek_cut = sdf.smoothstep(lay.nose_base_y - 2.0, lay.mouth_y + 5.0, y + 0.25 * np.clip(ax - 20.0, 0, None))
        beard = jaw_region * np.maximum(cheek_cut, 0.0) * (1.0 - 0.9 * lip_mask)
        upper_lip = np.exp(-(((y - (lay.nose_base_y + lay.mouth_y) * 0.5) / 5.0) ** 2))
        moustache = upper_lip * (ax < lay.mouth_width + 4.0) * (z > 40)
        beard = np.clip(np.maximum(beard, moustache * (1 - lip_mask)), 0.0, 1.0) * ident.beard * (0.92 + 0.08 * blotch)
        hair_rgb = np.array(ident.hair_color)
        albedo = albedo * (1 - beard[:, None]) + hair_rgb[None, :] * beard[:, None]

    albedo, hair = _hair(ident, lay, v, albedo, rng)
    spec = np.where(hair > 0.3, 0.08, spec)
    return np.clip(albedo, 0.0, 1.0), spec, hair


def _long_hair(
    ident: Identity,
    dist: np.ndarray,
    origins: np.ndarray,
    theta: np.ndarray,
    albedo: np.ndarray,
    hair: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Long hair falls from the sides and back of the head past the neck: thicken the grid there (in place)."""
    rows, cols = dist.shape
    y = origins[:, 0, 1][:, None] * np.ones((1, cols))
    side = sdf.smoothstep(np.radians(68.0), np.radians(84.0), np.abs(theta))[None, :]
    # Radius of the hair curtain per column: the widest the head gets around the ears, plus volume.
    head_rows = np.flatnonzero((origins[:, 0, 1] > -45.0) & (origins[:, 0, 1] < 29.0))
    outer = dist[head_rows].max(0) + 8.0 * ident.hair_volume
    bottom = -150.0 - 35.0 * float(rng.uniform())
    fall = sdf.smoothstep(25.0, 0.0, y) * sdf.smoothstep(bottom - 15.0, bottom + 10.0, y)
    grid_hair = hair[: rows * cols].reshape(rows, cols)
    extra = np.maximum(outer[None, :] - dist - grid_hair, 0.0) * fall * side
    grid_hair += extra
    cover = np.clip(extra / 3.0, 0.0, 1.0).reshape(-1)
    hair_rgb = np.array(ident.hair_color)
    grid_albedo = albedo[: rows * cols]
    grid_albedo *= (1 - cover)[:, None]
    grid_albedo += hair_rgb[None, :] * cover[:, None]


def _hair(ident: Identity, lay: Layout, v: np.ndarray, albedo: np.ndarray, rng: np.random.Generator):
    """Hair colour and thickness on the skin grid, by style, hairline height and volume."""
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    style = ident.hair_style
    az = np.degrees(np.arctan2(np.abs(x), z - AXIS_Z))  # 0 front, 90 side, 180 back
    hairline = lay.hairline_y
    # Hairline height around the head: forehead, temples, sideburns, above the ear, nape.
    knots = np.array([0.0, 30.0, 55.0, 72.0, 84.0, 100.0, 125.0, 180.0])
    heights = {
        "buzz": [hairline, hairline - 6, 30, 8, 12, 15, -40, -60],
        "short": [hairline, hairline - 8, 28, -8, 12, 14, -45, -62],
        "medium": [hairline, hairline - 6, 26, -10, 0, -5, -55, -70],
        "bangs": [lay.brow_y[0] + 7, lay.brow_y[0] + 9, 20, -12, -5, -15, -65, -80],
        "long": [hairline, hairline - 4, 20, -20, -55, -70, -100, -120],
        "curly": [hairline, hairline - 5, 24, -5, 5, 0, -55, -68],
        "bald": [90, 80, 65, 15, 12, 14, -40, -55],
    }[style]
    volume = {"buzz": 2.0, "short": 7.0, "medium": 12.0, "bangs": 12.0, "long": 12.0, "curly": 20.0, "bald": 1.0}[style]
    line = np.interp(az, knots, heights)
    # Softer edges where the grid is coarse (sides and back) keep the hairline from looking stepped.
    edge = (1.5 if style in ("buzz", "bald") else 2.5) * (1.0 + 1.5 * sdf.smoothstep(50.0, 130.0, az))
    # Bald: a fringe of short hair around the back and sides only.
    keep = sdf.smoothstep(60.0, 90.0, az) * sdf.smoothstep(45.0, 30.0, y) if style == "bald" else 1.0
    mask = sdf.smoothstep(line - edge, line + edge, y) * keep
    noise = Noise(rng, 6.0, waves=12, mirror=ident.mirror_texture)(v * np.array([1.0, 0.25, 1.0]))
    coarse = Noise(rng, 25.0, mirror=ident.mirror_texture)(v)
    hair_rgb = np.array(ident.hair_color)
    shade = 1.0 + 0.25 * noise + 0.1 * coarse
    cover = {"buzz": 0.7, "bald": 0.55}.get(style, 1.0)
    alpha = mask * cover
    albedo = albedo * (1 - alpha[:, None]) + (hair_rgb[None, :] * shade[:, None]) * alpha[:, None]
    # The volume ramps up more gently than the colour so that the hairline is not a stepped ledge.
    thickness = volume * ident.hair_volume * sdf.smoothstep(line - 2.0 * edge, line + 3.0 * edge, y) * keep
    # Thinner over the temples and the sides, thicker on top; curls are lumpy.
    thickness *= 0.55 + 0.45 * sdf.smoothstep(0.0, 60.0, y)
    # Locks and curls make the surface lumpy instead of a smooth cap.
    thickness *= 1.0 + (0.25 if style == "curly" else 0.12) * noise + 0.1 * coarse
    if style == "bangs":
        fringe = sdf.smoothstep(50.0, 20.0, az) * sdf.smoothstep(lay.brow_y[0] + 40.0, lay.brow_y[0] + 8.0, y)
        thickness = np.maximum(thickness, 4.0 * mask * fringe)
    return albedo, thickness
