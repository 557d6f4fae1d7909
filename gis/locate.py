"""Point → basic grid → community → street → district, in memory.

:class:`GridIndex` answers "which grid covers this point" for one point or a million, from a
GeoDataFrame of basic grids in CGCS2000 lon/lat. It lays a table of square cells over the
grids (about a tenth of a typical grid's width) and classifies each cell once, at build time:

* no grid edge touches the cell — the cell lies inside one grid, or outside all of them: a
  point there is answered by one table read;
* one edge crosses it — the edge's line splits the cell between the grid on its left and the
  grid on its right: a point is answered by one orientation test;
* several edges meet in it (a grid corner) — the cell is split in four, down to a few levels;
  what is still crowded at the bottom keeps its candidate grids, and GEOS (shapely) decides
  between them.

The orientation test carries Shewchuk's error bound: a point too close to an edge for doubles
to be sure of its side goes to GEOS too, so answers are GEOS's answers, point for point.

Why by hand: ``shapely.STRtree.query(points, predicate="within")`` costs a tree walk and a GEOS
call per point; here most points cost a handful of numpy operations over the whole array
(bench/bench_locate.py measures both).

Boundary rule ("covers"): a point on an edge or corner is covered by every grid that touches
it, and is given to the one with the **lowest code** — the same rule as the database lookup
(``app.services.regions.covering``). A point outside every grid gets ``""``; ask
:meth:`GridIndex.chain` with ``nearest=True`` for the nearest grid and its distance in metres.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from gis.codes import LEVELS
from gis.hierarchy import DEFAULT_METRIC_CRS

__all__ = ["CHAIN_LEVELS", "GridIndex", "grids_with_chain"]

CHAIN_LEVELS = ("grid", "community", "street", "district")

_EMPTY, _OWNED, _SIMPLE, _SPLIT, _COMPLEX = range(5)
# Vertices are snapped to this lattice (degrees, about 0.1 mm) and split the edges they lie on,
# so that neighbours' shared boundaries become single edges even where their vertices differ by
# rounding or one grid has a vertex on another's edge (a T-junction). Snapping moves an edge by
# less than _SNAP; points closer to an edge than _BAND are therefore left to GEOS.
_SNAP = 1e-9
_BAND = 4 * _SNAP
_MAX_ROOT_CELLS = 16_000_000
_PIECES_PER_CHUNK = 500_000


def grids_with_chain(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """The basic grids of a canonical boundaries frame (``level, code, name, parent_code,
    geometry`` — as :func:`gis.io.read_boundaries` gives) with their community, street and
    district codes and names, ready for :class:`GridIndex`."""
    by_code = frame.set_index("code")
    parent = by_code["parent_code"].to_dict()
    name = by_code["name"].to_dict()
    level = by_code["level"].to_dict()
    grids = frame[frame["level"] == "grid"]
    out: dict[str, Any] = {
        "code": grids["code"].astype(str).to_numpy(),
        "name": [_text(v) for v in grids["name"]],
    }
    for upper in LEVELS[-2::-1]:  # community, street, district
        out[f"{upper}_code"] = []
        out[f"{upper}_name"] = []
    for code in out["code"]:
        found: dict[str, str] = {}
        up = _text(parent.get(code))
        while up and up not in found.values():
            lvl = level.get(up)
            if lvl is None:
                break
            found[lvl] = up
            up = _text(parent.get(up))
        for upper in LEVELS[-2::-1]:
            c = found.get(upper, "")
            out[f"{upper}_code"].append(c)
            out[f"{upper}_name"].append(_text(name.get(c)) if c else "")
    return gpd.GeoDataFrame(out, geometry=grids.geometry.to_numpy(), crs=frame.crs or 4490)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


class GridIndex:
    """An immutable point-location index over basic grids.

    ``grids`` is a GeoDataFrame with a ``code`` column and Polygon/MultiPolygon geometry in
    lon/lat (reprojected to EPSG:4490 if it says another CRS). Optional columns ``name`` and
    ``community_code``/``_name``, ``street_code``/``_name``, ``district_code``/``_name`` (see
    :func:`grids_with_chain`) make up the chain. ``metric_crs`` measures nearest-grid distances.
    """

    def __init__(
        self,
        grids: gpd.GeoDataFrame,
        *,
        metric_crs: str = DEFAULT_METRIC_CRS,
        cell_m: float | None = None,
        max_depth: int = 3,
    ) -> None:
        if "code" not in grids.columns:
            raise ValueError("the grids need a 'code' column")
        if grids.crs is not None and grids.crs.to_epsg() not in (4490, 4326):
            grids = grids.to_crs(4490)
        frame = grids.sort_values("code", kind="stable").reset_index(drop=True)
        codes = frame["code"].astype(str).to_numpy(dtype=object)
        if len(codes) and len(set(codes)) != len(codes):
            raise ValueError("grid codes must be unique")
        geoms = np.asarray(frame.geometry.array, dtype=object)
        kinds = shapely.get_type_id(geoms)
        if len(geoms) and not np.isin(kinds, (3, 6)).all():
            raise ValueError("every grid must be a Polygon or MultiPolygon")
        if len(geoms) and shapely.is_empty(geoms).any():
            raise ValueError("grids must not be empty")
        self.metric_crs = metric_crs
        self._codes = codes
        self._geoms = geoms
        shapely.prepare(geoms)
        self._tree = shapely.STRtree(geoms)
        self._chain = {
            "grid_code": codes,
            "grid_name": _column(frame, "name"),
        }
        for level in ("community", "street", "district"):
            self._chain[f"{level}_code"] = _column(frame, f"{level}_code")
            self._chain[f"{level}_name"] = _column(frame, f"{level}_name")
        self._out_codes = np.concatenate([codes, np.array([""], dtype=object)])
        self._metric: tuple[Any, shapely.STRtree] | None = None
        self._metric_lock = threading.Lock()
        self._build(cell_m, max_depth)

    # -- public ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._codes)

    @property
    def codes(self) -> NDArray[np.object_]:
        """The grid codes, sorted; :meth:`locate_index` answers positions in this array."""
        return self._codes

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return self._bounds

    @property
    def stats(self) -> dict[str, Any]:
        """How the cells came out (for benchmarks and curiosity)."""
        return dict(self._stats)

    def position(self, code: str) -> int:
        """Position of a grid code in :attr:`codes`, -1 if absent."""
        i = int(np.searchsorted(self._codes, code))
        return i if i < len(self._codes) and self._codes[i] == code else -1

    def chain_at(self, position: int) -> dict[str, str]:
        """The chain of the grid at ``position`` (all empty strings for -1)."""
        if position < 0:
            return dict.fromkeys(self._chain, "")
        return {name: values[position] for name, values in self._chain.items()}

    def locate(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.object_]:
        """Grid code covering each point (CGCS2000 lon/lat), ``""`` where none does."""
        return self._out_codes[self.locate_index(lon, lat)]

    def locate_index(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.intp]:
        """Position in :attr:`codes` of the grid covering each point, -1 where none does.
        NaN and infinite coordinates cover nothing."""
        x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        if not len(self._codes):
            return np.full(x.shape, -1, dtype=np.intp)
        value = self._root[self._root_cell(x, y)]
        out = value.astype(np.intp)
        deep = np.flatnonzero(value < -1)
        if deep.size:
            out[deep] = self._descend(x[deep], y[deep], -2 - value[deep].astype(np.intp))
        return out

    def chain(self, lon: ArrayLike, lat: ArrayLike, *, nearest: bool = False) -> pd.DataFrame:
        """The whole chain for each point: ``grid_code, grid_name, community_code, …,
        district_name`` (empty strings outside every grid). With ``nearest=True``, points
        outside every grid also get ``nearest_grid_code`` and ``nearest_distance_m`` (the
        distance to that grid's edge in metres, measured in ``metric_crs``); NaN inside."""
        x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        idx = self.locate_index(x, y)
        columns = {}
        for name, values in self._chain.items():
            padded = np.concatenate([values, np.array([""], dtype=object)])
            columns[name] = padded[idx]
        out = pd.DataFrame(columns)
        if nearest:
            codes, dist = self.nearest(x, y, only=idx < 0)
            out["nearest_grid_code"] = codes
            out["nearest_distance_m"] = dist
        return out

    def nearest(
        self, lon: ArrayLike, lat: ArrayLike, *, only: ArrayLike | None = None
    ) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
        """Nearest grid code and distance (metres, 0 inside) for each point; with ``only`` (a
        boolean mask) the other points get ``""`` and NaN."""
        x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        mask = np.isfinite(x) & np.isfinite(y)
        if only is not None:
            mask &= np.asarray(only, dtype=bool)
        codes = np.full(x.shape, "", dtype=object)
        dist = np.full(x.shape, np.nan)
        which = np.flatnonzero(mask)
        if not which.size or not len(self._codes):
            return codes, dist
        transformer, tree = self._metric_tree()
        mx, my = transformer.transform(x[which], y[which])
        pts = shapely.points(mx, my)
        (pt, grid), d = tree.query_nearest(pts, return_distance=True, all_matches=True)
        # Ties (equidistant grids) go to the lowest code, as on a shared edge.
        best = np.full(which.size, len(self._codes), dtype=np.intp)
        np.minimum.at(best, pt, grid)
        dist_of = np.zeros(which.size)
        dist_of[pt] = d
        codes[which] = self._out_codes[best]
        dist[which] = dist_of
        return codes, dist

    # -- build -------------------------------------------------------------------------------

    def _build(self, cell_m: float | None, max_depth: int) -> None:
        geoms = self._geoms
        self._stats: dict[str, Any] = {"grids": len(geoms)}
        if not len(geoms):
            self._bounds = (math.nan,) * 4
            self._root = np.full(1, -1, dtype=np.int32)
            self._shape = (1, 1)
            self._x0 = self._y0 = 0.0
            self._ax = self._ay = 0.0
            return
        xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
        self._bounds = (float(xmin), float(ymin), float(xmax), float(ymax))
        kx = math.cos(math.radians((ymin + ymax) / 2))
        if cell_m is None:
            # A tenth of the median grid's width: most cells then see no edge at all, and the
            # table stays a few MB (bench/bench_locate.py tried 1/6 … 1/16 and depths 3 … 5).
            width_deg = float(np.median(np.sqrt(shapely.area(geoms) * kx)))
            cell = width_deg / 10
        else:
            cell = cell_m / 111_320.0
        cell = max(cell, 1e-7)
        span_x, span_y = (xmax - xmin) * kx, ymax - ymin
        while (span_x / cell + 3) * (span_y / cell + 3) > _MAX_ROOT_CELLS:
            cell *= 1.25
        # Cell space: u = (lon - x0) * ax, v = (lat - y0) * ay; one cell is 1 × 1. The table
        # has two spare rings of cells no edge touches (so, empty): queries clamp into them
        # instead of branching on the bounds.
        self._x0 = float(xmin) - 2 * cell / kx
        self._y0 = float(ymin) - 2 * cell
        self._ax = kx / cell
        self._ay = 1.0 / cell
        nx = math.ceil((xmax - self._x0) * self._ax) + 2
        ny = math.ceil((ymax - self._y0) * self._ay) + 2
        self._shape = (nx, ny)
        self._stats.update(cell_m=round(cell * 111_320.0, 2), root_cells=nx * ny)
        # Edges this close to a cell (in cell widths) count as touching it: more than snapping
        # can have moved them, and more than rounding in the cell arithmetic.
        self._eps = max(1e-7, 2 * _BAND / cell)

        self._edges_from_rings()
        eu0 = (self._ex0 - self._x0) * self._ax
        ev0 = (self._ey0 - self._y0) * self._ay
        eu1 = (self._ex1 - self._x0) * self._ax
        ev1 = (self._ey1 - self._y0) * self._ay
        self._edges_uv = (eu0, ev0, eu1, ev1)
        cells, edges = self._rasterise(eu0, ev0, eu1, ev1, nx, ny)

        root = np.full(nx * ny, -1, dtype=np.int32)
        touched = np.bincount(cells, minlength=nx * ny)
        self._fill_unmixed_root(root, touched == 0, nx, ny)

        # Nodes of the refinement: kind, value (grid / edge / first child / candidate offset).
        self._kind: list[NDArray[np.int8]] = []
        self._value: list[NDArray[np.int64]] = []
        self._cand_ptr = [np.zeros(1, dtype=np.int64)]
        self._cand: list[NDArray[np.int64]] = []
        self._n_nodes = 0
        self._n_cand = 0

        mixed = np.flatnonzero(touched > 0)
        node_ids = self._classify(
            mixed, cells, edges,
            u0=(mixed // ny).astype(np.float64), v0=(mixed % ny).astype(np.float64),
            size=1.0, depth=0, max_depth=max_depth,
        )  # fmt: skip
        root[mixed] = -2 - node_ids.astype(np.int32)
        self._root = root
        self._node_kind = np.concatenate(self._kind) if self._kind else np.zeros(0, np.int8)
        self._node_value = np.concatenate(self._value) if self._value else np.zeros(0, np.int64)
        self._cand_ptr_arr = np.concatenate(
            [np.zeros(1, np.int64)] + [p[1:] for p in self._cand_ptr[1:]]
        )
        self._cand_arr = np.concatenate(self._cand) if self._cand else np.zeros(0, np.int64)
        del self._kind, self._value, self._cand_ptr, self._cand, self._edges_uv
        counts = np.bincount(self._node_kind, minlength=5)
        self._stats.update(
            edges=len(self._ex0),
            simple_cells=int(counts[_SIMPLE]),
            split_cells=int(counts[_SPLIT]),
            crowded_cells=int(counts[_COMPLEX]),
            memory_mb=round(
                (root.nbytes + self._node_kind.nbytes + self._node_value.nbytes
                 + self._cand_arr.nbytes + 6 * self._ex0.nbytes) / 2**20, 1
            ),
        )  # fmt: skip

    def _edges_from_rings(self) -> None:
        """Every boundary piece once, as an undirected edge with the grid on each side."""
        parts, part_of = shapely.get_parts(self._geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        exterior = np.ones(len(rings), dtype=bool)
        exterior[1:] = ring_part[1:] != ring_part[:-1]
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        # Orientation of each ring from its shoelace sum (relative to a local origin).
        ox, oy = xy[:, 0].min(), xy[:, 1].min()
        same = ring_of[1:] == ring_of[:-1]
        a0, b0 = xy[:-1][same], xy[1:][same]
        cross = (a0[:, 0] - ox) * (b0[:, 1] - oy) - (b0[:, 0] - ox) * (a0[:, 1] - oy)
        ccw = np.bincount(ring_of[:-1][same], weights=cross, minlength=len(rings)) > 0
        snapped = np.round(xy / _SNAP) * _SNAP
        a, b = snapped[:-1][same], snapped[1:][same]
        seg_ring = ring_of[:-1][same]
        keep = (a != b).any(axis=1)
        a, b, seg_ring = a[keep], b[keep], seg_ring[keep]
        left_is_grid = exterior[seg_ring] == ccw[seg_ring]
        grid = part_of[ring_part[seg_ring]]
        a, b, grid, left_is_grid = _split_at_vertices(a, b, grid, left_is_grid)
        # Canonical direction: from the lexicographically smaller end.
        forward = (a[:, 0] < b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] < b[:, 1]))
        p = np.where(forward[:, None], a, b)
        q = np.where(forward[:, None], b, a)
        on_left = left_is_grid == forward
        key = np.stack([p[:, 0], p[:, 1], q[:, 0], q[:, 1]], axis=1)
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        n = len(uniq)
        left = np.full(n, -1, dtype=np.int64)
        right = np.full(n, -1, dtype=np.int64)
        # Two grids claiming the same side of one edge is an overlap: such an edge never
        # decides a cell alone (it is "crowded"), and GEOS sorts it out.
        n_left = np.bincount(inverse[on_left], minlength=n)
        n_right = np.bincount(inverse[~on_left], minlength=n)
        left[inverse[on_left]] = grid[on_left]
        right[inverse[~on_left]] = grid[~on_left]
        self._ex0, self._ey0, self._ex1, self._ey1 = uniq.T.copy()
        self._einv_len = 1.0 / np.hypot(self._ex1 - self._ex0, self._ey1 - self._ey0)
        self._eleft, self._eright = left, right
        overlap = (n_left > 1) | (n_right > 1)
        # An edge lying inside (or across) another grid — overlapping grids — does not split
        # its cells between its own two sides: that grid covers both. Such edges are crowded
        # too, with that grid among their candidates.
        lines = shapely.linestrings(np.stack([uniq[:, :2], uniq[:, 2:]], axis=1))
        inside = [self._tree.query(lines, predicate=p) for p in ("within", "crosses")]
        ie = np.concatenate([pairs[0] for pairs in inside])
        ig = np.concatenate([pairs[1] for pairs in inside])
        # Its own grids are expected, and so are hair-thin crossings where snapping or rounding
        # moved an edge's end a little into a neighbour (GEOS decides in those corner cells).
        foreign = (ig != left[ie]) & (ig != right[ie])
        ie, ig = ie[foreign], ig[foreign]
        real = shapely.length(shapely.intersection(lines[ie], self._geoms[ig])) > 10 * _BAND
        ie, ig = ie[real], ig[real]
        overlap[ie] = True
        self._e_overlap = overlap
        edge_of = np.concatenate([inverse, ie])
        grid_of = np.concatenate([grid, ig])
        order = np.argsort(edge_of, kind="stable")
        self._e_grids_ptr = np.concatenate([[0], np.cumsum(np.bincount(edge_of, minlength=n))])
        self._e_grids = grid_of[order]

    def _rasterise(
        self, u0: NDArray, v0: NDArray, u1: NDArray, v1: NDArray, nx: int, ny: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(cell, edge) pairs for every root cell each edge touches (within self._eps): edges are
        cut into pieces no longer than a cell, and each piece is tested against the up to 3×3
        cells around it (bounding boxes, then the line's side of the cell's corners)."""
        steps = np.maximum(np.ceil(np.maximum(np.abs(u1 - u0), np.abs(v1 - v0))), 1).astype(
            np.int64
        )
        edge_of_piece = np.repeat(np.arange(len(u0)), steps)
        first = np.concatenate([[0], np.cumsum(steps)[:-1]])
        k = np.arange(len(edge_of_piece)) - np.repeat(first, steps)
        cells_out, edges_out = [], []
        for start in range(0, len(edge_of_piece), _PIECES_PER_CHUNK):
            e = edge_of_piece[start : start + _PIECES_PER_CHUNK]
            kk = k[start : start + _PIECES_PER_CHUNK]
            n = steps[e]
            du, dv = u1[e] - u0[e], v1[e] - v0[e]
            pa_u, pa_v = u0[e] + du * (kk / n), v0[e] + dv * (kk / n)
            pb_u, pb_v = u0[e] + du * ((kk + 1) / n), v0[e] + dv * ((kk + 1) / n)
            lo_u = np.floor(np.minimum(pa_u, pb_u) - self._eps).astype(np.int64)
            lo_v = np.floor(np.minimum(pa_v, pb_v) - self._eps).astype(np.int64)
            hi_u = np.floor(np.maximum(pa_u, pb_u) + self._eps).astype(np.int64)
            hi_v = np.floor(np.maximum(pa_v, pb_v) + self._eps).astype(np.int64)
            for di in range(3):
                for dj in range(3):
                    ci, cj = lo_u + di, lo_v + dj
                    ok = (ci <= hi_u) & (cj <= hi_v)
                    ok &= _line_touches_box(u0[e], v0[e], du, dv, ci, cj, 1.0, self._eps)
                    cells_out.append(ci[ok] * ny + cj[ok])
                    edges_out.append(e[ok])
        cells = np.concatenate(cells_out) if cells_out else np.zeros(0, np.int64)
        edges = np.concatenate(edges_out) if edges_out else np.zeros(0, np.int64)
        n_edges = max(len(u0), 1)
        pairs = np.unique(cells * n_edges + edges)
        return pairs // n_edges, pairs % n_edges

    def _fill_unmixed_root(self, root: NDArray, unmixed: NDArray, nx: int, ny: int) -> None:
        """Owner of every root cell no edge touches. Along a column, consecutive such cells
        lie in the same grid (no edge between them), so one GEOS query per run suffices."""
        prev = np.zeros_like(unmixed)
        prev[1:] = unmixed[:-1]
        prev[::ny] = False  # a new column starts a new run
        starts = unmixed & ~prev
        run = np.cumsum(starts) - 1
        start_cells = np.flatnonzero(starts)
        cu = start_cells // ny + 0.5
        cv = start_cells % ny + 0.5
        owner = self._geos_owner(cu / self._ax + self._x0, cv / self._ay + self._y0)
        which = np.flatnonzero(unmixed)
        root[which] = owner[run[which]]

    def _geos_owner(self, x: NDArray, y: NDArray) -> NDArray[np.int64]:
        """Lowest-coded grid covering each point, by GEOS (-1 for none)."""
        out = np.full(len(x), len(self._codes), dtype=np.int64)
        if len(x):
            pt, grid = self._tree.query(shapely.points(x, y), predicate="intersects")
            np.minimum.at(out, pt, grid)
        out[out == len(self._codes)] = -1
        return out

    def _classify(
        self,
        cells: NDArray[np.int64],
        pair_cell: NDArray[np.int64],
        pair_edge: NDArray[np.int64],
        *,
        u0: NDArray,
        v0: NDArray,
        size: float,
        depth: int,
        max_depth: int,
    ) -> NDArray[np.int64]:
        """Make one node per cell (cells sorted; (pair_cell, pair_edge) the edges touching
        them; u0/v0 their corners in cell space) and return the node ids."""
        n = len(cells)
        base = self._n_nodes
        self._n_nodes += n
        kind = np.zeros(n, dtype=np.int8)
        value = np.full(n, -1, dtype=np.int64)
        self._kind.append(kind)
        self._value.append(value)
        if not n:
            return np.zeros(0, dtype=np.int64)
        slot = np.searchsorted(cells, pair_cell)  # pair → position among these cells
        count = np.bincount(slot, minlength=n)
        overlap = np.bincount(slot, weights=self._e_overlap[pair_edge], minlength=n) > 0
        one_edge = np.zeros(n, dtype=np.int64)
        one_edge[slot] = pair_edge  # meaningful where count == 1
        empty = count == 0
        if empty.any():
            w = np.flatnonzero(empty)
            owner = self._geos_owner(
                (u0[w] + size / 2) / self._ax + self._x0, (v0[w] + size / 2) / self._ay + self._y0
            )
            kind[w] = np.where(owner >= 0, _OWNED, _EMPTY)
            value[w] = owner
        simple = (count == 1) & ~overlap
        kind[simple] = _SIMPLE
        value[simple] = one_edge[simple]
        crowded = np.flatnonzero((count > 1) | ((count == 1) & overlap))
        if not crowded.size:
            return base + np.arange(n)
        if depth < max_depth:
            # Four children per crowded cell, each tested against its parent's edges.
            kind[crowded] = _SPLIT
            child_first = self._n_nodes  # children are allocated by the recursive call
            value[crowded] = child_first + 4 * np.arange(crowded.size)
            half = size / 2
            pos = np.full(n, -1, dtype=np.int64)
            pos[crowded] = np.arange(crowded.size)
            sel = pos[slot] >= 0
            p_parent, p_edge = pos[slot][sel], pair_edge[sel]
            cu0 = np.repeat(u0[crowded], 4) + np.tile([0.0, 0.0, half, half], crowded.size)
            cv0 = np.repeat(v0[crowded], 4) + np.tile([0.0, half, 0.0, half], crowded.size)
            eu0, ev0, eu1, ev1 = self._edges_uv
            child_cells, child_edges = [], []
            for q in range(4):
                c = 4 * p_parent + q
                lo_u, lo_v = cu0[c], cv0[c]
                e0u, e0v, e1u, e1v = eu0[p_edge], ev0[p_edge], eu1[p_edge], ev1[p_edge]
                ok = (np.minimum(e0u, e1u) <= lo_u + half + self._eps) & (
                    np.maximum(e0u, e1u) >= lo_u - self._eps
                )
                ok &= (np.minimum(e0v, e1v) <= lo_v + half + self._eps) & (
                    np.maximum(e0v, e1v) >= lo_v - self._eps
                )
                ok &= _line_touches_box(e0u, e0v, e1u - e0u, e1v - e0v, lo_u, lo_v, half, self._eps)
                child_cells.append(c[ok])
                child_edges.append(p_edge[ok])
            cc = np.concatenate(child_cells)
            ce = np.concatenate(child_edges)
            order = np.lexsort((ce, cc))
            self._classify(
                np.arange(4 * crowded.size), cc[order], ce[order],
                u0=cu0, v0=cv0, size=half, depth=depth + 1, max_depth=max_depth,
            )  # fmt: skip
        else:
            kind[crowded] = _COMPLEX
            pos = np.full(n, -1, dtype=np.int64)
            pos[crowded] = np.arange(crowded.size)
            sel = pos[slot] >= 0
            c_of, e_of = pos[slot][sel], pair_edge[sel]
            # Candidates: every grid on either side of any edge in the cell.
            lens = self._e_grids_ptr[e_of + 1] - self._e_grids_ptr[e_of]
            owner_cell = np.repeat(c_of, lens)
            starts = np.repeat(self._e_grids_ptr[e_of], lens)
            offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
            grid = self._e_grids[starts + offs]
            pairs = np.unique(np.stack([owner_cell, grid], axis=1), axis=0)
            per_cell = np.bincount(pairs[:, 0], minlength=crowded.size)
            value[crowded] = self._n_cand + np.concatenate([[0], np.cumsum(per_cell)[:-1]])
            self._cand.append(pairs[:, 1])
            self._cand_ptr.append(self._n_cand + np.concatenate([[0], np.cumsum(per_cell)]))
            self._n_cand += len(pairs)
        return base + np.arange(n)

    # -- query -------------------------------------------------------------------------------

    def _root_cell(self, x: NDArray, y: NDArray) -> NDArray[np.intp]:
        nx, ny = self._shape
        u = np.subtract(x, self._x0)
        u *= self._ax
        np.floor(u, out=u)
        # fmax/fmin also turn NaN into the spare ring of empty cells.
        np.fmax(u, 0.0, out=u)
        np.fmin(u, nx - 1, out=u)
        v = np.subtract(y, self._y0)
        v *= self._ay
        np.floor(v, out=v)
        np.fmax(v, 0.0, out=v)
        np.fmin(v, ny - 1, out=v)
        cell = u.astype(np.intp)
        cell *= ny
        cell += v.astype(np.intp)
        return cell

    def _descend(self, x: NDArray, y: NDArray, node: NDArray[np.intp]) -> NDArray[np.intp]:
        out = np.full(len(x), -1, dtype=np.intp)
        todo = np.arange(len(x))
        level = 0
        while todo.size:
            kind = self._node_kind[node]
            value = self._node_value[node]
            done = kind == _OWNED
            out[todo[done]] = value[done]
            simple = np.flatnonzero(kind == _SIMPLE)
            if simple.size:
                out[todo[simple]] = self._side(x[simple], y[simple], value[simple])
            crowded = np.flatnonzero(kind == _COMPLEX)
            if crowded.size:
                out[todo[crowded]] = self._crowded(x[crowded], y[crowded], value[crowded])
            split = np.flatnonzero(kind == _SPLIT)
            if not split.size:
                break
            level += 1
            # The quadrant at this depth, straight from the coordinates (cells of 2^-level).
            xs, ys = x[split], y[split]
            qu = np.floor((xs - self._x0) * (self._ax * 2**level)).astype(np.intp) & 1
            qv = np.floor((ys - self._y0) * (self._ay * 2**level)).astype(np.intp) & 1
            node = value[split] + 2 * qu + qv
            todo, x, y = todo[split], xs, ys
        return out

    def _side(self, x: NDArray, y: NDArray, edge: NDArray) -> NDArray[np.intp]:
        """Grid on the point's side of the one edge crossing its cell; GEOS decides for points
        within _BAND of the edge."""
        ax, ay = self._ex0[edge] - x, self._ey0[edge] - y
        bx, by = self._ex1[edge] - x, self._ey1[edge] - y
        det = ax * by - ay * bx  # > 0: the point is left of the edge
        out = np.where(det > 0, self._eleft[edge], self._eright[edge])
        unsure = np.flatnonzero(np.abs(det) * self._einv_len[edge] <= _BAND)
        if unsure.size:
            e = edge[unsure]
            cand = np.stack([self._eleft[e], self._eright[e]], axis=1)
            out[unsure] = self._geos_among(x[unsure], y[unsure], cand)
        return out

    def _crowded(self, x: NDArray, y: NDArray, offset: NDArray) -> NDArray[np.intp]:
        ptr = self._cand_ptr_arr
        slot = np.searchsorted(ptr, offset)
        lens = ptr[slot + 1] - offset
        width = int(lens.max())
        cand = np.full((len(x), width), -1, dtype=np.int64)
        for j in range(width):
            has = lens > j
            cand[has, j] = self._cand_arr[offset[has] + j]
        return self._geos_among(x, y, cand)

    def _geos_among(self, x: NDArray, y: NDArray, cand: NDArray) -> NDArray[np.intp]:
        """Lowest-coded candidate that covers the point (inside or on its edge), else -1.
        ``cand`` is (points × k), -1 padded; GEOS decides."""
        none = len(self._codes)
        best = np.full(len(x), none, dtype=np.int64)
        touch = np.full(len(x), none, dtype=np.int64)
        for j in range(cand.shape[1]):
            c = cand[:, j]
            has = np.flatnonzero(c >= 0)
            if not has.size:
                continue
            g = self._geoms[c[has]]
            inside = shapely.contains_xy(g, x[has], y[has])
            best[has[inside]] = np.minimum(best[has[inside]], c[has][inside])
            edge = ~inside & shapely.intersects_xy(g, x[has], y[has])
            touch[has[edge]] = np.minimum(touch[has[edge]], c[has][edge])
        # Covers: every grid the point is in or on counts, the lowest code wins.
        low = np.minimum(best, touch)
        out = np.where(low < none, low, -1)
        return out.astype(np.intp)

    def _metric_tree(self) -> tuple[Any, shapely.STRtree]:
        with self._metric_lock:
            if self._metric is None:
                from pyproj import Transformer

                from gis.crs import to_metric

                projected = to_metric(self._geoms, self.metric_crs)
                transformer = Transformer.from_crs(4490, self.metric_crs, always_xy=True)
                self._metric = (transformer, shapely.STRtree(projected))
            return self._metric


def _split_at_vertices(
    a: NDArray, b: NDArray, grid: NDArray, left_is_grid: NDArray
) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Split each segment a→b at every boundary vertex lying on it (within _SNAP)."""
    vertices = np.unique(np.concatenate([a, b]), axis=0)
    tree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))
    vi, si = tree.query(shapely.points(vertices), predicate="dwithin", distance=_SNAP)
    v = vertices[vi]
    inner = ~((v == a[si]).all(axis=1) | (v == b[si]).all(axis=1))
    vi, si, v = vi[inner], si[inner], v[inner]
    if not len(si):
        return a, b, grid, left_is_grid
    d = b[si] - a[si]
    t = ((v - a[si]) * d).sum(axis=1) / (d * d).sum(axis=1)
    order = np.lexsort((t, si))
    si, v = si[order], v[order]
    # Each split segment becomes: a → v1, v1 → v2, …, vk → b.
    first = np.ones(len(si), dtype=bool)
    first[1:] = si[1:] != si[:-1]
    last = np.ones(len(si), dtype=bool)
    last[:-1] = si[1:] != si[:-1]
    start = np.where(first[:, None], a[si], np.roll(v, 1, axis=0))
    tail_start, tail_seg = v[last], si[last]
    split = np.zeros(len(a), dtype=bool)
    split[si] = True
    whole = ~split
    seg = np.concatenate([np.flatnonzero(whole), si, tail_seg])
    new_a = np.concatenate([a[whole], start, tail_start])
    new_b = np.concatenate([b[whole], v, b[tail_seg]])
    return new_a, new_b, grid[seg], left_is_grid[seg]


def _column(frame: pd.DataFrame, name: str) -> NDArray[np.object_]:
    if name not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return np.array([_text(v) for v in frame[name]], dtype=object)


def _line_touches_box(
    pu: NDArray, pv: NDArray, du: NDArray, dv: NDArray, ci: Any, cj: Any, size: float, eps: float
) -> NDArray[np.bool_]:
    """Whether the line through (pu, pv) along (du, dv) passes within ``eps`` of the square
    [ci, ci+size] × [cj, cj+size] (corners not all strictly on one side)."""
    tol = eps * (np.abs(du) + np.abs(dv))
    side = []
    for cu, cv in ((0.0, 0.0), (size, 0.0), (0.0, size), (size, size)):
        side.append(du * (cj + cv - pv) - dv * (ci + cu - pu))
    s = np.stack(side)
    return ~((s > tol).all(axis=0) | (s < -tol).all(axis=0))
