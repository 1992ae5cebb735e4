//! Reading the `Idempotency-Key` header.
//!
//! The draft makes the value a Structured Field string (RFC 8941): `"..."` in double
//! quotes, with `\"` and `\\` the only escapes. Many clients — Stripe's among them — send the
//! key bare, `Idempotency-Key: 4f8e...`. Both spellings are accepted and mean the same key:
//! `"abc"` and `abc` name one record. A key is 1 to 255 printable ASCII characters (space
//! included inside quotes). A bare key must not contain a space, `"`, `\` or `,` — a comma
//! most likely means a proxy folded two headers into one. Anything else is refused with a
//! [`KeyError`] that says what is wrong, and the request gets a 400.

use std::fmt;

use http::{HeaderMap, HeaderName};

/// The longest key accepted, in characters (Stripe's limit).
pub const MAX_KEY_LEN: usize = 255;

/// Why an `Idempotency-Key` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty (`""`, or a header with no value).
    Empty,
    /// The key is longer than 255 characters.
    TooLong,
    /// The value holds a byte outside printable ASCII.
    NotPrintableAscii,
    /// A quoted value is not closed, has characters after its closing quote, or holds an
    /// unescaped `"`; or a bare value holds a quote.
    Unbalanced,
    /// A backslash in a quoted value is followed by something other than `"` or `\`, or a
    /// bare value holds one.
    BadEscape,
    /// A bare value holds a space or a comma.
    BadCharacter,
    /// The header appears more than once.
    Repeated,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Empty => "the Idempotency-Key is empty",
            KeyError::TooLong => "the Idempotency-Key is longer than 255 characters",
            KeyError::NotPrintableAscii => {
                "the Idempotency-Key holds a character outside printable ASCII"
            }
            KeyError::Unbalanced => {
                "the Idempotency-Key's quotes are unbalanced: send \"...\" with inner quotes escaped as \\\", or the key bare"
            }
            KeyError::BadEscape => {
                "the Idempotency-Key holds a backslash that escapes neither \" nor \\"
            }
            KeyError::BadCharacter => {
                "a bare Idempotency-Key cannot hold a space or a comma; quote it"
            }
            KeyError::Repeated => "the Idempotency-Key header appears more than once",
        })
    }
}

impl std::error::Error for KeyError {}

/// The key of a request, if it has exactly one well-formed `name` header; `Ok(None)` if it
/// has none.
pub fn key_from_headers(
    headers: &HeaderMap,
    name: &HeaderName,
) -> Result<Option<String>, KeyError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(KeyError::Repeated);
    }
    parse_key(value.as_bytes()).map(Some)
}

/// Reads one header value as a key: an sf-string or a bare key.
pub fn parse_key(value: &[u8]) -> Result<String, KeyError> {
    let value = value.trim_ascii();
    let key = match value.split_first() {
        Some((b'"', rest)) => unquote(rest)?,
        _ => bare(value)?,
    };
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    Ok(key)
}

/// The inside of an sf-string whose opening quote is already read.
fn unquote(rest: &[u8]) -> Result<String, KeyError> {
    let mut key = String::with_capacity(rest.len());
    let mut bytes = rest.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\\' => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => key.push(char::from(escaped)),
                Some(&other) if !is_printable(other) => return Err(KeyError::NotPrintableAscii),
                Some(_) => return Err(KeyError::BadEscape),
                None => return Err(KeyError::Unbalanced),
            },
            b'"' => {
                // The closing quote must end the value: no parameters, nothing after it.
                return if bytes.as_slice().is_empty() {
                    Ok(key)
                } else {
                    Err(KeyError::Unbalanced)
                };
            }
            _ if !is_printable(byte) => return Err(KeyError::NotPrintableAscii),
            _ => key.push(char::from(byte)),
        }
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
    }
    Err(KeyError::Unbalanced)
}

fn bare(value: &[u8]) -> Result<String, KeyError> {
    if value.len() > MAX_KEY_LEN {
        // Checked first so that a huge value is refused without being scanned.
        return Err(if value.iter().all(|&b| is_printable(b)) {
            KeyError::TooLong
        } else {
            KeyError::NotPrintableAscii
        });
    }
    let mut key = String::with_capacity(value.len());
    for &byte in value {
        match byte {
            b'"' => return Err(KeyError::Unbalanced),
            b'\\' => return Err(KeyError::BadEscape),
            b' ' | b',' => return Err(KeyError::BadCharacter),
            _ if !is_printable(byte) => return Err(KeyError::NotPrintableAscii),
            _ => key.push(char::from(byte)),
        }
    }
    Ok(key)
}

fn is_printable(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte)
}

/// `key` as an sf-string, the draft's spelling: what a client sends.
pub fn to_sf_string(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn quoted_and_bare_keys_mean_the_same() {
        assert_eq!(parse_key(b"\"abc-123\"").unwrap(), "abc-123");
        assert_eq!(parse_key(b"abc-123").unwrap(), "abc-123");
        assert_eq!(parse_key(b"  abc  ").unwrap(), "abc");
        assert_eq!(parse_key(b"\"a \\\"b\\\" \\\\c\"").unwrap(), "a \"b\" \\c");
    }

    #[test]
    fn malformed_keys_say_what_is_wrong() {
        let long = "k".repeat(256);
        let cases: &[(&[u8], KeyError)] = &[
            (b"", KeyError::Empty),
            (b"\"\"", KeyError::Empty),
            (long.as_bytes(), KeyError::TooLong),
            (
                format!("\"{long}\"").as_bytes().to_vec().leak(),
                KeyError::TooLong,
            ),
            ("clé".as_bytes(), KeyError::NotPrintableAscii),
            ("\"clé\"".as_bytes(), KeyError::NotPrintableAscii),
            (b"\"abc", KeyError::Unbalanced),
            (b"\"ab\"c\"", KeyError::Unbalanced),
            (b"\"abc\";a=1", KeyError::Unbalanced),
            (b"ab\"c", KeyError::Unbalanced),
            (b"\"a\\bc\"", KeyError::BadEscape),
            (b"\"abc\\", KeyError::Unbalanced),
            (b"a\\b", KeyError::BadEscape),
            (b"a b", KeyError::BadCharacter),
            (b"a,b", KeyError::BadCharacter),
            (b"a\tb", KeyError::NotPrintableAscii),
        ];
        for (value, error) in cases {
            assert_eq!(
                parse_key(value),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn a_repeated_header_is_refused_and_a_missing_one_is_none() {
        let name = palisade_core::IDEMPOTENCY_KEY;
        let mut headers = HeaderMap::new();
        assert_eq!(key_from_headers(&headers, &name), Ok(None));
        headers.append(&name, HeaderValue::from_static("a"));
        assert_eq!(key_from_headers(&headers, &name), Ok(Some("a".into())));
        headers.append(&name, HeaderValue::from_static("a"));
        assert_eq!(key_from_headers(&headers, &name), Err(KeyError::Repeated));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(value in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_key(&value);
        }

        #[test]
        fn every_valid_key_round_trips(key in "[ -~]{1,255}") {
            prop_assert_eq!(parse_key(to_sf_string(&key).as_bytes()), Ok(key.clone()));
            let bare_ok = !key.contains([' ', '"', '\\', ',']);
            if bare_ok {
                prop_assert_eq!(parse_key(key.as_bytes()), Ok(key));
            }
        }
    }
}
