#!/usr/bin/env bash
# Validates docker-compose.yml offline (no Docker engine needed): `docker-compose config -q`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if ! command -v docker-compose >/dev/null; then
  echo "compose-check: installing docker-compose (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get -y -qq install docker-compose >/dev/null 2>&1 ||
    { $SUDO apt-get -qq update >/dev/null && $SUDO apt-get -y -qq install docker-compose >/dev/null; } ||
    { echo "compose-check: ERROR: could not install docker-compose" >&2; exit 1; }
fi

cd "$ROOT"
# The dev default in the file is used when the variable is unset; the check must not depend on it.
docker-compose -f docker-compose.yml config -q
echo "compose-check: docker-compose.yml is valid"
