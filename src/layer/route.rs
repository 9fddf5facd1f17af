//! Parsing registry API paths (distribution-spec v1.1) into routes.
//!
//! Anything that does not parse — unknown paths, names that violate the
//! grammar, invalid digests or tags — is `None`, and the request passes through
//! the layer untouched.

/// A manifest reference: a tag or a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reference<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

/// The registry API routes that can yield events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: Reference<'a> },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/<name>/blobs/uploads/` (POST: start, monolithic or mount)
    UploadStart { name: &'a str },
    /// `/v2/<name>/blobs/uploads/<session>`
    Upload { name: &'a str },
}

/// A parsed path: the prefix before `/v2/` and the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) route: Route<'a>,
}

impl<'a> Parsed<'a> {
    pub(crate) fn name(&self) -> &'a str {
        match self.route {
            Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name } => name,
        }
    }
}

/// Parses a request path. `/v2/` may be preceded by a prefix (`/registry/v2/…`).
pub(crate) fn parse(path: &str) -> Option<Parsed<'_>> {
    if path.len() > 4096 {
        return None;
    }
    let at = if path.starts_with("/v2/") {
        0
    } else {
        path.find("/v2/")?
    };
    let prefix = &path[..at];
    let rest = &path[at + 4..];
    // The last API verb splits the name from the rest: a repository may itself
    // have components called "manifests" or "blobs".
    let (m, b) = match last_verb(rest) {
        Some((i, true)) => (Some(i), None),
        Some((i, false)) => (None, Some(i)),
        None => (None, None),
    };
    let route = match (m, b) {
        (Some(i), _) => {
            let (name, reference) = (&rest[..i], &rest[i + "/manifests/".len()..]);
            let reference = if reference.as_bytes().contains(&b':') {
                Reference::Digest(valid_digest(reference)?)
            } else {
                Reference::Tag(valid_tag(reference)?)
            };
            Route::Manifest {
                name: valid_name(name)?,
                reference,
            }
        }
        (_, Some(i)) => {
            let name = valid_name(&rest[..i])?;
            let tail = &rest[i + "/blobs/".len()..];
            match tail.strip_prefix("uploads") {
                Some("" | "/") => Route::UploadStart { name },
                Some(session) => {
                    let session = session.strip_prefix('/')?;
                    if session.contains('/') {
                        return None;
                    }
                    Route::Upload { name }
                }
                None => Route::Blob {
                    name,
                    digest: valid_digest(tail)?,
                },
            }
        }
        _ => return None,
    };
    Some(Parsed { prefix, route })
}

/// The position of the last `/manifests/` (`true`) or `/blobs/` (`false`) in `rest`,
/// whichever comes later; one backward scan over the slashes.
fn last_verb(rest: &str) -> Option<(usize, bool)> {
    let b = rest.as_bytes();
    let mut i = b.len();
    while i > 0 {
        i -= 1;
        if b[i] != b'/' {
            continue;
        }
        let tail = &b[i + 1..];
        if tail.starts_with(b"manifests/") {
            return Some((i, true));
        }
        if tail.starts_with(b"blobs/") {
            return Some((i, false));
        }
    }
    None
}

/// Repository name grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, ≤ 255 bytes.
///
/// One pass of a small automaton over the bytes (two table lookups a byte).
pub(crate) fn valid_name(name: &str) -> Option<&str> {
    if name.is_empty() || name.len() > 255 {
        return None;
    }
    let mut state = name::START;
    for &c in name.as_bytes() {
        state = name::NEXT[usize::from(state)][usize::from(name::CLASS[usize::from(c)])];
    }
    (state == name::ALNUM).then_some(name)
}

/// The automaton of [`valid_name`].
mod name {
    /// Byte classes.
    const OTHER: u8 = 0;
    const ALNUM_C: u8 = 1;
    const DOT: u8 = 2;
    const UNDERSCORE: u8 = 3;
    const DASH: u8 = 4;
    const SLASH: u8 = 5;

