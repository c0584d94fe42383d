"""Zone polygon rules (CONTRACT §2.3) and point-in-polygon (used for zone matching)."""

import math

import pytest

from cameras.geometry import PolygonError, point_in_polygon, polygon_area, segments_intersect, validate_polygon

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
TRIANGLE = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def regular_polygon(points: int) -> list[list[float]]:
    return [
        [0.5 + 0.4 * math.cos(2 * math.pi * i / points), 0.5 + 0.4 * math.sin(2 * math.pi * i / points)]
        for i in range(points)
    ]


def rejection(coordinates) -> PolygonError:
    with pytest.raises(PolygonError) as caught:
        validate_polygon(coordinates)
    return caught.value


# --- accepted ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "coordinates",
    [
        TRIANGLE,
        SQUARE,
        regular_polygon(3),
        regular_polygon(100),
        [[0, 0], [1, 0], [1, 1], [0, 1]],  # integers are numbers too
        [[0.2, 0.2], [0.8, 0.2], [0.5, 0.5], [0.8, 0.8], [0.2, 0.8]],  # concave
        [(0.1, 0.1), (0.5, 0.1), (0.3, 0.4)],  # tuples
    ],
)
def test_valid_polygons_are_accepted(coordinates):
    assert validate_polygon(coordinates) == [[float(x), float(y)] for x, y in coordinates]


def test_accepted_coordinates_are_floats():
    result = validate_polygon([[0, 0], [1, 0], [1, 1]])
    assert all(isinstance(value, float) for point in result for value in point)


def test_area_at_the_threshold_is_accepted():
    # a thin triangle whose shoelace area is exactly 2e-9 (> 1e-9)
    assert validate_polygon([[0.0, 0.0], [1.0, 0.0], [0.0, 4e-9]])


# --- rejected: shape of the list ---------------------------------------------------------------------------------


@pytest.mark.parametrize("coordinates", [None, "0,0 1,0 1,1", {"x": 1}, 5, True])
def test_coordinates_must_be_a_list(coordinates):
    assert "list" in rejection(coordinates).message


@pytest.mark.parametrize("count", [0, 1, 2, 101])
def test_point_count_must_be_between_3_and_100(count):
    coordinates = regular_polygon(count) if count >= 3 else [[0.1, 0.1], [0.9, 0.1]][:count]
    error = rejection(coordinates)
    assert "between 3 and 100" in error.message and error.index is None


# --- rejected: one point -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_point",
    [
        [0.5],
        [0.5, 0.5, 0.5],
        [True, 0.5],
        [0.5, False],
        ["0.5", 0.5],
        [None, 0.5],
        {"x": 0.5, "y": 0.5},
        0.5,
        "0.5,0.5",
    ],
)
def test_each_point_is_exactly_two_numbers(bad_point):
    error = rejection([[0.1, 0.1], [0.9, 0.1], bad_point, [0.1, 0.9]])
    assert error.index == 2 and "two numbers" in error.message


@pytest.mark.parametrize(
    "bad_point",
    [[1.01, 0.5], [-0.01, 0.5], [0.5, 1.5], [0.5, -1e-9], [math.inf, 0.5], [math.nan, 0.5], [10**400, 0.5], [2, 0]],
)
def test_each_coordinate_is_within_zero_and_one(bad_point):
    error = rejection([[0.1, 0.1], bad_point, [0.9, 0.9], [0.1, 0.9]])
    assert error.index == 1 and "[0, 1]" in error.message


def test_consecutive_points_must_differ():
    error = rejection([[0.1, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    assert error.index == 2 and "repeats" in error.message


def test_last_point_must_differ_from_the_first():
    error = rejection([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.1]])
    assert error.index == 3 and "first point" in error.message


def test_repeat_is_detected_across_int_and_float():
    assert rejection([[0, 0], [0.0, 0.0], [1, 1]]).index == 1


# --- rejected: whole polygon -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "coordinates",
    [
        [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]],  # collinear
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1e-9]],  # area 5e-10
    ],
)
def test_area_below_threshold_is_rejected(coordinates):
    error = rejection(coordinates)
    assert "area" in error.message and error.index is None


