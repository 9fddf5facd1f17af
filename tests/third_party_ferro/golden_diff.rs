//! Compares the steps of the golden scenario (`support::golden`) with the golden capture field
//! by field, allowing only the differences a table lists (step, events only the reference
//! emitted, events only ours emitted, why).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::golden::{Step, UNORDERED};

/// An expected difference between the reference's events and ours in one step, each event
/// written as by [`key`].
pub struct Deviation {
    pub step: &'static str,
    /// Events the reference emitted and we do not.
    pub golden_only: &'static [&'static str],
    /// Events we emit and the reference did not.
    pub ours_only: &'static [&'static str],
    pub reason: &'static str,
}

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Events of the golden capture for the steps replayed.
    pub golden_total: usize,
    /// Events we emitted.
    pub ours_total: usize,
    /// Our events equal, field by field, to one of the reference's in the same step.
    pub matched: usize,
    /// Differences not in the table (or listed and absent), one line per step.
    pub unexpected: Vec<String>,
    /// Per step: (name, golden events, ours, matched).
    pub per_step: Vec<(String, usize, usize, usize)>,
    /// Our events without an equal, whose digest the reference never names (so whose
    /// descriptor nothing here checked), as by [`key`].
    pub unchecked: Vec<String>,
}

/// A target's descriptor: what the reference says of a digest wherever it names it.
fn descriptor(e: &Value) -> [&Value; 3] {
    let t = &e["target"];
    [&t["mediaType"], &t["size"], &t["length"]]
}

/// An event in a few words: `action METHOD repository digest[:tag][ from repository]`, with
/// the digests `names` knows written by name (others as their first 12 hex digits).
pub fn key(e: &Value, names: &BTreeMap<String, String>) -> String {
    let t = &e["target"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let digest = s(&t["digest"]);
    let digest = names
        .get(&digest)
        .cloned()
        .unwrap_or_else(|| digest.chars().take(19).collect());
    let mut k = format!(
        "{} {} {} {digest}",
        s(&e["action"]),
        s(&e["request"]["method"]),
        s(&t["repository"])
    );
    if let Some(tag) = t["tag"].as_str() {
        k = format!("{k}:{tag}");
    }
    if let Some(from) = t["fromRepository"].as_str() {
        k = format!("{k} from {from}");
    }
    k
}

/// Compares every step with the golden capture. A step the table does not name must equal
/// the reference exactly (in order, unless its requests run concurrently); in a step it
/// names, the events that have no equal on the other side must be exactly those listed.
pub fn compare(
    steps: &[Step],
    golden: &BTreeMap<String, Vec<Value>>,
    table: &[Deviation],
    names: &BTreeMap<String, String>,
) -> Outcome {
    let mut out = Outcome::default();
    let known: BTreeMap<&str, [&Value; 3]> = golden
        .values()
        .flatten()
        .filter_map(|e| Some((e["target"]["digest"].as_str()?, descriptor(e))))
        .collect();
    for step in steps {
        let want = golden
            .get(&step.name)
            .unwrap_or_else(|| panic!("no golden step {}", step.name));
        out.golden_total += want.len();
        out.ours_total += step.events.len();
        let (mut got, mut want) = (step.events.clone(), want.clone());
        let deviation = table.iter().find(|d| d.step == step.name);
        if deviation.is_none() && !UNORDERED.contains(&step.name.as_str()) {
            let matched = got.iter().zip(&want).filter(|(g, w)| g == w).count();
            out.matched += matched;
            out.per_step
                .push((step.name.clone(), want.len(), got.len(), matched));
            if got != want {
                out.unexpected.push(format!(
                    "{}: got {}\n  want {}",
                    step.name,
                    serde_json::to_string_pretty(&got).unwrap(),
                    serde_json::to_string_pretty(&want).unwrap()
                ));
            }
            continue;
        }
        // Pair equal events; what is left on each side is the difference.
        let mut matched = 0;
        got.retain(|g| match want.iter().position(|w| w == g) {
            Some(i) => {
                want.remove(i);
                matched += 1;
                false
            }
            None => true,
        });
        out.matched += matched;
        out.per_step.push((
            step.name.clone(),
            matched + want.len(),
            matched + got.len(),
            matched,
        ));
        // An event only we emit still describes its blob or manifest as the reference does.
        for e in &got {
            match e["target"]["digest"].as_str().and_then(|d| known.get(d)) {
                Some(want) if *want != descriptor(e) => out.unexpected.push(format!(
                    "{}: {} describes its digest as {:?}, the reference as {want:?}",
                    step.name,
                    key(e, names),
                    descriptor(e)
                )),
                Some(_) => {}
                None => out.unchecked.push(format!("{}: {}", step.name, key(e, names))),
            }
        }
        let sorted_keys = |v: &[Value]| {
            let mut k: Vec<String> = v.iter().map(|e| key(e, names)).collect();
            k.sort();
            k
        };
        let (ours_only, golden_only) = (sorted_keys(&got), sorted_keys(&want));
        let listed = |l: &[&str]| {
            let mut v: Vec<String> = l.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let (want_ours, want_golden) =
            deviation.map_or((vec![], vec![]), |d| (listed(d.ours_only), listed(d.golden_only)));
        if ours_only != want_ours || golden_only != want_golden {
            out.unexpected.push(format!(
                "{}: only ours {ours_only:#?} (listed {want_ours:?})\n  only the reference's {golden_only:#?} \
                 (listed {want_golden:?})\n  unpaired ours: {}",
                step.name,
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    out
}
