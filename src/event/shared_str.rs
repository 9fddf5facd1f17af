//! [`SharedStr`]: the immutable, cheaply cloned string every event field is made of.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Range};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string that is cheap to clone: a `&'static str`, or a slice of a
/// reference-counted buffer that several strings can share.
///
/// The layer writes all the strings of an event (its id, digest, repository, URL,
/// request fields, …) into **one** buffer and hands out slices of it, so an event costs
/// one allocation instead of one per field, and freeing it on the delivery side is as
/// cheap. Well-known values (media types, methods, the empty string) are static and
/// cost nothing.
///
/// It reads like a `&str` (it derefs to one) and compares, hashes, orders, prints and
/// serialises like one:
///
/// ```
/// use registry_notify::event::SharedStr;
///
/// let repo = SharedStr::from("library/alpine");
/// assert_eq!(repo, "library/alpine");
/// assert!(repo.starts_with("library/"));
/// let copy = repo.clone(); // a reference count, not a copy
/// assert_eq!(copy.as_str(), "library/alpine");
/// assert_eq!(SharedStr::from_static("GET"), String::from("GET"));
/// assert_eq!(serde_json::to_string(&repo).unwrap(), "\"library/alpine\"");
/// ```
#[derive(Clone)]
pub struct SharedStr(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    /// `buf[start & !PLAIN..end]`; the bounds are always on character boundaries, and below
    /// 2³¹. The top bit of `start` says the text is [plain](SharedStr::is_plain).
    Slice {
        buf: Arc<str>,
        start: u32,
        end: u32,
    },
}

/// The flag bit of [`Repr::Slice`]'s `start`.
const PLAIN: u32 = 1 << 31;

impl SharedStr {
    /// The empty string (no allocation).
    pub const fn new() -> Self {
        SharedStr(Repr::Static(""))
    }

    /// A static string (no allocation).
    pub const fn from_static(s: &'static str) -> Self {
        SharedStr(Repr::Static(s))
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.byte_slice().len()
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Slice { buf, start, end } => {
                buf.get((*start & !PLAIN) as usize..*end as usize).unwrap_or("")
            }
        }
    }

    /// The text's bytes, as [`as_str`](Self::as_str) gives them but without its check that the
    /// bounds fall on character boundaries: they were checked when the slice was made.
    pub(crate) fn byte_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Static(s) => s.as_bytes(),
            Repr::Slice { buf, start, end } => buf
                .as_bytes()
                .get((*start & !PLAIN) as usize..*end as usize)
                .unwrap_or_default(),
        }
    }

    /// Whether the two hold the same text, known at once for slices of the same bytes (what a
    /// clone gives).
    pub(crate) fn same_text(&self, other: &SharedStr) -> bool {
        if let (
            Repr::Slice {
                buf: a,
                start: s,
                end: e,
            },
            Repr::Slice {
                buf: b,
                start: t,
                end: f,
            },
        ) = (&self.0, &other.0)
        {
            if Arc::ptr_eq(a, b) && (s & !PLAIN) == (t & !PLAIN) && e == f {
                return true;
            }
        }
        self.byte_slice() == other.byte_slice()
    }

    /// Whether the text is known to need no escape in JSON (no control character, `"`,
    /// `\`, `<`, `>`, `&` or non-ASCII byte), so that an encoder copies it as it is.
    /// `false` only means "not known": static strings and text never checked say `false`.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(&self.0, Repr::Slice { start, .. } if start & PLAIN != 0)
    }

    /// A slice of a shared buffer; `range` must lie on character boundaries of `buf`
    /// and below 2³¹ (checked: anything else gives the empty string). `plain`: the text
    /// needs no escape in JSON (see [`is_plain`](Self::is_plain)).
    fn slice(buf: &Arc<str>, range: Range<usize>, plain: bool) -> Self {
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) if start < end && end < PLAIN && buf.get(range).is_some() => {
                SharedStr(Repr::Slice {
                    buf: buf.clone(),
                    start: if plain { start | PLAIN } else { start },
                    end,
                })
            }
            _ => SharedStr::new(),
        }
    }

    /// A slice of `buf` whose plainness is checked here, once, rather than at each encoding.
    fn checked(buf: &Arc<str>) -> Self {
        let plain = !super::writer::any_special(buf.as_bytes());
        SharedStr::slice(buf, 0..buf.len(), plain)
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        SharedStr::new()
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        if s.is_empty() {
            return SharedStr::new();
        }
        SharedStr::checked(&Arc::from(s))
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> Self {
        SharedStr::from(s.as_str())
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr::from(s.as_str())
    }
}

