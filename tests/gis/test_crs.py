"""gis.crs: GCJ-02 / BD-09 offsets and their inverses, CRS names, transforms and areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

from gis.crs import (
    UnknownCRSError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    metric_area,
    normalise_crs,
    out_of_china,
    point_crs,
    to_cgcs2000,
    transform_geometries,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from tests.fixtures.tiny import box, ring

GEOD = Geod(ellps="WGS84")
CM = 0.01  # metres
TIANJIN = (117.155, 39.17)
OUTSIDE_CHINA = {"Tokyo": (139.7, 35.7), "London": (-0.1276, 51.5072), "Sydney": (151.2, -33.87)}

lons = st.floats(min_value=73.7, max_value=134.8, allow_nan=False, allow_infinity=False)
lats = st.floats(min_value=18.2, max_value=53.5, allow_nan=False, allow_infinity=False)
PROPERTY = settings(max_examples=200, deadline=None)


def metres_between(lon1, lat1, lon2, lat2) -> np.ndarray:
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (lon1, lat1, lon2, lat2))
    )
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


# --- round trips over mainland China ---------------------------------------------------------


@PROPERTY
@given(lons, lats)
def test_gcj02_inverse_undoes_the_forward_shift_within_1cm(lon, lat):
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert metres_between(lon, lat, *back) < CM


@PROPERTY
@given(lons, lats)
def test_bd09_to_wgs84_undoes_wgs84_to_bd09_within_1cm(lon, lat):
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert metres_between(lon, lat, *back) < CM


@PROPERTY
@given(lons, lats)
def test_bd09_to_gcj02_undoes_gcj02_to_bd09_within_1cm(lon, lat):
    back = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert metres_between(lon, lat, *back) < CM


@PROPERTY
@given(st.lists(st.tuples(lons, lats), min_size=1, max_size=30))
def test_round_trip_holds_for_whole_arrays_at_once(points):
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert np.all(metres_between(lon, lat, *back) < CM)


# --- the size of the offsets ---------------------------------------------------------------


def test_gcj02_shift_at_tianjin_is_several_hundred_metres():
    shifted = wgs84_to_gcj02(*TIANJIN)
    assert 400 < metres_between(*TIANJIN, *shifted) < 700


def test_bd09_shift_at_tianjin_is_over_a_kilometre():
    shifted = wgs84_to_bd09(*TIANJIN)
    assert 1100 < metres_between(*TIANJIN, *shifted) < 1600


# --- outside China ---------------------------------------------------------------------------


@pytest.mark.parametrize("place", sorted(OUTSIDE_CHINA))
def test_points_outside_china_are_not_shifted(place):
    lon, lat = OUTSIDE_CHINA[place]
    assert out_of_china(lon, lat)
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84):
        out_lon, out_lat = fn(lon, lat)
        assert float(out_lon) == lon
        assert float(out_lat) == lat


def test_out_of_china_is_false_for_tianjin():
    assert not out_of_china(*TIANJIN)


def test_mixed_arrays_shift_only_the_points_inside_china():
    lon = np.array([TIANJIN[0], OUTSIDE_CHINA["Tokyo"][0]])
    lat = np.array([TIANJIN[1], OUTSIDE_CHINA["Tokyo"][1]])
    out_lon, out_lat = wgs84_to_gcj02(lon, lat)
    assert (out_lon[1], out_lat[1]) == (lon[1], lat[1])
    assert metres_between(lon[0], lat[0], out_lon[0], out_lat[0]) > 400


# --- vectorisation ---------------------------------------------------------------------------

ALL_CONVERSIONS = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    bd09_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
]


@pytest.mark.parametrize("fn", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_arrays_in_give_arrays_of_the_same_shape_out(fn):
    rng = np.random.default_rng(7)
    lon = rng.uniform(116.0, 118.0, size=(3, 4))
    lat = rng.uniform(38.0, 40.0, size=(3, 4))
    out_lon, out_lat = fn(lon, lat)
    assert out_lon.shape == lon.shape
    assert out_lat.shape == lat.shape
    # Each element is what the scalar call gives.
    for i in range(3):
        for j in range(4):
            s_lon, s_lat = fn(lon[i, j], lat[i, j])
            assert metres_between(s_lon, s_lat, out_lon[i, j], out_lat[i, j]) < 1e-3


@pytest.mark.parametrize("fn", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_scalars_work(fn):
    out_lon, out_lat = fn(*TIANJIN)
    assert np.ndim(out_lon) == 0 and np.ndim(out_lat) == 0
    assert np.isfinite(float(out_lon)) and np.isfinite(float(out_lat))
    # Every one of these conversions moves a Tianjin point.
    assert metres_between(*TIANJIN, out_lon, out_lat) > 100


@pytest.mark.parametrize("fn", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_lists_work_and_empty_arrays_give_empty_arrays(fn):
    out_lon, _ = fn([117.1, 117.2], [39.1, 39.2])
    assert out_lon.shape == (2,)
    empty_lon, empty_lat = fn(np.array([]), np.array([]))
    assert empty_lon.shape == (0,) and empty_lat.shape == (0,)


# --- CRS names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("WGS84", "wgs84"),
        ("wgs-84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("CGCS2000", "cgcs2000"),
        ("EPSG:4490", "cgcs2000"),
        ("gcj-02", "gcj02"),
        ("GCJ02", "gcj02"),
        ("BD09", "bd09"),
        ("bd-09", "bd09"),
        ("EPSG:4548", "EPSG:4548"),
        (" EPSG:4548 ", "EPSG:4548"),
        ("epsg:4527", "EPSG:4527"),
    ],
)
def test_normalise_crs_accepts_usual_names(name, canonical):
    assert normalise_crs(name) == canonical


@pytest.mark.parametrize("name", ["nonsense", "", "   ", "EPSG:999999"])
def test_normalise_crs_rejects_unknown_names(name):
    with pytest.raises(UnknownCRSError) as info:
        normalise_crs(name)
    # The message tells the user what is accepted.
    assert "gcj02" in str(info.value)


def test_unknown_crs_error_is_a_value_error():
    assert issubclass(UnknownCRSError, ValueError)


# --- to_cgcs2000 -----------------------------------------------------------------------------


def test_to_cgcs2000_from_gauss_kruger_agrees_with_pyproj():
    # A point in Gauss-Kruger zone 39 (CM 117E) near Tianjin, in metres.
    x = np.array([515_000.0, 498_765.4])
    y = np.array([4_335_000.0, 4_340_123.0])
    expected = Transformer.from_crs("EPSG:4548", "EPSG:4490", always_xy=True).transform(x, y)
    lon, lat = to_cgcs2000(x, y, "EPSG:4548")
    assert np.all(metres_between(lon, lat, *expected) < 1e-3)
    # And it is near Tianjin, east of the central meridian for x > 500 km.
    assert 116.5 < lon[0] < 117.5 and 39.0 < lat[0] < 39.4
    assert lon[0] > 117.0 > lon[1]


def test_to_cgcs2000_from_offset_systems_undoes_the_offsets():
    lon, lat = TIANJIN
    assert metres_between(lon, lat, *to_cgcs2000(*wgs84_to_gcj02(lon, lat), "gcj02")) < CM
    assert metres_between(lon, lat, *to_cgcs2000(*wgs84_to_bd09(lon, lat), "bd-09")) < CM


@pytest.mark.parametrize("name", ["wgs84", "cgcs2000", "EPSG:4326", "EPSG:4490"])
def test_to_cgcs2000_leaves_wgs84_and_cgcs2000_as_they_are(name):
    lon, lat = to_cgcs2000([117.1, 117.2], [39.1, 39.2], name)
    np.testing.assert_array_equal(lon, [117.1, 117.2])
    np.testing.assert_array_equal(lat, [39.1, 39.2])


def test_to_cgcs2000_rejects_unknown_crs():
    with pytest.raises(UnknownCRSError):
        to_cgcs2000(117.1, 39.1, "nonsense")


# --- transform_geometries --------------------------------------------------------------------


def _shift(geom, fn):
    return shapely.transform(geom, lambda c: np.column_stack(fn(c[:, 0], c[:, 1])))


@pytest.mark.parametrize(("name", "forward"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_transform_geometries_inverts_the_offsets_on_every_vertex(name, forward):
    original = ring((0, 0), (3, 0), (3.5, 2), (1, 2.5), (0, 0))
    shifted = _shift(original, forward)
    (back,) = transform_geometries([shifted], name)
    got = shapely.get_coordinates(back)
    for lon, lat in shapely.get_coordinates(original):
        nearest = metres_between(lon, lat, got[:, 0], got[:, 1]).min()
        assert nearest < CM
    # The input was hundreds of metres off. (Between the vertices the result follows the image
    # of the file's straight edges, which bows away from the original straight edges by
    # centimetres for GCJ-02 and metres for BD-09: only the vertices are exact.)
    assert shapely.hausdorff_distance(shifted, original) > 1e-3
    original_area, back_area = metric_area([original, back], "EPSG:4548")
    assert back_area == pytest.approx(original_area, rel=1e-3)


def test_transform_geometries_leaves_cgcs2000_alone():
    geoms = [box(0, 0, 1, 1), box(1, 0, 2, 1)]
    out = transform_geometries(geoms, "wgs84")
    assert all(a.equals_exact(b, 0) for a, b in zip(out, geoms, strict=True))


def _gk_square(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def test_shared_edges_stay_shared_through_a_projection():
    # A 2 km square in EPSG:4548 and its two halves: after transforming to lon/lat they must
    # still tile it, with no sliver where the parent's long edge meets the halves' short ones.
    x0, y0, size = 514_000.0, 4_334_000.0, 2_000.0
    big = _gk_square(x0, y0, x0 + size, y0 + size)
    west = _gk_square(x0, y0, x0 + size / 2, y0 + size)
    east = _gk_square(x0 + size / 2, y0, x0 + size, y0 + size)
    big_ll, west_ll, east_ll = transform_geometries([big, west, east], "EPSG:4548")
    halves = shapely.union(west_ll, east_ll)
    gap, spill, between = metric_area(
        [
            shapely.difference(big_ll, halves),
            shapely.difference(halves, big_ll),
            shapely.intersection(west_ll, east_ll),
        ],
        "EPSG:4548",
    )
    assert gap < 0.01
    assert spill < 0.01
    assert between < 0.01
    # And areas survive the round trip into metres.
    assert metric_area([big_ll], "EPSG:4548")[0] == pytest.approx(size * size, rel=1e-6)


def test_transform_geometries_from_projected_lands_where_pyproj_says():
    x0, y0 = 514_000.0, 4_334_000.0
    (geom,) = transform_geometries([shapely.Point(x0, y0)], "EPSG:4548")
    lon, lat = Transformer.from_crs("EPSG:4548", "EPSG:4490", always_xy=True).transform(x0, y0)
    assert metres_between(geom.x, geom.y, lon, lat) < 1e-3


# --- metric_area -----------------------------------------------------------------------------


def test_metric_area_of_a_small_box_matches_the_geodesic_area():
    cell = box(0, 0, 1, 1)  # 0.004 deg x 0.004 deg
    geodesic, _ = Geod(ellps="GRS80").geometry_area_perimeter(cell)
    (area,) = metric_area([cell], "EPSG:4548")
    assert area == pytest.approx(abs(geodesic), rel=0.005)


def test_metric_area_is_array_in_array_out():
    cells = [box(0, 0, 1, 1), box(0, 0, 2, 1), box(0, 0, 2, 2)]
    areas = metric_area(cells, "EPSG:4548")
    assert areas.shape == (3,)
    # Doubling the box doubles the area (to the map's scale variation, far below 0.1 %).
    assert areas[1] == pytest.approx(2 * areas[0], rel=1e-3)
    assert areas[2] == pytest.approx(4 * areas[0], rel=1e-3)


def test_metric_area_of_a_collinear_sliver_is_zero():
    # All three vertices lie on one straight lon/lat line, so the polygon has no area; a
    # projection of only its vertices would bend that line and invent some.
    sliver = ring((0, 0), (2, 1), (4, 2), (0, 0))
    (area,) = metric_area([sliver], "EPSG:4548")
    assert area < 0.01


def test_metric_area_of_missing_geometry_is_zero():
    areas = metric_area([shapely.Polygon(), box(0, 0, 1, 1)], "EPSG:4548")
    assert areas[0] == 0
    assert areas[1] > 0


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("GCJ-02", "gcj02"), ("EPSG:4326", "wgs84"), ("bd09ll", "bd09"), ("CGCS2000", "cgcs2000")],
)
def test_point_crs_accepts_the_spellings_devices_use(spelling: str, expected: str) -> None:
    assert point_crs(spelling) == expected


@pytest.mark.parametrize("spelling", ["EPSG:3857", "mercator", "", "EPSG:4548"])
def test_point_crs_refuses_others_listing_the_accepted(spelling: str) -> None:
    with pytest.raises(UnknownCRSError, match="accepted: wgs84, cgcs2000, gcj02, bd09"):
        point_crs(spelling)
