#!/usr/bin/env bash
# Local Kafka (KRaft, 127.0.0.1:9092) and a MongoDB-wire server (127.0.0.1:27017) without Docker.
# Usage: infra.sh up|down|status|reset|build|start-kafka|stop-kafka|start-mongo|stop-mongo
# Env: TALLY_LOCAL_MONGO=mongod|ferretdb, TALLY_INFRA_KAFKA_TIMEOUT / _MONGO_TIMEOUT (s, 90 / 60).
# Everything lives under <repo>/.local (git-ignored); see docs/adr/0001-local-infrastructure.md.
# A second, private pair (the chaos suite stops its brokers) runs beside the default one with
#   TALLY_INFRA_STATE=<dir> (data, logs, pid files; downloads stay in .local)
#   TALLY_INFRA_KAFKA_PORT, TALLY_INFRA_CONTROLLER_PORT, TALLY_INFRA_MONGO_PORT
# Transport security, for trying Tally's TLS and SASL settings (docs/security.md):
#   Kafka also listens with SASL_SSL (SCRAM-SHA-512) on TALLY_INFRA_SASL_PORT (9094), and
#   FerretDB with TLS on TALLY_INFRA_MONGO_TLS_PORT (27018); `off` closes either. A private
#   pair opens them only when its ports are given. The SCRAM user is TALLY_INFRA_SASL_USER /
#   _PASSWORD (tally / tally-local-scram-secret); the CA that signs both servers' certificate
#   is made here, once, in .local/tls (ca.pem for clients). Local use only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local" # downloads and builds, shared by every state dir
STATE="${TALLY_INFRA_STATE:-$LOCAL}"
LOGS="$STATE/logs"
RUN="$STATE/run"
KAFKA_LIBS="$LOCAL/kafka/libs"
KAFKA_DIR="$STATE/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
FERRET_BIN="$LOCAL/bin/ferretdb"
FERRET_DATA="$STATE/ferretdb/data"
MONGOD_DATA="$STATE/mongod"
POM="$ROOT/deploy/local/kafka/pom.xml"
FERRET_PATCHES=("$ROOT/deploy/local/ferretdb/update-statements.patch" "$ROOT/deploy/local/ferretdb/id-pushdown.patch"
  "$ROOT/deploy/local/ferretdb/field-pushdown.patch" "$ROOT/deploy/local/ferretdb/update-read-first.patch"
  "$ROOT/deploy/local/ferretdb/write-lock.patch" "$ROOT/deploy/local/ferretdb/update-atomic.patch"
  "$ROOT/deploy/local/ferretdb/hot-path-overhead.patch")
KAFKA_VERSION_STAMP="$KAFKA_LIBS/.pom.sha256"

FERRETDB_VERSION="${TALLY_FERRETDB_VERSION:-v1.24.2}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${TALLY_INFRA_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${TALLY_INFRA_CONTROLLER_PORT:-9093}"
MONGO_HOST=127.0.0.1
MONGO_PORT="${TALLY_INFRA_MONGO_PORT:-27017}"
KAFKA_TIMEOUT="${TALLY_INFRA_KAFKA_TIMEOUT:-90}"
# The secure listeners default on for the default pair only: a private pair must not collide
# with the default pair's ports.
if [[ -n ${TALLY_INFRA_STATE:-} ]]; then SECURE_DEFAULT=off; else SECURE_DEFAULT=; fi
SASL_PORT="${TALLY_INFRA_SASL_PORT:-${SECURE_DEFAULT:-9094}}"
MONGO_TLS_PORT="${TALLY_INFRA_MONGO_TLS_PORT:-${SECURE_DEFAULT:-27018}}"
SASL_USER="${TALLY_INFRA_SASL_USER:-tally}"
SASL_PASSWORD="${TALLY_INFRA_SASL_PASSWORD:-tally-local-scram-secret}"
TLS_DIR="$LOCAL/tls" # one local CA and server certificate, shared by every state dir
MONGO_TIMEOUT="${TALLY_INFRA_MONGO_TIMEOUT:-60}"
PY="${TALLY_INFRA_PYTHON:-$ROOT/.venv/bin/python}" # readiness probes; java tools without it

mkdir -p "$LOGS" "$RUN" "$LOCAL"

log() { printf 'infra: %s\n' "$*" >&2; }
die() { printf 'infra: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pid_of() { # prints the pid from a pid file if that process is alive
  local f="$RUN/$1.pid" pid
  [[ -f $f ]] || return 1
  pid="$(<"$f")"
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  rm -f "$f"
  return 1
}