    /// The class of each byte.
    pub(super) const CLASS: [u8; 256] = {
        let mut t = [OTHER; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = match b {
                b'a'..=b'z' | b'0'..=b'9' => ALNUM_C,
                b'.' => DOT,
                b'_' => UNDERSCORE,
                b'-' => DASH,
                b'/' => SLASH,
                _ => OTHER,
            };
            c += 1;
        }
        t
    };

    /// States: where a component starts (the name's start, after `/`), after an
    /// alphanumeric (the only accepting state), after a separator (`.`, `_`, `__`, dashes)
    /// that must be followed by an alphanumeric, and failed.
    pub(super) const START: u8 = 0;
    pub(super) const ALNUM: u8 = 1;
    const AFTER_DOT: u8 = 2;
    const AFTER_UNDERSCORE: u8 = 3;
    const AFTER_TWO_UNDERSCORES: u8 = 4;
    const AFTER_DASH: u8 = 5;
    const FAILED: u8 = 6;

    /// `NEXT[state][class]`.
    pub(super) const NEXT: [[u8; 6]; 7] = {
        let f = FAILED;
        // Columns: other, alphanumeric, `.`, `_`, `-`, `/`.
        [
            [f, ALNUM, f, f, f, f],                                     // START
            [f, ALNUM, AFTER_DOT, AFTER_UNDERSCORE, AFTER_DASH, START], // ALNUM
            [f, ALNUM, f, f, f, f],                                     // AFTER_DOT
            [f, ALNUM, f, AFTER_TWO_UNDERSCORES, f, f],                 // AFTER_UNDERSCORE
            [f, ALNUM, f, f, f, f],                                     // AFTER_TWO_UNDERSCORES
            [f, ALNUM, f, f, AFTER_DASH, f],                            // AFTER_DASH
            [f, f, f, f, f, f],                                         // FAILED
        ]
    };
}

