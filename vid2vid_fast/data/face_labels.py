"""vid2vid's edge2face label drawn from face landmarks: the 68-point face (dlib's numbering) as
polylines, plus the image's Canny edges outside the face.

FaceMesh's 468 points are reduced to the 68 by ``MESH_TO_68`` (below: the FaceMesh index standing for
each of the 68 points, picked on the face oval, brows, nose, eye and lip contours of the canonical
mesh, left and right mirror images of each other). Drawing follows the original's face data set:

- the upper half of the face outline is made by mirroring the inner jaw points 1-15 about the line
  through the jaw's two ends, at 2/3 of their distance, appended in reverse (points 68-82), so that
  the outline closes over the forehead;
- each part is a list of polylines over point indices (``FACE_POLYLINES``); each polyline is drawn in
  pieces of 3 consecutive points, each fitted with a quadratic (a line for 2 points) along the axis
  that varies more, sampled at every pixel, 1 pixel wide; a piece whose fit bends too much is skipped;
- Canny edges of the image are kept only outside the face outline.

This is the original's ``--no_dist_map`` label (one edge channel); the 14 distance-transform channels
of its default are not made. The frame is not cropped to the face.
"""

import numpy as np

# FaceMesh index for each of dlib's 68 points (point 0 is at the left of the image)
MESH_TO_68 = (
    # jaw 0-16: from the left ear level down to the chin (8) and up to the right
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # brows 17-21 (left of the image, outer to inner) and 22-26 (inner to outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30 (top to tip) and nose base 31-35 (left to right)
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # eye on the left of the image 36-41 (outer corner, upper lid, inner corner, lower lid)
    33, 160, 158, 133, 153, 144,
    # eye on the right 42-47 (inner corner, upper lid, outer corner, lower lid)
    362, 385, 387, 263, 373, 380,
    # outer lips 48-59 (left corner, upper lip to the right corner, lower lip back)
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # inner lips 60-67
    78, 81, 13, 311, 308, 402, 14, 178,
)
UPPER_FACE = tuple(range(68, 83))  # the mirrored jaw points 15 .. 1
FACE_POLYLINES = {
    "face": [list(range(0, 17)) + list(UPPER_FACE) + [0]],
    "brows": [list(range(17, 22)), list(range(22, 27))],
    "nose": [[28, 29, 30, 31], list(range(31, 36)), [35, 28]],
    "eyes": [[36, 37, 38, 39], [39, 40, 41, 36], [42, 43, 44, 45], [45, 46, 47, 42]],
    "lips": [list(range(48, 55)), [54, 55, 56, 57, 58, 59, 48], list(range(60, 65)), [64, 65, 66, 67, 60]],
}
MAX_BEND = 1.0  # the largest |a| of a fitted a*t^2 + b*t + c still drawn (the original's limit)


def face_68_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(468, 2) FaceMesh points -> (68, 2) points in dlib's numbering."""
    mesh = np.asarray(mesh, np.float64)
    if mesh.shape != (468, 2):
        raise ValueError(f"expected (468, 2) FaceMesh points, got {mesh.shape}")
    return mesh[list(MESH_TO_68)]


def with_upper_face(points: np.ndarray) -> np.ndarray:
    """(68, 2) points -> (83, 2): the mirrored inner jaw points appended as 68-82."""
    points = np.asarray(points, np.float64)
    jaw = points[:17]
    start, end = jaw[0], jaw[16]
    direction = (end - start) / max(np.linalg.norm(end - start), 1e-9)
    inner = jaw[1:16] - start
    # the component across the jaw line is mirrored to the other side at 2/3 of its length
    along = inner @ direction
    across = inner - along[:, None] * direction
    upper = start + along[:, None] * direction - across * 2 / 3
    return np.vstack([points, upper[::-1]])


def _fitted_piece(points: np.ndarray):
    """Pixel positions (N, 2) of a quadratic (or line) through 2-3 points, or None if it bends too much."""
    extent = points.max(axis=0) - points.min(axis=0)
    axis = 0 if extent[0] >= extent[1] else 1  # the independent coordinate
    t, v = points[:, axis], points[:, 1 - axis]
    if np.unique(np.round(t, 6)).size < len(points):
        return None  # two points above each other: no function of t passes through them
    coefficients = np.polyfit(t, v, len(points) - 1)
    if len(points) == 3 and abs(coefficients[0]) > MAX_BEND:
        return None
    samples = np.arange(np.floor(t.min()), np.ceil(t.max()) + 1)
    samples = np.clip(samples, t.min(), t.max())
    values = np.polyval(coefficients, samples)
    pixels = np.stack([samples, values], axis=1) if axis == 0 else np.stack([values, samples], axis=1)
    return np.round(pixels).astype(np.int64)


def draw_polyline(canvas: np.ndarray, points: np.ndarray) -> None:
    """Draw a polyline (K, 2) into ``canvas`` (H, W) with value 255, in fitted pieces of 3 points."""
    height, width = canvas.shape
    for first in range(0, len(points) - 1, 2):
        pixels = _fitted_piece(points[first : first + 3])
        if pixels is None:
            continue
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        canvas[pixels[inside, 1], pixels[inside, 0]] = 255


def face_mask(points83: np.ndarray, shape) -> np.ndarray:
    """bool (H, W): inside the closed face outline (jaw and the mirrored upper face)."""
    import cv2

    outline = np.asarray(points83)[FACE_POLYLINES["face"][0][:-1]]
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1)
    return mask.astype(bool)


def face_label(frame: np.ndarray, points68: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W) edge2face label of an RGB frame (H, W, 3) with its 68 face points in pixels: the
    face's polylines, and ``edges`` (default: ``canny_edges(frame)``) outside the face."""
    from .edges import canny_edges

    points = with_upper_face(points68)
    shape = frame.shape[:2]
    label = np.zeros(shape, np.uint8)
    for polylines in FACE_POLYLINES.values():
        for polyline in polylines:
            draw_polyline(label, points[polyline])
    edges = canny_edges(frame) if edges is None else edges
    outside = ~face_mask(points, shape)
    label[outside & (edges > 0)] = 255
    return label
