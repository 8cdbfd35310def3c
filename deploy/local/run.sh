#!/usr/bin/env bash
# `make run`: a worker, `tally api` and `tally watch` with the development settings; Ctrl-C
# stops all three.
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
tally watch & pids+=($!)
echo "tally: worker (health on :${TALLY_HTTP_PORT:-8080}), api (on :${TALLY_API_PORT:-8081}) and watch (on :${TALLY_WATCH_PORT:-8082}) started; Ctrl-C stops all three" >&2

# One of them ending (a bad setting, say) ends the others: a half-running service helps nobody.
wait -n "${pids[@]}"
code=$?
stop
exit "$code"
