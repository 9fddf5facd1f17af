//! Percent-decoding (`%XX`), the two ways outside text needs it.

use std::borrow::Cow;

/// Decodes `%XX` escapes; an invalid escape is kept as it is.
pub(crate) fn decode_lenient(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%XX` escapes of a query value (repository names in `from=`); `None` when an
/// escape is invalid or the result is not UTF-8.
pub(crate) fn decode_strict(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') && !s.contains('+') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_keeps_invalid_escapes() {
        assert_eq!(decode_lenient("a%40b%3a%zz%4"), b"a@b:%zz%4");
        assert_eq!(decode_lenient("%"), b"%");
        assert_eq!(decode_lenient("ü%C3%BC"), "üü".as_bytes());
        assert_eq!(decode_lenient("p%40ss%3a%zz%4"), b"p@ss:%zz%4");
    }

    #[test]
    fn strict_refuses_invalid_escapes() {
        assert_eq!(decode_strict("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode_strict("plain").as_deref(), Some("plain"));
        assert_eq!(decode_strict("a%zz"), None);
        assert_eq!(decode_strict("a%C3"), None);
    }
}