stop_service() { # pidname [label]: SIGTERM, wait up to 30 s, then SIGKILL; keeps data
  local name="$1" label="${2:-$1}" pid i
  pid="$(pid_of "$name")" || { log "$label not running (by infra.sh)"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$label (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$RUN/$name.pid"
  log "$label stopped (pid $pid)"
}

secure() { [[ -n $1 && $1 != off && $1 != 0 ]]; } # is this listener port configured?

# ---------------------------------------------------------------- TLS material

tls_material() { # a local CA and a server certificate for 127.0.0.1/localhost, made once
  local days_left=$((30 * 86400))
  if [[ -f $TLS_DIR/server.pem && -f $TLS_DIR/server-keystore.pem ]] &&
    openssl x509 -checkend "$days_left" -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  command -v openssl >/dev/null || die "openssl not found on PATH (makes the local TLS certificates)"
  log "making a local CA and server certificate in $TLS_DIR"
  mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
  local tmp="$TLS_DIR/.new"
  rm -rf "$tmp" && mkdir -p "$tmp"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Tally local CA" \
      -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" &&
      printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
        >"$tmp/server.ext" &&
      openssl x509 -req -days 825 -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -CAcreateserial -extfile "$tmp/server.ext" -out "$tmp/server.pem"
  } >>"$LOGS/tls.log" 2>&1 || die "making the TLS certificates failed; see $LOGS/tls.log"
  # Kafka's PEM key store: the PKCS#8 key, then the chain.
  cat "$tmp/server.key" "$tmp/server.pem" "$tmp/ca.pem" >"$tmp/server-keystore.pem"
  chmod 600 "$tmp"/*.key "$tmp/server-keystore.pem"
  rm -f "$tmp/server.csr" "$tmp/server.ext" "$tmp/ca.srl"
  mv -f "$tmp"/* "$TLS_DIR/" && rmdir "$tmp"
}

# ---------------------------------------------------------------- Kafka

locked() { # runs "$@" holding .local/.fetch.lock: two concurrent `up`s must not fetch or build twice
  (
    flock 9
    "$@"
  ) 9>"$LOCAL/.fetch.lock"
}

kafka_fetch() {
  local want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [[ -f $KAFKA_VERSION_STAMP && "$(<"$KAFKA_VERSION_STAMP")" == "$want" ]]; then
    return 0
  fi
  command -v java >/dev/null || die "java not found on PATH (Kafka needs a JRE 17+)"
  command -v mvn >/dev/null || die "mvn not found on PATH (used once to fetch Kafka jars from Maven Central)"
  log "fetching Kafka jars from Maven Central (mvn, once)"
  rm -rf "$KAFKA_LIBS.new"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS.new" \
    >"$LOGS/kafka-fetch.log" 2>&1 || die "Kafka jar download failed; see $LOGS/kafka-fetch.log"
  # Swapped in whole: a broker already running keeps its open jars.
  rm -rf "$KAFKA_LIBS" && mv "$KAFKA_LIBS.new" "$KAFKA_LIBS"
  echo "$want" >"$KAFKA_VERSION_STAMP"
}

kafka_config() {
  mkdir -p "$KAFKA_DATA"
  local listeners="PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local sasl="" # SASL_SSL for clients only: the controller and the broker itself stay PLAINTEXT
  if secure "$SASL_PORT"; then
    listeners+=",SASL_SSL://$KAFKA_HOST:$SASL_PORT"
    advertised+=",SASL_SSL://$KAFKA_HOST:$SASL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
    sasl="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/server-keystore.pem"
  fi
  cat >"$KAFKA_PROPS" <<EOF
# Generated by deploy/local/infra.sh; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$sasl
log.dirs=$KAFKA_DATA
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
EOF
  cat >"$KAFKA_DIR/log4j2.properties" <<EOF
# Generated by deploy/local/infra.sh: broker logs go to stdout, which infra.sh sends to $LOGS/kafka.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
}

kafka_java() { # runs a Kafka main class with the resolved classpath
  java -Xshare:auto -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  # What `StorageTool random-uuid` prints: 16 random bytes, base64url, unpadded, and (as
  # Kafka's Uuid.randomUuid does) never starting with "-": the format command would read
  # such an id as an option and fail (1 start in 64 did, seen in the chaos suite).
  local cluster_id="-"
  while [[ $cluster_id == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_PROPS" \
    --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" \
    >>"$LOGS/kafka.log" 2>&1 || die "Kafka storage format failed; see $LOGS/kafka.log"
  scram_stamp >"$KAFKA_DIR/scram.stamp"
}

scram_stamp() { printf '%s %s\n' "$SASL_USER" "$(printf '%s' "$SASL_PASSWORD" | sha256sum | cut -d' ' -f1)"; }

kafka_scram_user() { # data formatted before the SCRAM user existed (or another password): upsert it
  [[ -f $KAFKA_DIR/scram.stamp && "$(<"$KAFKA_DIR/scram.stamp")" == "$(scram_stamp)" ]] && return 0
  log "adding SCRAM-SHA-512 user $SASL_USER over PLAINTEXT (data formatted without it)"
  [[ -f $KAFKA_DIR/log4j2.properties ]] || kafka_config
  kafka_java kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" --alter \
    --entity-type users --entity-name "$SASL_USER" \
    --add-config "SCRAM-SHA-512=[password=$SASL_PASSWORD]" >>"$LOGS/kafka.log" 2>&1 ||
    die "adding the SCRAM user failed; see $LOGS/kafka.log"
  scram_stamp >"$KAFKA_DIR/scram.stamp"
}

kafka_sasl_ready() { # the SASL_SSL listener authenticates the SCRAM user
  [[ -x $PY ]] && "$PY" -c 'import aiokafka' 2>/dev/null || return 0
  "$PY" - "$KAFKA_HOST:$SASL_PORT" "$SASL_USER" "$SASL_PASSWORD" "$TLS_DIR/ca.pem" <<'EOF' 2>/dev/null
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

async def main() -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=sys.argv[1], request_timeout_ms=5000, security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=sys.argv[2],
        sasl_plain_password=sys.argv[3], ssl_context=create_ssl_context(cafile=sys.argv[4]),
    )
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()

asyncio.run(asyncio.wait_for(main(), 10))
EOF
}

kafka_secure_await() { # after kafka_await: the SCRAM user exists and SASL_SSL answers
  secure "$SASL_PORT" || return 0
  kafka_scram_user
  if ! port_open "$KAFKA_HOST" "$SASL_PORT"; then
    log "WARNING: kafka on $KAFKA_HOST:$KAFKA_PORT was started without the SASL_SSL listener;" \
      "restart it to open $KAFKA_HOST:$SASL_PORT: infra.sh stop-kafka && infra.sh start-kafka"
    return 0
  fi
  wait_until kafka "$KAFKA_TIMEOUT" kafka_sasl_ready "$LOGS/kafka.log"
  KAFKA_SECS="$(since "$T0")"
}

kafka_ready() { # metadata answers and a topic can be created and deleted
  if [[ -x $PY ]] && "$PY" -c 'import aiokafka' 2>/dev/null; then
    "$PY" - "$KAFKA_HOST:$KAFKA_PORT" <<'EOF' 2>/dev/null
import asyncio, sys, uuid
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
    await admin.start()
    try:
        name = f"_infra_probe_{uuid.uuid4().hex[:8]}"
        await admin.create_topics([NewTopic(name, 1, 1)])
        await admin.delete_topics([name])
    finally:
        await admin.close()

asyncio.run(asyncio.wait_for(main(), 10))
EOF
  else
    local name="_infra_probe_$$_$RANDOM"
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" \
      --create --topic "$name" --partitions 1 --replication-factor 1 >/dev/null 2>&1 &&
      kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" \
        --delete --topic "$name" >/dev/null 2>&1
  fi
}

kafka_launch() { # starts the broker unless something answers on its port; does not wait
  if pid_of kafka >/dev/null || port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    log "kafka already answering on $KAFKA_HOST:$KAFKA_PORT"
    return 0
  fi
  locked kafka_fetch
  if secure "$SASL_PORT"; then locked tls_material; fi
  kafka_config
  kafka_format
  # setsid: the broker must outlive this shell and not get the terminal's SIGINT.
  setsid nohup java -Xmx1g -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" >>"$LOGS/kafka.log" 2>&1 </dev/null &
  echo $! >"$RUN/kafka.pid"
  log "kafka starting (pid $!, log $LOGS/kafka.log)"
}

kafka_await() {
  wait_until kafka "$KAFKA_TIMEOUT" kafka_ready "$LOGS/kafka.log"
  KAFKA_SECS="$(since "$T0")"
}

# ---------------------------------------------------------------- MongoDB wire (FerretDB or mongod)

use_mongod() {
  [[ ${TALLY_LOCAL_MONGO:-} == mongod ]] && return 0
  [[ ${TALLY_LOCAL_MONGO:-} == ferretdb ]] && return 1
  command -v mongod >/dev/null
}

ferretdb_fetch() {
  local want mod="github.com/FerretDB/FerretDB" src build="$LOCAL/ferretdb-build"
  want="$FERRETDB_VERSION $(cat "${FERRET_PATCHES[@]}" | sha256sum | cut -d' ' -f1)"
  if [[ -x $FERRET_BIN && -f $FERRET_BIN.stamp && "$(<"$FERRET_BIN.stamp")" == "$want" ]]; then
    return 0
  fi
  command -v go >/dev/null || die "go not found on PATH (used once to build FerretDB $FERRETDB_VERSION)"
  log "building FerretDB $FERRETDB_VERSION with go (once, about 2 minutes cold)"
  # Not `go install ...@version`: the module zip lacks the generated build/version/version.txt,
  # so that binary panics at start, and some proxies refuse the version list it asks for.
  # We build a copy of the exact version with version.txt written and the patches above
  # applied (ADR 0001 lists what each fixes); its go.sum pins every dependency.
  : >"$LOGS/ferretdb-build.log"
  src="$(go mod download -json "$mod@$FERRETDB_VERSION" 2>>"$LOGS/ferretdb-build.log" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n $src ]] || die "FerretDB download failed; see $LOGS/ferretdb-build.log"
  rm -rf "$build" && mkdir -p "$build" && cp -R "$src/." "$build/" && chmod -R u+w "$build"
  echo "$FERRETDB_VERSION" >"$build/build/version/version.txt"
  echo "tally-local" >"$build/build/version/package.txt"
  local p
  for p in "${FERRET_PATCHES[@]}"; do
    patch -s -d "$build" -p1 <"$p" >>"$LOGS/ferretdb-build.log" 2>&1 ||
      die "FerretDB patch $(basename "$p") did not apply; see $LOGS/ferretdb-build.log"
  done
  (cd "$build" && GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -o "$FERRET_BIN.tmp" ./cmd/ferretdb) \
    >>"$LOGS/ferretdb-build.log" 2>&1 || die "FerretDB build failed; see $LOGS/ferretdb-build.log"
  mv "$FERRET_BIN.tmp" "$FERRET_BIN"
  echo "$want" >"$FERRET_BIN.stamp"
  rm -rf "$build"
}

mongo_ready() {
  if [[ -x $PY ]] && "$PY" -c 'import pymongo' 2>/dev/null; then
    "$PY" - "mongodb://$MONGO_HOST:$MONGO_PORT" <<'EOF' 2>/dev/null
import sys
from pymongo import MongoClient

with MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000, directConnection=True) as c:
    c.admin.command("ping")
EOF
  else
    port_open "$MONGO_HOST" "$MONGO_PORT"
  fi
}

mongo_launch() { # starts mongod or FerretDB unless something answers on the port; does not wait
  if use_mongod; then MONGO_NAME=mongod; else MONGO_NAME=ferretdb; fi
  if pid_of mongo >/dev/null || port_open "$MONGO_HOST" "$MONGO_PORT"; then
    log "MongoDB-wire server already answering on $MONGO_HOST:$MONGO_PORT"
  elif [[ $MONGO_NAME == mongod ]]; then
    mkdir -p "$MONGOD_DATA"
    setsid nohup mongod --dbpath "$MONGOD_DATA" --bind_ip "$MONGO_HOST" --port "$MONGO_PORT" \
      >>"$LOGS/mongod.log" 2>&1 </dev/null &
    echo $! >"$RUN/mongo.pid"
    log "mongod starting (pid $!, log $LOGS/mongod.log)"
  else
    locked ferretdb_fetch
    mkdir -p "$FERRET_DATA"
    local tls=()
    if secure "$MONGO_TLS_PORT"; then
      locked tls_material
      tls=(--listen-tls="$MONGO_HOST:$MONGO_TLS_PORT" --listen-tls-cert-file="$TLS_DIR/server.pem"
        --listen-tls-key-file="$TLS_DIR/server.key")
    fi
    # synchronous(normal) with WAL: no fsync per commit, still safe if the process is killed.
    # GOGC=400: FerretDB spent ~15% of its CPU in Go's GC; fewer collections, ~15% less CPU
    # per command in the benchmark (docs/performance.md). A few hundred MiB more heap at most.
    GOGC="${GOGC:-400}" setsid nohup "$FERRET_BIN" --handler=sqlite --sqlite-url="file:$FERRET_DATA/?_pragma=synchronous(normal)" \
      --listen-addr="$MONGO_HOST:$MONGO_PORT" "${tls[@]}" --telemetry=disable --debug-addr=- \
      --state-dir="$(dirname "$FERRET_DATA")" \
      --log-level=error >>"$LOGS/ferretdb.log" 2>&1 </dev/null &
    echo $! >"$RUN/mongo.pid"
    log "ferretdb starting (pid $!, log $LOGS/ferretdb.log)"
  fi
}

mongo_await() {
  wait_until "$MONGO_NAME" "$MONGO_TIMEOUT" mongo_ready "$LOGS/$MONGO_NAME.log"
  MONGO_SECS="$(since "$T0")"
}

mongo_tls_check() { # the TLS listener is FerretDB's; a server started before it existed lacks it
  secure "$MONGO_TLS_PORT" && [[ $MONGO_NAME == ferretdb ]] || return 0
  port_open "$MONGO_HOST" "$MONGO_TLS_PORT" && return 0
  log "WARNING: ferretdb on $MONGO_HOST:$MONGO_PORT was started without the TLS listener;" \
    "restart it to open $MONGO_HOST:$MONGO_TLS_PORT: infra.sh stop-mongo && infra.sh start-mongo"
}

# ---------------------------------------------------------------- common

wait_until() { # name timeout-seconds probe log
  local name="$1" timeout="$2" probe="$3" logfile="$4" deadline pidname
  deadline=$(($(date +%s) + timeout))
  pidname="$name"; [[ $name == kafka ]] || pidname=mongo
  until "$probe"; do
    if [[ -f $RUN/$pidname.pid ]] && ! pid_of "$pidname" >/dev/null; then
      die "$name exited during start-up; see $logfile"
    fi
    (($(date +%s) < deadline)) || die "$name not ready after ${timeout}s; see $logfile"
    sleep 0.5
  done
}

status_line() { # name pidname port
  local pid
  if pid="$(pid_of "$2")"; then
    printf '%-12s running  pid %-7s port %s\n' "$1" "$pid" "$3"
  elif port_open 127.0.0.1 "$3"; then
    printf '%-12s running  pid %-7s port %s (not started by infra.sh)\n' "$1" "-" "$3"
  else
    printf '%-12s stopped  pid %-7s port %s\n' "$1" "-" "$3"
  fi
}

listener_line() { # name port: a further listener of a server, open only if it was started with it
  if port_open 127.0.0.1 "$2"; then
    printf '%-12s open                  port %s\n' "$1" "$2"
  else
    printf '%-12s closed                port %s (a restart opens it)\n' "$1" "$2"
  fi
}

mongo_label() { if use_mongod; then echo mongod; else echo ferretdb; fi; }

T0="$(now)" # readiness times are wall-clock seconds since this command began
case "${1:-}" in
  up)
    # The broker boots while FerretDB builds or starts; both are then awaited.
    kafka_launch
    mongo_launch
    mongo_await
    kafka_await
    kafka_secure_await
    mongo_tls_check
    echo "infra-up: kafka ready in ${KAFKA_SECS}s, $MONGO_NAME ready in ${MONGO_SECS}s"
    ;;
  down)
    stop_service kafka
    stop_service mongo "$(mongo_label)"
    ;;
  reset)
    stop_service kafka
    stop_service mongo "$(mongo_label)"
    rm -rf "$KAFKA_DATA" "$FERRET_DATA" "$MONGOD_DATA"
    log "data wiped (downloads kept)"
    ;;
  start-kafka)
    kafka_launch
    kafka_await
    kafka_secure_await
    echo "infra: kafka ready in ${KAFKA_SECS}s"
    ;;
  stop-kafka) stop_service kafka ;;
  start-mongo)
    mongo_launch
    mongo_await
    mongo_tls_check
    echo "infra: $MONGO_NAME ready in ${MONGO_SECS}s"
    ;;
  stop-mongo) stop_service mongo "$(mongo_label)" ;;
  build) # fetch the Kafka jars and build FerretDB without starting anything
    locked kafka_fetch
    locked tls_material
    use_mongod || locked ferretdb_fetch
    ;;
  status)
    status_line kafka kafka "$KAFKA_PORT"
    if secure "$SASL_PORT"; then listener_line kafka-sasl "$SASL_PORT"; fi
    status_line "$(mongo_label)" mongo "$MONGO_PORT"
    if secure "$MONGO_TLS_PORT" && ! use_mongod; then listener_line ferretdb-tls "$MONGO_TLS_PORT"; fi
    ;;
  *)
    echo "usage: $0 up|down|status|reset|build|start-kafka|stop-kafka|start-mongo|stop-mongo" >&2
    exit 2
    ;;
esac
