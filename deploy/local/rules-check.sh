#!/usr/bin/env bash
# Checks the Prometheus alert rules and runs their unit tests on synthetic series (make lint).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

bash "$ROOT/deploy/local/tools.sh" promtool
cd "$ROOT/deploy/prometheus"
promtool check rules alerts.yml
promtool test rules alerts_test.yml
