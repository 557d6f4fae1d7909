"""gis.locate: GridIndex point location checked point for point against GEOS (shapely).

The oracle is shapely alone: for each point, the lowest-coded grid that contains it (STRtree
``within``), else the lowest-coded grid that touches it (``intersects``, i.e. covers: the point is
on its boundary), else ``""``. That is the documented rule ("covers", lowest code wins), so on
every point — random, on an edge, a hair off an edge, at a corner — the index must agree.

Hand-made grids use coordinates exactly representable in binary (117.0, 117.25, 117.5, …), so a
point "on the edge" really is on it, for GEOS and for the index.
"""

from __future__ import annotations

import functools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry.polygon import orient

from gis.hierarchy import validate
from gis.io import read_boundaries
from gis.locate import CHAIN_LEVELS, GridIndex, grids_with_chain
from tests.fixtures.tiny import X0, Y0, U, box, frame, replace, tiny_frame, tiny_rows

DEMO_FILE = Path(__file__).resolve().parents[2] / "data" / "boundaries" / "hongqiao_demo.gpkg"
METRIC = "EPSG:4548"
OFFSETS = (1e-7, 1e-9, 1e-12)  # degrees, for points a hair off an edge or corner
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --- the oracle ------------------------------------------------------------------------------


def geos_answer(grids: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per point, the lowest code of the grids covering it (inside or on an edge — the
    database's ST_Covers … ORDER BY code), else "" — by shapely alone (non-finite points: "")."""
    codes = grids["code"].astype(str).to_numpy()
    order = np.argsort(codes, kind="stable")
    codes, geoms = codes[order], np.asarray(grids.geometry.array, dtype=object)[order]
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    tree = shapely.STRtree(geoms)
    pts = shapely.points(x[finite], y[finite])
    none = len(codes)
    best = np.full(len(finite), none)
    p, g = tree.query(pts, predicate="intersects")
    np.minimum.at(best, p, g)
    out = np.full(len(x), "", dtype=object)
    out[finite] = np.append(codes, "")[best]
    return out


def covering(grids: gpd.GeoDataFrame, x: float, y: float) -> set[str]:
    """Codes of the grids that cover the point, per shapely."""
    pt = shapely.Point(x, y)
    return {str(c) for c, g in zip(grids["code"], grids.geometry, strict=True) if g.covers(pt)}


def assert_agrees(index: GridIndex, grids: gpd.GeoDataFrame, x, y) -> None:
    got = index.locate(x, y)
    want = geos_answer(grids, x, y)
    bad = np.flatnonzero(got != want)
    assert not bad.size, f"{bad.size} of {len(want)} points disagree with GEOS, e.g. " + "; ".join(
        f"({np.ravel(x)[i]!r}, {np.ravel(y)[i]!r}): index {got[i]!r}, GEOS {want[i]!r}"
        for i in bad[:5]
    )


def grid_frame(rows: dict[str, shapely.Geometry], crs: str | None = "EPSG:4490"):
    return gpd.GeoDataFrame({"code": list(rows)}, geometry=list(rows.values()), crs=crs)


def segments(grids: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points (n × 2) of every boundary segment of every grid."""
    rings = shapely.get_rings(shapely.get_parts(np.asarray(grids.geometry.array)))
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    return xy[:-1][same], xy[1:][same]


def near_edges(grids: gpd.GeoDataFrame, offsets=OFFSETS) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's midpoint, and that midpoint moved ± each offset perpendicular to it."""
    a, b = segments(grids)
    a, b = a[(a != b).any(axis=1)], b[(a != b).any(axis=1)]
    mid = (a + b) / 2
    d = b - a
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.hypot(d[:, 0], d[:, 1])[:, None]
    pts = [mid] + [mid + s * o * normal for o in offsets for s in (1, -1)]
    pts = np.concatenate(pts)
    return pts[:, 0], pts[:, 1]


def near_vertices(grids: gpd.GeoDataFrame, offsets=OFFSETS) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex, and the vertex moved by each offset in eight directions."""
    v = np.unique(np.concatenate(segments(grids)), axis=0)
    pts = [v]
    for o in offsets:
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
            pts.append(v + o * np.array([dx, dy]))
    pts = np.concatenate(pts)
    return pts[:, 0], pts[:, 1]


def random_points(bounds, n: int, seed: int, margin: float = 0.0):
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = bounds
    dx, dy = (xmax - xmin) * margin, (ymax - ymin) * margin
    return rng.uniform(xmin - dx, xmax + dx, n), rng.uniform(ymin - dy, ymax + dy, n)


# --- the demo hierarchy ----------------------------------------------------------------------


@functools.cache
def demo_grids() -> gpd.GeoDataFrame:
    return grids_with_chain(read_boundaries([DEMO_FILE]).frame)


@functools.cache
def demo_index() -> GridIndex:
    return GridIndex(demo_grids())


DEMO_BOUNDS = tuple(float(v) for v in demo_grids().total_bounds)
DEMO_VERTICES = np.unique(np.concatenate(segments(demo_grids())), axis=0)
DEMO_SEGMENTS = np.stack(segments(demo_grids()), axis=1)  # n × 2 × 2


def test_demo_index_covers_every_grid_and_sorts_its_codes():
    grids, index = demo_grids(), demo_index()
    assert len(grids) == 992
    assert len(index) == 992
    assert list(index.codes) == sorted(grids["code"].astype(str))
    assert index.bounds == pytest.approx(DEMO_BOUNDS, abs=0)


def test_demo_random_points_match_geos():
    x, y = random_points(DEMO_BOUNDS, 20_000, seed=20240601, margin=0.05)
    got = demo_index().locate(x, y)
    assert_agrees(demo_index(), demo_grids(), x, y)
    # The sample is meaningful: most points land in a grid, some outside every grid.
    assert (got != "").mean() > 0.5
    assert (got == "").any()


def test_demo_locate_index_points_into_codes():
    index = demo_index()
    x, y = random_points(DEMO_BOUNDS, 5_000, seed=7, margin=0.05)
    idx = index.locate_index(x, y)
    assert idx.dtype.kind == "i"
    assert ((idx >= -1) & (idx < len(index))).all()
    assert list(np.append(index.codes, "")[idx]) == list(index.locate(x, y))


def test_demo_points_near_edges_match_geos():
    """Midpoints of every grid edge, and those midpoints 1e-7, 1e-9 and 1e-12 degrees off the
    edge on either side: each gets a grid covering it, and the one containing it if any."""
    grids, index = demo_grids(), demo_index()
    x, y = near_edges(grids)
    got = index.locate(x, y)
    want = geos_answer(grids, x, y)
    geoms = dict(zip(grids["code"], grids.geometry, strict=True))
    for i in np.flatnonzero(got != ""):
        assert geoms[got[i]].covers(shapely.Point(x[i], y[i])), (x[i], y[i], got[i])
    assert_agrees(index, grids, x, y)
    # The sample is meaningful: GEOS puts most of these points in (or on) some grid.
    assert (want != "").mean() > 0.9


def test_demo_points_near_vertices_match_geos():
    grids = demo_grids()
    x, y = near_vertices(grids)
    assert_agrees(demo_index(), grids, x, y)


@PROPERTY
@given(
    st.floats(min_value=DEMO_BOUNDS[0], max_value=DEMO_BOUNDS[2]),
    st.floats(min_value=DEMO_BOUNDS[1], max_value=DEMO_BOUNDS[3]),
)
def test_demo_any_point_in_the_bounds_matches_geos(x, y):
    assert_agrees(demo_index(), demo_grids(), [x], [y])


@PROPERTY
@given(
    st.sampled_from(range(len(DEMO_VERTICES))),
    st.floats(min_value=-1e-6, max_value=1e-6),
    st.floats(min_value=-1e-6, max_value=1e-6),
)
def test_demo_any_point_near_a_vertex_matches_geos(i, dx, dy):
    x, y = DEMO_VERTICES[i]
    assert_agrees(demo_index(), demo_grids(), [x + dx], [y + dy])


@PROPERTY
@given(
    st.sampled_from(range(len(DEMO_SEGMENTS))),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=-1e-6, max_value=1e-6),
)
def test_demo_any_point_near_an_edge_matches_geos(i, t, off):
    (ax, ay), (bx, by) = DEMO_SEGMENTS[i]
    length = np.hypot(bx - ax, by - ay)
    if length == 0:
        return
    x = ax + t * (bx - ax) - off * (by - ay) / length
    y = ay + t * (by - ay) + off * (bx - ax) / length
    assert_agrees(demo_index(), demo_grids(), [x], [y])


@pytest.mark.parametrize("max_depth", [0, 1, 3])
@pytest.mark.parametrize("cell_m", [3.0, 15.0, 60.0])
def test_cell_size_and_depth_do_not_change_answers(cell_m, max_depth):
    """The cell table is a cache: whatever its cell size and depth, the answers are GEOS's."""
    grids = demo_grids()
    index = GridIndex(grids, cell_m=cell_m, max_depth=max_depth)
    rx, ry = random_points(DEMO_BOUNDS, 5_000, seed=99, margin=0.02)
    ex, ey = near_edges(grids, offsets=(1e-7, 1e-9))
    x, y = np.concatenate([rx, ex]), np.concatenate([ry, ey])
    got = index.locate(x, y)
    assert list(got) == list(demo_index().locate(x, y))
    assert_agrees(index, grids, x, y)


# --- the edge rule: covers, lowest code wins -------------------------------------------------

# Four boxes around (117.5, 39.5), all coordinates exact in binary. Codes deliberately not in
# reading order, so "lowest code" is not "first row" nor "left/bottom grid".
QUAD = {
    "Q3": shapely.box(117.0, 39.5, 117.5, 40.0),  # NW
    "Q1": shapely.box(117.5, 39.5, 118.0, 40.0),  # NE
    "Q4": shapely.box(117.0, 39.0, 117.5, 39.5),  # SW
    "Q2": shapely.box(117.5, 39.0, 118.0, 39.5),  # SE
}


def quad_frame(order=None) -> gpd.GeoDataFrame:
    grids = grid_frame(QUAD)
    return grids if order is None else grids.iloc[list(order)]


EDGE_POINTS = [
    (117.5, 39.75),  # NW | NE
    (117.5, 39.25),  # SW | SE
    (117.25, 39.5),  # NW / SW
    (117.75, 39.5),  # NE / SE
]


@pytest.mark.parametrize(("x", "y"), EDGE_POINTS)
def test_a_point_on_a_shared_edge_gets_the_lower_code(x, y):
    grids = quad_frame()
    cover = covering(grids, x, y)
    assert len(cover) == 2
    assert GridIndex(grids).locate([x], [y])[0] == min(cover)


def test_a_shared_corner_of_four_grids_gets_the_lowest_code():
    grids = quad_frame()
    cover = covering(grids, 117.5, 39.5)
    assert cover == set(QUAD)
    index = GridIndex(grids)
    assert index.locate([117.5], [39.5])[0] == min(cover)
    assert index.locate_index([117.5], [39.5])[0] == list(index.codes).index(min(cover))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        (117.0, 39.75),  # west edge of NW
        (118.0, 39.25),  # east edge of SE
        (117.25, 40.0),  # north edge of NW
        (117.75, 39.0),  # south edge of SE
        (117.0, 39.0),  # outer corner of SW
        (118.0, 40.0),  # outer corner of NE
        (117.0, 39.5),  # outer end of the NW/SW edge
        (117.5, 40.0),  # outer end of the NW/NE edge
    ],
)
def test_a_point_on_the_outer_boundary_is_covered(x, y):
    grids = quad_frame()
    cover = covering(grids, x, y)
    assert cover
    assert not any(g.contains(shapely.Point(x, y)) for g in grids.geometry)  # covers, not within
    assert GridIndex(grids).locate([x], [y])[0] == min(cover)


@pytest.mark.parametrize("offset", [1e-7, 1e-9, 1e-12, 2.0**-40])
def test_a_hair_off_a_shared_edge_goes_to_the_side_the_point_is_on(offset):
    grids = quad_frame()
    index = GridIndex(grids)
    x = np.array([117.5 - offset, 117.5 + offset, 117.25, 117.25, 118.0 + offset])
    y = np.array([39.75, 39.75, 39.5 + offset, 39.5 - offset, 39.25])
    assert list(index.locate(x, y)) == list(geos_answer(grids, x, y))
    assert list(index.locate(x, y)) == ["Q3", "Q1", "Q3", "Q4", ""]


def test_quad_random_and_lattice_points_match_geos():
    grids = quad_frame()
    index = GridIndex(grids)
    rx, ry = random_points(grids.total_bounds, 5_000, seed=3, margin=0.1)
    # Every point of a 1/16-degree lattice: many on edges and corners, exactly.
    gx, gy = np.meshgrid(np.arange(116.75, 118.3, 0.0625), np.arange(38.75, 40.3, 0.0625))
    x, y = np.concatenate([rx, gx.ravel()]), np.concatenate([ry, gy.ravel()])
    assert_agrees(index, grids, x, y)


def test_answers_are_deterministic_and_independent_of_row_order():
    x = np.array([p[0] for p in EDGE_POINTS] + [117.5, 117.0, 117.3, 117.9, 116.0])
    y = np.array([p[1] for p in EDGE_POINTS] + [39.5, 39.0, 39.1, 39.9, 39.0])
    base = GridIndex(quad_frame())
    first = list(base.locate(x, y))
    assert first == list(geos_answer(quad_frame(), x, y))
    for _ in range(3):
        assert list(base.locate(x, y)) == first
    rng = np.random.default_rng(11)
    for order in [(3, 2, 1, 0), (1, 3, 0, 2), *(rng.permutation(4) for _ in range(4))]:
        assert list(GridIndex(quad_frame(order)).locate(x, y)) == first


def test_the_input_frame_is_not_modified():
    grids = quad_frame((2, 0, 3, 1))
    before = grids.copy()
    GridIndex(grids).locate([117.5], [39.5])
    pd.testing.assert_frame_equal(grids, before)


# --- T-junctions -----------------------------------------------------------------------------


def t_junction_axis() -> gpd.GeoDataFrame:
    # The big grid's north edge runs (118, 39.5) → (117, 39.5) with no vertex at 117.5, where
    # the two small grids meet.
    big = shapely.Polygon([(117.0, 39.0), (118.0, 39.0), (118.0, 39.5), (117.0, 39.5)])
    return grid_frame(
        {
            "T2": big,
            "T1": shapely.box(117.0, 39.5, 117.5, 40.0),
            "T3": shapely.box(117.5, 39.5, 118.0, 40.0),
        }
    )


def t_junction_slanted(vertex: tuple[float, float]) -> gpd.GeoDataFrame:
    # The big grid is the triangle under the diagonal (117, 39) → (118, 40); the small grids
    # split the triangle above it at ``vertex`` (on the diagonal, or as close as doubles get).
    vx, vy = vertex
    return grid_frame(
        {
            "S2": shapely.Polygon([(117.0, 39.0), (118.0, 39.0), (118.0, 40.0)]),
            "S1": shapely.Polygon([(117.0, 39.0), (vx, vy), (vx, 40.0), (117.0, 40.0)]),
            "S3": shapely.Polygon([(vx, vy), (118.0, 40.0), (vx, 40.0)]),
        }
    )


T_JUNCTIONS = {
    "axis": t_junction_axis(),
    "slanted-exact": t_junction_slanted((117.5, 39.5)),
    "slanted-rounded": t_junction_slanted((117.0 + 1 / 3, 39.0 + 1 / 3)),
}


@pytest.mark.parametrize("name", list(T_JUNCTIONS))
def test_t_junction_points_match_geos(name):
    grids = T_JUNCTIONS[name]
    index = GridIndex(grids)
    rx, ry = random_points(grids.total_bounds, 5_000, seed=5, margin=0.05)
    ex, ey = near_edges(grids, offsets=(1e-6, *OFFSETS))
    vx, vy = near_vertices(grids, offsets=(1e-6, *OFFSETS))
    # Points along the big grid's long edge, through the junction.
    t = np.linspace(0, 1, 1001)
    if name == "axis":
        lx, ly = 117.0 + t, np.full_like(t, 39.5)
    else:
        lx, ly = 117.0 + t, 39.0 + t
    x = np.concatenate([rx, ex, vx, lx, lx, lx])
    y = np.concatenate([ry, ey, vy, ly, ly + 1e-9, ly - 1e-9])
    assert_agrees(index, grids, x, y)


def test_t_junction_shared_edge_goes_to_the_lower_code_on_each_side_of_the_junction():
    grids = t_junction_axis()
    index = GridIndex(grids)
    x, y = np.array([117.25, 117.75, 117.5]), np.array([39.5, 39.5, 39.5])
    assert [min(covering(grids, *p)) for p in zip(x, y, strict=True)] == ["T1", "T2", "T1"]
    assert list(index.locate(x, y)) == ["T1", "T2", "T1"]


# --- holes and MultiPolygons -----------------------------------------------------------------


def holes_and_parts(sign: float) -> gpd.GeoDataFrame:
    """H2: a square with two holes, one filled by grid H3, one empty. M1: two separate squares.
    ``sign`` orients the rings (1: exterior counter-clockwise; -1: the shapefile way)."""
    outer = shapely.Polygon(
        [(117.0, 39.0), (118.0, 39.0), (118.0, 40.0), (117.0, 40.0)],
        holes=[
            [(117.25, 39.25), (117.75, 39.25), (117.75, 39.75), (117.25, 39.75)],
            [(117.8125, 39.8125), (117.9375, 39.8125), (117.9375, 39.9375), (117.8125, 39.9375)],
        ],
    )
    inner = shapely.box(117.25, 39.25, 117.75, 39.75)
    multi = shapely.MultiPolygon(
        [shapely.box(118.0, 39.0, 118.25, 39.25), shapely.box(118.5, 39.0, 118.75, 39.25)]
    )
    return grid_frame(
        {
            "H2": orient(outer, sign),
            "H3": orient(inner, sign),
            "M1": shapely.MultiPolygon([orient(p, sign) for p in multi.geoms]),
        }
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_holes_and_multipolygon_parts(sign):
    grids = holes_and_parts(sign)
    assert grids.geometry.is_valid.all()
    index = GridIndex(grids)
    cases = {
        (117.1, 39.1): "H2",  # the holed grid's body
        (117.5, 39.5): "H3",  # the grid filling the hole
        (117.875, 39.875): "",  # the empty hole
        (118.125, 39.125): "M1",  # first part
        (118.625, 39.125): "M1",  # second part
        (118.375, 39.125): "",  # between the parts
        (117.25, 39.5): "H2",  # hole boundary: both cover, H2 is lower
        (117.8125, 39.875): "H2",  # empty hole's boundary: covered by H2 alone
        (118.0, 39.125): "H2",  # H2's east edge is M1's west edge
        (118.5, 39.25): "M1",  # a corner of M1's second part
    }
    x = np.array([p[0] for p in cases])
    y = np.array([p[1] for p in cases])
    assert list(geos_answer(grids, x, y)) == list(cases.values())  # the oracle agrees
    assert list(index.locate(x, y)) == list(cases.values())
    rx, ry = random_points(grids.total_bounds, 5_000, seed=8, margin=0.05)
    ex, ey = near_edges(grids)
    vx, vy = near_vertices(grids)
    assert_agrees(index, grids, np.concatenate([rx, ex, vx]), np.concatenate([ry, ey, vy]))


# --- neighbours that do not quite match, and overlaps ----------------------------------------


@pytest.mark.parametrize("jitter", [3e-10, 3e-9, 3e-8])
def test_neighbours_with_jittered_shared_vertices_match_geos(jitter):
    """A 6 × 6 lattice of ~130 m grids, each with its own copy of its corners moved by about
    ``jitter`` degrees: shared edges that differ by rounding (below and above the index's
    snapping), with slivers of gap and overlap between neighbours."""
    rng = np.random.default_rng(int(jitter * 1e12))
    w = 0.0015
    rows = {}
    for i in range(6):
        for j in range(6):
            corners = np.array([(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]) * w
            corners += np.array([X0, Y0]) + rng.normal(0, jitter, corners.shape)
            rows[f"J{(i * 7 + j * 5) % 36:02d}"] = shapely.Polygon(corners)
    grids = grid_frame(rows)
    assert grids.geometry.is_valid.all()
    index = GridIndex(grids)
    rx, ry = random_points(grids.total_bounds, 5_000, seed=12, margin=0.02)
    ex, ey = near_edges(grids, offsets=(3 * jitter, jitter, *OFFSETS))
    vx, vy = near_vertices(grids, offsets=(3 * jitter, jitter, *OFFSETS))
    assert_agrees(index, grids, np.concatenate([rx, ex, vx]), np.concatenate([ry, ey, vy]))


OVERLAPS = {
    # B's west edge (x = 117.4) lies inside A, A's east edge (x = 117.6) inside B.
    "crossing": {
        "A": shapely.box(117.0, 39.0, 117.6, 40.0),
        "B": shapely.box(117.4, 39.0, 118.0, 40.0),
    },
    # B lies inside A (A has no hole).
    "nested": {
        "A": shapely.box(117.0, 39.0, 118.0, 40.0),
        "B": shapely.box(117.4, 39.4, 117.6, 39.6),
    },
}


@pytest.mark.parametrize("name", list(OVERLAPS))
def test_overlapping_grids_give_the_lowest_containing_code(name):
    """Where grids overlap, the lowest-coded grid containing the point has it, as GEOS and the
    database (ST_Covers … ORDER BY code) say; outside the overlap each grid has its own points."""
    grids = grid_frame(OVERLAPS[name])
    index = GridIndex(grids)
    x = np.array([117.2, 117.38, 117.5, 117.62, 117.8])
    y = np.full(len(x), 39.5)
    assert list(index.locate(x, y)) == list(geos_answer(grids, x, y))
    rx, ry = random_points(grids.total_bounds, 5_000, seed=13, margin=0.05)
    assert_agrees(index, grids, rx, ry)


def test_a_point_on_one_grids_edge_inside_an_overlapping_grid_goes_to_the_lowest_code():
    """Covers, not contains first: B's edge at x=117.4 lies inside A, so both cover points on
    it and A (the lower code) has them; on A's edge inside B, likewise A."""
    grids = grid_frame(OVERLAPS["crossing"])
    index = GridIndex(grids)
    x = np.array([117.4, 117.6, 117.6])
    y = np.array([39.5, 39.5, 39.123456789])
    assert list(index.locate(x, y)) == [min(grids["code"])] * 3


def test_a_sub_square_metre_overlap_that_validation_accepts_does_not_lose_points():
    """Grid NE_1 of the tiny hierarchy pokes a 17 m × 4 cm spike (0.7 m², under validate()'s
    1 m² tolerance) into its east neighbour: points of the neighbour beside the spike must
    still be located in it."""
    ne_1, nw_2 = "120106001001002", "120106002001001"
    width = 0.04 / 111_000
    spike = shapely.box(
        X0 + 1.99 * U, Y0 + 1.5 * U - width / 2, X0 + 2.05 * U, Y0 + 1.5 * U + width / 2
    )
    hierarchy = frame(replace(tiny_rows(), ne_1, geometry=shapely.union(box(1, 1, 2, 2), spike)))
    assert validate(hierarchy).issues == []
    grids = grids_with_chain(hierarchy)
    index = GridIndex(grids)
    rng = np.random.default_rng(21)
    x = X0 + rng.uniform(1.9, 2.2, 5_000) * U
    y = Y0 + rng.uniform(1.4, 1.6, 5_000) * U
    assert set(geos_answer(grids, x, y)) == {ne_1, nw_2}
    assert_agrees(index, grids, x, y)


# --- outside and invalid inputs --------------------------------------------------------------


def test_non_finite_and_far_points_are_outside():
    index = GridIndex(quad_frame())
    nan, inf = np.nan, np.inf
    x = [nan, 117.5, nan, inf, -inf, 117.5, 117.5, 0.0, -180.0, 1e308, -1e308, 117.5, 117.5]
    y = [nan, nan, 39.5, 39.5, 39.5, inf, -inf, 0.0, 90.0, 1e308, -1e308, 39.5 + 1e6, -1e308]
    with np.errstate(over="ignore"):
        assert list(index.locate(x, y)) == [""] * len(x)
        assert list(index.locate_index(x, y)) == [-1] * len(x)
        chain = index.chain(x, y, nearest=True)
    assert (chain["grid_code"] == "").all()
    # Non-finite points have no nearest grid either.
    assert list(chain["nearest_grid_code"][:7]) == [""] * 7
    assert chain["nearest_distance_m"][:7].isna().all()


def test_mismatched_lengths_are_refused():
    index = GridIndex(quad_frame())
    with pytest.raises(ValueError):
        index.locate([117.5, 117.6], [39.5])
    with pytest.raises(ValueError):
        index.locate_index([117.5], [39.5, 39.6])
    with pytest.raises(ValueError):
        index.chain([117.5, 117.6, 117.7], [39.5])


@pytest.mark.parametrize("only", [None, [True, False, False]])
def test_nearest_refuses_mismatched_lengths(only):
    index = GridIndex(quad_frame())
    with pytest.raises(ValueError):
        index.nearest([116.0, 116.1, 116.2], [39.5], only=only)


def test_empty_inputs_give_empty_outputs():
    index = GridIndex(quad_frame())
    assert index.locate([], []).shape == (0,)
    assert index.locate_index(np.zeros(0), np.zeros(0)).shape == (0,)
    chain = index.chain([], [], nearest=True)
    assert len(chain) == 0
    assert {f"{level}_code" for level in CHAIN_LEVELS} <= set(chain.columns)


def test_lists_scalars_and_arrays_of_any_shape_work():
    grids = quad_frame()
    index = GridIndex(grids)
    x, y = [117.25, 117.75, 116.0], [39.75, 39.25, 39.0]
    want = list(geos_answer(grids, x, y))
    assert want == ["Q3", "Q2", ""]
    assert list(index.locate(x, y)) == want
    assert list(index.locate(tuple(x), tuple(y))) == want
    assert list(index.locate(np.array(x, dtype=np.float32), np.array(y, np.float32))) == want
    assert list(index.locate(117.25, 39.75)) == ["Q3"]
    assert list(index.locate(np.array([x, x]), np.array([y, y]))) == want * 2


def test_an_index_over_no_grids_locates_nothing():
    empty = gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:4490")
    index = GridIndex(empty)
    assert len(index) == 0
    assert list(index.locate([117.5, np.nan], [39.5, 39.5])) == ["", ""]
    chain = index.chain([117.5], [39.5], nearest=True)
    assert chain["grid_code"].tolist() == [""]
    assert chain["nearest_grid_code"].tolist() == [""]


# --- chain -----------------------------------------------------------------------------------


@functools.cache
def tiny_index() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, GridIndex]:
    hierarchy = tiny_frame()
    grids = grids_with_chain(hierarchy)
    return hierarchy, grids, GridIndex(grids)


def test_grids_with_chain_follows_parent_codes():
    hierarchy, grids, _ = tiny_index()
    assert sorted(grids["code"]) == sorted(hierarchy.loc[hierarchy["level"] == "grid", "code"])
    by_code = hierarchy.set_index("code")
    for row in grids.itertuples():
        community = by_code.loc[row.code, "parent_code"]
        street = by_code.loc[community, "parent_code"]
        district = by_code.loc[street, "parent_code"]
        assert (row.community_code, row.street_code, row.district_code) == (
            community,
            street,
            district,
        )
        assert row.name == by_code.loc[row.code, "name"]
        assert row.community_name == by_code.loc[community, "name"]
        assert row.street_name == by_code.loc[street, "name"]
        assert row.district_name == by_code.loc[district, "name"]
        assert row.geometry.equals(by_code.loc[row.code, "geometry"])
    assert grids.crs.to_epsg() == 4490


def test_chain_at_grid_centres_matches_the_regions_containing_the_point():
    """The whole chain of a point agrees with which region of each level contains it, per
    shapely on the hierarchy itself."""
    hierarchy, grids, index = tiny_index()
    centres = shapely.get_coordinates(shapely.centroid(grids.geometry.array))
    x, y = centres[:, 0], centres[:, 1]
    chain = index.chain(x, y)
    assert list(chain.columns) == [
        f"{level}_{part}" for level in CHAIN_LEVELS for part in ("code", "name")
    ]
    for i, (px, py) in enumerate(zip(x, y, strict=True)):
        pt = shapely.Point(px, py)
        for level in CHAIN_LEVELS:
            rows = hierarchy[(hierarchy["level"] == level) & hierarchy.geometry.contains(pt)]
            assert len(rows) == 1
            assert chain[f"{level}_code"][i] == rows["code"].iloc[0]
            assert chain[f"{level}_name"][i] == rows["name"].iloc[0]
    # And it is the row grids_with_chain made for that grid.
    expected = grids.drop(columns="geometry").set_index("code").loc[chain["grid_code"]]
    for level in CHAIN_LEVELS[1:]:
        assert list(chain[f"{level}_code"]) == list(expected[f"{level}_code"])
    assert list(chain["grid_name"]) == list(expected["name"])


def test_grids_with_chain_leaves_a_broken_chain_empty():
    orphan, orphan_parent = "120106001009001", "120106001009"
    rows = replace(tiny_rows(), "120106001001001", code=orphan, parent_code=orphan_parent)
    grids = grids_with_chain(frame(rows)).set_index("code")
    for level in CHAIN_LEVELS[1:]:
        assert grids.loc[orphan, f"{level}_code"] == ""
        assert grids.loc[orphan, f"{level}_name"] == ""
    assert grids.loc["120106001001002", "district_code"] == "120106"
    index = GridIndex(grids.reset_index())
    chain = index.chain([X0 + 0.5 * U], [Y0 + 1.5 * U]).iloc[0]
    assert chain["grid_code"] == orphan
    assert chain["community_code"] == chain["street_code"] == chain["district_code"] == ""


def test_chain_on_a_shared_edge_follows_the_lower_grid_code():
    _, grids, index = tiny_index()
    # The street boundary x = 2 U: grid 002 of community 1 vs grid 001 of community 2.
    x, y = X0 + 2 * U, Y0 + 1.5 * U
    cover = covering(grids, x, y)
    assert len(cover) == 2
    row = index.chain([x], [y]).iloc[0]
    assert row["grid_code"] == min(cover)
    assert row["street_code"] == min(cover)[:9]


def projected(geoms, transformer: Transformer) -> np.ndarray:
    dense = shapely.segmentize(np.asarray(geoms, dtype=object), 1e-5)
    return shapely.transform(dense, lambda xy: np.column_stack(transformer.transform(*xy.T)))


def test_chain_nearest_gives_the_nearest_grid_and_its_distance_in_metres():
    _, grids, index = tiny_index()
    # Outside points (fixture units), each with a clear nearest grid; then inside points.
    outside = [(-0.5, 0.5), (5.0, 1.7), (1.3, -3.0), (-20.0, -15.0), (2.6, 2.01), (4.3, -0.2)]
    inside = [(0.5, 0.5), (3.5, 1.5), (2.0, 1.0), (0.0, 0.0)]
    pts = np.array(outside + inside, dtype=float)
    x, y = X0 + pts[:, 0] * U, Y0 + pts[:, 1] * U
    chain = index.chain(x, y, nearest=True)
    n_out = len(outside)

    to_metric = Transformer.from_crs("EPSG:4490", METRIC, always_xy=True)
    metric_grids = projected(grids.geometry.array, to_metric)
    mx, my = to_metric.transform(x[:n_out], y[:n_out])
    dist = shapely.distance(shapely.points(mx, my)[:, None], metric_grids[None, :])
    codes = grids["code"].to_numpy()
    for i in range(n_out):
        order = np.argsort(dist[i])
        assert dist[i, order[1]] > dist[i, order[0]] * 1.001  # a clear nearest grid
        assert chain["grid_code"][i] == ""
        assert chain["nearest_grid_code"][i] == codes[order[0]]
        assert chain["nearest_distance_m"][i] == pytest.approx(dist[i, order[0]], rel=0.01)
    # Sanity of the oracle itself: 0.5 U of longitude at 39.16° N is about 0.5 U × 111.32 km ×
    # cos(39.16°).
    assert dist[0].min() == pytest.approx(0.5 * U * 111_320 * np.cos(np.radians(39.16)), rel=0.01)
    assert (chain["grid_code"][n_out:] != "").all()
    assert (chain["nearest_grid_code"][n_out:] == "").all()
    assert chain["nearest_distance_m"][n_out:].isna().all()


def test_nearest_inside_a_grid_is_that_grid_at_distance_zero():
    _, grids, index = tiny_index()
    centres = shapely.get_coordinates(shapely.centroid(grids.geometry.array))
    codes, dist = index.nearest(centres[:, 0], centres[:, 1])
    assert list(codes) == list(grids["code"])
    assert (dist == 0).all()


# --- constructor -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grids",
    [
        pytest.param(
            gpd.GeoDataFrame({"id": ["A"]}, geometry=[QUAD["Q1"]], crs=4490), id="no-code"
        ),
        pytest.param(
            gpd.GeoDataFrame({"code": ["A", "A"]}, geometry=[QUAD["Q1"], QUAD["Q2"]], crs=4490),
            id="duplicate-code",
        ),
        pytest.param(
            gpd.GeoDataFrame({"code": [7, 7]}, geometry=[QUAD["Q1"], QUAD["Q2"]], crs=4490),
            id="duplicate-int-code",
        ),
        pytest.param(grid_frame({"A": QUAD["Q1"], "B": shapely.Point(117.5, 39.5)}), id="point"),
        pytest.param(
            grid_frame({"A": QUAD["Q1"], "B": shapely.LineString([(117, 39), (118, 40)])}),
            id="line",
        ),
        pytest.param(
            grid_frame(
                {"A": QUAD["Q1"], "B": shapely.GeometryCollection([QUAD["Q2"], QUAD["Q3"]])}
            ),
            id="collection",
        ),
        pytest.param(grid_frame({"A": QUAD["Q1"], "B": shapely.Polygon()}), id="empty"),
        pytest.param(grid_frame({"A": QUAD["Q1"], "B": shapely.MultiPolygon()}), id="empty-multi"),
        pytest.param(grid_frame({"A": QUAD["Q1"], "B": None}), id="missing"),
    ],
)
def test_bad_grids_are_refused(grids):
    with pytest.raises(ValueError):
        GridIndex(grids)


def test_grids_in_a_projected_crs_are_reprojected():
    _, grids, lonlat = tiny_index()
    metric = grids.to_crs(METRIC)
    assert metric.total_bounds[0] > 1000  # really metres
    index = GridIndex(metric)
    rng = np.random.default_rng(4)
    # Points well inside the grids or well outside (reprojection moves vertices by nanodegrees).
    px, py = rng.uniform(-1, 5, 2000), rng.uniform(-1, 3, 2000)
    keep = (np.abs(px - np.round(px)) > 0.01) & (np.abs(py - np.round(py)) > 0.01)
    x, y = X0 + px[keep] * U, Y0 + py[keep] * U
    got = index.locate(x, y)
    assert list(got) == list(lonlat.locate(x, y))
    assert list(got) == list(geos_answer(grids, x, y))
    assert (got != "").any() and (got == "").any()
    assert index.bounds == pytest.approx(lonlat.bounds, abs=1e-7)


def test_grids_without_a_crs_are_taken_as_lon_lat():
    grids = grid_frame(QUAD, crs=None)
    index = GridIndex(grids)
    x, y = [117.25, 117.75, 117.5], [39.75, 39.25, 39.5]
    assert list(index.locate(x, y)) == list(geos_answer(grids, x, y))
