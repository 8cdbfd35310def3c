#!/usr/bin/env bash
# `make run`: a worker and `tally api` with the development settings; Ctrl-C stops both.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source deploy/local/dev.env

pids=()
stop() {
  trap - INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
}
trap 'stop; exit 0' INT TERM

tally worker & pids+=($!)
tally api & pids+=($!)
echo "tally: worker (health on :${TALLY_HTTP_PORT:-8080}) and api (on :${TALLY_API_PORT:-8081}) started; Ctrl-C stops both" >&2

# One of them ending (a bad setting, say) ends the other: a half-running service helps nobody.
wait -n "${pids[@]}"
code=$?
stop
exit "$code"
