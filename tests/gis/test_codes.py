"""gis.codes: the four levels, their code scheme and the reading order of grid sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.codes import LEVELS, CodeScheme, level_rank, normalise_level, reading_order

SCHEME = CodeScheme()


# --- CodeScheme: widths and lengths -------------------------------------------------------


def test_default_scheme_is_6_3_3_3_so_codes_have_6_9_12_15_digits():
    lengths = [SCHEME.length(level) for level in LEVELS]
    assert lengths == [6, 9, 12, 15]


def test_parse_other_city_widths():
    scheme = CodeScheme.parse("6,3,3,2")
    assert scheme.widths == (6, 3, 3, 2)
    assert [scheme.length(level) for level in LEVELS] == [6, 9, 12, 14]


def test_parse_tolerates_spaces_around_widths():
    assert CodeScheme.parse(" 6, 3 ,3, 3").widths == (6, 3, 3, 3)


@pytest.mark.parametrize(
    "text", ["6,3,3", "6,3,3,3,3", "6,3,0,3", "6,-3,3,3", "a,b,c,d", "", "6;3;3;3"]
)
def test_parse_rejects_bad_widths(text):
    with pytest.raises(ValueError):
        CodeScheme.parse(text)


@pytest.mark.parametrize("widths", [(6, 3, 3), (6, 3, 3, 0), (0, 3, 3, 3), (6, 3, 3, 3, 2)])
def test_constructor_rejects_bad_widths(widths):
    with pytest.raises(ValueError):
        CodeScheme(widths)


def test_level_rank_orders_levels_top_down():
    assert [level_rank(level) for level in ("district", "street", "community", "grid")] == [
        0,
        1,
        2,
        3,
    ]


# --- child_code -----------------------------------------------------------------------------


def test_child_code_pads_the_sequence_to_the_level_width():
    assert SCHEME.child_code("120106", "street", 1) == "120106001"
    assert SCHEME.child_code("120106001", "community", 12) == "120106001012"
    assert SCHEME.child_code("120106001012", "grid", 999) == "120106001012999"


def test_child_code_uses_the_configured_width():
    scheme = CodeScheme.parse("6,3,3,2")
    assert scheme.child_code("120106001001", "grid", 7) == "12010600100107"


@pytest.mark.parametrize(
    ("level", "sequence"),
    [("grid", 1000), ("street", 1000), ("grid", 0), ("grid", -1)],
)
def test_child_code_rejects_sequences_that_do_not_fit(level, sequence):
    with pytest.raises(ValueError):
        SCHEME.child_code("120106001001", level, sequence)


def test_child_code_overflow_respects_a_two_digit_width():
    scheme = CodeScheme.parse("6,3,3,2")
    assert scheme.child_code("120106001001", "grid", 99).endswith("99")
    with pytest.raises(ValueError):
        scheme.child_code("120106001001", "grid", 100)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=999))
def test_child_code_is_a_valid_child_of_its_parent(sequence):
    code = SCHEME.child_code("120106001001", "grid", sequence)
    assert SCHEME.problems(code, "grid", "120106001001") == []
    assert SCHEME.level_of(code) == "grid"
    assert int(code[-3:]) == sequence


# --- problems -------------------------------------------------------------------------------


def test_a_good_code_has_no_problems():
    assert SCHEME.problems("120106", "district", None) == []
    assert SCHEME.problems("120106001", "street", "120106") == []
    assert SCHEME.problems("120106001001", "community", "120106001") == []
    assert SCHEME.problems("120106001001001", "grid", "120106001001") == []


@pytest.mark.parametrize(
    "code", ["12010600100100A", "120106-01001001", "１２０１０６００１００１００１"]
)
def test_non_digit_codes_are_a_problem(code):
    found = SCHEME.problems(code, "grid", None)
    assert any("digits only" in p for p in found)


def test_wrong_length_is_a_problem_and_names_the_expected_length():
    found = SCHEME.problems("12010600100101", "grid", "120106001001")
    assert len(found) == 1
    assert "15" in found[0] and "14" in found[0]


def test_code_not_starting_with_its_parent_is_a_problem():
    found = SCHEME.problems("120106002001001", "grid", "120106001001")
    assert len(found) == 1
    assert "120106001001" in found[0]


def test_all_zero_segment_is_a_problem():
    found = SCHEME.problems("120106001001000", "grid", "120106001001")
    assert len(found) == 1
    assert "all-zero" in found[0]
    assert SCHEME.problems("120106000", "street", "120106")


def test_several_problems_are_all_reported():
    found = SCHEME.problems("99x", "grid", "120106001001")
    assert len(found) == 3  # not digits, wrong length, wrong prefix


# --- level_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("120106", "district"),
        ("120106001", "street"),
        ("120106001001", "community"),
        ("120106001001001", "grid"),
        ("1201060010010", None),
        ("", None),
    ],
)
def test_level_of_is_decided_by_length(code, level):
    assert SCHEME.level_of(code) == level


def test_level_of_follows_the_configured_widths():
    scheme = CodeScheme.parse("6,3,3,2")
    assert scheme.level_of("12010600100101") == "grid"
    assert scheme.level_of("120106001001001") is None


# --- normalise_level --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("district", "district"),
        ("District", "district"),
        (" street ", "street"),
        ("subdistrict", "street"),
        ("COMMUNITY", "community"),
        ("grid", "grid"),
        ("basic_grid", "grid"),
        ("区", "district"),
        ("街道", "street"),
        ("社区", "community"),
        ("网格", "grid"),
        ("基础网格", "grid"),
        (1, "district"),
        (2, "street"),
        (3, "community"),
        (4, "grid"),
        ("4", "grid"),
        (4.0, "grid"),
        (2.0, "street"),
        (np.int64(3), "community"),
        (np.float64(1.0), "district"),
    ],
)
def test_normalise_level_understands_usual_names(value, level):
    assert normalise_level(value) == level


@pytest.mark.parametrize(
    "value", [None, math.nan, np.nan, "", "village", "村", 0, 5, 4.5, "districts", True]
)
def test_normalise_level_returns_none_for_what_names_no_level(value):
    assert normalise_level(value) is None


# --- reading_order ----------------------------------------------------------------------------


def test_reading_order_goes_north_row_first_then_west_to_east():
    # A hand-made 3 x 2 layout, deliberately listed out of order, with small jitter in y
    # that must not break rows.
    #   row 0 (north, y ~ 10):  a(0)  b(1)  c(2)
    #   row 1 (south, y ~ 0):   d(0)  e(1)  f(2)
    points = {
        "e": (1.0, 0.1),
        "a": (0.0, 10.0),
        "f": (2.0, -0.2),
        "c": (2.0, 9.8),
        "d": (0.0, 0.0),
        "b": (1.0, 10.2),
    }
    names = list(points)
    x = [points[n][0] for n in names]
    y = [points[n][1] for n in names]
    order = reading_order(x, y, band=5.0)
    assert [names[i] for i in order] == ["a", "b", "c", "d", "e", "f"]


def test_reading_order_band_decides_what_counts_as_one_row():
    # p is 3 units south of q but further west: one row with a wide band, two with a narrow one.
    x = [5.0, 0.0]
    y = [10.0, 7.0]
    assert list(reading_order(x, y, band=4.0)) == [1, 0]
    assert list(reading_order(x, y, band=2.0)) == [0, 1]


def test_reading_order_is_a_permutation():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 100, 50), rng.uniform(0, 100, 50)
    order = reading_order(x, y, band=10.0)
    assert sorted(order.tolist()) == list(range(50))


def test_reading_order_of_nothing_is_empty():
    assert reading_order([], [], band=1.0).size == 0


@pytest.mark.parametrize("band", [0.0, -1.0])
def test_reading_order_rejects_non_positive_band(band):
    with pytest.raises(ValueError):
        reading_order([0.0, 1.0], [0.0, 1.0], band=band)
