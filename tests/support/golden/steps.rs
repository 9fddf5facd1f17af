//! The steps of the golden capture, in its order.

use serde_json::Value;

use super::super::{sha256, skopeo, with_digest};
use super::Env;

const OCI_M: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Digests of the images the scenario pushes.
pub struct Images {
    pub m: String,
    pub cfg: String,
    pub l1: String,
    pub l2: String,
}

/// Builds the scenario's images in `work` (the golden capture's script).
pub fn build_images(work: &std::path::Path) -> Images {
    let img = skopeo::build_image(work, "img", &["--tag", "latest"]);
    skopeo::build_image(work, "img-index", &["--tag", "multi", "--index"]);
    skopeo::build_image(work, "img-refs", &["--variant", "3", "--tag", "latest"]);
    let digest = |p: &str| img.pointer(p).and_then(Value::as_str).unwrap().to_string();
    Images {
        m: digest("/manifest/digest"),
        cfg: digest("/config/digest"),
        l1: digest("/layers/0/digest"),
        l2: digest("/layers/1/digest"),
    }
}

/// Runs every step of the golden scenario, in the capture's order; the `r*` steps go to
/// the last of `env.apps` (see [`Env::on_references`]).
pub async fn run(env: &mut Env, img: &Images) {
    let (m, cfg, l1, l2) = (img.m.as_str(), img.cfg.as_str(), img.l1.as_str(), img.l2.as_str());
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
    macro_rules! step {
        ($name:expr, $body:expr) => {{
            $body;
            env.take($name).await;
        }};
    }
    let tls = "--dest-tls-verify=false";
    let src_tls = "--src-tls-verify=false";

    step!("00-ping", env.curl("GET", "/v2/", &[], vec![]).await);
    let (img_latest, test_latest) = (env.oci("img", "latest"), env.docker("library/test:latest"));
    step!(
        "a-push-latest",
        env.skopeo(&["copy", tls, &img_latest, &test_latest]).await
    );
    let v2 = env.docker("library/test:v2");
    step!("b-push-v2", env.skopeo(&["copy", tls, &img_latest, &v2]).await);
    step!(
        "b2-repush-latest",
        env.skopeo(&["copy", tls, &img_latest, &test_latest]).await
    );
    let other = env.docker("other/app:1");
    step!(
        "c-copy-other-app",
        env.skopeo(&["copy", src_tls, tls, &test_latest, &other]).await
    );
    let pulled = env.oci("pulled", "x");
    step!(
        "d1-pull",
        env.skopeo(&["copy", src_tls, &test_latest, &pulled]).await
    );
    step!(
        "d2-inspect",
        env.skopeo(&["inspect", "--tls-verify=false", &test_latest]).await
    );
    let by_digest = env.docker(&format!("library/test@{m}"));
    step!(
        "e-delete-by-digest",
        env.skopeo(&["delete", "--tls-verify=false", &by_digest]).await
    );

    let acc = [("accept", ACCEPT_ALL)];
    let manifest_d = format!("/v2/other/app/manifests/{m}");
    let blob_l1 = format!("/v2/other/app/blobs/{l1}");
    step!(
        "f01-head-manifest-tag",
        env.curl("HEAD", "/v2/other/app/manifests/1", &acc, vec![]).await
    );
    step!(
        "f02-get-manifest-tag",
        env.curl("GET", "/v2/other/app/manifests/1", &acc, vec![]).await
    );
    step!(
        "f03-head-manifest-digest",
        env.curl("HEAD", &manifest_d, &acc, vec![]).await
    );
    step!(
        "f04-get-manifest-digest",
        env.curl("GET", &manifest_d, &acc, vec![]).await
    );
    step!(
        "f05-get-manifest-tag-no-accept",
        env.curl("GET", "/v2/other/app/manifests/1", &[], vec![]).await
    );
    step!(
        "f06-get-manifest-digest-no-accept",
        env.curl("GET", &manifest_d, &[], vec![]).await
    );
    step!("f07-head-blob", env.curl("HEAD", &blob_l1, &[], vec![]).await);
    step!("f08-get-blob", env.curl("GET", &blob_l1, &[], vec![]).await);
    step!(
        "f09-get-blob-range",
        env.curl("GET", &blob_l1, &[("range", "bytes=0-9")], vec![]).await
    );
    step!(
        "f10-get-manifest-missing",
        env.curl("GET", "/v2/other/app/manifests/nope", &acc, vec![])
            .await
    );
    let missing_blob = format!("/v2/other/app/blobs/sha256:{}", "0".repeat(64));
    step!(
        "f11-head-blob-missing",
        env.curl("HEAD", &missing_blob, &[], vec![]).await
    );
    step!("f12-get-deleted-manifest", {
        for r in ["latest", "v2", m] {
            let path = format!("/v2/library/test/manifests/{r}");
            assert_eq!(env.curl("GET", &path, &acc, vec![]).await.status, 404, "{path}");
        }
        env.curl("GET", "/v2/library/test/tags/list", &[], vec![]).await;
    });
    let mono = b"monolithic blob\n".to_vec();
    let mono_path = format!("/v2/library/test/blobs/uploads/?digest={}", sha256(&mono));
    let octets = ("content-type", "application/octet-stream");
    step!(
        "f13-monolithic-upload",
        env.curl("POST", &mono_path, &[octets], mono).await
    );
    let chunked_d = sha256(b"chunk-one|chunk-two\n");
    step!("f14-chunked-upload", {
        let r = env
            .curl("POST", "/v2/library/test/blobs/uploads/", &[], vec![])
            .await;
        let mut u = r.header("location").unwrap().to_string();
        for (range, chunk) in [("0-9", "chunk-one|"), ("10-19", "chunk-two\n")] {
            let h = [octets, ("content-range", range)];
            let r = env.curl("PATCH", &u, &h, chunk.into()).await;
            assert_eq!(r.status, 202, "{:?}", r.body);
            u = r.header("location").unwrap().to_string();
        }
        let put = env.curl("PUT", &with_digest(&u, &chunked_d), &[], vec![]).await;
        assert_eq!(put.status, 201, "{:?}", put.body);
    });
    step!("f15-post-then-put-upload", {
        let body = b"post-then-put blob\n".to_vec();
        let d = sha256(&body);
        let r = env
            .curl("POST", "/v2/library/test/blobs/uploads/", &[], vec![])
            .await;
        let u = r.header("location").unwrap().to_string();
        env.curl("PUT", &with_digest(&u, &d), &[octets], body).await;
    });
    let mount = |d: &str, from: &str| format!("/v2/curl/repo/blobs/uploads/?mount={d}&from={from}");
    step!(
        "f16-mount-curl",
        env.curl("POST", &mount(l1, "other/app"), &[], vec![]).await
    );
    step!("f17-mount-missing-from", {
        let missing = sha256(b"never pushed anywhere");
        let r = env
            .curl("POST", &mount(&missing, "no/such-repo"), &[], vec![])
            .await;
        let u = r.header("location").unwrap().to_string();
        env.curl("DELETE", &u, &[], vec![]).await;
    });
    step!("f18-mount-rest", {
        env.curl("POST", &mount(l2, "other/app"), &[], vec![]).await;
        env.curl("POST", &mount(cfg, "other/app"), &[], vec![]).await;
    });
    let manifest = std::fs::read(
        env.work
            .join("img/blobs/sha256")
            .join(m.trim_start_matches("sha256:")),
    )
    .unwrap();
    let oci_m = [("content-type", OCI_M)];
    step!(
        "f19-put-manifest-tag",
        env.curl("PUT", "/v2/curl/repo/manifests/t1", &oci_m, manifest.clone())
            .await
    );
    step!(
        "f20-put-manifest-digest",
        env.curl(
            "PUT",
            &format!("/v2/curl/repo/manifests/{m}"),
            &oci_m,
            manifest.clone()
        )
        .await
    );
    step!("f21-delete-blob-then-head", {
        let path = format!("/v2/library/test/blobs/{chunked_d}");
        env.curl("DELETE", &path, &[], vec![]).await;
        assert_eq!(env.curl("HEAD", &path, &[], vec![]).await.status, 404);
    });
    step!(
        "f22-delete-manifest-by-tag",
        env.curl("DELETE", "/v2/other/app/manifests/1", &[], vec![]).await
    );
    step!("f23-catalog-tags", {
        env.curl("GET", "/v2/_catalog", &[], vec![]).await;
        env.curl("GET", "/v2/other/app/tags/list", &[], vec![]).await;
    });
    let curl_m = format!("/v2/curl/repo/manifests/{m}");
    step!(
        "f24-delete-manifest-curl",
        env.curl("DELETE", &curl_m, &[], vec![]).await
    );
    let dockerfmt = env.docker("library/dockerfmt:latest");
    step!(
        "g1-push-v2s2",
        env.skopeo(&["copy", "--format", "v2s2", tls, &img_latest, &dockerfmt])
            .await
    );
    step!(
        "g2-get-v2s2-no-accept",
        env.curl("GET", "/v2/library/dockerfmt/manifests/latest", &[], vec![])
            .await
    );
    let (index, multi) = (env.oci("img-index", "multi"), env.docker("library/multi:1"));
    step!(
        "g3-push-index",
        env.skopeo(&["copy", "--all", tls, &index, &multi]).await
    );
    let pulled_multi = env.oci("pulled-multi", "x");
    step!(
        "g4-pull-index",
        env.skopeo(&["copy", src_tls, &multi, &pulled_multi]).await
    );

    // With references (the reference restarted with includereferences: true).
    env.references();
    let (refs_img, refs_dest) = (env.oci("img-refs", "latest"), env.docker("refs/img:1"));
    step!(
        "r1-push-refs",
        env.skopeo(&["copy", tls, &refs_img, &refs_dest]).await
    );
    step!(
        "r2-pull-refs",
        env.curl("GET", "/v2/refs/img/manifests/1", &acc, vec![]).await
    );
    let refs_multi = env.docker("refs/multi:1");
    step!(
        "r3-push-index-refs",
        env.skopeo(&["copy", "--all", tls, &index, &refs_multi]).await
    );
}
