"""Rendering a head at a pose: expression, lighting, camera, face crop, background.

Pose convention (the same everywhere in phanet): **yaw** is the rotation about the vertical axis;
positive yaw turns the face towards the viewer's right (the subject turns to their own left and
shows their right cheek; the nose points to the right of the image); at +90 the image is a profile of
the subject's right side and the left eye is hidden. **Pitch** is the rotation about the horizontal
axis; positive pitch means looking up. Mirroring an image horizontally turns yaw y into -y (exactly,
for a symmetric head, as the tests check).

The camera looks at the head from 0.5 to 2 m (1 m in :meth:`Scene.plain`) with perspective and a
random exposure, lights are fixed to the camera (so a turning head sees them from changing
directions), and the image is cropped the way a face detector would: a square around the projected
face landmarks, which fill about 75% of its side, with a small random scale and offset.

Every render also projects the head's named points (:data:`~phanet.synth.head.LANDMARKS`: eye
and brow centres, nose tip, mouth centre and corners) with the same camera and crop, in normalised
coordinates of the final image (x to the right, y down, [0, 1] across it; pixel (row i, column j)
spans [j, j + 1] / size x [i, i + 1] / size), each flagged hidden where the head itself covers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from phanet.errors import PhanetError
from phanet.synth import expressions as ex
from phanet.synth import sdf
from phanet.synth.head import LANDMARKS, HeadModel, Noise, Part, vertex_normals
from phanet.synth.presets import MAX_PITCH, MAX_YAW
from phanet.synth.raster import rasterize

#: Distance from the camera to the head's origin (mm) in :meth:`Scene.plain`; :func:`sample_scene` draws 0.5 to 2 m.
CAMERA_DISTANCE = 1000.0
#: Face-landmark box size over crop size, before jitter.
FACE_FILL = 0.75
BACKGROUNDS = ("flat", "gradient", "noise")
#: :func:`sample_scene`'s ranges: the key light's azimuth (± degrees) and elevation (degrees), the fill
#: light's and the ambient light's strength.
KEY_AZIMUTH = 45.0
KEY_ELEVATION = (0.0, 50.0)
FILL_STRENGTH = (0.1, 0.35)
AMBIENT = (0.25, 0.45)
#: A landmark is hidden when a surface that covers it is more than this much nearer to the camera (mm):
#: points in a crease (mouth corners), under a closed lid, a lock of hair or a glasses rim still count
#: as seen; points behind the nose, a cheek or the head (tens of mm) do not.
OCCLUSION_TOLERANCE = 12.0
#: Radius of curvature of the cornea (mm), the mirror in which the key light shows as a catchlight.
CORNEA_RADIUS = 7.8
#: A catchlight shows while its point on the cornea lies within this angle of the eye's axis (over the iris).
CATCHLIGHT_ANGLE = 38.0
#: Size (Gaussian sd, mm) and brightness (linear, times the key light) of a catchlight.
CATCHLIGHT_SD = 0.35
CATCHLIGHT_GAIN = 1.6
#: Fine skin texture (:func:`skin_texture`): relative depth of the colour's mottling and of the highlight's grain.
SKIN_MOTTLE = 0.03
SKIN_SHEEN_GRAIN = 0.8
#: Wavelengths (mm) of the skin's mottling and of the pores and fine lines that break up its highlight.
MOTTLE_WAVELENGTH = 2.5
PORE_WAVELENGTH = 0.9


@dataclass(frozen=True)
class Scene:
    """Everything about an image that is not the person, the expression or the pose.

    ``light``: unit vector towards the key light in camera space (x right, y up, z towards the
    camera); ``light_strength``, ``fill_strength`` (a dim light from the other side) and ``ambient``
    scale the lighting, ``tint`` its colour. ``background``: one of :data:`BACKGROUNDS` drawn with
    ``colors`` (a gradient along ``angle``; noise seeded by ``texture_seed``). ``scale`` and ``shift``
    (fractions of the crop side) jitter the crop; ``blur`` (pixels at 112 px) and ``noise`` (grey
    levels) degrade the image. ``distance`` (mm from the camera to the head) sets the perspective, from a
    close webcam's to a portrait lens's; ``exposure`` scales the light the sensor collects.
    """

    light: tuple[float, float, float]
    light_strength: float
    fill_strength: float
    ambient: float
    tint: tuple[float, float, float]
    background: str
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    angle: float
    scale: float
    shift: tuple[float, float]
    blur: float
    noise: float
    texture_seed: int
    distance: float = CAMERA_DISTANCE
    exposure: float = 1.0

    @staticmethod
    def plain() -> Scene:
        """Frontal light, flat grey background, no crop jitter, blur or noise (for tests and figures)."""
        return Scene(
            light=(0.0, 0.3, 0.954),
            light_strength=0.85,
            fill_strength=0.0,
            ambient=0.35,
            tint=(1.0, 1.0, 1.0),
            background="flat",
            colors=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            angle=0.0,
            scale=1.0,
            shift=(0.0, 0.0),
            blur=0.0,
            noise=0.0,
            texture_seed=0,
        )


def sample_scene(rng: np.random.Generator) -> Scene:
    """A random key light (azimuth within ±45°, elevation 0° to 50°), fill and ambient levels, background, crop jitter,
    camera distance (0.5 to 2 m) and exposure (±0.4 stops)."""
    azimuth = rng.uniform(-KEY_AZIMUTH, KEY_AZIMUTH)
    elevation = rng.uniform(*KEY_ELEVATION)
    a, e = np.radians(azimuth), np.radians(elevation)
    light = (float(np.sin(a) * np.cos(e)), float(np.sin(e)), float(np.cos(a) * np.cos(e)))
    warm = rng.uniform(-0.06, 0.06)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    # Mostly muted colours, as in studio and indoor photos; some nearly grey.
    saturation = rng.uniform(0.0, 0.25)
    c0 = np.clip(rng.uniform(0.1, 0.9) + saturation * rng.normal(0.0, 0.4, 3), 0.0, 1.0)
    c1 = np.clip(c0 + rng.normal(0.0, 0.12, 3), 0.0, 1.0)
    return Scene(
        light=light,
        light_strength=float(rng.uniform(0.6, 1.0)),
        fill_strength=float(rng.uniform(*FILL_STRENGTH)),
        ambient=float(rng.uniform(*AMBIENT)),
        tint=(1.0 + warm, 1.0, 1.0 - warm),
        background=background,
        colors=(tuple(float(c) for c in c0), tuple(float(c) for c in c1)),
        angle=float(rng.uniform(0.0, 2 * np.pi)),
        scale=float(np.exp(rng.uniform(np.log(0.92), np.log(1.08)))),
        shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
        blur=float(rng.uniform(0.0, 0.6)),
        noise=float(rng.uniform(0.0, 3.0)),
        texture_seed=int(rng.integers(2**31 - 1)),
        distance=float(np.exp(rng.uniform(np.log(500.0), np.log(2000.0)))),
        exposure=float(2.0 ** rng.uniform(-0.4, 0.4)),
    )


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """Head-to-camera rotation R = Rx(pitch) Ry(yaw), composed like OpenFace's head pose (R = Rx Ry Rz).

    Yaw turns the head about the vertical axis (positive: the face turns to the viewer's right), then
    pitch tilts it about the camera's horizontal axis (positive: looking up), so a profile stays
    upright in the image at any pitch.
    """
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), np.sin(b)], [0.0, -np.sin(b), np.cos(b)]])
    return np.einsum("ij,jk->ik", rx, ry)


def _apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Written out rather than a matrix product so results never depend on BLAS threading.
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    return np.stack(
        [
            r[0, 0] * x + r[0, 1] * y + r[0, 2] * z,
            r[1, 0] * x + r[1, 1] * y + r[1, 2] * z,
            r[2, 0] * x + r[2, 1] * y + r[2, 2] * z,
        ],
        -1,
    )


def _dot(v: np.ndarray, d: np.ndarray) -> np.ndarray:
    return v[:, 0] * d[0] + v[:, 1] * d[1] + v[:, 2] * d[2]


def shade(
    albedo: np.ndarray, normals: np.ndarray, specular: np.ndarray, shininess: np.ndarray, scene: Scene
) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex colour (linear light) under the scene's key light, fill light and ambient light:
    the diffuse part (N, 3) and the specular highlight's strength (N,; its colour is the light's tint)."""
    light = np.asarray(scene.light)
    fill = np.array([-light[0], 0.1, np.sqrt(max(0.0, 1.0 - light[0] ** 2 - 0.01))])
    nl = _dot(normals, light)
    # Wrapped diffuse softens the terminator the way light scattering under skin does.
    diffuse = np.clip((nl + 0.2) / 1.2, 0.0, 1.0) * scene.light_strength
    diffuse += np.clip((_dot(normals, fill) + 0.2) / 1.2, 0.0, 1.0) * scene.fill_strength
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    nh = np.clip(_dot(normals, half), 0.0, 1.0)
    spec = specular * nh**shininess * scene.light_strength * (nl > 0)
    tint = np.asarray(scene.tint)
    return (albedo * ((scene.ambient + diffuse)[:, None] * tint)).astype(np.float32), spec.astype(np.float32)


def background(scene: Scene, size: int) -> np.ndarray:
    """Background image (H, W, 3) float32 in display units [0, 1]."""
    c0, c1 = np.asarray(scene.colors[0], np.float32), np.asarray(scene.colors[1], np.float32)
    if scene.background == "flat":
        return np.broadcast_to(c0, (size, size, 3)).copy()
    if scene.background == "gradient":
        t = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        ramp = np.cos(scene.angle) * t[None, :] + np.sin(scene.angle) * t[:, None]
        ramp = np.clip(ramp / 1.2 + 0.5, 0.0, 1.0)[..., None]
        return c0 * (1 - ramp) + c1 * ramp
    rng = np.random.default_rng(scene.texture_seed)
    out = np.zeros((size, size), np.float32)
    for cells, weight in ((3, 0.5), (7, 0.3), (17, 0.2)):
        grid = rng.uniform(0.0, 1.0, (cells, cells)).astype(np.float32)
        out += weight * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    t = np.clip(out, 0.0, 1.0)[..., None]
    return c0 * (1 - t) + c1 * t


@dataclass
class Render:
    """An image (H, W, 3) uint8, its landmarks and, on request, the head part seen at each pixel (-1 = background).

    ``landmarks`` is (len(LANDMARKS), 3) float: x, y in normalised image coordinates and 1.0 where the
    point is visible, 0.0 where the head itself hides it (the far eye at ±90°) or it lies outside the image.
    """

    image: np.ndarray
    landmarks: np.ndarray
    parts: np.ndarray | None = None


def surface_depth(points: np.ndarray, xy: np.ndarray, depth: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Depth (mm) of the nearest camera-facing triangle over each of ``points`` (K, 2, pixels); -inf where none.

    The exact z-buffer value at those positions, not at pixel centres: ``xy`` (N, 2) and ``depth`` (N,)
    of the vertices, ``triangles`` (M, 3) culled like :func:`~phanet.synth.raster.rasterize` does.
    """
    a, b, c = xy[triangles[:, 0]], xy[triangles[:, 1]], xy[triangles[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    front = area < -1e-6
    a, b, c, area, tri = a[front], b[front], c[front], area[front], triangles[front]
    dx = points[:, None, 0] - a[None, :, 0]
    dy = points[:, None, 1] - a[None, :, 1]
    l1 = ((c[:, 1] - a[:, 1]) * dx - (c[:, 0] - a[:, 0]) * dy) / area
    l2 = ((a[:, 1] - b[:, 1]) * dx + (b[:, 0] - a[:, 0]) * dy) / area
    eps = -1e-6
    inside = (l1 >= eps) & (l2 >= eps) & (l1 + l2 <= 1.0 - eps)
    z0 = depth[tri[:, 0]]
    z = z0 + l1 * (depth[tri[:, 1]] - z0) + l2 * (depth[tri[:, 2]] - z0)
    return np.where(inside, z, -np.inf).max(axis=1)


def texture_weight(period: float) -> float:
    """How much of a texture wave of ``period`` pixels an image shows: what a pixel's area leaves of it
    (sinc(1 / period)), faded in between 2 and 3 pixels and nothing at 2 or fewer (the sampling limit),
    so that it neither aliases into noise nor switches on abruptly as the image grows."""
    if period <= 2.0:
        return 0.0
    x = np.pi / period
    return float(np.sin(x) / x * sdf.smoothstep(2.0, 3.0, period))


def skin_texture(head: HeadModel, points: np.ndarray, pixels_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Fine texture of the skin at ``points`` (K, 3) of the neutral head, finer than its mesh: factors
    for the diffuse colour (mottling, about ±3 % at 2.5 mm) and for the highlight (broken up by
    pores and fine lines, so the skin shines in flecks instead of like plastic), each weighted by
    :func:`texture_weight` at this image's ``pixels_per_mm``."""
    rng = np.random.default_rng([head.identity.texture_seed, 7])
    mirror = head.identity.mirror_texture

    def layer(wavelength: float) -> np.ndarray:
        noise = Noise(rng, wavelength, waves=12, mirror=mirror)  # drawn even when faded: same rng sequence
        weight = texture_weight(wavelength * pixels_per_mm)
        return noise(points) * weight if weight > 0 else np.zeros(len(points))

    m = layer(MOTTLE_WAVELENGTH)
    p = layer(PORE_WAVELENGTH)
    grain = 1.0 + SKIN_MOTTLE * m
    sheen = np.clip(1.0 + SKIN_SHEEN_GRAIN * (0.7 * p + 0.5 * m), 0.0, None)
    return grain.astype(np.float32), sheen.astype(np.float32)


def _catchlight(
    color: np.ndarray, eye: np.ndarray, apex: np.ndarray, axis: np.ndarray, scene: Scene, project, pixels_per_mm: float
) -> None:
    """Add the key light's reflection on the cornea to ``color`` (H, W, 3, linear; in place).

    The cornea is a sphere of :data:`CORNEA_RADIUS` behind the eye's apex ``apex`` along its ``axis``
    (camera space); the light shows where its normal halves the directions to the light and to the
    camera, and only on pixels of this eye (``eye`` mask), so a lid or the nose hides it.
    """
    centre = apex - CORNEA_RADIUS * axis
    view = np.array([0.0, 0.0, scene.distance]) - centre
    half = np.asarray(scene.light, float) + view / np.linalg.norm(view)
    half /= np.linalg.norm(half)
    if float(half @ axis) < np.cos(np.radians(CATCHLIGHT_ANGLE)):
        return
    x, y = project(centre + CORNEA_RADIUS * half)
    # Below about a pixel the spot keeps its light, not its peak: a camera spreads it over the pixel.
    sd = max(CATCHLIGHT_SD * pixels_per_mm, 0.45)
    peak = CATCHLIGHT_GAIN * (CATCHLIGHT_SD * pixels_per_mm / sd) ** 2
    reach = int(np.ceil(3 * sd))
    res = color.shape[0]
    j0, j1 = max(int(np.floor(x)) - reach, 0), min(int(np.floor(x)) + reach + 1, res)
    i0, i1 = max(int(np.floor(y)) - reach, 0), min(int(np.floor(y)) + reach + 1, res)
    if j0 >= j1 or i0 >= i1:
        return
    jj, ii = np.meshgrid(np.arange(j0, j1) + 0.5, np.arange(i0, i1) + 0.5)
    spot = np.exp(-((jj - x) ** 2 + (ii - y) ** 2) / (2 * sd * sd)) * eye[i0:i1, j0:j1]
    gain = peak * scene.light_strength * np.asarray(scene.tint)
    color[i0:i1, j0:j1] += (spot[..., None] * gain).astype(np.float32)


def render_head(
    head: HeadModel,
    act: ex.Activations,
    yaw: float,
    pitch: float,
    scene: Scene,
    size: int,
    supersample: int = 1,
    with_parts: bool = False,
) -> Render:
    """Render ``head`` with AU activations ``act`` at (``yaw``, ``pitch``) degrees as a ``size`` square image."""
    if not -MAX_YAW <= yaw <= MAX_YAW:
        raise PhanetError(f"yaw: expected degrees within [-{MAX_YAW:g}, {MAX_YAW:g}], got {yaw:g}")
    if not -MAX_PITCH <= pitch <= MAX_PITCH:
        raise PhanetError(f"pitch: expected degrees within [-{MAX_PITCH:g}, {MAX_PITCH:g}], got {pitch:g}")
    v, albedo = ex.deform(head, act)
    r = rotation(yaw, pitch)
    v = _apply(r, v)
    normals = vertex_normals(v, head.triangles)
    diffuse, spec = shade(albedo, normals, head.specular, head.shininess, scene)

    # Perspective projection, then the detector-like square crop around the face landmarks.
    persp = scene.distance / (scene.distance - v[:, 2])
    px = v[:, 0] * persp
    py = v[:, 1] * persp
    bx, by = px[head.box], py[head.box]
    cx, cy = 0.5 * (bx.min() + bx.max()), 0.5 * (by.min() + by.max())
    side = max(bx.max() - bx.min(), by.max() - by.min()) / FACE_FILL * scene.scale
    cx += scene.shift[0] * side
    cy += scene.shift[1] * side
    res = size * supersample
    k = res / side
    xy = np.stack([(px - cx) * k + 0.5 * res, (cy - py) * k + 0.5 * res], -1)
    # Each pixel gets the diffuse colour, the highlight and the point of the neutral head it shows (where
    # the skin's fine texture is looked up, so that it moves with the skin).
    # The texture's waves are too fine to show below 0.8 pixel per mm (up to about 160 px).
    textured = texture_weight(k * MOTTLE_WAVELENGTH) > 0.0
    channels = [diffuse, spec[:, None]] + ([head.vertices.astype(np.float32)] if textured else [])
    raster = rasterize(xy, v[:, 2], np.concatenate(channels, 1), head.triangles, res, res)
    pixel_parts = np.where(raster.triangle >= 0, head.parts[np.maximum(raster.triangle, 0)], -1).astype(np.int16)
    diffuse_px, spec_px = raster.color[..., :3], raster.color[..., 3]
    if textured:
        skin = (pixel_parts == Part.SKIN) | (pixel_parts == Part.EAR)
        if skin.any():
            grain, sheen = skin_texture(head, raster.color[skin][:, 4:], k)
            diffuse_px[skin] *= grain[:, None]
            spec_px[skin] *= sheen
    color = diffuse_px + spec_px[..., None] * np.asarray(scene.tint, np.float32)

    def to_image(points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (K, 2) of camera-space ``points`` (K, 3), projected like the vertices."""
        p = scene.distance / (scene.distance - points[:, 2])
        return np.stack([(points[:, 0] * p - cx) * k + 0.5 * res, (cy - points[:, 1] * p) * k + 0.5 * res], -1)

    # The named points (the pupils place the catchlights); a landmark is hidden where a surface in front
    # covers it or it lies outside the image.
    points = np.stack([v[head.landmarks[name]].mean(0) for name in LANDMARKS])
    for name, part in (("right_eye", Part.EYE_RIGHT), ("left_eye", Part.EYE_LEFT)):
        _catchlight(color, pixel_parts == part, points[LANDMARKS.index(name)], r[:, 2], scene, lambda q: to_image(q[None])[0], k)
    lxy = to_image(points)
    inside = ((lxy >= 0) & (lxy <= res)).all(1)
    seen = inside & (surface_depth(lxy, xy, v[:, 2], head.triangles) <= points[:, 2] + OCCLUSION_TOLERANCE)
    landmarks = np.concatenate([lxy / res, seen[:, None]], 1)

    color = np.clip(color, 0.0, None) ** (1.0 / 2.2)
    alpha = raster.mask.astype(np.float32)
    if supersample > 1:
        color = cv2.resize(color * alpha[..., None], (size, size), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
        color = color / np.maximum(alpha[..., None], 1e-6)
    bg = background(scene, size)
    image = (color * alpha[..., None] + bg * (1.0 - alpha[..., None])) * np.float32(scene.exposure ** (1.0 / 2.2))
    if scene.blur > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), scene.blur * size / 112.0)
    image = image * 255.0
    if scene.noise > 0:
        grain = np.random.default_rng(scene.texture_seed + 1).normal(0.0, scene.noise, image.shape)
        image = image + grain.astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return Render(image, landmarks, pixel_parts if with_parts else None)
