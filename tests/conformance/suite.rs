//! Helpers of tests/conformance.rs: the OCI distribution-spec conformance suite
//! (`oci-conformance`) run against a registry on 127.0.0.1, its `junit.xml` read
//! back test by test, and CNCF Distribution's access log read back.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support::process::logged;

/// Guard against a hung suite run (a run takes seconds); never an assertion about speed.
pub const SUITE_GUARD: Duration = Duration::from_secs(300);

/// The repositories the suite works in.
pub const REPO1: &str = "conformance/repo1";
/// The second repository (cross-repository mounts).
pub const REPO2: &str = "conformance/repo2";

/// A testcase's outcome in `junit.xml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// `status="passed"`.
    Pass,
    /// `status="failure"` (or `failed`, `error`).
    Fail,
    /// `status="skipped"` (or `disabled`).
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        })
    }
}

/// One `<testcase>` of `junit.xml`.
#[derive(Clone, Debug)]
pub struct Case {
    /// Its `name`. Names repeat (e.g. `image/push/blob-post-put` once per
    /// blob), in an order that may change from run to run (the suite ranges
    /// over Go maps): compare the outcomes of a name as a multiset.
    pub name: String,
    pub outcome: Outcome,
    /// The decoded text inside the element (the requests and responses it logged).
    pub text: String,
}

/// A finished suite run.
pub struct SuiteRun {
    pub cases: Vec<Case>,
    /// The suite's console output (for failure messages).
    pub log: String,
}

impl SuiteRun {
    /// (pass, fail, skip).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |o| self.cases.iter().filter(|c| c.outcome == o).count();
        (n(Outcome::Pass), n(Outcome::Fail), n(Outcome::Skip))
    }

    pub fn summary(&self) -> String {
        let (p, f, s) = self.counts();
        format!("{} testcases: {p} pass, {f} fail, {s} skip", self.cases.len())
    }

    /// The outcomes of each testcase name, sorted.
    pub fn outcomes(&self) -> BTreeMap<String, Vec<Outcome>> {
        let mut m: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
        for c in &self.cases {
            m.entry(c.name.clone()).or_default().push(c.outcome);
        }
        for outcomes in m.values_mut() {
            outcomes.sort();
        }
        m
    }

    /// Names of the testcases whose logged exchanges mention `needle`.
    pub fn mentioning(&self, needle: &str) -> Vec<String> {
        self.cases
            .iter()
            .filter(|c| c.text.contains(needle))
            .map(|c| c.name.clone())
            .collect()
    }

    /// Names of the failed testcases.
    pub fn failed(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Runs the conformance suite (every workflow) against `registry` over plain
/// HTTP, with its results in `dir`; returns its testcases from `junit.xml`.
pub async fn run_suite(bin: &Path, registry: SocketAddr, dir: &Path) -> SuiteRun {
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let log_path = dir.join("suite.log");
    let root = format!("http://{registry}");
    let mut child = logged(bin, &log_path)
        .env("OCI_REGISTRY", registry.to_string())
        .env("OCI_TLS", "disabled")
        .env("OCI_REPO1", REPO1)
        .env("OCI_REPO2", REPO2)
        .env("OCI_RESULTS_DIR", &results)
        .env("OCI_LOG", "warn")
        .env("OCI_ROOT_URL", &root)
        .env("OCI_NAMESPACE", REPO1)
        .env("OCI_CROSSMOUNT_NAMESPACE", REPO2)
        .env("OCI_TEST_PULL", "1")
        .env("OCI_TEST_PUSH", "1")
        .env("OCI_TEST_CONTENT_DISCOVERY", "1")
        .env("OCI_TEST_CONTENT_MANAGEMENT", "1")
        .current_dir(dir)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    // It exits 1 when a test failed: the outcomes are read from junit.xml.
    tokio::time::timeout(SUITE_GUARD, child.wait())
        .await
        .expect("the conformance suite hung")
        .expect("wait for the conformance suite");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let xml = std::fs::read_to_string(results.join("junit.xml"))
        .unwrap_or_else(|e| panic!("no junit.xml ({e}); suite output:\n{log}"));
    let cases = parse_junit(&xml);
    assert!(
        !cases.is_empty(),
        "junit.xml has no testcase; suite output:\n{log}"
    );
    SuiteRun { cases, log }
}

/// The `<testcase>` elements of a junit.xml, in document order.
pub fn parse_junit(xml: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<testcase") {
        rest = &rest[start + "<testcase".len()..];
        let head_end = rest.find('>').expect("unterminated <testcase");
        let head = &rest[..head_end];
        let name = attribute(head, "name").expect("testcase without name");
        let status = attribute(head, "status").unwrap_or_default();
        let text = if head.ends_with('/') {
            String::new()
        } else {
            let body = &rest[head_end + 1..];
            let end = body.find("</testcase>").expect("unterminated testcase");
            decode(&body[..end])
        };
        let outcome = match status.as_str() {
            "passed" | "success" => Outcome::Pass,
            "failure" | "failed" | "error" => Outcome::Fail,
            "skipped" | "disabled" | "pending" => Outcome::Skip,
            other => panic!("testcase {name}: unknown status {other:?}"),
        };
        cases.push(Case { name, outcome, text });
    }
    cases
}

