"""Streets rate departments (下考上): the pure scoring core, against hand-computed figures."""

from __future__ import annotations

import csv
import io

import pytest

from app.services.evaluation import (
    DEPARTMENT_COLUMNS,
    PAIR_COLUMNS,
    Deduction,
    EvaluationError,
    PartyRecord,
    Quotas,
    StreetRating,
    StreetShare,
    Weights,
    check_deductions,
    evaluate,
    evaluation_csv,
    pairs_csv,
    satisfaction_score,
)

# -- the small world: 2 streets × 4 departments -------------------------------------------------
#
# D1 城管委 and D4 住建委 are functional departments, D2 派出所 and D3 市场监管所
# dispatched agencies.
# Street S1 blew whistles 101 and 102, street S2 201 and 202. Feedback: 101 "satisfied" (100),
# 102 "basically_satisfied" (60), 201 four stars ((4 − 1) × 25 = 75), 202 none.

NAMES = {"D1": "城管委", "D2": "派出所", "D3": "市场监管所", "D4": "住建委"}
AGENCY = {"D1": False, "D2": True, "D3": True, "D4": False}
STREET = {101: "S1", 102: "S1", 201: "S2", 202: "S2"}
FEEDBACK = {
    101: satisfaction_score("satisfied"),
    102: satisfaction_score("basically_satisfied"),
    201: satisfaction_score(4),
    202: None,
}


def party(dept: str, whistle: int, arrival: bool | None, resolution: bool | None) -> PartyRecord:
    """A party record; None: that step was not due, else whether it was done on time."""
    return PartyRecord(
        street_code=STREET[whistle],
        department_code=dept,
        department_name=NAMES[dept],
        agency=AGENCY[dept],
        whistle_id=whistle,
        arrival_due=arrival is not None,
        arrived_on_time=bool(arrival),
        resolution_due=resolution is not None,
        resolved_on_time=bool(resolution),
        satisfaction=FEEDBACK[whistle],
    )


PARTIES = [
    party("D1", 101, True, True),
    party("D2", 101, True, False),
    party("D1", 102, False, True),
    party("D3", 102, True, None),
    party("D4", 102, False, False),
    party("D1", 201, True, True),
    party("D2", 201, True, False),
    party("D3", 202, True, False),
    party("D4", 202, True, True),
]
RATINGS = [
    StreetRating("S1", "D1", (Deduction(5, "reply late"), Deduction(3, "absent at meeting"))),
    # S1 has no rating row for D2: perceived 100.
    StreetRating("S1", "D3", (Deduction(10, "passed the matter back"),)),
    StreetRating("S1", "D4"),  # a rating row without deductions: 100 as well
    StreetRating("S2", "D1", (Deduction(2.5, "no feedback call"),)),
    StreetRating("S2", "D2", (Deduction(10, "late on site"),)),
    StreetRating("S2", "D3", (Deduction(4, "incomplete record"),)),
    # S2 has no rating row for D4. And S1 rated D9, which worked no whistle of S1: ignored.
    StreetRating("S1", "D9", (Deduction(50, "never came"),)),
]

