import numpy as np
import pytest

from vid2vid_fast.data.face_labels import (
    FACE_POLYLINES,
    MESH_TO_68,
    draw_polyline,
    face_68_from_mesh,
    face_label,
    with_upper_face,
)

pytest.importorskip("cv2")


def synthetic_face():
    """68 points of an upright face in a 96 x 96 image, centred at x = 48: jaw a U from (18, 40) down to
    (48, 86) and up to (78, 40); brows at y 30, eyes at y 40, nose from (48, 40) to y 60, mouth at y 72."""
    p = np.zeros((68, 2))
    angles = np.linspace(np.pi, 0, 17)
    p[:17] = np.stack([48 + 30 * np.cos(angles), 40 + 46 * np.sin(angles)], axis=1)
    p[17:22] = [(26 + 4 * i, 30) for i in range(5)]
    p[22:27] = [(54 + 4 * i, 30) for i in range(5)]
    p[27:31] = [(48, 40 + 6 * i) for i in range(4)]
    p[31:36] = [(40 + 4 * i, 62) for i in range(5)]
    p[36:42] = [(28, 40), (32, 38), (36, 38), (40, 40), (36, 42), (32, 42)]
    p[42:48] = [(56, 40), (60, 38), (64, 38), (68, 40), (64, 42), (60, 42)]
    p[48:60] = [(36, 72), (40, 70), (44, 69), (48, 69), (52, 69), (56, 70), (60, 72), (56, 75), (52, 76), (48, 76), (44, 76), (40, 75)]
    p[60:68] = [(40, 72), (44, 71), (48, 71), (52, 71), (56, 72), (52, 73), (48, 73), (44, 73)]
    return p


def test_mesh_mapping_picks_68_distinct_mesh_points():
    assert len(MESH_TO_68) == 68 and len(set(MESH_TO_68)) == 68 and max(MESH_TO_68) < 468
    mesh = np.arange(468 * 2, dtype=np.float64).reshape(468, 2)
    points = face_68_from_mesh(mesh)
    assert points.shape == (68, 2) and points[8, 0] == 2 * 152  # the chin is FaceMesh point 152
    with pytest.raises(ValueError, match="468"):
        face_68_from_mesh(mesh[:67])


def test_upper_face_mirrors_the_jaw_at_two_thirds():
    points = with_upper_face(synthetic_face())
    assert points.shape == (83, 2)
    # point 68 mirrors jaw point 15, point 82 jaw point 1, about the line y = 40 through the jaw's ends
    for upper, jaw in ((68, 15), (82, 1), (75, 8)):
        assert points[upper, 0] == pytest.approx(points[jaw, 0])
        assert 40 - points[upper, 1] == pytest.approx((points[jaw, 1] - 40) * 2 / 3)


def test_polylines_are_drawn_one_pixel_wide_through_their_points():
    canvas = np.zeros((20, 40), np.uint8)
    draw_polyline(canvas, np.array([(2.0, 10.0), (12.0, 10.0), (22.0, 10.0), (32.0, 10.0)]))
    assert (canvas[10, 2:33] == 255).all() and canvas.sum() == 31 * 255
    bent = np.zeros((40, 40), np.uint8)
    draw_polyline(bent, np.array([(5.0, 30.0), (20.0, 5.0), (35.0, 30.0)]))  # a parabola, fitted along x
    assert bent[5, 20] == 255 and bent[30, 5] == 255 and bent[30, 35] == 255 and bent[29:, 10:31].sum() == 0


def test_face_label_draws_each_part_where_its_points_are():
    frame = np.zeros((96, 96, 3), np.uint8)
    label = face_label(frame, synthetic_face())
    assert (label[30, 26:43] == 255).all() and (label[30, 54:71] == 255).all()  # the brows
    assert (label[46:59, 48] == 255).all() and label[40:45, 48].sum() == 0  # the bridge starts at point 28
    assert label[86, 48] == 255 and label[40, 18] == 255  # chin and jaw end
    upper_top = round(40 - 46 * 2 / 3)  # the mirrored chin closes the outline over the forehead
    assert label[upper_top - 1 : upper_top + 2, 48].max() == 255
    assert label[:, 85:].sum() == 0 and label[90:].sum() == 0  # nothing outside the face
    assert set(FACE_POLYLINES) == {"face", "brows", "nose", "eyes", "lips"}


def test_canny_edges_are_kept_only_outside_the_face():
    frame = np.zeros((96, 96, 3), np.uint8)
    frame[:, 48:] = 255  # a vertical edge at x = 48 through the face and below it
    edges = np.zeros((96, 96), np.uint8)
    edges[:, 48] = 255
    label = face_label(frame, synthetic_face(), edges)
    assert (label[88:, 48] == 255).all()  # below the chin
    assert label[64:68, 48].sum() == 0  # between the nose and the mouth: inside the face
