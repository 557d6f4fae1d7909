"""Demo whistles (街道吹哨、部门报到) for the demo district, played through the live service.

About ``count`` whistles over the last ``days`` (Hongqiao blew 88 in a year, all closed), plus
the second whistles of the escalated ones, each blown with :func:`whistles.blow` and taken
through its loop with :func:`whistles.act` on a simulated clock, with :func:`whistles.supervise`
run at every deadline and after every late step as the app's scheduler would. Nothing is
written behind the service's back except the streets' monthly ratings of departments (下考上):
plain SQL as the API's rating endpoint writes them, which has no service function to call.

* Blowers: one street commander per street (the demo one on its home street, ``demo-street-<code>``
  elsewhere), community officers for a few community whistles (when grids have members); a
  department officer (``demo-officer-<code>``) acts for each department addressed.
* Places: points inside the blowing street's grids, a few hot grids per street taking a good
  share; a third of the whistles are meant for 1–3 open cases of the street — cases reported
  in the 30 days before and untouched since, when there are any (the situation then fits the
  first case's class) — the rest for a place only.
* Departments acknowledge, check in (mostly within 300 m, a few farther: flagged), the leads
  resolve, the co-handlers confirm, the street closes, the public gives feedback. Some arrive or
  resolve late (supervision records), a few whistles are reopened, cancelled, or escalated —
  the second whistle is then run to closing by the district.
* The last days hold a whistle in every state, one overdue with nobody on site and one overdue
  for resolution; the previous calendar month holds closed street whistles and the streets'
  ratings of their departments, with deductions and reasons.

Deterministic for a seed and an ``end``; whistles carry the idempotency key
``demo-whistle:<seed>:<n>``, so a second load adds nothing.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import Engine, text

from app.services import identity, whistles
from app.services.boundaries import active_version
from app.services.evaluation import Deduction, check_deductions
from app.services.identity import Principal
from app.services.locate import LocateService
from app.services.scoping import ScopeFilter, scope_for

ZONE = ZoneInfo("Asia/Shanghai")
KEY = "demo-whistle"
GRADE_UP = {"blue": "yellow", "yellow": "red", "red": "red"}
OPEN_CASES = ("reported", "filed", "dispatched", "handling")
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)

DESCRIPTIONS = {
    "conflict": "网格员走访发现，社区多次调解未果，需职能部门联合处置。Found on the grid's rounds; "
    "the community's mediation failed.",
    "service": "居民多次反映，社区无法单独解决，请相关部门到场。Residents raised it again and "
    "again; the community cannot solve it alone.",
    "enforcement": "巡查发现违法违规行为，街道无执法权，吹哨请执法部门到场。Found on patrol; the "
    "street has no power to enforce.",
    "key_work": "重点工作推进遇到难点，需多部门协同。A key task is stuck and needs several "
    "departments together.",
    "emergency": "突发情况，需相关部门立即到场处置。An emergency: the departments are needed on "
    "site at once.",
}
NOTES = {
    "acknowledge": ("收到 received", "收到，马上安排 received, sending someone",
                    "已派员前往 someone is on the way"),
    "check_in": ("已到场 on site", "到场报到 reporting on site",
                 "工作人员已到现场 our staff are there"),
    "progress": ("正在现场核查 checking on site", "已约谈当事人 talked to those concerned",
                 "已下达整改通知 ordered to put it right", "联合检查中 joint inspection under way"),
    "resolve": ("已办结 done", "问题已整改完毕 put right",
                "已处置，现场恢复 handled, the site restored"),
    "confirm": ("协办完成 our part is done", "配合处置完毕 assisted, done"),
    "close": ("核查通过，同意结案 checked on site, closed", "经现场核查已解决 verified on site"),
    "reopen": ("现场核查仍未解决，退回重办 not solved on site; back to the departments",
               "居民反映问题反弹 the residents say it is back"),
    "escalate": ("部门逾期未办结，提请上级协调 departments overdue; the level above is asked in",
                 "涉及多部门职责交叉，协调不动 several departments' duties overlap; we cannot "
                 "move them"),
    "cancel": ("群众已自行解决 the residents settled it themselves",
               "与已吹哨事项重复 a duplicate of a whistle already blown",
               "经核实不属于吹哨情形 on checking, not a whistle situation"),
}  # fmt: skip
FEEDBACK_NOTES = {
    "satisfied": "处理及时，很满意 quick, very satisfied",
    "basically_satisfied": "基本满意，希望加强巡查 fairly satisfied; patrol it more",
    "dissatisfied": "拖了太久，不满意 it took far too long",
}


@dataclass(frozen=True)
class Actor:
    """A principal and its scope, as the API would make them."""

    principal: Principal
    reach: ScopeFilter


@dataclass
class Plan:
    """One whistle as planned: who blows what, where and when, and how its loop goes.

    ``outcome``: close (the whole loop), escalate, cancel, or — for the last days — silent
    (nobody answers yet), arrived (on site, nothing resolved) or resolved (leads done only)."""

    n: int
    at: dt.datetime
    level: str
    street: str
    grid: str
    point: tuple[float, float]
    situation: str
    grade: str
    outcome: str = "close"
    wants_cases: bool = False
    late_arrival: bool = False
    far: bool = False
    late_resolve: bool = False
    reopen: bool = False
    escalate_after: str = "resolve"  # the step whose deadline passed: report | resolve
    resolve_frac: tuple[float, float] = (0.25, 0.85)  # of the resolve limit, when on time
    fixed_grade: bool = False  # the last days' whistles keep their grade whatever the cases


@dataclass
class Info:
    """A blown whistle as the loop needs it."""

    id: int
    level: str
    grade: str
    blown_at: dt.datetime
    report_due: dt.datetime
    resolve_due: dt.datetime
    x: float
    y: float
    street: str | None
    district: str
    parties: list[dict[str, Any]] = field(default_factory=list)


# -- entry point --------------------------------------------------------------------------------


def load(
    engine: Engine,
    locator: LocateService,
    *,
    count: int = 90,
    days: int = 365,
    seed: int = 20191216,
    end: dt.datetime | None = None,
) -> int:
    """About ``count`` whistles over the last ``days`` (Hongqiao had 88 in a year, all closed),
    played through the whistle service on a simulated clock ending at ``end`` (default: now),
    plus the second whistles of the escalated ones and the streets' ratings of departments for
    each full month; returns how many whistles were added; idempotent: 0 when they are already
    there."""
    with engine.connect() as conn:
        if conn.execute(
            text("SELECT count(*) FROM whistle WHERE idempotency_key LIKE :k"), {"k": f"{KEY}:%"}
        ).scalar_one():
            return 0
        if active_version(conn) is None or locator.current() is None:
            return 0
    end = (end or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    sim = _Simulation(engine, locator, seed, end)
    if not sim.streets or not sim.situations:
        return 0
    for plan in sim.plan(count, days):
        sim.at(plan.at, lambda p=plan: sim.blow(p))
    sim.run()
    sim.rate_months(end - dt.timedelta(days=days))
    return sim.added


# -- the simulation -----------------------------------------------------------------------------


class _Simulation:
    def __init__(self, engine: Engine, locator: LocateService, seed: int, end: dt.datetime):
        self.engine, self.locator, self.seed, self.end = engine, locator, seed, end
        self.rng = np.random.default_rng(seed)
        self.limits = whistles.limits()
        self.queue: list[tuple[dt.datetime, int, Callable[[], None]]] = []
        self.seq = 0
        self.passes: set[dt.datetime] = set()
        self.added = 0
        self.actors: dict[str, Actor] = {}
        with engine.connect() as conn:
            version = active_version(conn)
            assert version is not None
            rows = conn.execute(
                text("SELECT code, level, parent_code, name, ST_AsBinary(geom) AS wkb "
                     "FROM region WHERE version_id = :v ORDER BY code"), {"v": version.id},
            ).mappings().all()  # fmt: skip
            self.situations = {
                r["code"]: dict(r)
                for r in conn.execute(text("SELECT * FROM whistle_situation ORDER BY code"))
                .mappings()
                .all()
            }
            kinds = set(conn.execute(
                text("SELECT DISTINCT kind FROM department WHERE service_area IS NOT NULL")
            ).scalars())  # fmt: skip
            self.departments = dict(conn.execute(text("SELECT code, name FROM department")).all())
            self.staffed = set(conn.execute(
                text("SELECT DISTINCT grid_code FROM grid_assignment")).scalars())  # fmt: skip
            # The demo users already there, by post (role and home, or department); the
            # first by name wins, so the pre-made demo-<role> users blow on their home ground.
            self.posts: dict[tuple[str, str], str] = {}
            for r in conn.execute(
                text("SELECT s.name, s.role, s.region_code, d.code AS department FROM staff s "
                     "LEFT JOIN department d ON d.id = s.department_id "
                     "WHERE s.active AND s.name LIKE 'demo-%' ORDER BY s.name")
            ):  # fmt: skip
                key = ("department", r.department) if r.department else (r.role, r.region_code)
                self.posts.setdefault(key, r.name)
            self.by_post: dict[tuple[str, str], Actor] = {}
        # A street whistle needs a department to lead at every place: only situations whose
        # lead kinds the district has.
        self.situations = {c: s for c, s in self.situations.items() if set(s["lead"]) <= kinds}
        self.names = {r["code"]: r["name"] for r in rows}
        self.parent = {r["code"]: r["parent_code"] for r in rows}
        self.streets = [r["code"] for r in rows if r["level"] == "street"]
        self.grids: dict[str, list[tuple[str, Any]]] = {s: [] for s in self.streets}
        for r in rows:
            if r["level"] == "grid" and r["code"][:9] in self.grids:
                self.grids[r["code"][:9]].append((r["code"], shapely.from_wkb(bytes(r["wkb"]))))
        self.streets = [s for s in self.streets if self.grids[s]]

    # -- the clock --------------------------------------------------------------------------

    def at(self, t: dt.datetime, fn: Callable[[], None]) -> None:
        """Schedule a step; what would happen after ``end`` has not happened yet."""
        if t <= self.end:
            self.seq += 1
            heapq.heappush(self.queue, (t, self.seq, fn))

    def supervise_at(self, t: dt.datetime) -> None:
        t = t.replace(second=0, microsecond=0)  # one scheduler tick a minute
        if t not in self.passes and t <= self.end:
            self.passes.add(t)
            self.at(t, lambda: self._supervise(t))

    def _supervise(self, t: dt.datetime) -> None:
        whistles.supervise(self.engine, now=t)

    def run(self) -> None:
        while self.queue:
            _, _, fn = heapq.heappop(self.queue)
            fn()
        whistles.supervise(self.engine, now=self.end)  # the scheduler's tick at the end

    # -- planning -----------------------------------------------------------------------------

    def plan(self, count: int, days: int) -> list[Plan]:
        rng, end = self.rng, self.end
        start = end - dt.timedelta(days=days)
        recent = end - dt.timedelta(days=4)  # the last days: one whistle per state
        weights = rng.dirichlet(np.full(len(self.streets), 4.0))
        hot = {s: rng.choice(len(g), size=min(3, len(g)), replace=False)
               for s, g in self.grids.items()}  # fmt: skip
        codes = sorted(self.situations)
        popularity = rng.dirichlet(np.full(len(codes), 0.8))
        scenarios = _scenarios()[:count] if recent > start else []
        ordinary = max(count - len(scenarios), 0)
        # The previous calendar month (Shanghai) gets a few whistles early enough to close.
        month_end = end.astimezone(ZONE).replace(day=1, hour=0, minute=0, second=0,
                                                 microsecond=0)  # fmt: skip
        month_start = (month_end - dt.timedelta(days=1)).replace(day=1)
        lo = max(month_start, start)
        hi = min(month_start + 0.6 * (month_end - month_start), recent)
        forced = min(5, ordinary) if hi - lo > dt.timedelta(days=3) else 0
        times = [self._moment(lo, hi) for _ in range(forced)]
        times += [self._moment(start, recent) for _ in range(ordinary - forced)]
        plans: list[Plan] = []
        for i, t in enumerate(times):
            # Every street blows at least once, then by its weight.
            street = self.streets[i % len(self.streets)] if i < len(self.streets) else (
                self.streets[rng.choice(len(self.streets), p=weights)])  # fmt: skip
            grids = self.grids[street]
            g = int(rng.choice(hot[street])) if rng.random() < 0.45 else int(
                rng.integers(len(grids)))  # fmt: skip
            grid, shape = grids[g]
            situation = codes[rng.choice(len(codes), p=popularity)]
            grade = self.situations[situation]["grade"]
            if rng.random() < 0.3:  # the blower raises or lowers the default
                order = ("blue", "yellow", "red")
                grade = order[min(2, max(0, order.index(grade) + int(rng.choice([-1, 1]))))]
            plans.append(Plan(
                n=0, at=t, level="street", street=street, grid=grid,
                point=_inside(rng, shape), situation=situation, grade=grade,
                wants_cases=bool(rng.random() < 1 / 3),
                late_arrival=bool(rng.random() < 0.12), far=bool(rng.random() < 0.07),
                late_resolve=bool(rng.random() < 0.1), reopen=bool(rng.random() < 0.04),
            ))  # fmt: skip
        # The forced month's whistles: closed street whistles, with something to deduct for.
        for j, p in enumerate(plans[:forced]):
            p.reopen = False
            p.late_arrival, p.far, p.late_resolve = j == 0, j == 1, j == 2
        # Outcomes other than closing, among whistles old enough to have run their course.
        old = [i for i, p in enumerate(plans[forced:], forced)
               if p.at < end - dt.timedelta(days=14)]  # fmt: skip
        picked = [int(i) for i in rng.permutation(old)]
        # In proportion (of 82: 4 escalated, 2 cancelled, 10 community whistles).
        escalated, cancelled, community = (round(share * ordinary) for share in (0.05, 0.025, 0.12))
        for i in picked[:escalated]:
            plans[i].outcome = "escalate"
            plans[i].escalate_after = "report" if rng.random() < 0.4 else "resolve"
        for i in picked[escalated : escalated + cancelled]:
            plans[i].outcome = "cancel"
        # Some community whistles where grids have members (1+8+X); one goes up to the street.
        if self.staffed:
            for k, i in enumerate(picked[escalated + cancelled :][:community]):
                p = plans[i]
                staffed = [g for g, _ in self.grids[p.street] if g in self.staffed]
                if not staffed:
                    continue
                grid = staffed[int(rng.integers(len(staffed)))]
                shape = dict(self.grids[p.street])[grid]
                p.level, p.grid, p.point = "community", grid, _inside(rng, shape)
                p.wants_cases = p.reopen = False
                if k == 0:
                    p.outcome, p.escalate_after = "escalate", "resolve"
        for s in scenarios:
            ago = s.pop("ago")
            if s["situation"] not in self.situations:  # a district's own catalogue
                s["situation"] = codes[int(rng.integers(len(codes)))]
            street = self.streets[int(rng.integers(len(self.streets)))]
            grid, shape = self.grids[street][int(rng.integers(len(self.grids[street])))]
            plans.append(Plan(n=0, street=street, grid=grid, point=_inside(rng, shape),
                              at=end - ago, fixed_grade=True, **s))  # fmt: skip
        plans.sort(key=lambda p: p.at)
        for n, p in enumerate(plans):
            p.n = n
        return plans

    def _moment(self, lo: dt.datetime, hi: dt.datetime) -> dt.datetime:
        """A blowing time between ``lo`` and ``hi``: office hours mostly, evenings sometimes."""
        rng = self.rng
        if hi <= lo:  # a window too short to draw from (a few days of demo): its start
            return lo.astimezone(dt.UTC)
        for _ in range(1000):
            day = (lo + (hi - lo) * float(rng.random())).astimezone(ZONE)
            hour = rng.uniform(8.5, 18) if rng.random() < 0.85 else rng.uniform(18, 21.5)
            t = day.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(
                hours=float(hour))  # fmt: skip
            if lo <= t <= hi:
                return t.astimezone(dt.UTC)
        return (lo + (hi - lo) / 2).astimezone(dt.UTC)  # no office hour inside the window

    # -- people -------------------------------------------------------------------------------

    def actor(self, name: str) -> Actor:
        if name not in self.actors:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text("SELECT s.id, s.name, s.display_name, s.role, s.region_code, "
                         "d.code AS department FROM staff s LEFT JOIN department d "
                         "ON d.id = s.department_id WHERE s.name = :n"), {"n": name},
                ).one()  # fmt: skip
                principal = Principal(row.id, row.name, row.role, row.region_code,
                                      row.department, row.display_name)  # fmt: skip
                self.actors[name] = Actor(principal, scope_for(conn, principal))
        return self.actors[name]

    def _demo_user(self, key: tuple[str, str], name: str, **user: Any) -> Actor:
        """The demo user with a role (where) or department (``key``): the pre-made one of that
        role when it fits, else one made now."""
        if key not in self.by_post:
            if key not in self.posts:
                identity.add_user(self.engine, name, **user)
                self.posts[key] = name
            self.by_post[key] = self.actor(self.posts[key])
        return self.by_post[key]

    def commander(self, level: str, region: str) -> Actor:
        """Whoever blows and closes at ``level`` for ``region``."""
        role = {"street": "street_commander", "community": "community_officer",
                "district": "district_commander"}[level]  # fmt: skip
        title = identity.ROLES[role].split()[0]
        return self._demo_user(
            (role, region), f"demo-{level}-{region}", role=role, region=region,
            display_name=f"演示 {self.names.get(region, region)} {title}",
        )  # fmt: skip

    def officer(self, department: str, district: str) -> Actor:
        return self._demo_user(
            ("department", department), f"demo-officer-{department}",
            role="department_officer", region=district,
            department=department, display_name=f"演示 {self.departments.get(department)}",
        )  # fmt: skip

    def party_actor(self, p: dict[str, Any], district: str) -> tuple[Actor, str | None]:
        """Who acts for an addressee, and the name to act under."""
        if p["department"] is not None:
            return self.officer(p["department"], district), p["department"]
        return self.actor(p["staff_name"]), None

    # -- blowing --------------------------------------------------------------------------------

    def blow(self, plan: Plan) -> None:
        rng = np.random.default_rng([self.seed, plan.n])
        region = plan.street if plan.level == "street" else self.parent[plan.grid]
        blower = self.commander(plan.level, region)
        cases = self._cases(rng, plan) if plan.wants_cases else []
        situation = self.situations[plan.situation]
        title = f"{situation['name_zh']}（{self.names[plan.grid]}）"
        request = whistles.BlowRequest(
            level=plan.level, situation_code=situation["code"], title=title,
            place=None if cases else whistles.Place(*plan.point, crs="cgcs2000"),
            incidents=cases, grade=plan.grade,
            description=f"{DESCRIPTIONS.get(situation['class_key'], '')} "
            f"{situation['name_en']}.".strip(),
        )  # fmt: skip
        wid, created = whistles.blow(
            self.engine, self.locator, blower.principal, blower.reach, request,
            limits_by_grade=self.limits, idempotency_key=f"{KEY}:{self.seed}:{plan.n}",
            now=plan.at,
        )  # fmt: skip
        if not created:  # another loader got there first: its loop is its own
            return
        self.added += 1
        self.lifecycle(self.info(wid), plan, blower, rng)

    def _cases(self, rng: np.random.Generator, plan: Plan) -> list[int]:
        """1–3 open cases of the street that nothing has touched since; the first decides the
        situation (one its class's department kind leads) and the others share its community."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    """
                    SELECT i.id, i.grid_code, i.community_code, c.department_kind
                    FROM incident i JOIN incident_class c ON c.code = i.class_code
                    WHERE i.street_code = :s AND i.status = ANY(:open)
                      AND i.grid_code IS NOT NULL
                      AND i.reported_at BETWEEN :t - interval '30 days' AND :t
                      AND NOT EXISTS (SELECT 1 FROM whistle_incident wi
                                      WHERE wi.incident_id = i.id)
                      AND NOT EXISTS (SELECT 1 FROM incident_history h
                                      WHERE h.incident_id = i.id AND h.at >= :t)
                    ORDER BY i.id LIMIT 200
                    """
                ),
                {"s": plan.street, "open": list(OPEN_CASES), "t": plan.at},
            ).mappings().all()  # fmt: skip
        if not rows:
            return []
        first = rows[int(rng.integers(len(rows)))]
        near = [r["id"] for r in rows if r["community_code"] == first["community_code"]
                and r["id"] != first["id"]]  # fmt: skip
        k = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2])) - 1
        fitting = sorted(c for c, s in self.situations.items()
                         if first["department_kind"] in s["lead"])  # fmt: skip
        if fitting:
            plan.situation = fitting[int(rng.integers(len(fitting)))]
            if not plan.fixed_grade:
                plan.grade = self.situations[plan.situation]["grade"]
        plan.grid = first["grid_code"]
        return [first["id"], *near[:k]]

    def info(self, whistle_id: int) -> Info:
        with self.engine.connect() as conn:
            w = conn.execute(
                text("SELECT id, level, grade, blown_at, report_due_at, resolve_due_at, "
                     "ST_X(place_point) AS x, ST_Y(place_point) AS y, street_code, "
                     "coalesce(district_code, left(region_code, 6)) AS district "
                     "FROM whistle WHERE id = :w"), {"w": whistle_id},
            ).one()  # fmt: skip
            parties = conn.execute(
                text("SELECT p.id, p.role, d.code AS department, s.name AS staff_name "
                     "FROM whistle_party p LEFT JOIN department d ON d.id = p.department_id "
                     "LEFT JOIN staff s ON s.id = p.staff_id WHERE p.whistle_id = :w "
                     "ORDER BY p.id"), {"w": whistle_id},
            ).mappings().all()  # fmt: skip
        return Info(w.id, w.level, w.grade, w.blown_at, w.report_due_at, w.resolve_due_at,
                    w.x, w.y, w.street_code, w.district,
                    [dict(p) for p in parties])  # fmt: skip

    # -- one whistle's loop -------------------------------------------------------------------

    def act(self, actor: Actor, info: Info, action: str, t: dt.datetime, **fields: Any) -> Any:
        return whistles.act(
            self.engine, self.locator, actor.principal, actor.reach, info.id,
            whistles.WhistleAction(action, **fields),
            limits_by_grade=self.limits, now=t,
        )  # fmt: skip

    def step(self, t: dt.datetime, actor: Actor, info: Info, action: str, **fields: Any) -> None:
        """Schedule one action, and a supervision pass soon after a late one (which closes the
        record its lateness opened)."""
        self.at(t, lambda: self.act(actor, info, action, t, **fields))
        late = t > (info.report_due if action == "check_in" else info.resolve_due)
        if late and action in ("check_in", "resolve", "confirm", "reopen"):
            self.supervise_at(t + 3 * MINUTE)

    def lifecycle(self, info: Info, plan: Plan, blower: Actor, rng: np.random.Generator) -> None:
        """Schedule the whistle's loop from the blow on, as ``plan`` says it goes."""
        t0 = info.blown_at
        report, resolve = info.report_due - t0, info.resolve_due - t0
        for due in (info.report_due, info.resolve_due):  # the scheduler's ticks past deadlines
            self.supervise_at(due + dt.timedelta(minutes=float(rng.uniform(1, 5))))
        planned = [t0]

        def do(t: dt.datetime, actor: Actor, action: str, **fields: Any) -> None:
            if "note" not in fields:
                fields["note"] = str(rng.choice(NOTES[action]))
            self.step(t, actor, info, action, **fields)
            planned.append(t)

        def after(t: dt.datetime) -> dt.datetime:
            """Not before anything already planned: an ending step comes last."""
            return max(t, max(planned) + dt.timedelta(minutes=float(rng.uniform(5, 30))))

        def hours(lo: float, hi: float) -> dt.timedelta:
            return dt.timedelta(hours=float(rng.uniform(lo, hi)))

        workers = [p for p in info.parties if p["role"] in ("lead", "co")]
        if plan.outcome == "silent":
            return
        if plan.outcome == "cancel":
            tc = _daytime(rng, t0 + hours(1 / 3, 3))
            if workers and rng.random() < 0.5:
                who, name = self.party_actor(workers[0], info.district)
                do(t0 + (tc - t0) * float(rng.uniform(0.1, 0.8)), who, "acknowledge", party=name)
            do(after(tc), blower, "cancel")
            return
        for p in info.parties:
            if p["role"] == "notified" and rng.random() < 0.5:
                who, name = self.party_actor(p, info.district)
                do(t0 + hours(0.1, 3), who, "acknowledge", party=name)
        late_one = int(rng.integers(len(workers))) if plan.late_arrival else -1
        far_one = int(rng.integers(len(workers))) if plan.far else -1
        absent = -1
        if plan.outcome == "escalate" and plan.escalate_after == "report":
            absent = next(i for i, p in enumerate(workers) if p["role"] == "lead")
        arrived: dict[int, dt.datetime] = {}
        for i, p in enumerate(workers):
            who, name = self.party_actor(p, info.district)
            span = rng.uniform(1.15, 2.6) if i == late_one else rng.uniform(0.2, 0.9)
            a = t0 + report * float(span)
            if rng.random() < 0.85 or i == absent:  # a check-in also acknowledges
                do(t0 + (a - t0) * float(rng.uniform(0.05, 0.5)), who, "acknowledge", party=name)
            if i == absent:
                continue
            lon, lat = _near(rng, info.x, info.y, far=i == far_one)
            do(a, who, "check_in", party=name, lon=lon, lat=lat, crs="cgcs2000")
            arrived[p["id"]] = a
        if plan.outcome == "arrived":
            return
        if plan.outcome == "escalate":
            due = info.report_due if plan.escalate_after == "report" else info.resolve_due
            te = _daytime(rng, after(due + hours(1, 10)))
            why = str(rng.choice(NOTES["escalate"]))
            self.at(te, lambda: self.escalate(info, plan, blower, te, why))
            return
        leads = [p for p in workers if p["role"] == "lead"]
        late_lead = int(rng.integers(len(leads))) if plan.late_resolve else -1
        done: dict[int, dt.datetime] = {}
        for i, p in enumerate(leads):
            who, name = self.party_actor(p, info.district)
            frac = rng.uniform(1.05, 1.5) if i == late_lead else rng.uniform(*plan.resolve_frac)
            came = arrived[p["id"]]
            r = max(t0 + resolve * float(frac), came + hours(1 / 3, 3))
            if rng.random() < 0.35:
                do(came + (r - came) * float(rng.uniform(0.2, 0.8)), who, "progress")
            do(r, who, "resolve", party=name)
            done[p["id"]] = r
        if plan.outcome == "resolved":
            return
        last = max(done.values())
        cos = [p for p in workers if p["role"] == "co"]
        for p in cos:
            who, name = self.party_actor(p, info.district)
            do(max(arrived[p["id"]] + hours(1 / 3, 1.5), last - hours(0, 2)), who, "confirm",
               party=name)  # fmt: skip
        if plan.reopen:
            ro = _daytime(rng, after(max(planned) + hours(2, 8)))
            do(ro, blower, "reopen")
            again = ro + hours(3, 30)
            for p in leads:
                who, name = self.party_actor(p, info.district)
                do(again, who, "resolve", party=name, note="返工完成 reworked")
            for p in cos:
                who, name = self.party_actor(p, info.district)
                do(again + hours(0.5, 4), who, "confirm", party=name)
        close = _daytime(rng, after(max(planned) + hours(1, 20)))
        said = _daytime(rng, close + hours(2, 48))
        if said > self.end:  # every closed whistle has its feedback: squeeze it in, or wait
            if self.end - close < 30 * MINUTE:
                return
            said = close + (self.end - close) * float(rng.uniform(0.3, 0.9))
        do(close, blower, "close")
        value = _feedback(rng, plan.late_arrival or plan.late_resolve or plan.reopen)
        do(said, blower, "feedback", feedback=value,
           note=FEEDBACK_NOTES.get(str(value), f"{value} 星 stars"))  # fmt: skip

    def escalate(self, info: Info, plan: Plan, blower: Actor, t: dt.datetime, note: str) -> None:
        """Blow the second whistle, and let the level above run it to closing."""
        second = self.act(blower, info, "escalate", t, note=note, grade=GRADE_UP[info.grade])
        self.added += 1
        upper = self.info(second)
        region = upper.street if upper.level == "street" else upper.district
        assert region is not None
        rng = np.random.default_rng([self.seed, plan.n, 1])
        follow = replace(plan, outcome="close", at=t, late_arrival=False, far=False,
                         late_resolve=bool(rng.random() < 0.2), reopen=False,
                         resolve_frac=(0.15, 0.6))  # fmt: skip
        self.lifecycle(upper, follow, self.commander(upper.level, region), rng)

    # -- the streets rate their departments (下考上) ---------------------------------------------

    def rate_months(self, start: dt.datetime) -> None:
        """For every full calendar month since ``start``: each street rates each department that
        answered its whistles that month — the pairs the evaluation scores (street and district
        whistles placed in the street, not cancelled) — deducting for late arrival, far
        check-ins, late resolution and dissatisfied feedback, each with its reason. Plain SQL as
        the API's rating endpoint writes it (it has no service taking a clock)."""
        rng = np.random.default_rng([self.seed, 9])
        month = start.astimezone(ZONE).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        with self.engine.connect() as conn:
            facts = conn.execute(
                text(
                    """
                    SELECT w.id, w.street_code, w.blown_at, w.report_due_at, w.resolve_due_at,
                           w.feedback, p.department_id, p.role, p.arrived_at, p.done_at,
                           p.checkin_far, p.checkin_distance_m
                    FROM whistle w JOIN whistle_party p ON p.whistle_id = w.id
                    WHERE w.level IN ('street', 'district') AND w.street_code IS NOT NULL
                      AND w.status <> 'cancelled'
                      AND p.role IN ('lead', 'co') AND p.department_id IS NOT NULL
                      AND w.blown_at >= :start
                    ORDER BY w.id, p.id
                    """
                ),
                {"start": month},
            ).mappings().all()  # fmt: skip
        rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for f in facts:
            period = f["blown_at"].astimezone(ZONE).strftime("%Y-%m")
            rows.setdefault((period, f["street_code"], f["department_id"]), []).append(dict(f))
        current = self.end.astimezone(ZONE).strftime("%Y-%m")
        with self.engine.begin() as conn:
            for (period, street, department), pair in sorted(rows.items()):
                if period >= current:  # the month is not over: not rated yet
                    continue
                cuts = _deductions(pair)
                if not cuts and rng.random() < 0.1:
                    cuts = [{"points": 2, "reason": "电话沟通不及时 slow to answer the street's "
                             "calls"}]  # fmt: skip
                check_deductions([Deduction(c["points"], c["reason"]) for c in cuts])
                year, mon = map(int, period.split("-"))
                rated = dt.datetime(year + mon // 12, mon % 12 + 1, 1, 10, tzinfo=ZONE)
                rated += dt.timedelta(days=int(rng.integers(0, 4)), minutes=int(rng.integers(600)))
                conn.execute(
                    text(
                        "INSERT INTO street_rating (period, street_code, department_id, "
                        "deductions, rated_by, rated_at) VALUES (:p, :s, :d, CAST(:x AS jsonb), "
                        ":by, :at) ON CONFLICT DO NOTHING"
                    ),
                    {"p": period, "s": street, "d": department,
                     "x": json.dumps(cuts, ensure_ascii=False),
                     "by": self.commander("street", street).principal.id,
                     "at": min(rated, self.end)},
                )  # fmt: skip


# -- helpers ------------------------------------------------------------------------------------


def _scenarios() -> list[dict[str, Any]]:
    """The last days: a whistle in every state (the first whistles of escalations end
    ``escalated``), including one nobody has answered past its deadline and one overdue for
    resolution."""
    h = dt.timedelta(hours=1)
    return [
        # Blown three hours ago, red (30 min to report): nobody has come — overdue.
        {"ago": 3 * h, "level": "street", "situation": "YJ03", "grade": "red",
         "outcome": "silent"},
        # Just blown.
        {"ago": 0.4 * h, "level": "street", "situation": "FW06", "grade": "blue",
         "outcome": "silent"},
        # On site, working.
        {"ago": 6 * h, "level": "street", "situation": "ZF01", "grade": "yellow",
         "outcome": "arrived", "wants_cases": True},
        # On site for a day and a half of a red whistle's 24 h: overdue for resolution.
        {"ago": 30 * h, "level": "street", "situation": "FW05", "grade": "red",
         "outcome": "arrived", "late_arrival": True, "wants_cases": True},
        # The leads are done; the co-handlers have not confirmed, the street has not closed.
        {"ago": 20 * h, "level": "street", "situation": "ZF05", "grade": "red",
         "outcome": "resolved", "resolve_frac": (0.2, 0.55), "wants_cases": True},
        # Closed in the last days, with feedback.
        {"ago": 84 * h, "level": "street", "situation": "ZF02", "grade": "yellow",
         "outcome": "close", "resolve_frac": (0.15, 0.35), "wants_cases": True},
        # Nothing resolved in a red whistle's 24 h: escalated to the district.
        {"ago": 72 * h, "level": "street", "situation": "MD09", "grade": "red",
         "outcome": "escalate", "escalate_after": "resolve"},
        # Cancelled: the residents settled it.
        {"ago": 48 * h, "level": "street", "situation": "MD02", "grade": "blue",
         "outcome": "cancel"},
    ]  # fmt: skip


def _inside(rng: np.random.Generator, polygon: Any) -> tuple[float, float]:
    """A random point well inside a grid (10 m from its edges where the grid allows)."""
    inner = polygon.buffer(-0.0001)
    shape = inner if not inner.is_empty and inner.area > 0.05 * polygon.area else polygon
    x0, y0, x1, y1 = shape.bounds
    while True:
        xs, ys = rng.uniform(x0, x1, 32), rng.uniform(y0, y1, 32)
        hit = np.flatnonzero(shapely.contains_xy(shape, xs, ys))
        if hit.size:
            return float(xs[hit[0]]), float(ys[hit[0]])


def _near(rng: np.random.Generator, x: float, y: float, *, far: bool) -> tuple[float, float]:
    """Where a department checks in: within 300 m of the place, or (``far``) well beyond."""
    metres = rng.uniform(450, 1800) if far else 10 + 220 * rng.beta(1.5, 3)
    bearing = rng.uniform(0, 2 * math.pi)
    dx = metres * math.sin(bearing) / (111_320 * math.cos(math.radians(y)))
    return x + dx, y + metres * math.cos(bearing) / 110_574


def _daytime(rng: np.random.Generator, t: dt.datetime) -> dt.datetime:
    """Move a desk step that falls at night to the next morning (Shanghai)."""
    local = t.astimezone(ZONE)
    morning = local.replace(hour=8, minute=30, second=0, microsecond=0)
    if local.hour >= 21:
        morning += dt.timedelta(days=1)
    elif local >= morning:
        return t
    return (morning + dt.timedelta(minutes=float(rng.uniform(0, 60)))).astimezone(dt.UTC)


def _feedback(rng: np.random.Generator, troubled: bool) -> str | int:
    """Mostly satisfied; less so when it ran late or came back."""
    words = ("satisfied", "basically_satisfied", "dissatisfied", "stars")
    p = (0.45, 0.3, 0.12, 0.13) if troubled else (0.72, 0.14, 0.02, 0.12)
    word = str(rng.choice(words, p=p))
    if word == "stars":
        return int(rng.choice([5, 4, 3, 2, 1], p=[0.55, 0.28, 0.1, 0.04, 0.03]))
    return word


def _deductions(pair: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a street deducts from a department for a month's whistles, with its reasons."""
    cuts: list[dict[str, Any]] = []
    for f in pair:
        w = f"第 {f['id']} 号哨 whistle {f['id']}"
        if f["arrived_at"] is None:  # the month is over, so was its deadline
            cuts.append({"points": 8, "reason": f"{w}: 始终未到场报到 never came on site"})
        elif f["arrived_at"] > f["report_due_at"]:
            late = (f["arrived_at"] - f["report_due_at"]) / MINUTE
            cuts.append({"points": 5, "reason": f"{w}: 未按时到场报到，迟到 {late:.0f} 分钟 "
                         f"on site {late:.0f} min after the deadline"})  # fmt: skip
        if f["checkin_far"]:
            d = f["checkin_distance_m"]
            cuts.append({"points": 3, "reason": f"{w}: 报到位置距现场 {d:.0f} 米 checked in "
                         f"{d:.0f} m from the place"})  # fmt: skip
        if f["done_at"] is not None and f["done_at"] > f["resolve_due_at"]:
            late = (f["done_at"] - f["resolve_due_at"]) / HOUR
            cuts.append({"points": 5, "reason": f"{w}: 逾期办结 {late:.1f} 小时 done {late:.1f} h "
                         "after the deadline"})  # fmt: skip
        if f["role"] == "lead" and f["feedback"] in ("dissatisfied", "1", "2"):
            cuts.append({"points": 2, "reason": f"{w}: 群众评价不满意 the public was "
                         "dissatisfied"})  # fmt: skip
    while sum(c["points"] for c in cuts) > 100:  # a rating cannot fall below zero
        cuts.pop()
    return cuts