# Pairs, default weights 50/20/30 (completion / satisfaction / perceived):
#   pair   due on-time completion  satisfaction      perceived   score
#   S1/D1   4    3       75        (100+60)/2 = 80   100−8 = 92  (3750+1600+2760)/100 = 81.10
#   S1/D2   2    1       50        100               100         (2500+2000+3000)/100 = 75.00
#   S1/D3   1    1      100        60                90          (5000+1200+2700)/100 = 89.00
#   S1/D4   2    0        0        60                100         (0+1200+3000)/100    = 42.00
#   S2/D1   2    2      100        75                97.5        (5000+1500+2925)/100 = 94.25
#   S2/D2   2    1       50        75                90          (2500+1500+2700)/100 = 67.00
#   S2/D3   2    1       50        None              96          (50·50+30·96)/80 = 5380/80 = 67.25
#   S2/D4   2    2      100        None              100         (50·100+30·100)/80   = 100.00
# (S2/D3, S2/D4: no feedback, so satisfaction's 20 goes to the other two in proportion 50:30.)
PAIRS = {
    ("S1", "D1"): (2, 75.0, 80.0, 92.0, 81.10),
    ("S1", "D2"): (1, 50.0, 100.0, 100.0, 75.0),
    ("S1", "D3"): (1, 100.0, 60.0, 90.0, 89.0),
    ("S1", "D4"): (1, 0.0, 60.0, 100.0, 42.0),
    ("S2", "D1"): (1, 100.0, 75.0, 97.5, 94.25),
    ("S2", "D2"): (1, 50.0, 75.0, 90.0, 67.0),
    ("S2", "D3"): (1, 50.0, None, 96.0, 67.25),
    ("S2", "D4"): (1, 100.0, None, 100.0, 100.0),
}
# Departments (means over their 2 streets; satisfaction over the streets that have one):
#   D1: completion (75+100)/2 = 87.5, satisfaction (80+75)/2 = 77.5, perceived (92+97.5)/2 = 94.75,
#       score (81.10+94.25)/2 = 87.675 → 87.68 (half up; float round() would give 87.67)
#   D2: 50, (100+75)/2 = 87.5, (100+90)/2 = 95, (75+67)/2 = 71
#   D3: (100+50)/2 = 75, 60 (S2 has none), (90+96)/2 = 93, (89+67.25)/2 = 78.125 → 78.13
#   D4: (0+100)/2 = 50, 60, 100, (42+100)/2 = 71
# Ranks: D1 1, D3 2, D2 3, D4 3 (tie at 71, listed by code).
# Tiers, n = 4 at 60/30/10: ceil(2.4) = 3 excellent, ceil(3.6) = 4 → 1 good. D4 is tied with D2,
# the last excellent, so D4 is excellent too.
DEPARTMENTS = {
    # code: (streets, whistles, completion, satisfaction, perceived, score, rank, tier)
    "D1": (2, 3, 87.5, 77.5, 94.75, 87.68, 1, "excellent"),
    "D3": (2, 2, 75.0, 60.0, 93.0, 78.13, 2, "excellent"),
    "D2": (2, 2, 50.0, 87.5, 95.0, 71.0, 3, "excellent"),
    "D4": (2, 2, 50.0, 60.0, 100.0, 71.0, 3, "excellent"),
}
CHENGDU = StreetShare(agency=0.5, department=0.3)
# Annual points at Chengdu's shares: D1 87.68 × 0.3 = 26.304 → 26.30; D3 78.13 × 0.5 = 39.065 →
# 39.07 (half up); D2 71 × 0.5 = 35.50; D4 71 × 0.3 = 21.30.
ANNUAL = {"D1": (0.3, 26.30), "D3": (0.5, 39.07), "D2": (0.5, 35.50), "D4": (0.3, 21.30)}


@pytest.fixture
def ev():
    return evaluate("2026-03", PARTIES, RATINGS, share=CHENGDU)


def test_pairs(ev) -> None:
    assert [(p.street_code, p.department_code) for p in ev.pairs] == list(PAIRS)
    for p in ev.pairs:
        assert (p.whistles, p.completion, p.satisfaction, p.perceived, p.score) == PAIRS[
            (p.street_code, p.department_code)
        ]
    s1d1 = ev.pairs[0]
    assert s1d1.deductions == RATINGS[0].deductions
    assert ev.pairs[1].deductions == ()  # S1/D2: no rating row


def test_departments_ranks_tiers_and_annual_points(ev) -> None:
    got = {
        d.department_code: (
            d.streets,
            d.whistles,
            d.completion,
            d.satisfaction,
            d.perceived,
            d.score,
            d.rank,
            d.tier,
        )
        for d in ev.departments
    }
    assert got == DEPARTMENTS
    assert [d.department_code for d in ev.departments] == ["D1", "D3", "D2", "D4"]
    for d in ev.departments:
        assert (d.street_share, d.annual_points) == ANNUAL[d.department_code]
        assert (d.department_name, d.agency) == (
            NAMES[d.department_code],
            AGENCY[d.department_code],
        )
    assert ev.period == "2026-03" and ev.share == CHENGDU and ev.weights == Weights()


def test_rating_without_parties_is_ignored(ev) -> None:
    assert all(p.department_code != "D9" for p in ev.pairs)
    assert all(d.department_code != "D9" for d in ev.departments)


def test_default_share_is_half() -> None:
    # Hongqiao: 50 % for everyone. D1 87.68 × 0.5 = 43.84; D3 78.13 × 0.5 = 39.065 → 39.07.
    ev = evaluate("2026-03", PARTIES, RATINGS)
    assert {d.department_code: d.annual_points for d in ev.departments} == {
        "D1": 43.84,
        "D3": 39.07,
        "D2": 35.5,
        "D4": 35.5,
    }


