"""gis.hierarchy.validate: one crafted defect per test on the tiny fixture hierarchy.

The tiny hierarchy (tests/fixtures/tiny.py), in units U = 0.004 deg from 117.15 E 39.16 N:
district [0,4]x[0,2]; streets and their single communities [0,2]x[0,2] and [2,4]x[0,2]; four
unit-square grids per community, numbered NW, NE, SW, SE.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gis.crs import metric_area, transform_geometries
from gis.hierarchy import Issue, Report, ValidationOptions, validate
from gis.io import read_boundaries
from tests.fixtures.tiny import X0, Y0, U, box, broken_rows, frame, replace, ring, tiny_rows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
METRIC = "EPSG:4548"

# Codes in the tiny hierarchy.
DISTRICT = "120106"
STREET_1, STREET_2 = "120106001", "120106002"
COMM_1, COMM_2 = "120106001001", "120106002001"
NW_1, NE_1, SW_1, SE_1 = (f"{COMM_1}{i:03d}" for i in range(1, 5))
NW_2, NE_2, SW_2, SE_2 = (f"{COMM_2}{i:03d}" for i in range(1, 5))


def area(geom: shapely.Geometry) -> float:
    return float(metric_area([geom], METRIC)[0])


def point(x: float, y: float) -> shapely.Point:
    """A point in fixture units."""
    return shapely.Point(X0 + x * U, Y0 + y * U)


def check(rows: list[dict], **options: object) -> Report:
    return validate(frame(rows), ValidationOptions(**options))


def of_kind(report: Report, kind: str) -> list[Issue]:
    return [i for i in report.issues if i.kind == kind]


def one(report: Report, kind: str, code: str | None = None) -> Issue:
    found = [i for i in of_kind(report, kind) if code is None or i.code == code]
    assert len(found) == 1, f"expected one {kind} for {code}, got {report.issues}"
    return found[0]


def located_in(issue: Issue, region: shapely.Geometry) -> bool:
    assert issue.location is not None, issue
    # A hair of slack for a point that GEOS puts exactly on the region's boundary.
    return region.buffer(1e-9).covers(shapely.Point(issue.location))


def percentages(message: str) -> list[float]:
    return [float(p) / 100 for p in re.findall(r"([0-9.]+)%", message)]


# --- the good hierarchy ----------------------------------------------------------------------


def test_tiny_hierarchy_is_valid_and_counted():
    report = validate(frame(tiny_rows()))
    assert report.issues == []
    assert report.ok
    assert report.counts == {"district": 1, "street": 2, "community": 2, "grid": 8}


def test_validate_does_not_modify_its_input():
    rows = replace(tiny_rows(), NW_1, geometry=ring((0, 1), (1, 2), (1, 1), (0, 2), (0, 1)))
    given = frame(rows)
    before = given.copy()
    validate(given)
    pd.testing.assert_frame_equal(given, before)


def test_validate_accepts_a_frame_without_crs_as_cgcs2000():
    given = frame(tiny_rows()).set_crs(None, allow_override=True)
    assert validate(given).ok


# --- geometry defects ------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", [None, shapely.Polygon()], ids=["none", "empty-polygon"])
def test_empty_geometry(geometry):
    report = check(replace(tiny_rows(), NW_1, geometry=geometry))
    issue = one(report, "empty-geometry", NW_1)
    assert issue.level == "grid"
    assert issue.feature == f"tiny#{NW_1}"
    assert not report.ok


@pytest.mark.parametrize(
    "geometry",
    [shapely.LineString([(X0, Y0 + U), (X0 + U, Y0 + 2 * U)]), point(0.5, 1.5)],
    ids=["linestring", "point"],
)
def test_not_polygon(geometry):
    report = check(replace(tiny_rows(), NW_1, geometry=geometry))
    issue = one(report, "not-polygon", NW_1)
    assert geometry.geom_type in issue.message
    assert located_in(issue, geometry)


def test_bow_tie_is_invalid_and_located_at_the_crossing():
    # (0,1) -> (1,2) -> (1,1) -> (0,2): the two diagonals cross at (0.5, 1.5).
    bow_tie = ring((0, 1), (1, 2), (1, 1), (0, 2), (0, 1))
    report = check(replace(tiny_rows(), NW_1, geometry=bow_tie))
    issue = one(report, "invalid-geometry", NW_1)
    assert "Self-intersection" in issue.message
    crossing = point(0.5, 1.5)
    assert issue.location == pytest.approx((crossing.x, crossing.y), abs=1e-9)


# --- code defects ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [None, ""], ids=["none", "empty"])
def test_missing_code(code):
    report = check(replace(tiny_rows(), NW_1, code=code))
    issue = one(report, "missing-code")
    assert issue.feature == f"tiny#{NW_1}"
    assert issue.code is None


def test_duplicate_code_names_both_features():
    report = check(replace(tiny_rows(), NE_1, code=NW_1))
    found = of_kind(report, "duplicate-code")
    assert {i.feature for i in found} == {f"tiny#{NW_1}", f"tiny#{NE_1}"}
    for issue in found:
        assert issue.code == NW_1
        assert f"tiny#{NW_1}" in issue.message and f"tiny#{NE_1}" in issue.message
    by_feature = {i.feature: i for i in found}
    assert located_in(by_feature[f"tiny#{NW_1}"], box(0, 1, 1, 2))
    assert located_in(by_feature[f"tiny#{NE_1}"], box(1, 1, 2, 2))


def test_bad_code_of_the_wrong_length():
    short = NW_1[:-1]
    report = check(replace(tiny_rows(), NW_1, code=short))
    issue = one(report, "bad-code", short)
    assert "15" in issue.message


def test_bad_code_not_starting_with_the_parents_code():
    stray = f"{COMM_2}005"  # a grid of community 2's code range, filed under community 1
    report = check(replace(tiny_rows(), NW_1, code=stray))
    issue = one(report, "bad-code", stray)
    assert COMM_1 in issue.message


def test_bad_code_with_a_zero_sequence():
    zero = f"{COMM_1}000"
    report = check(replace(tiny_rows(), NW_1, code=zero))
    assert "all-zero" in one(report, "bad-code", zero).message


def test_bad_code_follows_the_configured_scheme():
    from gis.codes import CodeScheme

    # Under 6,3,3,2 the 15-digit grid codes of the fixture are all one digit too long.
    report = check(tiny_rows(), scheme=CodeScheme.parse("6,3,3,2"))
    assert {i.code for i in of_kind(report, "bad-code")} == {
        f"{c}{i:03d}" for c in (COMM_1, COMM_2) for i in range(1, 5)
    }


def test_unknown_level():
    report = check(replace(tiny_rows(), NW_1, level="village"))
    issue = one(report, "unknown-level", NW_1)
    assert "village" in issue.message


def test_missing_level_is_reported_as_missing():
    report = check(replace(tiny_rows(), NW_1, level=None))
    issue = one(report, "unknown-level", NW_1)
    assert "no level" in issue.message


# --- parents ---------------------------------------------------------------------------------


def test_missing_parent_names_the_absent_code():
    report = check(replace(tiny_rows(), NW_1, parent_code="120106001009"))
    issue = one(report, "missing-parent", NW_1)
    assert "120106001009" in issue.message
    assert located_in(issue, box(0, 1, 1, 2))


def test_a_street_without_parent_code_is_missing_its_parent():
    report = check(replace(tiny_rows(), STREET_1, parent_code=None))
    issue = one(report, "missing-parent", STREET_1)
    assert "district" in issue.message


def test_wrong_parent_level_for_a_grid_filed_under_a_street():
    report = check(replace(tiny_rows(), NW_1, parent_code=STREET_1))
    issue = one(report, "wrong-parent-level", NW_1)
    assert "street" in issue.message and "community" in issue.message
    assert located_in(issue, box(0, 1, 1, 2))


def test_outside_parent_reports_the_share_inside():
    moved = box(-0.5, 1, 0.5, 2)  # half of grid NW_1 pushed west out of its community
    report = check(replace(tiny_rows(), NW_1, geometry=moved))
    issue = one(report, "outside-parent", NW_1)
    inside = box(0, 1, 0.5, 2)
    spill = box(-0.5, 1, 0, 2)
    share = area(inside) / area(moved)
    assert percentages(issue.message)[0] == pytest.approx(share, abs=0.001)
    assert COMM_1 in issue.message
    assert issue.area_m2 == pytest.approx(area(spill), rel=0.01)
    assert located_in(issue, spill)


@pytest.mark.parametrize("containment", [0.995, 0.98])
def test_containment_option_is_respected(containment):
    # Grid NW_1 reaches 0.01 U west of its community: about 1 % of it lies outside.
    grown = box(-0.01, 1, 1, 2)
    share = area(box(0, 1, 1, 2)) / area(grown)
    assert 0.98 < share < 0.995  # the fixture straddles the two settings
    report = check(replace(tiny_rows(), NW_1, geometry=grown), containment=containment)
    flagged = [i.code for i in of_kind(report, "outside-parent")]
    assert flagged == ([NW_1] if share < containment else [])


# --- overlaps, gaps, tiling ------------------------------------------------------------------


def test_overlap_between_grids_is_measured_and_located():
    # NE_2 ([3,4]x[1,2]) grows 0.2 U west into NW_2 ([2,3]x[1,2]).
    report = check(replace(tiny_rows(), NE_2, geometry=box(2.8, 1, 4, 2)))
    overlap = box(2.8, 1, 3, 2)
    issue = one(report, "overlap")
    assert {issue.code, *re.findall(r"\d{15}", issue.message)} == {NW_2, NE_2}
    assert issue.area_m2 == pytest.approx(area(overlap), rel=0.01)
    assert located_in(issue, overlap)
    tiling = one(report, "not-tiling", COMM_2)
    assert "overlapping" in tiling.message


def test_overlap_is_found_between_regions_of_different_parents():
    # NE_1 grows 0.3 U east into community 2's NW_2.
    report = check(replace(tiny_rows(), NE_1, geometry=box(1, 1, 2.3, 2)))
    issue = one(report, "overlap")
    assert {issue.code, *re.findall(r"\d{15}", issue.message)} == {NE_1, NW_2}
    assert issue.area_m2 == pytest.approx(area(box(2, 1, 2.3, 2)), rel=0.01)
    one(report, "outside-parent", NE_1)


def test_gap_left_by_a_shrunk_grid_is_measured_and_located():
    # SE_1 ([1,2]x[0,1]) loses its eastern fifth.
    report = check(replace(tiny_rows(), SE_1, geometry=box(1, 0, 1.8, 1)))
    gap = box(1.8, 0, 2, 1)
    issue = one(report, "gap", COMM_1)
    assert issue.area_m2 == pytest.approx(area(gap), rel=0.01)
    assert located_in(issue, gap)
    tiling = one(report, "not-tiling", COMM_1)
    covered = 1 - area(gap) / area(box(0, 0, 2, 2))
    assert percentages(tiling.message)[0] == pytest.approx(covered, abs=1e-4)


def test_community_without_grids_is_not_tiled():
    rows = [r for r in tiny_rows() if r.get("parent_code") != COMM_1]
    report = check(rows)
    issue = one(report, "not-tiling", COMM_1)
    assert "no grid" in issue.message
    assert located_in(issue, box(0, 0, 2, 2))
    assert report.counts["grid"] == 4


def test_a_parent_whose_children_leave_a_gap_is_not_tiled():
    # Street 2's only community shrinks to its western half.
    report = check(replace(tiny_rows(), COMM_2, geometry=box(2, 0, 3, 2)))
    gap = one(report, "gap", STREET_2)
    assert gap.area_m2 == pytest.approx(area(box(3, 0, 4, 2)), rel=0.01)
    assert located_in(gap, box(3, 0, 4, 2))
    tiling = one(report, "not-tiling", STREET_2)
    assert percentages(tiling.message)[0] == pytest.approx(0.5, abs=0.001)


def test_overlap_below_tolerance_is_not_reported():
    # NE_2 reaches 0.0001 U (about 3.5 cm) into NW_2: an overlap of some 15 m².
    sliver = box(2.9999, 1, 3, 2)
    size = area(sliver)
    rows = replace(tiny_rows(), NE_2, geometry=box(2.9999, 1, 4, 2))
    assert one(check(rows, tolerance_m2=size / 2), "overlap").area_m2 == pytest.approx(
        size, rel=0.01
    )
    assert of_kind(check(rows, tolerance_m2=size * 2), "overlap") == []


def test_raising_the_tolerance_hides_a_small_gap():
    sliver = box(1.9999, 0, 2, 1)
    size = area(sliver)
    rows = replace(tiny_rows(), SE_1, geometry=box(1, 0, 1.9999, 1))
    small = check(rows, tolerance_m2=size / 2)
    assert one(small, "gap", COMM_1).area_m2 == pytest.approx(size, rel=0.01)
    assert not small.ok
    large = check(rows, tolerance_m2=size * 2)
    assert large.issues == []
    assert large.ok


# --- the broken fixture ----------------------------------------------------------------------


def _assert_broken(report: Report) -> None:
    assert not report.ok
    invalid = one(report, "invalid-geometry", NW_1)
    assert "Self-intersection" in invalid.message
    overlap = one(report, "overlap")
    assert {overlap.code, *re.findall(r"\d{15}", overlap.message)} == {NW_2, NE_2}
    missing = one(report, "missing-parent", "120106002009004")
    assert "120106002009" in missing.message


def test_broken_rows_yield_the_three_defects():
    _assert_broken(validate(frame(broken_rows())))


def test_broken_file_yields_the_three_defects():
    boundaries = read_boundaries([FIXTURES / "broken_hierarchy.geojson"])
    assert boundaries.issues == []
    report = validate(boundaries.frame)
    _assert_broken(report)
    # Issues point at the feature in the file.
    invalid = one(report, "invalid-geometry", NW_1)
    assert invalid.feature is not None
    assert invalid.feature.startswith("broken_hierarchy.geojson#")


def test_committed_good_file_is_valid():
    boundaries = read_boundaries([FIXTURES / "tiny_ok.geojson"])
    report = validate(boundaries.frame)
    assert report.ok, report.issues
    assert report.counts == {"district": 1, "street": 2, "community": 2, "grid": 8}


# --- Report and Issue ------------------------------------------------------------------------


def test_report_to_dict_is_json_and_agrees_with_the_report():
    report = validate(frame(broken_rows()))
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert data["ok"] is False
    assert data["counts"] == {"district": 1, "street": 2, "community": 2, "grid": 8}
    assert data["errors"] == len(report.errors) == len(data["issues"])
    assert sum(data["error_kinds"].values()) == data["errors"]
    assert {"invalid-geometry", "overlap", "missing-parent"} <= set(data["error_kinds"])
    kinds = [i["kind"] for i in data["issues"]]
    assert kinds == [i.kind for i in report.issues]


def test_good_report_to_dict():
    data = json.loads(json.dumps(validate(frame(tiny_rows())).to_dict()))
    assert data["ok"] is True
    assert data["errors"] == 0
    assert data["issues"] == []


def test_issue_str_names_kind_code_and_message():
    report = check(replace(tiny_rows(), NW_1, parent_code="120106001009"))
    issue = one(report, "missing-parent", NW_1)
    text = str(issue)
    assert "missing-parent" in text
    assert NW_1 in text
    assert issue.message in text
    assert f"tiny#{NW_1}" in text


def test_summary_shows_counts_and_errors():
    summary = validate(frame(broken_rows())).summary()
    assert "1 / 2 / 2 / 8" in summary
    assert "error" in summary


# --- bugs ------------------------------------------------------------------------------------


def _gk_tiny_frame() -> gpd.GeoDataFrame:
    """The tiny hierarchy's layout drawn in EPSG:4548 metres (1 unit = 1.5 km): valid there."""
    x0, y0, u = 515_000.0, 4_335_000.0, 1_500.0

    def gk(x_a: float, y_a: float, x_b: float, y_b: float) -> shapely.Polygon:
        return shapely.box(x0 + x_a * u, y0 + y_a * u, x0 + x_b * u, y0 + y_b * u)

    rows = []
    for row in tiny_rows():
        minx, miny, maxx, maxy = row["geometry"].bounds
        rows.append(
            {
                **row,
                "geometry": gk(
                    round((minx - X0) / U),
                    round((miny - Y0) / U),
                    round((maxx - X0) / U),
                    round((maxy - Y0) / U),
                ),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=METRIC)


def test_a_projected_hierarchy_converted_with_densification_is_valid():
    gk = _gk_tiny_frame()
    lonlat = gk.set_geometry(
        list(transform_geometries(gk.geometry.to_numpy(), METRIC)), crs="EPSG:4490"
    )
    assert validate(lonlat).ok


def test_a_hierarchy_valid_in_a_projected_crs_validates_as_is():
    report = validate(_gk_tiny_frame())
    assert report.issues == []


def test_an_empty_boundary_set_gives_a_report_not_an_exception():
    empty = frame(tiny_rows()).iloc[:0]
    report = validate(empty)
    assert report.counts == {"district": 0, "street": 0, "community": 0, "grid": 0}


def test_a_frame_with_a_repeated_index_is_validated():
    tiny = frame(tiny_rows())
    upper = tiny[tiny["level"] != "grid"]
    grids = tiny[tiny["level"] == "grid"].reset_index(drop=True)
    combined = gpd.GeoDataFrame(pd.concat([upper, grids]), crs="EPSG:4490")
    assert validate(combined).ok
