//! Request routing: the raw `/v2/...` path and the query string, parsed by hand
//! (repository names contain slashes, so a path router cannot split them).

use super::reference::is_valid_name;

/// A registry endpoint, with the path parameters it carries. Names are
/// validated; references, digests and upload ids are not (handlers report
/// those with the right error codes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags {
        /// Repository name.
        name: String,
    },
    /// `/v2/<name>/manifests/<reference>`
    Manifest {
        /// Repository name.
        name: String,
        /// Tag or digest, unvalidated.
        reference: String,
    },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart {
        /// Repository name.
        name: String,
    },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload {
        /// Repository name.
        name: String,
        /// Upload session id, unvalidated.
        id: String,
    },
    /// `/v2/<name>/blobs/<digest>`
    Blob {
        /// Repository name.
        name: String,
        /// Digest, unvalidated.
        digest: String,
    },
    /// `/v2/<name>/referrers/<digest>`
    Referrers {
        /// Repository name.
        name: String,
        /// Subject digest, unvalidated.
        digest: String,
    },
}

/// Why a path is not a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Not a registry endpoint.
    NotFound,
    /// An endpoint, but the repository name breaks the grammar.
    NameInvalid(String),
}

/// Parses a raw (percent-encoded) request path.
pub fn parse(raw_path: &str) -> Result<Route, RouteError> {
    let path = percent_decode(raw_path, false).ok_or(RouteError::NotFound)?;
    let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or(RouteError::NotFound)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let tail = |k: usize| segments.get(n.saturating_sub(k)..).unwrap_or_default();
    let name_before = |k: usize| -> Result<String, RouteError> {
        let name = segments.get(..n.saturating_sub(k)).unwrap_or_default().join("/");
        if is_valid_name(&name) {
            Ok(name)
        } else {
            Err(RouteError::NameInvalid(name))
        }
    };
    let last = segments.last().copied().unwrap_or_default().to_owned();
    if n >= 3 && tail(2) == ["tags", "list"] {
        return Ok(Route::Tags {
            name: name_before(2)?,
        });
    }
    if n >= 4 && tail(3) == ["blobs", "uploads", ""] {
        return Ok(Route::UploadStart {
            name: name_before(3)?,
        });
    }
    if n >= 3 && tail(2) == ["blobs", "uploads"] {
        return Ok(Route::UploadStart {
            name: name_before(2)?,
        });
    }
    if n >= 4 && tail(3).get(..2) == Some(&["blobs", "uploads"][..]) {
        return Ok(Route::Upload {
            name: name_before(3)?,
            id: last,
        });
    }
    match (n >= 2).then(|| segments[n - 2]) {
        Some("manifests") => Ok(Route::Manifest {
            name: name_before(2)?,
            reference: last,
        }),
        Some("blobs") => Ok(Route::Blob {
            name: name_before(2)?,
            digest: last,
        }),
        Some("referrers") => Ok(Route::Referrers {
            name: name_before(2)?,
            digest: last,
        }),
        _ => Err(RouteError::NotFound),
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`); a `%` not
/// followed by two hex digits is kept as is. `None` if the result is not UTF-8.
pub fn percent_decode(input: &str, plus_as_space: bool) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)? << 4) | hex(*bytes.get(i + 2)?)?))
            .flatten();
        match (escaped, b) {
            (Some(decoded), _) => {
                out.push(decoded);
                i += 3;
            }
            (None, b'+') if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            (None, other) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A decoded query string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=2` (absent query → empty). Undecodable pairs are skipped.
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((percent_decode(key, true)?, percent_decode(value, true)?))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(parse("/v2"), Ok(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(parse("/v2/a/b/tags/list"), Ok(Route::Tags { name: name("a/b") }));
        assert_eq!(
            parse("/v2/library/test/manifests/latest"),
            Ok(Route::Manifest {
                name: name("library/test"),
                reference: name("latest")
            })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/"),
            Ok(Route::UploadStart { name: name("a") })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads"),
            Ok(Route::UploadStart { name: name("a") })
        );
        assert_eq!(
            parse("/v2/a/b/blobs/uploads/123"),
            Ok(Route::Upload {
                name: name("a/b"),
                id: name("123")
            })
        );
        assert_eq!(
            parse("/v2/a/blobs/sha256%3Aab"),
            Ok(Route::Blob {
                name: name("a"),
                digest: name("sha256:ab")
            })
        );
        assert_eq!(
            parse("/v2/a/referrers/x"),
            Ok(Route::Referrers {
                name: name("a"),
                digest: name("x")
            })
        );
        assert_eq!(parse("/v2/A/tags/list"), Err(RouteError::NameInvalid(name("A"))));
        assert_eq!(
            parse("/v2/../x/tags/list"),
            Err(RouteError::NameInvalid(name("../x")))
        );
        assert_eq!(parse("/v2/tags/list"), Err(RouteError::NotFound));
        assert_eq!(parse("/v2/a"), Err(RouteError::NotFound));
        assert_eq!(parse("/v3/"), Err(RouteError::NotFound));
        assert_eq!(parse("/v2x"), Err(RouteError::NotFound));
        assert_eq!(parse("/v2/%ff/tags/list"), Err(RouteError::NotFound));
        assert_eq!(parse("/"), Err(RouteError::NotFound));
        assert_eq!(parse(""), Err(RouteError::NotFound));
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some("digest=sha256%3Aab&from=a%2Fb&x&n=1+2&bad=%ff"));
        assert_eq!(q.get("digest"), Some("sha256:ab"));
        assert_eq!(q.get("from"), Some("a/b"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("n"), Some("1 2"));
        assert_eq!(q.get("bad"), None);
        assert_eq!(Query::parse(None).get("a"), None);
        assert_eq!(percent_decode("%2", false).as_deref(), Some("%2"));
        assert_eq!(percent_decode("%zz%", false).as_deref(), Some("%zz%"));
    }
}
