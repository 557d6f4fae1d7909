"""Streets rate departments (下考上): the pure scoring core.

A street that blew a whistle (吹哨) rates every department that answered it. For one street and one
department (a *pair*) over a period:

- completion: 100 × (on-time arrivals + on-time resolutions) / (arrivals due + resolutions due),
  100 if nothing was due. An on-time flag counts only where the matching step was due.
- satisfaction: the mean public feedback (0..100) of the pair's distinct whistles that have some;
  None if none has.
- perceived: 100 − the street's deductions for the department; no rating row is 100 (the street
  made no deductions). Every deduction carries points in (0, 100] and a written reason, and a
  rating's total may not exceed 100.
- score: the weighted sum (default 50/20/30, Heping). Without satisfaction its weight is spread
  over the other two in proportion to their weights, i.e. (wc·completion + wp·perceived) /
  (wc + wp); if those two weights are both zero as well, the score is their plain mean.

Only pairs that appear in the party records are scored: a rating of a department the street did
not work with in the period is validated but otherwise ignored. A department's figures are the
means of its pair figures over the streets that rated it (satisfaction over the streets that have
one), each street counting once, and its annual points are score × the street share for its kind
(dispatched agency or functional department).

Figures are published to 2 decimals, rounded half up (as Excel's ROUND does), and each figure is
computed exactly (decimal arithmetic) from the *published* figures it derives from: a pair's
score from its rounded completion/satisfaction/perceived, a department's means from its rounded
pair figures, annual points from the rounded score. So every row can be re-checked by hand from
the CSVs, and ranks and ties are those a reader sees.

Departments are ranked by score (competition ranking: 1, 1, 3; listed by rank then code) and tiered
by quota: of n departments the first ceil(n × excellent / 100) are excellent and the rest up to
ceil(n × (excellent + good) / 100) good, the others average. Ties are never split: a department
tied with the last of a better tier joins that tier, which leaves the next tier's far boundary
where it was (so the next tier shrinks rather than shifts).

Stdlib only: the SQL that gathers the inputs and the API around them live elsewhere.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal, localcontext

TIERS = ("excellent", "good", "average")
FEEDBACK_WORDS = {"satisfied": 100.0, "basically_satisfied": 60.0, "dissatisfied": 0.0}

DEPARTMENT_COLUMNS = (
    "period",
    "rank",
    "tier",
    "department_code",
    "department_name",
    "agency",
    "streets",
    "whistles",
    "completion",
    "satisfaction",
    "perceived",
    "score",
    "street_share",
    "annual_points",
)
PAIR_COLUMNS = (
    "period",
    "street_code",
    "department_code",
    "department_name",
    "whistles",
    "completion",
    "satisfaction",
    "perceived",
    "score",
    "deductions",
)

_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
# Our own context, so a caller's decimal settings cannot change the figures.
_CONTEXT = Context(prec=28, rounding=ROUND_HALF_UP)


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartyRecord:
    """One department's part in one whistle blown by one street in the period."""

    street_code: str
    department_code: str
    department_name: str
    agency: bool  # a dispatched agency (派出机构, e.g. a police station) vs a functional department
    whistle_id: int
    arrival_due: bool  # an on-site arrival (报到) was due for this party
    arrived_on_time: bool  # it checked in on site by the deadline
    resolution_due: bool  # a resolution (lead) / confirmation (co-handler) was due
    resolved_on_time: bool
    satisfaction: float | None  # the whistle's public feedback on 0..100 (None: no feedback)


@dataclass(frozen=True)
class Deduction:
    """Points taken off a street's rating of a department, with the written reason."""

    points: float  # > 0
    reason: str  # required, non-blank


@dataclass(frozen=True)
class StreetRating:
    """The street's perceived-service rating of a department: 100 minus its deductions."""

    street_code: str
    department_code: str
    deductions: tuple[Deduction, ...] = ()


