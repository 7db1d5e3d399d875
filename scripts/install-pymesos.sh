#!/usr/bin/env bash
# pymesos 0.3.15 (the real Mesos scheduler client our compat tests drive) needs
# http-parser, whose C extension does not build on Python 3.11. Its setup.py can
# fall back to the pure-Python parser; we build it that way. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if "$PY" -c "import pymesos, http_parser" 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" http-parser==0.9.0
tar -C "$tmp" -xzf "$tmp"/http-parser-0.9.0.tar.gz
sed -i 's/run_setup(not IS_PYPY)/run_setup(False)/' "$tmp"/http-parser-0.9.0/setup.py
"$PY" -m pip install -q "$tmp"/http-parser-0.9.0
"$PY" -m pip install -q pymesos==0.3.15
