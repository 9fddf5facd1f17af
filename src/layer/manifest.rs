//! What a manifest's own JSON says: its references.
//!
//! [`references`] reads them for a lookup (`lookup.rs`) or from a manifest that passes
//! through the layer (the request body of a `PUT`, the response body of a `GET`). It reads
//! at most 4 MiB (Distribution's limit for a manifest), refuses a body with more than 16 384
//! JSON objects or 262 144 values before parsing it (so that a hostile body cannot make it
//! allocate more than some tens of MiB), and refuses a manifest whose references have a
//! negative size or an invalid digest: then the references are unknown rather than wrong.

use super::route;
use crate::event::Descriptor;

/// Largest manifest whose references are read: Distribution's limit for a manifest.
pub(crate) const MAX_MANIFEST: usize = 4 << 20;
/// Most JSON objects in a manifest whose references are read (an index of thousands
/// of platforms has a few per child).
const MAX_OBJECTS: usize = 16_384;
/// Most JSON values (array elements and object members) in such a manifest.
const MAX_VALUES: usize = 262_144;

/// Descriptors a manifest references, as Distribution's `References()` lists them:
/// the config then the layers, or an index's children (`subject` is not one). `None`
/// when `body` is not such a manifest, is larger than [`MAX_MANIFEST`], has too many
/// JSON objects or values, or lists a reference with a negative size or an invalid digest.
pub(crate) fn references(body: &[u8]) -> Option<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Option<Vec<Descriptor>>,
        #[serde(default)]
        manifests: Option<Vec<Descriptor>>,
    }
    // An object (serde would take an array for the struct too).
    let object = body.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{');
    if !object || body.len() > MAX_MANIFEST || !json_within(body, MAX_OBJECTS, MAX_VALUES) {
        return None;
    }
    let m: Manifest = serde_json::from_slice(body).ok()?;
    let refs: Vec<Descriptor> = match m.manifests {
        Some(children) => children,
        None => m.config.into_iter().chain(m.layers.unwrap_or_default()).collect(),
    };
    well_formed(&refs).then_some(refs)
}

/// Whether every reference has a valid digest and a size that is not negative.
pub(crate) fn well_formed(refs: &[Descriptor]) -> bool {
    refs.iter()
        .all(|d| d.size >= 0 && route::valid_digest(&d.digest).is_some())
}

/// Whether the JSON text `body` has at most `max_objects` objects and `max_values`
/// values (counted by `{`, `[` and `,` outside strings, an upper bound), in one pass
/// over the bytes, without parsing it.
fn json_within(body: &[u8], max_objects: usize, max_values: usize) -> bool {
    let (mut objects, mut values) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &c in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' => {
                objects += 1;
                values += 1;
            }
            b'[' | b',' => values += 1,
            _ => continue,
        }
        if objects > max_objects || values > max_values {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    #[test]
    fn references_of_image_and_index() {
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},
            "layers":[{{"mediaType":"l","digest":"{}","size":2,"urls":["u"]}}],"subject":{{"mediaType":"s","digest":"x","size":3}}}}"#,
            d(1),
            d(2)
        );
        let r = references(image.as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].media_type, "c");
        assert_eq!(r[1].urls, vec!["u".to_string()]);
        let index = format!(
            r#"{{"manifests":[{{"mediaType":"m","digest":"{}","size":3,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d(3)
        );
        let r = references(index.as_bytes()).unwrap();
        assert_eq!(r[0].platform.as_ref().unwrap().architecture, "amd64");
        assert!(references(b"not json").is_none());
        // No references at all is an empty list, not an unknown one.
        assert_eq!(
            references(br#"{"schemaVersion":2,"layers":null}"#),
            Some(Vec::new())
        );
    }

    #[test]
    fn hostile_manifests_give_no_references() {
        let layer = |size: &str, digest: &str| {
            format!(r#"{{"layers":[{{"mediaType":"l","digest":"{digest}","size":{size}}}]}}"#)
        };
        let ok = d(7);
        assert!(references(layer("0", &ok).as_bytes()).is_some());
        for bad in [
            layer("-1", &ok),
            layer("9223372036854775808", &ok),
            layer("1e3", &ok),
            layer("1.5", &ok),
            layer("1", "sha256:1"),
            layer("1", "sha256:ABCD"),
            layer("1", ""),
            r#"{"layers":{}}"#.to_string(),
            r#"[]"#.to_string(),
            r#""text""#.to_string(),
            r#"{"config":{"digest":1}}"#.to_string(),
            r#"{"layers":[1]}"#.to_string(),
            "{".repeat(10_000),
            "[".repeat(100_000),
            format!(r#"{{"layers":[{}]}}"#, "{},".repeat(20_000)),
            format!(r#"{{"annotations":[{}0]}}"#, "0,".repeat(300_000)),
        ] {
            let shown: String = bad.chars().take(80).collect();
            assert_eq!(references(bad.as_bytes()), None, "{shown}");
        }
        // Larger than a manifest may be.
        let mut big = layer("1", &ok).into_bytes();
        big.extend(std::iter::repeat_n(b' ', MAX_MANIFEST));
        assert_eq!(references(&big), None);
        // Brackets and commas inside strings are not counted.
        let quoted = format!(
            r#"{{"layers":[{{"mediaType":"{}\"\\","digest":"{ok}","size":1}}]}}"#,
            "[,{".repeat(100_000)
        );
        assert!(quoted.len() < MAX_MANIFEST);
        assert_eq!(references(quoted.as_bytes()).map(|r| r.len()), Some(1));
    }

    proptest! {
        #![proptest_config(crate::layer::route::proptest_config(256))]

        /// Any bytes: no panic. (Long run: `PROPTEST_CASES=200000 cargo test --all-features --lib manifest`.)
        #[test]
        fn any_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = references(&body);
        }

        /// JSON made of manifest-like pieces: no panic, and references only when well formed.
        #[test]
        fn manifest_like_json(
            pieces in proptest::collection::vec(prop_oneof![
                Just("{".to_string()), Just("}".to_string()), Just("[".to_string()), Just("]".to_string()),
                Just(",".to_string()), Just(":".to_string()), Just("\"layers\"".to_string()),
                Just("\"manifests\"".to_string()), Just("\"config\"".to_string()), Just("\"size\"".to_string()),
                Just("\"digest\"".to_string()), Just(format!("\"{}\"", d(1))), Just("-1".to_string()),
                Just("9223372036854775807".to_string()), Just("null".to_string()), Just("\"\\\\\"".to_string()),
            ], 0..64)
        ) {
            let body = pieces.concat();
            if let Some(refs) = references(body.as_bytes()) {
                prop_assert!(well_formed(&refs));
            }
        }
    }
}