@dataclass(frozen=True)
class Weights:
    """Percent weights of the three parts of a pair's score; each >= 0, summing to 100."""

    completion: float = 50
    satisfaction: float = 20
    perceived: float = 30


@dataclass(frozen=True)
class Quotas:
    """Percent of departments per tier; each >= 0, summing to 100."""

    excellent: float = 60
    good: float = 30
    average: float = 10


@dataclass(frozen=True)
class StreetShare:
    """The street rating's share (0..1) of the annual score, by kind of department.

    Hongqiao: 50 %; Chengdu: >= 0.5 for agencies, >= 0.3 for departments (policy, not enforced).
    """

    agency: float = 0.5
    department: float = 0.5


class EvaluationError(ValueError):
    """Bad input, naming the offending field (the API turns it into a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# -- outputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairScore:
    """One street's rating of one department (figures rounded to 2 decimals)."""

    street_code: str
    department_code: str
    whistles: int
    completion: float
    satisfaction: float | None
    perceived: float
    deductions: tuple[Deduction, ...]
    score: float


@dataclass(frozen=True)
class DepartmentScore:
    """A department's figures over the streets that rated it, its rank, tier and annual points."""

    department_code: str
    department_name: str
    agency: bool
    streets: int
    whistles: int
    completion: float
    satisfaction: float | None
    perceived: float
    score: float
    rank: int
    tier: str
    street_share: float
    annual_points: float


@dataclass(frozen=True)
class Evaluation:
    """One period's evaluation: pairs by street then department, departments by rank then code."""

    period: str
    weights: Weights
    quotas: Quotas
    share: StreetShare
    pairs: list[PairScore]
    departments: list[DepartmentScore]


# -- checks -------------------------------------------------------------------------------------


def _number(value: object) -> Decimal | None:
    """A finite real number as an exact Decimal, else None. Floats go through their shortest repr
    so that 0.1 is 0.1 and 33.3 + 33.3 + 33.4 is exactly 100; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    return Decimal(value)


def _check_deductions(deductions: Iterable[Deduction], prefix: str) -> Decimal:
    """Validate deductions; return their exact total."""
    total = Decimal(0)
    for i, deduction in enumerate(deductions):
        where = f"{prefix}deductions[{i}]"
        reason = getattr(deduction, "reason", None)
        if not isinstance(reason, str) or not reason.strip():
            raise EvaluationError(f"{where}.reason", "every deduction needs a written reason")
        points = _number(getattr(deduction, "points", None))
        if points is None or not 0 < points <= _HUNDRED:
            raise EvaluationError(f"{where}.points", "points must be a number in (0, 100]")
        total += points
    if total > _HUNDRED:
        raise EvaluationError(f"{prefix}deductions", f"deductions total {total}, over 100")
    return total


def check_deductions(deductions: Iterable[Deduction]) -> None:
    """Refuse a blank reason, points <= 0 or > 100 (``deductions[i].reason`` / ``.points``) and a
    total over 100 (``deductions``), since a rating cannot fall below zero."""
    _check_deductions(deductions, "")


def satisfaction_score(value: str | int) -> float:
    """Public feedback on 0..100: "satisfied" 100, "basically_satisfied" 60, "dissatisfied" 0, or
    1..5 stars as (n − 1) × 25. Words are matched exactly; digit strings, floats and bools are
    refused (field ``feedback``) so the caller decides how a form value is parsed."""
    if isinstance(value, str):
        if value in FEEDBACK_WORDS:
            return FEEDBACK_WORDS[value]
    elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return float((value - 1) * 25)
    raise EvaluationError(
        "feedback",
        f"expected satisfied, basically_satisfied, dissatisfied or 1..5 stars, got {value!r}",
    )


def _percentages(field: str, named: dict[str, object]) -> dict[str, Decimal]:
    """Percent parts: each a number >= 0, together exactly 100."""
    parts: dict[str, Decimal] = {}
    for name, value in named.items():
        number = _number(value)
        if number is None or number < 0:
            raise EvaluationError(field, f"{name} must be a number >= 0, got {value!r}")
        parts[name] = number
    if sum(parts.values()) != _HUNDRED:
        raise EvaluationError(field, f"must sum to 100, got {sum(parts.values())}")
    return parts


def _shares(share: StreetShare) -> dict[str, Decimal]:
    shares: dict[str, Decimal] = {}
    for name in ("agency", "department"):
        value = getattr(share, name)
        number = _number(value)
        if number is None or not 0 <= number <= 1:
            raise EvaluationError("share", f"{name} must be a number in 0..1, got {value!r}")
        shares[name] = number
    return shares


# -- scoring ------------------------------------------------------------------------------------


def _round(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def _out(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _weighted(
    completion: Decimal, satisfaction: Decimal | None, perceived: Decimal, w: dict[str, Decimal]
) -> Decimal:
    """The pair score; a missing satisfaction's weight goes to the other two in proportion."""
    wc, wp = w["completion"], w["perceived"]
    if satisfaction is not None:
        return (wc * completion + w["satisfaction"] * satisfaction + wp * perceived) / _HUNDRED
    if wc + wp == 0:
        # Only satisfaction was weighted and there is none: no proportion to keep, so plain mean.
        return (completion + perceived) / 2
    return (wc * completion + wp * perceived) / (wc + wp)


