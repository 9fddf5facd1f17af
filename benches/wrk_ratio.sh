#!/usr/bin/env bash
# Registry throughput and p99 latency with the layer (one endpoint, `maxevents: 100`, delivering
# to a live receiver) over without it, measured by an outside load generator (wrk) against the
# example registry binary with filesystem storage: GET of a manifest by tag, interleaved rounds.
#
#   benches/wrk_ratio.sh [rounds=5] [seconds=3] [connections=32]
#
# Needs wrk (Debian's package) and curl; everything listens on 127.0.0.1 and is stopped at the
# end. Prints one line per round and the ratios (median of the rounds' ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5} seconds=${2:-3} connections=${3:-32}
for t in wrk curl sha256sum; do
  command -v "$t" >/dev/null || { echo "wrk_ratio: $t is not on PATH (apt-get install wrk curl)" >&2; exit 2; }
done

cargo build --release -q -p example-registry --bin registry
cargo build --release -q --example receiver
target=${CARGO_TARGET_DIR:-target}
registry=$target/release/registry
receiver=$target/release/examples/receiver

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "wrk_ratio: $1 did not answer" >&2; exit 1; }

hook=$(port) plain=$(port) notified=$(port)
"$receiver" --listen "127.0.0.1:$hook" --out "$work/events.jsonl" &
pids+=($!)

cat > "$work/plain.yml" <<EOF
version: 0.1
http:
  addr: 127.0.0.1:$plain
storage:
  filesystem:
    rootdirectory: $work/plain
EOF
cat > "$work/notified.yml" <<EOF
version: 0.1
http:
  addr: 127.0.0.1:$notified
storage:
  filesystem:
    rootdirectory: $work/notified
notifications:
  endpoints:
    - name: bench
      url: http://127.0.0.1:$hook/events
      timeout: 5s
      threshold: 10
      backoff: 1s
      maxevents: 100
EOF
"$registry" serve "$work/plain.yml" > "$work/plain.log" 2>&1 &
pids+=($!)
"$registry" serve "$work/notified.yml" > "$work/notified.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$plain/v2/"
wait_for "http://127.0.0.1:$notified/v2/"

# One image (a config blob, a layer, a manifest tagged `latest`) in each registry.
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config"
head -c 4096 /dev/zero | tr '\0' 'x' > "$work/layer"
digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
size() { wc -c < "$1" | tr -d ' '; }
cfg=$(digest "$work/config") lay=$(digest "$work/layer")
cat > "$work/manifest" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$cfg","size":$(size "$work/config")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$lay","size":$(size "$work/layer")}]}
EOF
for p in "$plain" "$notified"; do
  for blob in config layer; do
    curl -sf -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$work/$blob" \
      "http://127.0.0.1:$p/v2/library/test/blobs/uploads/?digest=$(digest "$work/$blob")" -o /dev/null
  done
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/manifest" \
    "http://127.0.0.1:$p/v2/library/test/manifests/latest" -o /dev/null
done

# wrk prints `Requests/sec:` and, with --latency, the `99%` percentile.
run() {
  wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$1/v2/library/test/manifests/latest" > "$work/wrk.out"
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' "$work/wrk.out")
  echo "$rps $p99"
}
echo "| round | without: req/s | p99 ms | with the layer: req/s | p99 ms | throughput ratio | p99 ratio |"
echo "|---|---|---|---|---|---|---|"
ratios=() p99s=()
for r in $(seq 1 "$rounds"); do
  # The order alternates, so neither variant always runs on a machine the other just warmed.
  if (( r % 2 )); then a=$(run "$plain"); b=$(run "$notified"); else b=$(run "$notified"); a=$(run "$plain"); fi
  read -r rps_a p99_a <<< "$a"
  read -r rps_b p99_b <<< "$b"
  ratio=$(awk -v a="$rps_a" -v b="$rps_b" 'BEGIN {printf "%.3f", b / a}')
  p99r=$(awk -v a="$p99_a" -v b="$p99_b" 'BEGIN {printf "%.3f", b / a}')
  ratios+=("$ratio") p99s+=("$p99r")
  echo "| $r | $rps_a | $p99_a | $rps_b | $p99_b | $ratio | $p99r |"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo
echo "median throughput ratio (with / without): $(median "${ratios[@]}")"
echo "median p99 ratio (with / without): $(median "${p99s[@]}")"
# What the receiver got (the endpoint keeps delivering for a moment after the last round).
sleep 1
python3 - "$work/events.jsonl" <<'PY'
import json, sys
posts = events = 0
for line in open(sys.argv[1]):
    posts += 1
    events += len(json.loads(line).get("events", []))
print(f"receiver: {posts} POSTs, {events} events ({events / max(posts, 1):.1f} per POST)")
PY
