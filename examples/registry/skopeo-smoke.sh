#!/usr/bin/env bash
# skopeo-smoke.sh [HOST:PORT] — skopeo + curl scenarios against a running, EMPTY
# example registry (cargo run -p example-registry -- --addr HOST:PORT).
# Needs skopeo, curl, jq, python3 and the golden build_image.py
# (BUILD_IMAGE=/path/to/build_image.py to override). Prints OK/FAIL per check.
# Deletes skopeo's blob-info cache first, so that its cross-repository mount
# attempts are reproducible (the copy to other/app mounts from library/test).
set -u
R=${1:-127.0.0.1:5000}
BUILD_IMAGE=${BUILD_IMAGE:-/work/shared/reference/golden/build_image.py}
W=$(mktemp -d /tmp/registry-smoke.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"
python3 "$BUILD_IMAGE" "$W/img" --tag latest >img.json
python3 "$BUILD_IMAGE" "$W/img-index" --tag multi --index >img-index.json
rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
fail=0
ok() { echo "OK   $*"; }
ko() { echo "FAIL $*"; fail=1; }
check() { # check DESC EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1 ($3)"; else ko "$1: expected $2 got $3"; fi; }
M=$(jq -r .manifest.digest img.json); CFG=$(jq -r .config.digest img.json)
L1=$(jq -r '.layers[0].digest' img.json); L2=$(jq -r '.layers[1].digest' img.json)
IDX=$(jq -r .index.digest img-index.json)
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"

skopeo copy -q --dest-tls-verify=false oci:$W/img:latest docker://$R/library/test:latest && ok "push latest" || ko "push latest"
skopeo copy -q --dest-tls-verify=false oci:$W/img:latest docker://$R/library/test:v2 && ok "push v2" || ko "push v2"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false docker://$R/library/test:latest docker://$R/other/app:1 && ok "copy other/app" || ko "copy other/app"
rm -rf pulled; skopeo copy -q --src-tls-verify=false docker://$R/library/test:latest oci:$W/pulled:x && ok "pull" || ko "pull"
check "pulled manifest digest" "$M" "$(skopeo inspect --raw oci:$W/pulled:x | sha256sum | sed 's/^/sha256:/;s/ .*//')"
check "inspect digest" "$M" "$(skopeo inspect --tls-verify=false docker://$R/library/test:latest | jq -r .Digest)"
check "inspect tags" '["latest","v2"]' "$(skopeo inspect --tls-verify=false docker://$R/library/test:latest | jq -c .RepoTags)"
check "catalog" '{"repositories":["library/test","other/app"]}' "$(curl -s $R/v2/_catalog)"
skopeo delete --tls-verify=false docker://$R/library/test@$M && ok "delete by digest" || ko "delete by digest"
check "tags after delete" '{"name":"library/test","tags":[]}' "$(curl -s $R/v2/library/test/tags/list)"
check "GET deleted latest" 404 "$(curl -s -o /dev/null -w '%{http_code}' -H "$ACCEPT" $R/v2/library/test/manifests/latest)"
check "other/app:1 still there" 200 "$(curl -s -o /dev/null -w '%{http_code}' -H "$ACCEPT" $R/v2/other/app/manifests/1)"
# blobs and ranges
check "HEAD blob" "200 141" "$(curl -s -I -o /dev/null -w '%{http_code} %header{content-length}' $R/v2/other/app/blobs/$L1)"
check "GET blob sha" "$L1" "sha256:$(curl -s $R/v2/other/app/blobs/$L1 | sha256sum | cut -d' ' -f1)"
check "Range 0-9" "206 bytes 0-9/141 10" "$(curl -s -o /dev/null -H 'Range: bytes=0-9' -w '%{http_code} %header{content-range} %{size_download}' $R/v2/other/app/blobs/$L1)"
check "Range bad" "416" "$(curl -s -o /dev/null -H 'Range: bytes=500-' -w '%{http_code}' $R/v2/other/app/blobs/$L1)"
check "blob not linked" 404 "$(curl -s -o /dev/null -w '%{http_code}' $R/v2/nolink/repo/blobs/$L1)"
# chunked upload, Distribution-style URL handling (Location has a query)
printf 'chunk-one|' > c1; printf 'chunk-two\n' > c2; CH="sha256:$(cat c1 c2 | sha256sum | cut -d' ' -f1)"
loc() { grep -i '^location:' h | tail -1 | cut -d' ' -f2- | tr -d '\r\n'; }
curl -s -D h -o /dev/null -X POST $R/v2/library/test/blobs/uploads/; u=$(loc); check "POST upload" "202" "$(head -1 h | cut -d' ' -f2)"
curl -s -D h -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 0-9' --data-binary @c1 "$u"; u=$(loc)
check "PATCH 1 range" "0-9" "$(grep -i '^range:' h | cut -d' ' -f2 | tr -d '\r')"
check "PATCH non-contiguous" 416 "$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Range: 5-14' --data-binary @c2 "$u")"
curl -s -D h -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 10-19' --data-binary @c2 "$u"; u=$(loc)
check "PATCH 2 range" "0-19" "$(grep -i '^range:' h | cut -d' ' -f2 | tr -d '\r')"
check "upload status" "204" "$(curl -s -o /dev/null -w '%{http_code}' "$u")"
check "PUT bad digest" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$u&digest=sha256:0000000000000000000000000000000000000000000000000000000000000000")"
check "PUT digest" "201 $CH" "$(curl -s -o /dev/null -w '%{http_code} %header{docker-content-digest}' -X PUT "$u&digest=$CH")"
check "chunked blob content" "chunk-one|chunk-two" "$(curl -s $R/v2/library/test/blobs/$CH)"
# monolithic POST
printf 'monolithic blob\n' > mono; MONO="sha256:$(sha256sum mono | cut -d' ' -f1)"
check "monolithic POST" 201 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' --data-binary @mono "$R/v2/library/test/blobs/uploads/?digest=$MONO")"
check "monolithic HEAD" 200 "$(curl -s -I -o /dev/null -w '%{http_code}' $R/v2/library/test/blobs/$MONO)"
# mounts
check "mount ok" "201" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$R/v2/curl/repo/blobs/uploads/?mount=$L1&from=other/app")"
curl -s -D h -o /dev/null -X POST "$R/v2/curl/repo/blobs/uploads/?mount=$MONO&from=no/such-repo"; u=$(loc)
check "mount fallback" 202 "$(head -1 h | cut -d' ' -f2)"
check "cancel upload" 204 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$u")"
check "cancelled upload gone" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$u")"
# multi-arch index
skopeo copy -q --all --dest-tls-verify=false oci:$W/img-index:multi docker://$R/library/multi:1 && ok "push index --all" || ko "push index --all"
check "index digest" "$IDX" "$(curl -s -I -o /dev/null -H "$ACCEPT" -w '%header{docker-content-digest}' $R/v2/library/multi/manifests/1)"
check "index content-type" "application/vnd.oci.image.index.v1+json" "$(curl -s -I -o /dev/null -H "$ACCEPT" -w '%header{content-type}' $R/v2/library/multi/manifests/1)"
rm -rf pulled-multi; skopeo copy -q --src-tls-verify=false docker://$R/library/multi:1 oci:$W/pulled-multi:x && ok "pull index (one arch)" || ko "pull index"
rm -rf pulled-all; skopeo copy -q --all --src-tls-verify=false docker://$R/library/multi:1 oci:$W/pulled-all:x && ok "pull index --all" || ko "pull index --all"
check "pulled index digest" "$IDX" "$(skopeo inspect --raw oci:$W/pulled-all:x | sha256sum | sed 's/^/sha256:/;s/ .*//')"
# v2s2
skopeo copy -q --format v2s2 --dest-tls-verify=false oci:$W/img:latest docker://$R/library/dockerfmt:latest && ok "push v2s2" || ko "push v2s2"
check "v2s2 no-accept GET" "200 application/vnd.docker.distribution.manifest.v2+json" "$(curl -s -o /dev/null -w '%{http_code} %header{content-type}' $R/v2/library/dockerfmt/manifests/latest)"
# tag delete
check "delete by tag" 202 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE $R/v2/other/app/manifests/1)"
check "deleted tag" 404 "$(curl -s -o /dev/null -w '%{http_code}' $R/v2/other/app/manifests/1)"
check "manifest survives tag delete" 200 "$(curl -s -o /dev/null -w '%{http_code}' $R/v2/other/app/manifests/$M)"
check "blob delete" 202 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE $R/v2/library/test/blobs/$CH)"
check "blob deleted" 404 "$(curl -s -I -o /dev/null -w '%{http_code}' $R/v2/library/test/blobs/$CH)"
[ $fail = 0 ] && echo ALL OK || echo SOME FAILED
exit $fail
