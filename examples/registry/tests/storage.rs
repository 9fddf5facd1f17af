//! The example registry's stores: the filesystem store survives a restart and leaves no
//! temporary file behind; concurrent chunks of one upload are serialised on both stores.

use std::path::Path;

mod support;

use example_registry::oci;
use http::{Method, StatusCode};
use serde_json::json;
use support::*;

#[tokio::test]
async fn filesystem_survives_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let first = serve(
        oci::Registry::filesystem(data.clone(), OPTIONS).expect("fs"),
        None,
    )
    .await;
    let (manifest, digest) = first.push_image("fs/repo", "latest", "f").await;
    let r = first
        .send(Method::POST, "/v2/fs/repo/blobs/uploads/", &[], "")
        .await;
    let location = r.location_path();
    first
        .send(Method::PATCH, &location, &[], "part one, ")
        .await
        .expect(202);

    // A second registry over the same directory (as after a restart).
    let second = serve(
        oci::Registry::filesystem(data.clone(), OPTIONS).expect("fs"),
        None,
    )
    .await;
    let r = second.get("/v2/fs/repo/manifests/latest").await;
    r.expect(200);
    assert_eq!(r.body.as_ref(), manifest.as_slice());
    assert_eq!(
        second.get("/v2/_catalog").await.json(),
        json!({"repositories": ["fs/repo"]})
    );
    let r = second.get(&location).await;
    r.expect(204);
    assert_eq!(r.header("range"), Some("0-9"));
    let content = b"part one, part two";
    second
        .send(
            Method::PATCH,
            &location,
            &[("content-range", b"10-17")],
            "part two",
        )
        .await
        .expect(202);
    let blob_digest = sha256(content);
    second
        .send(Method::PUT, &format!("{location}&digest={blob_digest}"), &[], "")
        .await
        .expect(201);
    assert_eq!(
        second
            .get(&format!("/v2/fs/repo/blobs/{blob_digest}"))
            .await
            .body
            .as_ref(),
        content
    );

    // On-disk layout: blobs are content-addressed, no temp files or uploads left over.
    let hex = blob_digest.trim_start_matches("sha256:");
    assert!(data.join("blobs/sha256").join(&hex[..2]).join(hex).is_file());
    assert!(data.join("repositories/fs/repo/_manifests/tags/latest").is_file());
    assert_eq!(
        std::fs::read_dir(data.join("uploads")).expect("uploads").count(),
        0
    );
    assert_no_temp_files(&data);
    second
        .delete(&format!("/v2/fs/repo/manifests/{digest}"))
        .await
        .expect(202);
    assert!(!data.join("repositories/fs/repo/_manifests/tags/latest").exists());
}

fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp-"), "leftover {}", entry.path().display());
        if entry.path().is_dir() {
            assert_no_temp_files(&entry.path());
        }
    }
}

#[tokio::test]
async fn concurrent_chunks_are_serialized() {
    for s in [memory_server().await, fs_server().await] {
        let r = s.send(Method::POST, "/v2/c/repo/blobs/uploads/", &[], "").await;
        let location = r.location_path();
        // Ten clients race to write chunk 0-9 at offset 0: exactly one wins.
        let mut tasks = Vec::new();
        let s = std::sync::Arc::new(s);
        for i in 0..10u8 {
            let s = s.clone();
            let location = location.clone();
            tasks.push(tokio::spawn(async move {
                s.send(
                    Method::PATCH,
                    &location,
                    &[("content-range", b"0-9")],
                    vec![b'0' + i; 10],
                )
                .await
                .status
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            let status = task.await.expect("join");
            assert!(
                status == StatusCode::ACCEPTED || status == StatusCode::RANGE_NOT_SATISFIABLE,
                "{status}"
            );
            accepted += usize::from(status == StatusCode::ACCEPTED);
        }
        assert_eq!(accepted, 1);
        assert_eq!(s.get(&location).await.header("range"), Some("0-9"));
    }
}