@pytest.mark.parametrize(
    "coordinates",
    [
        [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]],  # bow-tie
        [[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9], [0.5, 0.05]],  # crossing star-ish
        # a vertex touching a non-adjacent edge
        [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.0], [0.0, 1.0]],
    ],
)
def test_self_intersecting_polygons_are_rejected(coordinates):
    error = rejection(coordinates)
    assert "intersect" in error.message and error.index is None


def test_an_edge_folding_back_onto_its_neighbour_is_rejected():
    # a zero-width spike: (0.5, 0.9) → (0.5, 0.99) → (0.5, 0.95) doubles back along the same line
    error = rejection([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.5, 0.9], [0.5, 0.99], [0.5, 0.95], [0.1, 0.9]])
    assert "intersect" in error.message and error.index is None


def test_first_broken_rule_wins_in_list_order():
    # point 1 is malformed and the polygon would also be too small: the point is reported
    assert rejection([[0.1, 0.1], [True, 0.1], [0.1, 0.1]]).index == 1


# --- helpers -----------------------------------------------------------------------------------------------------


def test_shoelace_area_of_unit_square_and_orientation_independence():
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert polygon_area(square) == 1.0
    assert polygon_area(list(reversed(square))) == 1.0


def test_segments_intersection_cases():
    assert segments_intersect((0, 0), (1, 1), (0, 1), (1, 0))  # crossing
    assert segments_intersect((0, 0), (1, 0), (1, 0), (2, 1))  # touching at an end
    assert segments_intersect((0, 0), (2, 0), (1, 0), (3, 0))  # collinear overlap
    assert not segments_intersect((0, 0), (1, 0), (2, 0), (3, 0))  # collinear, apart
    assert not segments_intersect((0, 0), (1, 0), (0, 1), (1, 1))  # parallel


# --- point in polygon --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [
        (0.5, 0.5, True),
        (0.2, 0.8, True),
        (0.05, 0.5, False),
        (0.95, 0.5, False),
        (0.5, 0.0, False),
        (1.0, 1.0, False),
    ],
)
def test_point_in_square(x, y, inside):
    assert point_in_polygon(x, y, SQUARE) is inside


@pytest.mark.parametrize(
    ("x", "y"),
    [(0.1, 0.5), (0.9, 0.5), (0.5, 0.1), (0.5, 0.9), (0.1, 0.1), (0.9, 0.9), (0.1, 0.9)],
)
def test_points_on_edges_and_vertices_count_as_inside(x, y):
    assert point_in_polygon(x, y, SQUARE)


def test_point_on_a_diagonal_edge_counts_as_inside():
    assert point_in_polygon(0.5, 0.5, TRIANGLE)  # on the hypotenuse from (1, 0) to (0, 1)
    assert not point_in_polygon(0.51, 0.51, TRIANGLE)


def test_concave_polygon_notch_is_outside():
    # a "C" shape open to the right
    c_shape = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.3], [0.3, 0.3], [0.3, 0.7], [0.9, 0.7], [0.9, 0.9], [0.1, 0.9]]
    assert point_in_polygon(0.2, 0.5, c_shape)
    assert not point_in_polygon(0.6, 0.5, c_shape)
    assert point_in_polygon(0.6, 0.2, c_shape)


def test_ray_through_a_vertex_is_counted_once():
    diamond = [[0.5, 0.1], [0.9, 0.5], [0.5, 0.9], [0.1, 0.5]]
    assert point_in_polygon(0.3, 0.5, diamond)  # the horizontal ray passes through the vertex (0.9, 0.5)
    assert not point_in_polygon(0.05, 0.5, diamond)


def test_degenerate_input_is_never_inside():
    assert not point_in_polygon(0.5, 0.5, [])
    assert not point_in_polygon(0.5, 0.5, [[0, 0], [1, 1]])
