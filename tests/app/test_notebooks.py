"""The planners' notebooks (notebooks/*.ipynb) run, top to bottom, against a test database with
twelve weeks of demo cases — each ends its analyses with asserts, so a broken analysis fails here
— and are committed without outputs, so their diffs stay readable."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from app.db.embedded import EmbeddedPostgres
from tests.conftest import ROOT, _clone

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Twelve weeks: the emerging hot spots get ten or more full weekly bins, and "this month against
# last month" has both months. Fewer cases a day than `make run` loads keeps the load short.
KERNEL = "gridmap-test"


def _ids(path: Path) -> str:
    return path.name


@pytest.fixture(scope="module")
def notebook_db(pg: EmbeddedPostgres, activity_template: str) -> Iterator[str]:
    """A database of its own holding the demo district and 120 days of demo cases up to now."""
    yield from _clone(pg, activity_template)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """Kernel specs holding one kernel that runs this interpreter (the project's .venv), whatever
    "python3" kernels the user's Jupyter paths hold."""
    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / KERNEL).mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gridmap (test)",
        "language": "python",
    }
    (kernels / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    with_outputs = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not with_outputs, (
        f"{path.name}: cells {with_outputs} hold outputs or execution counts; clear them before "
        "committing (e.g. `.venv/bin/jupyter-execute` writes the run to another file)"
    )
    assert nb.metadata.get("kernelspec", {}).get("language") == "python"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs(path: Path, notebook_db: str, kernel_specs: KernelSpecManager) -> None:
    nb = nbformat.read(path, as_version=4)
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb,
        km=km,
        timeout=300,
        startup_timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # The inline backend, as in Jupyter: the figures are drawn (to PNG outputs), no display needed.
    backend = "module://matplotlib_inline.backend_inline"
    env = {**os.environ, "GRIDMAP_DATABASE_URL": notebook_db, "MPLBACKEND": backend}
    started = time.monotonic()
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed\n{exc}", pytrace=False)
    took = time.monotonic() - started
    print(f"{path.name}: executed in {took:.1f} s")
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