/// The decoded value of `name="…"` in a start tag's attributes.
fn attribute(head: &str, name: &str) -> Option<String> {
    let pat = format!(" {name}=\"");
    let start = head.find(&pat)? + pat.len();
    let len = head[start..].find('"')?;
    Some(decode(&head[start..start + len]))
}

/// Decodes XML character references and the five predefined entities.
pub fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One line of Distribution's access log (Apache combined format).
#[derive(Clone, Debug)]
pub struct Access {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub useragent: String,
}

/// The requests in a Distribution log (its access-log lines, other lines skipped).
pub fn access_log(log: &Path) -> Vec<Access> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter_map(parse_access).collect()
}

fn parse_access(line: &str) -> Option<Access> {
    // 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "referer" "user agent"
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once('"')?;
    let mut words = request.split(' ');
    let method = words.next()?.to_string();
    let path = words.next()?.to_string();
    let status = rest.trim_start().split(' ').next()?.parse().ok()?;
    let useragent = rest.trim_end().strip_suffix('"')?.rsplit_once('"')?.1.to_string();
    Some(Access {
        method,
        path,
        status,
        useragent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Escapes as Go's `encoding/xml` does in attribute values and text.
    fn escape(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '"' => out.push_str("&#34;"),
                '\'' => out.push_str("&#39;"),
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\t' => out.push_str("&#x9;"),
                '\n' => out.push_str("&#xA;"),
                '\r' => out.push_str("&#xD;"),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn junit_testcases_with_outcomes_and_text() {
        let xml = r#"<testsuites tests="4"><testsuite name="S">
<testcase name="S/a &amp; b" classname="" time="0.1" status="passed"><system-err>GET&#xA;URL: x</system-err></testcase>
<testcase name="S/a &amp; b" classname="" status="failure"><system-out>boom</system-out></testcase>
<testcase name="S/c" status="skipped"/>
<testcase name="S/d" status="disabled"></testcase>
</testsuite></testsuites>"#;
        let cases = parse_junit(xml);
        let got: Vec<(&str, Outcome)> = cases.iter().map(|c| (c.name.as_str(), c.outcome)).collect();
        assert_eq!(
            got,
            [
                ("S/a & b", Outcome::Pass),
                ("S/a & b", Outcome::Fail),
                ("S/c", Outcome::Skip),
                ("S/d", Outcome::Skip)
            ]
        );
        assert_eq!(cases[0].text, "<system-err>GET\nURL: x</system-err>");
        let run = SuiteRun {
            cases,
            log: String::new(),
        };
        assert_eq!(run.counts(), (1, 1, 2));
        assert_eq!(run.outcomes()["S/a & b"], [Outcome::Pass, Outcome::Fail]);
        assert_eq!(run.mentioning("URL: x"), ["S/a & b"]);
    }

    #[test]
    fn access_log_lines_and_nothing_else() {
        let line = r#"127.0.0.1 - - [04/Dec/2026:19:01:10 +0000] "GET /v2/r/tags/list?n=10 HTTP/1.1" 200 2 "" "registry-notify-proxy/0.1.0 (lookup)""#;
        let a = parse_access(line).unwrap();
        assert_eq!(
            (a.method.as_str(), a.path.as_str(), a.status, a.useragent.as_str()),
            (
                "GET",
                "/v2/r/tags/list?n=10",
                200,
                "registry-notify-proxy/0.1.0 (lookup)"
            )
        );
        assert!(
            parse_access(r#"time="2026-12-04T19:01:09Z" level=info msg="redis not configured""#).is_none()
        );
        assert!(parse_access("").is_none());
    }

    proptest! {
        // Seeded; `PROPTEST_CASES` sets the number of cases (256 by default). A long run:
        // `PROPTEST_CASES=100000 cargo test --all-features --test conformance decode`.
        #![proptest_config(crate::support::props::config(256, 0x0c1_c0f0))]

        /// Any name, escaped as Go writes it, decodes back to itself.
        #[test]
        fn escaped_names_decode_back(name in any::<String>(), status in prop::sample::select(vec!["passed", "failure", "skipped"])) {
            let xml = format!("<testcase name=\"{}\" status=\"{status}\"><system-err>{}</system-err></testcase>", escape(&name), escape(&name));
            let cases = parse_junit(&xml);
            prop_assert_eq!(cases.len(), 1);
            prop_assert_eq!(&cases[0].name, &name);
            prop_assert_eq!(&cases[0].text, &format!("<system-err>{name}</system-err>"));
        }

        /// Decoding never panics, whatever the text.
        #[test]
        fn decode_takes_any_text(s in "(&|#|x|;|[0-9a-fA-F]|[a-z]){0,40}") {
            let _ = decode(&s);
        }
    }
}