@dataclass
class _Tally:
    whistles: set[int]
    due: int = 0
    on_time: int = 0


@dataclass
class _Pair:
    street: str
    department: str
    whistles: set[int]
    completion: Decimal
    satisfaction: Decimal | None
    perceived: Decimal
    deductions: tuple[Deduction, ...]
    score: Decimal


def _gather(
    parties: Iterable[PartyRecord],
) -> tuple[dict[tuple[str, str], _Tally], dict[int, Decimal | None], dict[str, tuple[str, bool]]]:
    """Tally the party records per pair, checking they agree with each other: a department has
    one name and kind, a whistle one street and one feedback, and a department one part per
    whistle (a repeat would count its flags twice)."""
    tallies: dict[tuple[str, str], _Tally] = {}
    whistles: dict[int, tuple[str, Decimal | None]] = {}
    departments: dict[str, tuple[str, bool]] = {}
    for i, party in enumerate(parties):
        where = f"parties[{i}]"
        feedback = None
        if party.satisfaction is not None:
            feedback = _number(party.satisfaction)
            if feedback is None or not 0 <= feedback <= _HUNDRED:
                raise EvaluationError(f"{where}.satisfaction", "feedback must be in 0..100")
        known = departments.setdefault(party.department_code, (party.department_name, party.agency))
        if known[0] != party.department_name:
            raise EvaluationError(f"{where}.department_name", f"was {known[0]!r} before")
        if known[1] != party.agency:
            raise EvaluationError(f"{where}.agency", f"was {known[1]} before")
        street, seen = whistles.setdefault(party.whistle_id, (party.street_code, feedback))
        if street != party.street_code:
            raise EvaluationError(f"{where}.street_code", f"whistle blown by {street!r}")
        if seen != feedback:
            raise EvaluationError(f"{where}.satisfaction", f"whistle's feedback was {seen}")
        tally = tallies.setdefault((party.street_code, party.department_code), _Tally(set()))
        if party.whistle_id in tally.whistles:
            raise EvaluationError(f"{where}.whistle_id", "the department's part is listed twice")
        tally.whistles.add(party.whistle_id)
        for due, on_time in (
            (party.arrival_due, party.arrived_on_time),
            (party.resolution_due, party.resolved_on_time),
        ):
            if due:
                tally.due += 1
                tally.on_time += bool(on_time)
    return tallies, {w: f for w, (_, f) in whistles.items()}, departments