def test_custom_weights() -> None:
    # 40/40/20:
    #   S1/D1 (40·75 + 40·80 + 20·92)/100 = (3000+3200+1840)/100 = 80.40
    #   S2/D1 (40·100 + 40·75 + 20·97.5)/100 = (4000+3000+1950)/100 = 89.50
    #   → D1 (80.40 + 89.50)/2 = 84.95
    #   S2/D3 no feedback: (40·50 + 20·96)/60 = 3920/60 = 65.333… → 65.33
    #   S2/D4 no feedback: (40·100 + 20·100)/60 = 100
    ev = evaluate("2026-Q1", PARTIES, RATINGS, weights=Weights(40, 40, 20))
    pairs = {(p.street_code, p.department_code): p.score for p in ev.pairs}
    assert pairs["S1", "D1"] == 80.40
    assert pairs["S2", "D1"] == 89.50
    assert pairs["S2", "D3"] == 65.33
    assert pairs["S2", "D4"] == 100.0
    assert ev.departments[0].department_code == "D1" and ev.departments[0].score == 84.95


def test_only_satisfaction_weighted_and_none_given() -> None:
    # 0/100/0: S1/D1 = 80 (its satisfaction); S2/D3 has none and the other weights are both 0, so
    # the plain mean (50 + 96)/2 = 73.
    ev = evaluate("2026-03", PARTIES, RATINGS, weights=Weights(0, 100, 0))
    pairs = {(p.street_code, p.department_code): p.score for p in ev.pairs}
    assert pairs["S1", "D1"] == 80.0
    assert pairs["S2", "D3"] == 73.0


def test_nothing_due_is_complete() -> None:
    ev = evaluate("2026-03", [party("D1", 101, None, None)], [])
    assert ev.pairs[0].completion == 100.0
    # (50·100 + 20·100 + 30·100)/100
    assert ev.pairs[0].score == 100.0 and ev.departments[0].tier == "excellent"


def test_on_time_counts_only_when_due() -> None:
    record = PartyRecord("S1", "D1", "城管委", False, 101, True, False, False, True, None)
    # Arrival due and late, resolution not due (its on-time flag is ignored): 0/1.
    assert evaluate("2026-03", [record], []).pairs[0].completion == 0.0


def test_empty_period() -> None:
    ev = evaluate("2026-03", [], [])
    assert ev.pairs == [] and ev.departments == []
    assert evaluation_csv(ev) == ",".join(DEPARTMENT_COLUMNS) + "\r\n"


# -- tiers over 10 departments ------------------------------------------------------------------


def ten(scores: list[float]) -> list[tuple[str, int, str]]:
    """Ten departments of one street whose score is exactly 100 − deductions (weights 0/0/100);
    returns (code, rank, tier) in listed order."""
    parties = [
        PartyRecord("S1", f"D{i:02}", f"dept {i}", False, i, True, True, True, True, None)
        for i in range(len(scores))
    ]
    ratings = [
        StreetRating("S1", f"D{i:02}", (Deduction(100 - s, "x"),) if s < 100 else ())
        for i, s in enumerate(scores)
    ]
    ev = evaluate("2026", parties, ratings, weights=Weights(0, 0, 100))
    assert [d.score for d in ev.departments] == sorted(scores, reverse=True)
    return [(d.department_code, d.rank, d.tier) for d in ev.departments]


def tiers(rows: list[tuple[str, int, str]]) -> list[str]:
    return [tier[0] for _, _, tier in rows]


def test_ten_departments_split_6_3_1() -> None:
    # ceil(10 × 60/100) = 6 excellent, ceil(10 × 90/100) − 6 = 3 good, 1 average.
    rows = ten([100, 99, 98, 97, 96, 95, 94, 93, 92, 91])
    assert tiers(rows) == list("eeeeeeggga")
    assert [r for _, r, _ in rows] == list(range(1, 11))


def test_tie_straddling_excellent_boundary() -> None:
    # The 6th and 7th tie at 95: both excellent; good keeps its far boundary (position 9), so
    # 7 excellent, 2 good, 1 average. Ranks 1..6, 6, 8, 9, 10.
    rows = ten([100, 99, 98, 97, 96, 95, 95, 93, 92, 91])
    assert tiers(rows) == list("eeeeeeegga")
    assert [r for _, r, _ in rows] == [1, 2, 3, 4, 5, 6, 6, 8, 9, 10]
    assert [c for c, r, _ in rows if r == 6] == ["D05", "D06"]  # ties listed by code


