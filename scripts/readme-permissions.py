"""Rewrite the README's permission table from the code (app.api.auth.permission_table_markdown).

Run after changing identity.PERMISSIONS or auth.ROUTE_ACTIONS:
    .venv/bin/python scripts/readme-permissions.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.api.auth import permission_table_markdown  # noqa: E402

START, END = "<!-- permissions -->\n", "\n<!-- /permissions -->"
readme = ROOT / "README.md"
text = readme.read_text(encoding="utf-8")
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
readme.write_text(head + START + permission_table_markdown() + END + tail, encoding="utf-8")
print("README.md: permission table rewritten")
