#!/usr/bin/env bash
# Idempotent set-up: creates .venv/ at the repository root with paddock installed
# (editable) plus the test tools. With --system it also installs the Debian
# packages the compatibility suites need (only when running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
for a in "$@"; do
  case "$a" in
    --system) want_system=1 ;;
  esac
done

if [ "$want_system" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  pkgs=()
  while read -r p; do
    [ -z "$p" ] && continue
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done < scripts/debian-packages.txt
  if [ "${#pkgs[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
  bash scripts/setup-podman.sh  # containers.conf drop-in + local test image (idempotent)
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.paddock-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing paddock and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
bash scripts/install-pymesos.sh || echo "setup: warning: pymesos could not be installed; its compat test will skip" >&2
