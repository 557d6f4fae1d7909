#!/usr/bin/env bash
# Print the path of a uv binary, installing uv from PyPI into var/tools when none is on PATH.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/var/tools"
if [ ! -x "$tools/bin/uv" ]; then
  py=$(command -v python3 || true)
  [ -n "$py" ] || { echo "python3 (>= 3.11) is required" >&2; exit 1; }
  if ! "$py" -m venv "$tools" >/dev/null 2>&1; then
    # Debian ships venv separately.
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$tools"; "$py" -m venv "$tools"
  fi
  "$tools/bin/python" -m pip install -q --disable-pip-version-check uv >&2
fi
echo "$tools/bin/uv"