def _ratings(
    ratings: Iterable[StreetRating],
) -> dict[tuple[str, str], tuple[tuple[Deduction, ...], Decimal]]:
    """Deductions and their total per pair. One rating per pair (a second one is refused, not
    merged); every rating is checked, also those the evaluation will ignore."""
    by_pair: dict[tuple[str, str], tuple[tuple[Deduction, ...], Decimal]] = {}
    for rating in ratings:
        key = (rating.street_code, rating.department_code)
        where = f"ratings[{key[0]}/{key[1]}]"
        if key in by_pair:
            raise EvaluationError(where, "the street rated this department twice")
        deductions = tuple(rating.deductions)
        by_pair[key] = (deductions, _check_deductions(deductions, f"{where}."))
    return by_pair


def _tiers(scores: list[Decimal], quotas: dict[str, Decimal]) -> list[str]:
    """Tiers for scores sorted best first; ties join the better tier."""
    n = len(scores)
    cut_excellent = min(n, int((n * quotas["excellent"] / _HUNDRED).to_integral(ROUND_CEILING)))
    cut_good = int(
        (n * (quotas["excellent"] + quotas["good"]) / _HUNDRED).to_integral(ROUND_CEILING)
    )
    cut_good = min(n, cut_good)
    tiers: list[str] = []
    for i, score in enumerate(scores):
        if i and score == scores[i - 1]:
            tiers.append(tiers[-1])  # never split a tie
        else:
            tiers.append(TIERS[0] if i < cut_excellent else TIERS[1] if i < cut_good else TIERS[2])
    return tiers


def evaluate(
    period: str,
    parties: Iterable[PartyRecord],
    ratings: Iterable[StreetRating],
    weights: Weights = Weights(),
    quotas: Quotas = Quotas(),
    share: StreetShare = StreetShare(),
) -> Evaluation:
    """Score every (street, department) pair found in ``parties``, then rank and tier the
    departments (see the module docstring for every rule).

    Refuses (EvaluationError) a blank period (``period``); weights or quotas that are negative or
    do not sum to exactly 100 (``weights`` / ``quotas``); shares outside 0..1 (``share``); bad
    deductions (``ratings[street/department].deductions…``) or a second rating of a pair
    (``ratings[street/department]``); and party records that contradict each other or carry
    feedback outside 0..100 (``parties[i].…``). Ratings of pairs absent from ``parties`` are
    ignored: a street rates only departments it worked with in the period.
    """
    if not isinstance(period, str) or not period.strip():
        raise EvaluationError("period", "a period is required")
    w = _percentages(
        "weights",
        {n: getattr(weights, n, None) for n in ("completion", "satisfaction", "perceived")},
    )
    q = _percentages("quotas", {n: getattr(quotas, n, None) for n in TIERS})
    s = _shares(share)
    with localcontext(_CONTEXT):
        tallies, feedback, names = _gather(parties)
        rated = _ratings(ratings)
        pairs: list[_Pair] = []
        for key in sorted(tallies):
            tally = tallies[key]
            completion = _round(_HUNDRED * tally.on_time / tally.due) if tally.due else _HUNDRED
            known = [f for f in (feedback[x] for x in tally.whistles) if f is not None]
            satisfaction = _round(_mean(known)) if known else None
            deductions, total = rated.get(key, ((), Decimal(0)))
            perceived = _round(_HUNDRED - total)
            score = _round(_weighted(completion, satisfaction, perceived, w))
            pairs.append(
                _Pair(*key, tally.whistles, completion, satisfaction, perceived, deductions, score)
            )

        by_department: dict[str, list[_Pair]] = {}
        for pair in pairs:
            by_department.setdefault(pair.department, []).append(pair)
        rows = []
        for code, own in by_department.items():
            rated_satisfaction = [p.satisfaction for p in own if p.satisfaction is not None]
            rows.append(
                (
                    code,
                    len(own),
                    len(set().union(*(p.whistles for p in own))),
                    _round(_mean([p.completion for p in own])),
                    _round(_mean(rated_satisfaction)) if rated_satisfaction else None,
                    _round(_mean([p.perceived for p in own])),
                    _round(_mean([p.score for p in own])),
                )
            )
        rows.sort(key=lambda row: (-row[6], row[0]))
        tiers = _tiers([row[6] for row in rows], q)
        departments: list[DepartmentScore] = []
        rank = 0
        for i, (code, streets, whistles, completion, satisfaction, perceived, score) in enumerate(
            rows
        ):
            if not i or score != rows[i - 1][6]:
                rank = i + 1  # competition ranking: 1, 1, 3
            name, agency = names[code]
            street_share = s["agency" if agency else "department"]
            departments.append(
                DepartmentScore(
                    department_code=code,
                    department_name=name,
                    agency=agency,
                    streets=streets,
                    whistles=whistles,
                    completion=float(completion),
                    satisfaction=_out(satisfaction),
                    perceived=float(perceived),
                    score=float(score),
                    rank=rank,
                    tier=tiers[i],
                    street_share=float(street_share),
                    annual_points=float(_round(score * street_share)),
                )
            )
    return Evaluation(
        period=period,
        weights=weights,
        quotas=quotas,
        share=share,
        pairs=[
            PairScore(
                street_code=p.street,
                department_code=p.department,
                whistles=len(p.whistles),
                completion=float(p.completion),
                satisfaction=_out(p.satisfaction),
                perceived=float(p.perceived),
                deductions=p.deductions,
                score=float(p.score),
            )
            for p in pairs
        ],
        departments=departments,
    )


