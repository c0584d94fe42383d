"""Zone polygons in normalised image coordinates (CONTRACT §1.1, §2.3).

``validate_polygon`` enforces the zone geometry rules; ``point_in_polygon`` answers whether a point (e.g. a
detection's bbox centre) lies in a zone, counting points on an edge as inside.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_POINTS = 3
MAX_POINTS = 100
MIN_AREA = 1e-9
_EPSILON = 1e-12

Point = tuple[float, float]


class PolygonError(ValueError):
    """A broken geometry rule; ``index`` names the offending point when the rule is about one point."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.index = index


def validate_polygon(coordinates: object) -> list[list[float]]:
    """The coordinates as ``[[x, y], ...]`` floats, or ``PolygonError`` for the first rule they break."""
    if not isinstance(coordinates, list | tuple):
        raise PolygonError("Must be a list of [x, y] points")
    if not MIN_POINTS <= len(coordinates) <= MAX_POINTS:
        raise PolygonError(f"Must have between {MIN_POINTS} and {MAX_POINTS} points, got {len(coordinates)}")
    points = [_parse_point(raw, index) for index, raw in enumerate(coordinates)]
    _check_no_repeated_points(points)
    crossing = _first_crossing(points)
    if crossing is not None:
        first, second = crossing
        raise PolygonError(f"Polygon edges {first} and {second} intersect (self-intersecting polygon)")
    if polygon_area(points) < MIN_AREA:
        raise PolygonError("Polygon area is too small (points may be collinear)")
    return [[x, y] for x, y in points]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_point(raw: object, index: int) -> Point:
    if not isinstance(raw, list | tuple) or len(raw) != 2 or not all(_is_number(v) for v in raw):
        raise PolygonError("Each point must be a list of exactly two numbers [x, y]", index)
    # Compared before converting, so a huge JSON integer is out of range rather than a float overflow; NaN fails.
    if not all(0 <= value <= 1 for value in raw):
        raise PolygonError("Point coordinates must be within [0, 1]", index)
    return float(raw[0]), float(raw[1])


def _check_no_repeated_points(points: list[Point]) -> None:
    for index in range(1, len(points)):
        if points[index] == points[index - 1]:
            raise PolygonError("Point repeats the previous point", index)
    if points[-1] == points[0]:
        raise PolygonError("The last point repeats the first point (the polygon closes itself)", len(points) - 1)


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Shoelace area (absolute value)."""
    twice_area = 0.0
    for index, (x1, y1) in enumerate(points):
        x2, y2 = points[(index + 1) % len(points)]
        twice_area += x1 * y2 - x2 * y1
    return abs(twice_area) / 2.0


def _first_crossing(points: list[Point]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (edge i runs from point i to point i+1) that meet, else None."""
    count = len(points)
    edges = [(points[i], points[(i + 1) % count]) for i in range(count)]
    for first in range(count):
        for second in range(first + 2, count):
            if first == 0 and second == count - 1:
                continue  # adjacent through the closing point
            if segments_intersect(*edges[first], *edges[second]):
                return first, second
    return None


def _orientation(p: Point, q: Point, r: Point) -> int:
    value = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    if abs(value) <= _EPSILON:
        return 0
    return 1 if value > 0 else -1


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """Whether r, known to be collinear with p–q, lies within the segment's bounding box."""
    return (
        min(p[0], q[0]) - _EPSILON <= r[0] <= max(p[0], q[0]) + _EPSILON
        and min(p[1], q[1]) - _EPSILON <= r[1] <= max(p[1], q[1]) + _EPSILON
    )


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether segments p1–p2 and q1–q2 share any point (touching and collinear overlap included)."""
    o1, o2 = _orientation(p1, p2, q1), _orientation(p1, p2, q2)
    o3, o4 = _orientation(q1, q2, p1), _orientation(q1, q2, p2)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and _on_segment(p1, p2, q1))
        or (o2 == 0 and _on_segment(p1, p2, q2))
        or (o3 == 0 and _on_segment(q1, q2, p1))
        or (o4 == 0 and _on_segment(q1, q2, p2))
    )


def point_in_polygon(x: float, y: float, coordinates: Sequence[Sequence[float]]) -> bool:
    """Ray casting (even-odd); a point on an edge or vertex counts as inside."""
    count = len(coordinates)
    if count < MIN_POINTS:
        return False
    point = (float(x), float(y))
    inside = False
    for index in range(count):
        x1, y1 = float(coordinates[index][0]), float(coordinates[index][1])
        x2, y2 = float(coordinates[(index + 1) % count][0]), float(coordinates[(index + 1) % count][1])
        if _orientation((x1, y1), (x2, y2), point) == 0 and _on_segment((x1, y1), (x2, y2), point):
            return True
        if (y1 > point[1]) != (y2 > point[1]):
            crossing_x = x1 + (point[1] - y1) * (x2 - x1) / (y2 - y1)
            if point[0] < crossing_x:
                inside = not inside
    return inside
