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
name=wrk_ratio tools=wrk
. benches/registry_common.sh

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

# One image in each registry.
for p in "$plain" "$notified"; do seed_image "$p"; done

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