def test_tie_straddling_good_boundary() -> None:
    # The 9th and 10th tie at 92: the last one joins good, no average.
    assert tiers(ten([100, 99, 98, 97, 96, 95, 94, 93, 92, 92])) == list("eeeeeegggg")


def test_tie_across_two_boundaries() -> None:
    # Positions 5..9 all at 90: tied with the 5th (excellent), so all excellent.
    assert tiers(ten([100, 99, 98, 97, 90, 90, 90, 90, 90, 90])) == list("eeeeeeeeee")


def test_custom_quotas() -> None:
    # 20/30/50 over 10: ceil(2) = 2 excellent, ceil(5) − 2 = 3 good, 5 average.
    parties = [
        PartyRecord("S1", f"D{i}", f"d{i}", False, i, True, True, True, True, None)
        for i in range(10)
    ]
    ratings = [StreetRating("S1", f"D{i}", (Deduction(i + 1, "x"),)) for i in range(10)]
    ev = evaluate("2026", parties, ratings, Weights(0, 0, 100), Quotas(20, 30, 50))
    assert [d.tier[0] for d in ev.departments] == list("eegggaaaaa")


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deductions", "field"),
    [
        ((Deduction(5, "ok"), Deduction(3, "  ")), "deductions[1].reason"),
        ((Deduction(5, ""),), "deductions[0].reason"),
        ((Deduction(0, "zero"),), "deductions[0].points"),
        ((Deduction(-1, "negative"),), "deductions[0].points"),
        ((Deduction(100.5, "too many"),), "deductions[0].points"),
        ((Deduction(float("nan"), "nan"),), "deductions[0].points"),
        ((Deduction(60, "a"), Deduction(40.01, "b")), "deductions"),
    ],
)
def test_bad_deductions(deductions: tuple[Deduction, ...], field: str) -> None:
    with pytest.raises(EvaluationError) as err:
        check_deductions(deductions)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")


def test_good_deductions() -> None:
    check_deductions([Deduction(60, "a"), Deduction(40, "b")])  # exactly 100 is allowed
    check_deductions([])


def test_bad_rating_names_the_pair() -> None:
    ratings = [*RATINGS[:1], StreetRating("S2", "D2", (Deduction(2, " "),))]
    with pytest.raises(EvaluationError) as err:
        evaluate("2026-03", PARTIES, ratings)
    assert err.value.field == "ratings[S2/D2].deductions[0].reason"
    with pytest.raises(EvaluationError) as err:
        evaluate("2026-03", PARTIES, [StreetRating("S1", "D1", (Deduction(70, "a"),) * 2)])
    assert err.value.field == "ratings[S1/D1].deductions"
    with pytest.raises(EvaluationError) as err:
        evaluate("2026-03", PARTIES, [RATINGS[0], RATINGS[0]])
    assert err.value.field == "ratings[S1/D1]"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weights": Weights(50, 20, 20)}, "weights"),
        ({"weights": Weights(-10, 60, 50)}, "weights"),
        ({"weights": Weights(float("nan"), 20, 30)}, "weights"),
        ({"quotas": Quotas(60, 30, 5)}, "quotas"),
        ({"quotas": Quotas(110, 0, -10)}, "quotas"),
        ({"share": StreetShare(agency=1.5)}, "share"),
        ({"share": StreetShare(department=-0.1)}, "share"),
    ],
)
def test_bad_settings(kwargs: dict, field: str) -> None:
    with pytest.raises(EvaluationError) as err:
        evaluate("2026-03", PARTIES, RATINGS, **kwargs)
    assert err.value.field == field


def test_decimal_weights_sum_exactly() -> None:
    # 33.3 + 33.3 + 33.4 is 100.00000000000001 in floats but exactly 100 as written.
    evaluate("2026-03", PARTIES, RATINGS, Weights(33.3, 33.3, 33.4), Quotas(33.3, 33.3, 33.4))


def test_blank_period() -> None:
    with pytest.raises(EvaluationError) as err:
        evaluate(" ", PARTIES, RATINGS)
    assert err.value.field == "period"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("satisfied", 100.0),
        ("basically_satisfied", 60.0),
        ("dissatisfied", 0.0),
        (1, 0.0),
        (2, 25.0),
        (3, 50.0),
        (4, 75.0),
        (5, 100.0),
    ],
)
def test_satisfaction_score(value: str | int, expected: float) -> None:
    assert satisfaction_score(value) == expected


