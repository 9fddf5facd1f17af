//! Repository names, tags and digests: the grammars of the distribution spec.

use std::fmt;

use sha2::{Digest as _, Sha256, Sha512};

/// Longest repository name accepted (Distribution's limit).
pub const MAX_NAME_LENGTH: usize = 255;

/// Longest tag accepted (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
pub const MAX_TAG_LENGTH: usize = 128;

/// Whether `name` matches the repository name grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
/// and is at most [`MAX_NAME_LENGTH`] bytes long.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LENGTH && name.split('/').all(is_valid_name_component)
}

/// Whether `component` is one `/`-separated part of a repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_valid_name_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of at least one lowercase alphanumeric.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator: `.`, `_`, `__` or one or more `-`.
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// Whether `tag` matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    match bytes.first() {
        Some(&first) if first.is_ascii_alphanumeric() || first == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_TAG_LENGTH
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A digest algorithm this registry can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters; the canonical algorithm.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// The algorithm's name in a digest string.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Why a string is not a usable digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:encoded` per the OCI digest grammar, or the wrong length for the algorithm.
    Malformed,
    /// Well-formed, but the algorithm is not one the registry supports.
    UnsupportedAlgorithm(String),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Malformed => f.write_str("invalid digest format"),
            DigestError::UnsupportedAlgorithm(a) => write!(f, "unsupported digest algorithm {a:?}"),
        }
    }
}

impl std::error::Error for DigestError {}

/// A validated content digest, `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::Malformed)?;
        // Generic grammar first: algorithm `[a-z0-9]+([+._-][a-z0-9]+)*`, encoded `[a-zA-Z0-9=_-]+`.
        let alg_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let enc_ok = !encoded.is_empty()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        if !alg_ok || !enc_ok {
            return Err(DigestError::Malformed);
        }
        let algorithm = Algorithm::from_name(algorithm)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(algorithm.into()))?;
        let hex_ok = encoded.len() == algorithm.hex_len()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(DigestError::Malformed);
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_owned(),
        })
    }

    /// The digest of `content` under `algorithm`.
    pub fn compute(algorithm: Algorithm, content: &[u8]) -> Digest {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(content);
        hasher.finish()
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// An incremental hasher for one [`Algorithm`].
#[derive(Clone, Debug)]
pub enum DigestHasher {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl DigestHasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(Sha512::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(data),
            DigestHasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            DigestHasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            DigestHasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// What a manifest path addresses: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A tag name.
    Tag(String),
    /// A content digest.
    Digest(Digest),
}

/// Why a manifest reference is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceError {
    /// Contains `:` but is not a valid digest.
    Digest(DigestError),
    /// Not a valid tag.
    Tag,
}

impl Reference {
    /// Parses a manifest reference: a digest if it contains `:`, a tag otherwise.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.contains(':') {
            Digest::parse(s)
                .map(Reference::Digest)
                .map_err(ReferenceError::Digest)
        } else if is_valid_tag(s) {
            Ok(Reference::Tag(s.to_owned()))
        } else {
            Err(ReferenceError::Tag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "library/test", "a.b_c__d---e/f0", "0/1/2", "foo-bar/baz.qux"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "a___b",
            "a..b",
            "-a",
            "a-",
            "_a",
            "a/_manifests",
            "a b",
            "é",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(is_valid_name(&"a".repeat(255)));
        assert!(!is_valid_name(&"a".repeat(256)));
    }

    #[test]
    fn tags() {
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_x.Y-1"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag("a/b"));
    }

    #[test]
    fn digests() {
        let d = Digest::compute(Algorithm::Sha256, b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()), Ok(d));
        let d512 = Digest::compute(Algorithm::Sha512, b"x");
        assert_eq!(Digest::parse(&d512.to_string()), Ok(d512));
        assert_eq!(Digest::parse("sha256:abc"), Err(DigestError::Malformed));
        assert_eq!(
            Digest::parse(&format!("sha256:{}", "A".repeat(64))),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            Digest::parse("md5:abcd"),
            Err(DigestError::UnsupportedAlgorithm("md5".into()))
        );
        assert_eq!(Digest::parse("nocolon"), Err(DigestError::Malformed));
        assert_eq!(Digest::parse(":"), Err(DigestError::Malformed));
        assert_eq!(Digest::parse("sha256:"), Err(DigestError::Malformed));
    }
}