impl From<Box<str>> for SharedStr {
    fn from(s: Box<str>) -> Self {
        SharedStr::from(&*s)
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(buf: Arc<str>) -> Self {
        SharedStr::checked(&buf)
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.as_str().to_owned()
    }
}

impl From<&SharedStr> for String {
    fn from(s: &SharedStr) -> Self {
        s.as_str().to_owned()
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for SharedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

macro_rules! eq_with {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for SharedStr {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<SharedStr> for $t {
            fn eq(&self, other: &SharedStr) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
eq_with!(str, &str, String);

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SharedStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SharedStr, E> {
                Ok(SharedStr::from(v))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Where a string was written in a [`StrBuf`], and whether it is known to be plain
/// ([`SharedStr::is_plain`]): `start` carries that flag in its top bit, as a slice does.
/// A span past 2³¹ bytes is empty (no event's strings come near it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span `start..end` of a buffer, [plain](SharedStr::is_plain) if `plain` (empty
    /// unless `start <= end < 2³¹`).
    pub(crate) fn new(start: usize, end: usize, plain: bool) -> Self {
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) if start <= end && end < PLAIN => Span {
                start: if plain { start | PLAIN } else { start },
                end,
            },
            _ => Span::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start & !PLAIN == self.end
    }
}

/// Collects the strings of one event (or one request) so that they share one buffer.
///
/// Strings are appended with [`push`](Self::push) (or written with
/// [`span`](Self::span)), each giving a [`Span`]; [`build`] turns the whole buffer into one
/// `Arc<str>`, from which [`Frozen::get`] hands out [`SharedStr`] slices.
pub(crate) struct StrBuf<'a> {
    buf: &'a mut String,
}

impl StrBuf<'_> {
    /// Appends `s`.
    pub(crate) fn push(&mut self, s: &str) -> Span {
        self.push_as(s, false)
    }

    /// Appends `s`, which the caller validated as [plain](SharedStr::is_plain) (a digest, a
    /// repository name, a tag: their grammars allow nothing JSON escapes).
    pub(crate) fn push_plain(&mut self, s: &str) -> Span {
        debug_assert!(!super::writer::any_special(s.as_bytes()), "{s:?} is not plain");
        self.push_as(s, true)
    }

    /// Appends `s`, looking once whether it is [plain](SharedStr::is_plain) (text from a
    /// header: the look here spares one at each encoding of the events).
    pub(crate) fn push_checked(&mut self, s: &str) -> Span {
        self.push_as(s, !super::writer::any_special(s.as_bytes()))
    }

    fn push_as(&mut self, s: &str, plain: bool) -> Span {
        let start = self.buf.len();
        self.buf.push_str(s);
        Span::new(start, self.buf.len(), plain)
    }

    /// Appends what `write` writes into the buffer (it must only append), which is
    /// [plain](SharedStr::is_plain) if `write` says so by returning `true` (an id, a URL of
    /// validated parts).
    pub(crate) fn span_plain(&mut self, write: impl FnOnce(&mut String) -> bool) -> Span {
        let start = self.buf.len();
        let plain = write(self.buf);
        let start = start.min(self.buf.len());
        debug_assert!(
            !plain || !super::writer::any_special(&self.buf.as_bytes()[start..]),
            "{:?} is not plain",
            &self.buf[start..]
        );
        Span::new(start, self.buf.len(), plain)
    }
}

/// A finished [`StrBuf`]: the shared buffer its spans point into.
#[derive(Clone, Debug)]
pub(crate) struct Frozen(Option<Arc<str>>);

impl Frozen {
    /// A buffer of text written elsewhere, for [`get`](Self::get) to slice (a span that does
    /// not fall on its character boundaries gives the empty string).
    pub(crate) fn from_text(text: &str) -> Self {
        Frozen((!text.is_empty()).then(|| Arc::from(text)))
    }

    /// The string at `span` (the empty static string for an empty span).
    pub(crate) fn get(&self, span: Span) -> SharedStr {
        match &self.0 {
            Some(buf) if !span.is_empty() => SharedStr::slice(
                buf,
                (span.start & !PLAIN) as usize..span.end as usize,
                span.start & PLAIN != 0,
            ),
            _ => SharedStr::new(),
        }
    }
}

/// Shared, [plain](SharedStr::is_plain) copies of a fixed table of static strings (media
/// types, methods), made on first use: a static string is not known to be plain, so an
/// encoder would look at it in every event; a copy from here costs a reference count
/// instead.
pub(crate) struct PlainTable {
    source: &'static [&'static str],
    strings: std::sync::OnceLock<Box<[SharedStr]>>,
}

impl PlainTable {
    pub(crate) const fn new(source: &'static [&'static str]) -> Self {
        Self {
            source,
            strings: std::sync::OnceLock::new(),
        }
    }