@pytest.mark.parametrize("value", ["happy", "Satisfied", "5", "", 0, 6, -1, 3.0, True, None])
def test_bad_feedback(value: object) -> None:
    with pytest.raises(EvaluationError) as err:
        satisfaction_score(value)  # type: ignore[arg-type]
    assert err.value.field == "feedback"


def test_inconsistent_parties() -> None:
    def refused(records: list[PartyRecord]) -> str:
        with pytest.raises(EvaluationError) as err:
            evaluate("2026-03", records, [])
        return err.value.field

    base = party("D1", 101, True, True)
    assert refused([base, base]) == "parties[1].whistle_id"
    other = party("D2", 101, True, True)
    assert refused([base, PartyRecord(**{**vars(other), "satisfaction": 50.0})]) == (
        "parties[1].satisfaction"
    )
    assert refused([base, PartyRecord(**{**vars(other), "street_code": "S2"})]) == (
        "parties[1].street_code"
    )
    renamed = PartyRecord(**{**vars(party("D1", 102, True, True)), "department_name": "x"})
    assert refused([base, renamed]) == "parties[1].department_name"
    moved = PartyRecord(**{**vars(party("D1", 102, True, True)), "agency": True})
    assert refused([base, moved]) == "parties[1].agency"
    assert refused([PartyRecord(**{**vars(base), "satisfaction": 101.0})]) == (
        "parties[0].satisfaction"
    )


# -- CSV ----------------------------------------------------------------------------------------


def test_evaluation_csv_round_trip(ev) -> None:
    text = evaluation_csv(ev)
    assert text.startswith(",".join(DEPARTMENT_COLUMNS) + "\r\n")
    assert text.count("\r\n") == 1 + len(ev.departments)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["department_code"] for r in rows] == ["D1", "D3", "D2", "D4"]
    for row, d in zip(rows, ev.departments, strict=True):
        assert row["period"] == "2026-03"
        assert (int(row["rank"]), row["tier"], row["department_name"]) == (
            d.rank,
            d.tier,
            NAMES[d.department_code],
        )
        assert row["agency"] == ("true" if d.agency else "false")
        assert (int(row["streets"]), int(row["whistles"])) == (d.streets, d.whistles)
        for name in ("completion", "perceived", "score", "street_share", "annual_points"):
            assert float(row[name]) == getattr(d, name), name
        assert float(row["satisfaction"]) == d.satisfaction
    assert rows[0]["score"] == "87.68" and rows[0]["street_share"] == "0.3"
    assert rows[1]["annual_points"] == "39.07"


def test_pairs_csv_round_trip(ev) -> None:
    text = pairs_csv(ev)
    assert text.startswith(",".join(PAIR_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(PAIRS)
    for row, p in zip(rows, ev.pairs, strict=True):
        key = (row["street_code"], row["department_code"])
        whistles, completion, satisfaction, perceived, score = PAIRS[key]
        assert row["department_name"] == NAMES[key[1]]
        assert int(row["whistles"]) == whistles == p.whistles
        assert float(row["completion"]) == completion
        assert (float(row["satisfaction"]) if row["satisfaction"] else None) == satisfaction
        assert float(row["perceived"]) == perceived
        assert float(row["score"]) == score
    by_key = {(r["street_code"], r["department_code"]): r for r in rows}
    assert by_key["S1", "D1"]["deductions"] == "5: reply late; 3: absent at meeting"
    assert by_key["S2", "D1"]["deductions"] == "2.5: no feedback call"
    assert by_key["S1", "D2"]["deductions"] == ""
    assert by_key["S2", "D3"]["satisfaction"] == ""


def test_csv_guards_formula_cells() -> None:
    record = PartyRecord("S1", "D1", "=HYPERLINK(1)", False, 1, False, False, False, False, None)
    ev = evaluate("2026", [record], [StreetRating("S1", "D1", (Deduction(1, "=1+1"),))])
    row = next(csv.DictReader(io.StringIO(evaluation_csv(ev), newline="")))
    assert row["department_name"] == "'=HYPERLINK(1)"
    pair = next(csv.DictReader(io.StringIO(pairs_csv(ev), newline="")))
    assert pair["deductions"] == "1: =1+1"  # the cell starts with a digit: inert
