#!/usr/bin/env bash
# Instructions per request of the example registry binary (filesystem storage, GET of a
# manifest by tag) without notifications, with the layer and no endpoint (what the wrapping
# alone costs), and with one endpoint (`maxevents: 100`) delivering to a live receiver,
# counted by callgrind: the real stack (hyper server, axum, storage, the
# layer, the endpoint's worker and its POSTs) that `wrk_ratio.sh` times, without machine noise.
#
#   benches/registry_instructions.sh [requests=2048] [connections=16]
#
# Each registry runs under callgrind twice, for `requests` and for 3 × `requests` GETs from
# `connections` kept-alive connections (a Python client outside callgrind); a variant's figure
# is the difference over 2 × `requests`, so start-up and shutdown cancel out. The endpoint's
# batches are as large as the GETs that arrive during a POST make them (the script prints
# the events per POST), so the share of a POST in an event's cost depends on `connections`.
# Needs valgrind, python3 and curl; everything listens on 127.0.0.1 and is stopped at the end.
# With `CALLGRIND_KEEP=<dir>`, the callgrind files are copied there (`cg.<variant>.<requests>`),
# for `callgrind_annotate` to say where the instructions went.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-2048} connections=${2:-16}
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
name=registry_instructions tools=valgrind
. benches/registry_common.sh

hook=$(port) plain=$(port) pass=$(port) notified=$(port)
"$receiver" --listen "127.0.0.1:$hook" --out "$work/events.jsonl" > /dev/null &
pids+=($!)
for v in plain pass notified; do
  p=${!v}
  {
    printf 'version: 0.1\nhttp:\n  addr: 127.0.0.1:%s\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$p" "$work/$v"
    if [ "$v" = pass ]; then
      printf 'notifications:\n  endpoints: []\n'
    fi
    if [ "$v" = notified ]; then
      printf 'notifications:\n  endpoints:\n    - name: bench\n      url: http://127.0.0.1:%s/events\n      timeout: 5s\n      threshold: 10\n      backoff: 1s\n      maxevents: 100\n' "$hook"
    fi
  } > "$work/$v.yml"
done

# The client: `n` GETs over `c` connections, each answered 200.
cat > "$work/drive.py" <<'PY'
import http.client, sys, threading
port, n, c = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def work(k):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(k):
        conn.request("GET", "/v2/library/test/manifests/latest", headers={"User-Agent": "drive/1.0"})
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
threads = [threading.Thread(target=work, args=(n // c,)) for _ in range(c)]
for t in threads: t.start()
for t in threads: t.join()
PY
# Events the receiver got, and its POSTs.
cat > "$work/count.py" <<'PY'
import json, sys
posts = events = 0
for line in open(sys.argv[1]):
    posts += 1
    events += len(json.loads(line).get("events", []))
print(events, posts)
PY
touch "$work/events.jsonl"

# One image in each registry's storage.
for v in plain pass notified; do
  p=${!v}
  "$registry" serve "$work/$v.yml" > "$work/$v.seed.log" 2>&1 &
  pid=$!
  wait_for "http://127.0.0.1:$p/v2/"
  seed_image "$p"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# Instructions of one registry run of `n` GETs, from start to shutdown; with notifications,
# the run ends once the receiver has every event.
count() {
  local v=$1 n=$2 p=${!1} before want pid
  read -r before _ < <(python3 "$work/count.py" "$work/events.jsonl")
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$v.$n" "$registry" serve "$work/$v.yml" \
    > "$work/vg.$v.$n.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for "http://127.0.0.1:$p/v2/"
  python3 "$work/drive.py" "$p" "$n" "$connections"
  if [ "$v" = notified ]; then
    want=$((before + n))
    for _ in $(seq 1 600); do
      read -r got _ < <(python3 "$work/count.py" "$work/events.jsonl")
      [ "$got" -ge "$want" ] && break
      sleep 0.1
    done
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/Collected :/ {print $4}' "$work/vg.$v.$n.log"
}
small=$requests large=$((3 * requests))
declare -A per
for v in plain pass notified; do
  a=$(count "$v" "$small")
  b=$(count "$v" "$large")
  per[$v]=$(( (b - a) / (large - small) ))
done
if [ -n "${CALLGRIND_KEEP:-}" ]; then
  mkdir -p "$CALLGRIND_KEEP" && cp "$work"/cg.* "$CALLGRIND_KEEP"/
fi
read -r events posts < <(python3 "$work/count.py" "$work/events.jsonl")
echo "| variant | instructions per GET |"
echo "|---|---|"
echo "| without notifications | ${per[plain]} |"
echo "| the layer, no endpoint | ${per[pass]} |"
echo "| one endpoint, maxevents 100 | ${per[notified]} |"
echo
echo "the layer's wrapping per GET: $(( per[pass] - per[plain] )) instructions"
echo "notifications per GET: $(( per[notified] - per[plain] )) instructions;" \
  "ratio without / with: $(awk -v a="${per[plain]}" -v b="${per[notified]}" 'BEGIN {printf "%.3f", a / b}')"
echo "receiver: $posts POSTs, $events events ($(awk -v e="$events" -v p="$posts" 'BEGIN {printf "%.1f", e / p}') per POST)"
