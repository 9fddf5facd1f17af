//! Go's JSON dialect: serde_json's pretty printer with the indent of
//! `json.MarshalIndent(v, "", "   ")` and Go's string escaping. Both encoders write through it:
//! the serde reference (`wire.rs`) wholly, the direct writer (`writer.rs`) for the strings that
//! need an escape.

use std::io;

use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// Bytes that may start an escape Go adds to JSON's: `<`, `>`, `&`, and the lead
/// byte of U+2028/U+2029.
static GO_ESCAPE_LEAD: [bool; 256] = {
    let mut t = [false; 256];
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
};

/// serde_json's pretty printer with Go's indent and Go's string escaping.
pub(super) struct GoFormatter {
    pretty: PrettyFormatter<'static>,
}

impl GoFormatter {
    pub(super) fn new() -> Self {
        Self {
            pretty: PrettyFormatter::with_indent(b"   "),
        }
    }
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[inline]
            fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
                self.pretty.$name(w $(, $arg)*)
            }
        )*
    };
}

impl Formatter for GoFormatter {
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        // Almost every fragment (digests, names, URLs) needs no escape: one fast scan.
        if !bytes.iter().any(|&b| GO_ESCAPE_LEAD[b as usize]) {
            return w.write_all(bytes);
        }
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (esc, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => {
                    if bytes[i + 2] == 0xA8 {
                        (b"\\u2028", 3)
                    } else {
                        (b"\\u2029", 3)
                    }
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            w.write_all(&bytes[start..i])?;
            w.write_all(esc)?;
            i += len;
            start = i;
        }
        w.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        // Go (as built into Distribution 2.8) writes \b and \f as \u0008 and \u000c.
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::Solidus => b"/",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let buf = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xF) as usize],
                ];
                return w.write_all(&buf);
            }
        };
        w.write_all(s)
    }
}
