//! Checks of the events delivered during conformance runs (tests/conformance.rs):
//! what makes an event malformed or odd, and how the reference's events (CNCF
//! Distribution's own) differ from the proxy's for the same traffic.

use std::collections::BTreeMap;

use serde_json::Value;

use super::suite::SuiteRun;
use crate::support::checks::digest_ok;

/// Digests of empty content: the only blobs whose events may say `size: 0`.
const EMPTY_DIGESTS: [&str; 2] = [
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
];

fn str_at<'a>(e: &'a Value, pointer: &str) -> Option<&'a str> {
    e.pointer(pointer).and_then(Value::as_str)
}

/// What makes an event malformed: an action outside push/pull/mount/delete, a
/// missing repository, a digest that is not one (an empty digest counts as
/// absent, as in Distribution 3's tag deletes), a negative or non-integer size,
/// a push/pull/mount without digest or size, a missing request method or host.
pub fn malformed(e: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let action = str_at(e, "/action").unwrap_or("");
    if !["push", "pull", "mount", "delete"].contains(&action) {
        problems.push(format!("action {action:?}"));
    }
    if str_at(e, "/id").is_none_or(str::is_empty) {
        problems.push("no id".into());
    }
    if str_at(e, "/timestamp").is_none_or(str::is_empty) {
        problems.push("no timestamp".into());
    }
    if str_at(e, "/target/repository").is_none_or(str::is_empty) {
        problems.push("no target.repository".into());
    }
    let digest = str_at(e, "/target/digest").unwrap_or("");
    if !digest.is_empty() && !digest_ok(digest) {
        problems.push(format!("target.digest {digest:?} is no digest"));
    }
    match e.pointer("/target/size") {
        None => {}
        Some(v) if v.as_i64().is_some_and(|n| n >= 0) => {}
        Some(v) => problems.push(format!("target.size {v}")),
    }
    if action != "delete" {
        if digest.is_empty() {
            problems.push(format!("{action} without target.digest"));
        }
        if e.pointer("/target/size").is_none() {
            problems.push(format!("{action} without target.size"));
        }
    }
    let method = str_at(e, "/request/method").unwrap_or("");
    if !["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"].contains(&method) {
        problems.push(format!("request.method {method:?}"));
    }
    if str_at(e, "/request/host").is_none_or(str::is_empty) {
        problems.push("no request.host".into());
    }
    problems
}

/// What is well formed yet odd: `size: 0` for content that is not empty,
/// `length` ≠ `size`, a `url` naming another digest, a manifest without media
/// type, a mount without `fromRepository`, a delete naming nothing.
pub fn oddities(e: &Value) -> Vec<String> {
    let mut odd = Vec::new();
    let action = str_at(e, "/action").unwrap_or("");
    let digest = str_at(e, "/target/digest").unwrap_or("");
    let size = e.pointer("/target/size").and_then(Value::as_i64);
    let url = str_at(e, "/target/url").unwrap_or("");
    if action != "delete" && size == Some(0) && !EMPTY_DIGESTS.contains(&digest) {
        odd.push(format!("size 0 for {digest}"));
    }
    if let Some(length) = e.pointer("/target/length").and_then(Value::as_i64) {
        if Some(length) != size {
            odd.push(format!("length {length} but size {size:?}"));
        }
    }
    if !url.is_empty() && !digest.is_empty() && url.rsplit('/').next() != Some(digest) {
        odd.push(format!("url {url} names another digest than {digest}"));
    }
    if action != "delete"
        && url.contains("/manifests/")
        && str_at(e, "/target/mediaType").is_none_or(str::is_empty)
    {
        odd.push("manifest without mediaType".into());
    }
    if action == "mount" && str_at(e, "/target/fromRepository").is_none_or(str::is_empty) {
        odd.push("mount without fromRepository".into());
    }
    if action == "delete" && digest.is_empty() && str_at(e, "/target/tag").is_none_or(str::is_empty) {
        odd.push("delete of neither a digest nor a tag".into());
    }
    odd
}

