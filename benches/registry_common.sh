# Shared by benches/wrk_ratio.sh and benches/registry_instructions.sh (sourced, not run): the
# example registry binary and receiver built, a work directory and the processes stopped at
# exit, free ports on 127.0.0.1, and one image to pull.
#
# The sourcing script sets `name` (for messages) and `tools` (what must be on PATH) first.

for t in cargo curl python3 sha256sum $tools; do
  command -v "$t" >/dev/null || { echo "$name: $t is not on PATH" >&2; exit 2; }
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
# Waits (at most a minute) until `$1` answers.
wait_for() {
  for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$name: $1 did not answer" >&2
  exit 1
}

# Pushes one image (a config blob, a layer, a manifest tagged `latest`) to
# `library/test` of the registry on port `$1`.
seed_image() {
  local p=$1 blob
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config"
  head -c 4096 /dev/zero | tr '\0' 'x' > "$work/layer"
  local cfg lay
  cfg="sha256:$(sha256sum "$work/config" | cut -d' ' -f1)"
  lay="sha256:$(sha256sum "$work/layer" | cut -d' ' -f1)"
  cat > "$work/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$cfg","size":$(wc -c < "$work/config" | tr -d ' ')},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$lay","size":$(wc -c < "$work/layer" | tr -d ' ')}]}
JSON
  for blob in config layer; do
    curl -sf -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$work/$blob" \
      "http://127.0.0.1:$p/v2/library/test/blobs/uploads/?digest=sha256:$(sha256sum "$work/$blob" | cut -d' ' -f1)" -o /dev/null
  done
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/manifest" \
    "http://127.0.0.1:$p/v2/library/test/manifests/latest" -o /dev/null
}
