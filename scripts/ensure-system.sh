#!/usr/bin/env bash
# Install what `make` needs from the OS when it is missing: PostgreSQL + PostGIS, and, with
# --browser, Chromium for the browser tests. Debian/Ubuntu via apt; other systems get a hint.
set -euo pipefail

browser=0
[ "${1:-}" = "--browser" ] && browser=1

have_pg() {
  local bindir
  for bindir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] || continue
    local share
    share=$("$bindir/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$(basename "$(dirname "$bindir")")")
    [ -f "$share/extension/postgis.control" ] && return 0
  done
  return 1
}

need=()
have_pg || need+=(postgresql postgis)
if [ "$browser" = 1 ] && ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  need+=(chromium fonts-noto-cjk)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  # postgis's extension files come in postgresql-<major>-postgis-3, which apt picks for the
  # installed server through the postgresql-postgis virtual package.
  for pkg in "${need[@]}"; do
    [ "$pkg" = postgis ] && need+=(postgresql-postgis)
  done
  echo "installing ${need[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v brew >/dev/null 2>&1; then
  echo "missing: ${need[*]}. Install with: brew install postgresql@15 postgis" >&2
  exit 1
else
  echo "missing: ${need[*]}; install PostgreSQL >= 15 with PostGIS >= 3.3 (and Chromium for tests)" >&2
  exit 1
fi
have_pg || { echo "PostgreSQL/PostGIS still not found after installing" >&2; exit 1; }
