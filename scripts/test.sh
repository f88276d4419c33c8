#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite: lint, types, shipped-file checks, unit tests
# and the end-to-end tests against the real Prometheus and Alertmanager, and the console in Chromium; the
# tests run twice, on SQLite and on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need_apt[*]} (Debian packages, no recommends)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/itsmd check config.example.yaml rules/services.yaml rules/correlation.yaml rules/priority.yaml rules/drills.yaml runbooks
# The whole suite on each storage backend (issue 14): the embedded SQLite file, then PostgreSQL, where each
# test gets a database of its own (tests/postgres.py; ITSMD_TEST_PG_ADMIN_DSN says where the server is).
# Tests marked sqlite_only are about the SQLite file itself and are skipped on the second run; the replica
# tests (marked replicas) always run on PostgreSQL, so only the second run has them. The second run leaves
# out the tests the first saw pass without ever asking for a store on the backend under test: they build
# their stores themselves and would only repeat the first run (tests/conftest.py, --backend-reach).
reach="$(mktemp)"
trap 'rm -f "$reach"' EXIT
ITSMD_TEST_BACKEND=sqlite .venv/bin/pytest -m "not replicas" --backend-reach="$reach" "$@"
ITSMD_TEST_BACKEND=postgres .venv/bin/pytest --backend-reach="$reach" "$@"