/// A compact one-line view of an event.
pub fn brief(e: &Value) -> String {
    let s = |p: &str| str_at(e, p).unwrap_or("");
    format!(
        "{} {} {} {}{}{} size={} mediaType={:?} ua={:?}",
        s("/action"),
        s("/request/method"),
        s("/target/repository"),
        s("/target/digest"),
        if s("/target/tag").is_empty() { "" } else { " tag=" },
        s("/target/tag"),
        e.pointer("/target/size")
            .map(Value::to_string)
            .unwrap_or_default(),
        s("/target/mediaType"),
        s("/request/useragent"),
    )
}

/// Events counted per action.
pub fn by_action<'a>(events: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts
            .entry(str_at(e, "/action").unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// Checks `events` (delivered by `who`): returns the malformed ones, each with
/// its problems and the testcases whose exchanges name its digest; prints the
/// odd but well-formed ones.
pub fn check_events(who: &str, events: &[Value], run: &SuiteRun) -> Vec<String> {
    let mut bad = Vec::new();
    let mut odd: BTreeMap<String, (usize, Value, Vec<String>)> = BTreeMap::new();
    let tests_of = |e: &Value| {
        let digest = e["target"]["digest"].as_str().unwrap_or("");
        let mut tests = if digest.is_empty() {
            Vec::new()
        } else {
            run.mentioning(digest)
        };
        tests.truncate(3);
        tests
    };
    for e in events {
        let problems = malformed(e);
        if !problems.is_empty() {
            bad.push(format!(
                "{who}: {problems:?} in {} (tests {:?})\n  {e}",
                brief(e),
                tests_of(e)
            ));
        }
        for o in oddities(e) {
            let entry = odd.entry(format!("{o} [{} {}]", e["action"], e["request"]["method"]));
            entry.or_insert_with(|| (0, e.clone(), tests_of(e))).0 += 1;
        }
    }
    for (what, (n, e, tests)) in &odd {
        eprintln!("{who}: odd ×{n}: {what}; e.g. in tests {tests:?}:\n  {e}");
    }
    bad
}

/// Items counted.
pub fn count<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// What an event says about the content, for comparing the reference's events
/// with the proxy's (ids, timestamps, addresses and sources differ by nature).
pub fn essence(e: &Value) -> String {
    let t = &e["target"];
    format!(
        "{} {} {} from={} tag={} digest={} size={} mediaType={}",
        e["action"].as_str().unwrap_or(""),
        e["request"]["method"].as_str().unwrap_or(""),
        t["repository"].as_str().unwrap_or(""),
        t["fromRepository"].as_str().unwrap_or(""),
        t["tag"].as_str().unwrap_or(""),
        t["digest"].as_str().unwrap_or(""),
        t["size"],
        t["mediaType"].as_str().unwrap_or(""),
    )
}

/// `left` minus `right`, as multisets.
pub fn minus(left: &[String], right: &[String]) -> BTreeMap<String, usize> {
    let mut m = count(left.iter().cloned());
    for r in right {
        if let Some(n) = m.get_mut(r) {
            *n -= 1;
            if *n == 0 {
                m.remove(r);
            }
        }
    }
    m
}

/// How the reference's events (A) for the proxied traffic differ from the proxy's (B).
pub struct EventDiff {
    /// (A, B) pairs alike but for B's `size: 0` where A has the size.
    pub size_lost: Vec<(Value, Value)>,
    /// The rest, at A only and at B only.
    pub only_a: Vec<Value>,
    pub only_b: Vec<Value>,
}

/// Takes out of `a` and `b` the pairs for which `alike` holds; returns them.
pub fn pair_off(
    a: &mut Vec<Value>,
    b: &mut Vec<Value>,
    alike: impl Fn(&Value, &Value) -> bool,
) -> Vec<(Value, Value)> {
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < a.len() {
        match b.iter().position(|y| alike(&a[i], y)) {
            Some(j) => pairs.push((a.remove(i), b.remove(j))),
            None => i += 1,
        }
    }
    pairs
}

/// Compares A's and B's events as multisets of [`essence`]; of what differs,
/// pairs off the events B sent with `size: 0` where A has the size, and prints
/// it all, each event with the testcases whose exchanges name its digest.
pub fn compare_events(a: &[Value], b: &[Value], run: &SuiteRun) -> EventDiff {
    let (ra, rb): (Vec<String>, Vec<String>) =
        (a.iter().map(essence).collect(), b.iter().map(essence).collect());
    let sample = |events: &[Value], key: &str| events.iter().find(|e| essence(e) == key).cloned().unwrap();
    let mut only_a: Vec<Value> = Vec::new();
    let mut only_b: Vec<Value> = Vec::new();
    for (key, n) in minus(&ra, &rb) {
        only_a.extend(std::iter::repeat_n(sample(a, &key), n));
    }
    for (key, n) in minus(&rb, &ra) {
        only_b.extend(std::iter::repeat_n(sample(b, &key), n));
    }
    let (n_a, n_b) = (only_a.len(), only_b.len());
    let without = |e: &Value, field: &str| {
        let mut e = e.clone();
        e["target"][field] = Value::Null;
        essence(&e)
    };
    let size_lost = pair_off(&mut only_a, &mut only_b, |x, y| {
        y["target"]["size"] == 0 && x["target"]["size"] != 0 && without(x, "size") == without(y, "size")
    });
    eprintln!(
        "reference (A) vs proxy (B) events: {n_a} only at A, {n_b} only at B, of which {} pairs differ \
         only by B's size 0",
        size_lost.len()
    );
    let tests = |e: &Value| {
        let mut t = run.mentioning(e["target"]["digest"].as_str().unwrap_or(""));
        t.truncate(4);
        t
    };
    for (x, y) in &size_lost {
        eprintln!(
            "  SIZE LOST at B: {} where A has size {} (tests {:?})\n    B's event: {y}",
            brief(y),
            x["target"]["size"],
            tests(y)
        );
    }
    for (side, events) in [("A", &only_a), ("B", &only_b)] {
        for e in events.iter() {
            eprintln!("  only at {side}: {} (tests {:?})", brief(e), tests(e));
        }
    }
    EventDiff {
        size_lost,
        only_a,
        only_b,
    }
}

/// Whether `tag` is a tag by the distribution spec (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
pub fn valid_tag(tag: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
    !tag.is_empty() && tag.len() <= 128 && !tag.starts_with(['.', '-']) && tag.bytes().all(ok)
}

/// Sorts the reference's events that have no counterpart at the proxy into its
/// known faults and the unexplained rest. The one known: a `push` naming a tag
/// that is no tag (Distribution stores the `PUT` of a manifest by
/// `sha256:baddigeststring`, reports it, and answers `500`; the layer emits no
/// event for a failed request).
pub fn reference_faults(only_a: &[Value]) -> (Vec<String>, Vec<String>) {
    let mut known = Vec::new();
    let mut unexplained = Vec::new();
    for e in only_a {
        let tag = e["target"]["tag"].as_str().unwrap_or("");
        if e["action"] == "push" && !tag.is_empty() && !valid_tag(tag) {
            known.push(format!("push for tag {tag:?} (a PUT answered 500): {}", brief(e)));
        } else {
            unexplained.push(brief(e));
        }
    }
    (known, unexplained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn push() -> Value {
        json!({
            "id": "e1", "timestamp": "2026-12-04T19:01:10Z", "action": "push",
            "target": {
                "mediaType": "application/octet-stream",
                "digest": EMPTY_DIGESTS[0].replace("e3b0", "e3b1"),
                "size": 3, "length": 3, "repository": "r",
                "url": format!("http://h/v2/r/blobs/{}", EMPTY_DIGESTS[0].replace("e3b0", "e3b1")),
            },
            "request": {"id": "q", "addr": "127.0.0.1:1", "host": "h", "method": "PUT", "useragent": "u"},
            "actor": {}, "source": {"addr": "s:1"},
        })
    }

    #[test]
    fn a_well_formed_event_passes() {
        assert!(malformed(&push()).is_empty(), "{:?}", malformed(&push()));
        assert!(oddities(&push()).is_empty(), "{:?}", oddities(&push()));
        // Distribution 3's tag delete: empty digest and media type, size 0.
        let tag_delete = json!({
            "id": "e2", "timestamp": "t", "action": "delete",
            "target": {"mediaType": "", "digest": "", "size": 0, "repository": "r", "tag": "v1"},
            "request": {"method": "DELETE", "host": "h"},
        });
        assert!(malformed(&tag_delete).is_empty());
        assert!(oddities(&tag_delete).is_empty());
    }

    #[test]
    fn each_fault_is_named() {
        let with = |pointer: &str, v: Value| {
            let mut e = push();
            *e.pointer_mut(pointer).unwrap() = v;
            e
        };
        for (e, problem) in [
            (with("/action", json!("tag")), "action"),
            (with("/target/repository", json!("")), "repository"),
            (with("/target/digest", json!("sha256:abc")), "no digest"),
            (with("/target/digest", json!("")), "without target.digest"),
            (with("/target/size", json!(-1)), "target.size"),
            (with("/target/size", json!(1.5)), "target.size"),
            (with("/request/method", json!("")), "request.method"),
            (with("/request/host", json!(null)), "request.host"),
        ] {
            let found = malformed(&e);
            assert!(found.iter().any(|p| p.contains(problem)), "{problem}: {found:?}");
        }
        let zero = with("/target/size", json!(0));
        assert!(malformed(&zero).is_empty());
        assert!(
            oddities(&zero).iter().any(|o| o.starts_with("size 0")),
            "{:?}",
            oddities(&zero)
        );
    }

    /// The grammar of `support::checks::digest_ok` (shared with the layer's fault tests).
    #[test]
    fn digest_grammar_restated() {
        assert!(digest_ok(&format!("sha256:{}", "a".repeat(64))));
        assert!(!digest_ok(&format!("sha256:{}", "A".repeat(64))));
        assert!(digest_ok(&format!("sha512:{}", "0".repeat(128))));
        assert!(!digest_ok(&format!("sha512:{}", "0".repeat(127))));
        assert!(digest_ok(
            "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"
        ));
        for bad in ["", ":", "foo:", "-a:x", "a..b:x", "a:", ":x", "é:x", "a:x y"] {
            assert!(!digest_ok(bad), "{bad}");
        }
    }

    #[test]
    fn tags_by_the_spec() {
        assert!(valid_tag("v1.0_rc-1") && valid_tag("_x") && valid_tag(&"a".repeat(128)));
        assert!(!valid_tag("sha256:baddigeststring") && !valid_tag(".x") && !valid_tag("-x"));
        assert!(!valid_tag("") && !valid_tag(&"a".repeat(129)));
    }

    proptest! {
        // Seeded; `PROPTEST_CASES` sets the number of cases (256 by default). A long run:
        // `PROPTEST_CASES=100000 cargo test --all-features --test conformance digest`.
        #![proptest_config(crate::support::props::config(256, 0x0c1_d16e))]

        /// The sha256 of any content is a digest; cut short or in capitals it is not.
        #[test]
        fn sha256_digests(data in prop::collection::vec(any::<u8>(), 0..64), cut in 1usize..64) {
            use sha2::Digest;
            let hex = hex::encode(sha2::Sha256::digest(&data));
            let digest = format!("sha256:{hex}");
            prop_assert!(digest_ok(&digest));
            prop_assert!(!digest_ok(&digest[..digest.len() - cut]));
            let upper = format!("sha256:{}", hex.to_uppercase());
            let has_letters = hex.bytes().any(|b| b.is_ascii_alphabetic());
            prop_assert_eq!(digest_ok(&upper), !has_letters);
            prop_assert!(!digest_ok(&hex));
        }
    }
}