# -- CSV ----------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Free text for a spreadsheet: a leading = + - @ or control character would make Excel read
    a formula (CSV injection), so such a cell gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _fixed(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _plain(value: float) -> str:
    """A number without trailing zeros: 0.5, 5, 2.5."""
    return format(Decimal(repr(float(value))).normalize(), "f")


def _write(columns: tuple[str, ...], rows: Iterable[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)  # \r\n line ends, the csv default
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def evaluation_csv(ev: Evaluation) -> str:
    """The department table as CSV text (header row; figures with 2 decimals; agency as
    true/false; an empty satisfaction when none). The caller adds a BOM for Excel."""
    return _write(
        DEPARTMENT_COLUMNS,
        (
            {
                "period": _cell(ev.period),
                "rank": d.rank,
                "tier": d.tier,
                "department_code": _cell(d.department_code),
                "department_name": _cell(d.department_name),
                "agency": "true" if d.agency else "false",
                "streets": d.streets,
                "whistles": d.whistles,
                "completion": _fixed(d.completion),
                "satisfaction": _fixed(d.satisfaction),
                "perceived": _fixed(d.perceived),
                "score": _fixed(d.score),
                "street_share": _plain(d.street_share),
                "annual_points": _fixed(d.annual_points),
            }
            for d in ev.departments
        ),
    )


def pairs_csv(ev: Evaluation) -> str:
    """The per-street table as CSV text, with the department's name and a ``deductions`` column
    "points: reason; …" (empty when none)."""
    names = {d.department_code: d.department_name for d in ev.departments}
    return _write(
        PAIR_COLUMNS,
        (
            {
                "period": _cell(ev.period),
                "street_code": _cell(p.street_code),
                "department_code": _cell(p.department_code),
                "department_name": _cell(names.get(p.department_code, "")),
                "whistles": p.whistles,
                "completion": _fixed(p.completion),
                "satisfaction": _fixed(p.satisfaction),
                "perceived": _fixed(p.perceived),
                "score": _fixed(p.score),
                # Starts with a digit, so it needs no formula guard.
                "deductions": "; ".join(f"{_plain(d.points)}: {d.reason}" for d in p.deductions),
            }
            for p in ev.pairs
        ),
    )