    /// The shared copy of `s`, if the table has it (a plain one when `s` is plain).
    pub(crate) fn find(&self, s: &str) -> Option<SharedStr> {
        self.get(self.source.iter().position(|m| *m == s)?)
    }

    /// [`find`](Self::find) for text given as bytes, compared as they are.
    pub(crate) fn find_bytes(&self, b: &[u8]) -> Option<SharedStr> {
        self.get(self.source.iter().position(|m| m.as_bytes() == b)?)
    }

    /// The shared copy of the table's `i`-th string, if it has that many.
    pub(crate) fn get(&self, i: usize) -> Option<SharedStr> {
        let strings = self
            .strings
            .get_or_init(|| self.source.iter().map(|s| SharedStr::from(*s)).collect());
        strings.get(i).cloned()
    }
}

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `write` on an empty [`StrBuf`] and freezes what it wrote into one shared buffer
/// (one allocation; the scratch space is the thread's, reused from call to call).
pub(crate) fn build<T>(write: impl FnOnce(&mut StrBuf<'_>) -> T) -> (Frozen, T) {
    fn freeze(buf: &str) -> Frozen {
        Frozen((!buf.is_empty()).then(|| Arc::from(buf)))
    }
    let mut write = Some(write);
    let scratch = SCRATCH.try_with(|cell| {
        let mut scratch = cell.try_borrow_mut().ok()?;
        scratch.clear();
        let out = (write.take()?)(&mut StrBuf { buf: &mut scratch });
        let frozen = freeze(&scratch);
        if scratch.capacity() > 64 * 1024 {
            *scratch = String::new();
        }
        Some((frozen, out))
    });
    match scratch {
        Ok(Some(done)) => done,
        // No thread-local (thread teardown) or a nested call: a buffer of its own.
        _ => {
            let mut buf = String::new();
            let write = write.take().expect("the closure runs once");
            let out = write(&mut StrBuf { buf: &mut buf });
            (freeze(&buf), out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_of_one_buffer_share_it() {
        let (frozen, (a, b, e)) = build(|b| {
            let a = b.push("library/alpine");
            let e = b.push("");
            let x = b.span_plain(|s| {
                s.push_str("sha256:ab");
                true
            });
            (a, x, e)
        });
        let (a, b, e) = (frozen.get(a), frozen.get(b), frozen.get(e));
        assert_eq!(
            (a.as_str(), b.as_str(), e.as_str()),
            ("library/alpine", "sha256:ab", "")
        );
        match (&a.0, &b.0, &e.0) {
            (Repr::Slice { buf: x, .. }, Repr::Slice { buf: y, .. }, Repr::Static("")) => {
                assert!(Arc::ptr_eq(x, y));
                assert_eq!(Arc::strong_count(x), 3);
            }
            _ => panic!("not slices of one buffer"),
        }
        drop(frozen);
        assert_eq!(b, "sha256:ab");
    }

    /// Plainness is kept exactly: what is pushed as plain, or checked and found plain, is
    /// plain; text with anything JSON escapes is never; static and empty strings are not
    /// known to be; a slice keeps its flag through clones and next to unflagged neighbours.
    #[test]
    fn plain_flags() {
        let (frozen, spans) = build(|b| {
            [
                b.push_plain("library/alpine"),
                b.push("library/alpine"),
                b.push_checked("skopeo/1.9.3"),
                b.push_checked("a\"quote"),
                b.push_checked("caf\u{e9}"),
                b.push_checked("<tag>"),
                b.span_plain(|s| {
                    s.push_str("sha256:ab");
                    true
                }),
                b.span_plain(|s| {
                    s.push_str("x&y");
                    false
                }),
                b.push_checked(""),
            ]
        });
        let got: Vec<(String, bool)> = spans
            .iter()
            .map(|s| frozen.get(*s))
            .map(|s| (s.to_string(), s.clone().is_plain()))
            .collect();
        let want = [
            ("library/alpine", true),
            ("library/alpine", false),
            ("skopeo/1.9.3", true),
            ("a\"quote", false),
            ("caf\u{e9}", false),
            ("<tag>", false),
            ("sha256:ab", true),
            ("x&y", false),
            ("", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(s, p)| (s.to_string(), *p)).collect();
        assert_eq!(got, want);
        assert!(SharedStr::from("plain").is_plain());
        assert!(SharedStr::from(String::from("also plain")).is_plain());
        assert!(!SharedStr::from("tab\there").is_plain());
        assert!(!SharedStr::from("\u{2028}").is_plain());
        assert!(!SharedStr::from_static("GET").is_plain());
        assert!(!SharedStr::new().is_plain());
    }

    /// Spans at the 2³¹ bound: the last one below it keeps its bounds and flag; one that
    /// reaches it, or reversed bounds, is empty (never a slice with the flag bit read as an
    /// offset).
    #[test]
    fn spans_at_the_limit() {
        let top = PLAIN as usize;
        let last = Span::new(top - 2, top - 1, true);
        assert!(!last.is_empty());
        assert_eq!(
            (last.start & !PLAIN, last.end, last.start & PLAIN != 0),
            (PLAIN - 2, PLAIN - 1, true)
        );
        let unflagged = Span::new(top - 2, top - 1, false);
        assert_eq!((unflagged.start, unflagged.end), (PLAIN - 2, PLAIN - 1));
        for (start, end) in [(0, top), (top - 1, top), (top, top + 1), (5, 4), (0, usize::MAX)] {
            assert_eq!(Span::new(start, end, true), Span::default(), "{start}..{end}");
            assert!(Span::new(start, end, true).is_empty());
        }
        assert!(Span::new(7, 7, true).is_empty());
        // A slice never reaches the bound either, whatever the buffer says.
        let buf: Arc<str> = Arc::from("abc");
        assert_eq!(SharedStr::slice(&buf, 0..top, true), "");
        assert!(!SharedStr::slice(&buf, 0..top, true).is_plain());
    }

    /// `same_text` says whether the texts are equal, whichever way each was made; `byte_slice`
    /// is the text's bytes.
    #[test]
    fn same_text_and_bytes() {
        let buf: Arc<str> = Arc::from("abcabc✓");
        let (a, a_plain) = (
            SharedStr::slice(&buf, 0..3, false),
            SharedStr::slice(&buf, 0..3, true),
        );
        let other: Arc<str> = Arc::from("abc");
        let texts = [
            a.clone(),
            a_plain,
            SharedStr::slice(&buf, 3..6, false),
            SharedStr::slice(&other, 0..3, true),
            SharedStr::from_static("abc"),
            SharedStr::from("abc"),
        ];
        for x in &texts {
            assert_eq!(x.byte_slice(), b"abc");
            for y in &texts {
                assert!(x.same_text(y), "{x:?} {y:?}");
            }
        }
        let unlike = [
            SharedStr::slice(&buf, 1..4, false),
            SharedStr::slice(&buf, 0..2, false),
            SharedStr::slice(&buf, 6..9, false),
            SharedStr::new(),
            SharedStr::from_static("abd"),
        ];
        for u in &unlike {
            assert_eq!(u.byte_slice(), u.as_str().as_bytes());
            assert!(!a.same_text(u) && !u.same_text(&a), "{u:?}");
        }
    }

    #[test]
    fn plain_tables() {
        static TABLE: PlainTable = PlainTable::new(&["GET", "application/json", "a<b"]);
        let get = TABLE.find("GET").unwrap();
        assert_eq!((get.as_str(), get.is_plain()), ("GET", true));
        assert!(TABLE.find("application/json").unwrap().is_plain());
        let odd = TABLE.find("a<b").unwrap();
        assert_eq!((odd.as_str(), odd.is_plain()), ("a<b", false));
        assert!(TABLE.find("PUT").is_none());
    }

    #[test]
    fn nested_builds_and_multibyte_text() {
        let (outer, (s, inner)) = build(|b| {
            let s = b.push("héllo ✓");
            let (inner, t) = build(|b| b.push("inner"));
            (s, inner.get(t))
        });
        assert_eq!(outer.get(s), "héllo ✓");
        assert_eq!(inner, "inner");
        // Out-of-range or mid-character spans give the empty string, never a panic.
        let buf: Arc<str> = Arc::from("✓");
        assert_eq!(SharedStr::slice(&buf, 1..3, false), "");
        assert_eq!(SharedStr::slice(&buf, 0..9, false), "");
    }

    #[test]
    fn behaves_like_a_str() {
        use std::collections::HashSet;
        let a = SharedStr::from("x".to_string());
        let set: HashSet<SharedStr> = [a.clone(), SharedStr::from_static("x")].into();
        assert_eq!(set.len(), 1);
        assert!(set.contains("x"));
        let (a1, b1) = (SharedStr::from("a"), SharedStr::from_static("b"));
        assert!(a1 < b1 && b1.cmp(&a1) == std::cmp::Ordering::Greater);
        assert_eq!(format!("{a} {a:?}"), "x \"x\"");
        assert_eq!("x", a);
        assert_eq!(String::from(a), "x");
        let back: SharedStr = serde_json::from_str("\"q\\\"\"").unwrap();
        assert_eq!(back, "q\"");
        assert_eq!(std::mem::size_of::<SharedStr>(), 24);
    }
}