/// Whether every byte is a lowercase hex digit, eight bytes at a time.
fn lower_hex(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if !lower_hex_word(u64::from_le_bytes(word)) {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Whether all eight bytes of `w` are in `0-9` or `a-f`: per byte, `c - 0x30 < 10` or
/// `c - 0x61 < 6`, computed on every byte at once (no byte borrows from its neighbour,
/// since every byte is first checked to be below 0x80).
fn lower_hex_word(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if w & HIGH != 0 {
        return false;
    }
    // For ASCII bytes `x`, `(x + 0x80 - n) & 0x80` is set iff `x >= n`.
    let ge = |n: u64| (w + ONES * (0x80 - n)) & HIGH;
    let digit = ge(0x30) & !ge(0x3a);
    let letter = ge(0x61) & !ge(0x67);
    // (The two ranges are disjoint, so `|` and `^` agree here.)
    (digit | letter) == HIGH
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> Option<&str> {
    let b = tag.as_bytes();
    let first_ok = b.first().is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
    let rest_ok = b
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    (first_ok && rest_ok && b.len() <= 128).then_some(tag)
}

/// Digest grammar (go-digest, as Distribution checks it): `algorithm:encoded`, algorithm
/// `[a-z0-9]+([+._-][a-z0-9]+)*`, encoded `[a-zA-Z0-9=_-]+`, at most 255 bytes; sha256,
/// sha384 and sha512 need 64, 96 and 128 lowercase hex digits. Other algorithms pass
/// (the distribution-spec allows them; Distribution itself refuses them).
pub(crate) fn valid_digest(digest: &str) -> Option<&str> {
    if let Some(hex) = digest.strip_prefix("sha256:") {
        // The common case; lowercase hex is within the general encoded grammar.
        return (hex.len() == 64 && lower_hex(hex.as_bytes())).then_some(digest);
    }
    let (alg, enc) = digest.split_once(':')?;
    if digest.len() > 255 || alg.is_empty() || enc.is_empty() {
        return None;
    }
    let ab = alg.as_bytes();
    if !is_alnum(ab[0]) || !is_alnum(ab[ab.len() - 1]) {
        return None;
    }
    let mut prev_sep = false;
    for &c in ab {
        let sep = matches!(c, b'+' | b'.' | b'_' | b'-');
        if !(is_alnum(c) || sep) || (sep && prev_sep) {
            return None;
        }
        prev_sep = sep;
    }
    if !enc
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'=' | b'_' | b'-'))
    {
        return None;
    }
    let hex = |n: usize| enc.len() == n && lower_hex(enc.as_bytes());
    match alg {
        "sha384" if !hex(96) => None,
        "sha512" if !hex(128) => None,
        _ => Some(digest),
    }
}

/// The configuration of the crate's property tests: 256 cases from a fixed seed unless
/// `PROPTEST_CASES` or `PROPTEST_RNG_SEED` say otherwise (long runs), no failure files.
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let default = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            default.rng_seed
        } else {
            RngSeed::Fixed(0x5eed)
        },
        failure_persistence: None,
        ..default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_hex_check_agrees_with_the_byte_check() {
        let naive = |b: &[u8]| {
            b.iter()
                .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        let mut buf = *b"0123456789abcdef0123";
        for len in [0, 7, 8, 9, 16, 20] {
            for pos in 0..len {
                for c in 0..=255u8 {
                    let keep = buf[pos];
                    buf[pos] = c;
                    assert_eq!(
                        lower_hex(&buf[..len]),
                        naive(&buf[..len]),
                        "byte {c:#x} at {pos} of {len}"
                    );
                    buf[pos] = keep;
                }
            }
        }
    }

    const D: &str = "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05";

    #[test]
    fn routes() {
        let path = format!("/v2/library/test/manifests/{D}");
        let p = parse(&path).unwrap();
        assert_eq!(
            p.route,
            Route::Manifest {
                name: "library/test",
                reference: Reference::Digest(D)
            }
        );
        let p = parse("/v2/a/manifests/latest").unwrap();
        assert_eq!(
            p.route,
            Route::Manifest {
                name: "a",
                reference: Reference::Tag("latest")
            }
        );
        let path = format!("/registry/v2/x/y/z/blobs/{D}");
        let p = parse(&path).unwrap();
        assert_eq!(p.prefix, "/registry");
        assert_eq!(
            p.route,
            Route::Blob {
                name: "x/y/z",
                digest: D
            }
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/").unwrap().route,
            Route::UploadStart { name: "a" }
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads").unwrap().route,
            Route::UploadStart { name: "a" }
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/abc-123").unwrap().route,
            Route::Upload { name: "a" }
        );
        // A repository may itself be called "manifests" or "blobs".
        let p = parse("/v2/manifests/blobs/manifests/v1").unwrap();
        assert_eq!(
            p.route,
            Route::Manifest {
                name: "manifests/blobs",
                reference: Reference::Tag("v1")
            }
        );
    }

    #[test]
    fn name_of_each_route() {
        let manifest = format!("/v2/a/b/manifests/{D}");
        let blob = format!("/p/v2/c/blobs/{D}");
        for (path, name) in [
            (manifest.as_str(), "a/b"),
            (blob.as_str(), "c"),
            ("/v2/d/e/f/blobs/uploads/", "d/e/f"),
            ("/v2/g/blobs/uploads/abc", "g"),
        ] {
            assert_eq!(parse(path).unwrap().name(), name, "{path}");
        }
    }

    #[test]
    fn non_routes() {
        for p in [
            "/",
            "/v2/",
            "/v2/_catalog",
            "/v2/a/tags/list",
            "/v2/A/manifests/x",
            "/v2/a//b/manifests/x",
            "/v2/a/manifests/",
            "/v2/a/manifests/sha256:zz",
            "/v2/a/blobs/latest",
            "/v2/-a/manifests/x",
            "/v2/a-/manifests/x",
            "/v2/a___b/manifests/x",
            "/v2/a/manifests/.x",
            "/v2/a/blobs/uploads/x/y",
            "/v2/a/manifests/a%20b",
            "/v2/é/manifests/x",
            "/v2/a/manifests/sha256:",
        ] {
            assert!(parse(p).is_none(), "{p}");
        }
        let long = format!("/v2/{}/manifests/x", "a".repeat(256));
        assert!(parse(&long).is_none());
        assert!(parse(&format!("/v2/a/manifests/{}", "t".repeat(129))).is_none());
    }

    /// The name grammar read component by component (the layer's implementation before the
    /// automaton), to check the automaton against.
    fn reference_name(name: &str) -> bool {
        fn component(b: &[u8]) -> bool {
            if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
                return false;
            }
            let mut i = 0;
            while i < b.len() {
                if is_alnum(b[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                match b[i] {
                    b'.' => i += 1,
                    b'_' => {
                        i += 1;
                        if b.get(i) == Some(&b'_') {
                            i += 1;
                        }
                    }
                    b'-' => {
                        while b.get(i) == Some(&b'-') {
                            i += 1;
                        }
                    }
                    _ => return false,
                }
                if i == start || !b.get(i).copied().is_some_and(is_alnum) {
                    return false;
                }
            }
            true
        }
        !name.is_empty() && name.len() <= 255 && name.as_bytes().split(|&c| c == b'/').all(component)
    }

    #[test]
    fn grammar() {
        for ok in [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "a/b/c",
            "library/hello-world",
        ] {
            assert!(valid_name(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "A", "a..b", "a._b", "_a", "a/", "/a", "a b", "a___b", "a-", "a//b", "a/-b", "a.-b", "a-.b",
        ] {
            assert!(valid_name(bad).is_none(), "{bad}");
        }
        let longest = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert!(valid_name(&longest).is_some());
        assert!(valid_name(&format!("{longest}c")).is_none());
        assert!(valid_digest("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564").is_some());
        assert!(valid_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8").is_some());
        assert!(valid_digest("sha256:ABCD").is_none());
        let path = format!("/v2/a/manifests/b/blobs/{D}");
        let p = parse(&path).unwrap();
        assert_eq!(
            p.route,
            Route::Blob {
                name: "a/manifests/b",
                digest: D
            }
        );
    }

    #[test]
    fn distribution_limits() {
        let hex = |n: usize| "0123456789abcdef".repeat(8)[..n].to_string();
        // Digests: sha512 needs 128 lowercase hex digits, sha384 96, sha256 64.
        for (alg, n) in [("sha256", 64), ("sha384", 96), ("sha512", 128)] {
            assert!(valid_digest(&format!("{alg}:{}", hex(n))).is_some(), "{alg}");
            assert!(
                valid_digest(&format!("{alg}:{}", hex(n - 1))).is_none(),
                "{alg} short"
            );
            assert!(
                valid_digest(&format!("{alg}:{}0", hex(n))).is_none(),
                "{alg} long"
            );
            assert!(
                valid_digest(&format!("{alg}:{}", hex(n).to_uppercase())).is_none(),
                "{alg} upper"
            );
            let path = format!("/v2/a/blobs/{alg}:{}", hex(n));
            assert!(parse(&path).is_some(), "{path}");
        }
        // References that are no tag and no digest.
        for bad in [
            "foo:", "-a:x", "a..b:x", "a-:x", ":x", "a:", "A:x", "a:x y", "a+:x",
        ] {
            assert!(valid_digest(bad).is_none(), "{bad}");
            assert!(parse(&format!("/v2/a/manifests/{bad}")).is_none(), "{bad}");
        }
        assert!(valid_digest("a.b+c_d-e:x").is_some());
        // Digests of other algorithms: at most 255 bytes in all.
        let other = |n: usize| format!("blake3:{}", "A".repeat(n - "blake3:".len()));
        assert!(valid_digest(&other(255)).is_some());
        assert!(valid_digest(&other(256)).is_none());
        assert!(valid_digest(&other(300)).is_none());
        // Repository names: at most 255 bytes in all.
        let name = |n: usize| format!("{}/{}", "a".repeat(n / 2), "b".repeat(n - n / 2 - 1));
        assert_eq!(name(255).len(), 255);
        assert!(parse(&format!("/v2/{}/manifests/t", name(255))).is_some());
        assert!(parse(&format!("/v2/{}/manifests/t", name(256))).is_none());
        assert!(parse(&format!("/v2/{}/manifests/t", "a".repeat(255))).is_some());
        assert!(parse(&format!("/v2/{}/manifests/t", "a".repeat(256))).is_none());
        // Paths: at most 4096 bytes (a prefix before /v2/ counts).
        let tail = "/v2/a/manifests/t";
        let path = |n: usize| format!("/{}{tail}", "p".repeat(n - tail.len() - 1));
        assert_eq!(path(4096).len(), 4096);
        assert!(parse(&path(4096)).is_some());
        assert!(parse(&path(4097)).is_none());
        // Tags: at most 128 characters.
        assert!(parse(&format!("/v2/a/manifests/{}", "t".repeat(128))).is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest_config(256))]

        /// Digests of each algorithm at and around their length, in lowercase hex or not.
        /// (Long run: `PROPTEST_CASES=200000 cargo test --all-features --lib route`.)
        #[test]
        fn digests_at_and_around_their_length(
            alg in proptest::sample::select(vec![("sha256", 64usize), ("sha384", 96), ("sha512", 128)]),
            delta in -3i32..=3,
            enc in "[0-9a-f]{140}",
            bad in proptest::option::of((0usize..140, "[g-zA-Z=_-]")),
        ) {
            let len = usize::try_from(i32::try_from(alg.1).unwrap() + delta).unwrap();
            let mut enc = enc[..len].to_string();
            if let Some((at, c)) = &bad {
                let at = at % len;
                enc.replace_range(at..=at, c);
            }
            let digest = format!("{}:{enc}", alg.0);
            let valid = delta == 0 && bad.is_none();
            proptest::prop_assert_eq!(valid_digest(&digest).is_some(), valid, "{}", digest);
        }

        /// Other algorithms: the grammar alone decides.
        #[test]
        fn other_algorithms(alg in "[a-z0-9]{1,8}([+._-][a-z0-9]{1,8}){0,3}", enc in "[a-zA-Z0-9=_-]{1,64}") {
            proptest::prop_assume!(!["sha256", "sha384", "sha512"].contains(&alg.as_str()));
            let digest = format!("{alg}:{enc}");
            proptest::prop_assert!(valid_digest(&digest).is_some(), "{}", digest);
        }

        /// The automaton accepts exactly the names the grammar's reading component by
        /// component accepts, over text made of the grammar's bytes and a few others.
        #[test]
        fn names_as_the_grammar_reads_them(name in "[a-z0-9._/-]{0,24}|[a-zA-Z0-9._/ -]{0,12}|[a-z0-9._-]{250,260}") {
            proptest::prop_assert_eq!(valid_name(&name).is_some(), reference_name(&name), "{:?}", name);
        }

        /// Any path: no panic; a route's name and digest always obey the grammar.
        #[test]
        fn any_path(path in "(/[a-z0-9:._-]{0,12}){0,8}|\\PC{0,64}") {
            if let Some(p) = parse(&path) {
                proptest::prop_assert!(valid_name(p.name()).is_some());
                if let Route::Blob { digest, .. } = p.route {
                    proptest::prop_assert!(valid_digest(digest).is_some());
                }
            }
        }
    }
}
