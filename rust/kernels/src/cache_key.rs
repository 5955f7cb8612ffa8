// SPDX-License-Identifier: MIT
//! Cache keys: a stable SHA-256 digest of a request's identifying parts.
//!
//! Each field is written as a one-byte tag, a little-endian u64 length and its payload, so no two different
//! inputs serialise alike. Query pairs are sorted by the UTF-8 bytes of (key, value) (= code point order), so
//! parameter order never changes the key. The byte stream must match `cache_key` in
//! `python/aiorequestful/_native_py.py` exactly; keys are persisted in caches, so it must never change.

use sha2::{Digest, Sha256};

/// One extra key part (credentials digest, a flag, ...), as the twin encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Python `None`: tag `n`, empty payload.
    None,
    /// Python `bool`: tag `t`/`f`, empty payload.
    Bool(bool),
    /// Python `int`: tag `i`, payload its ASCII decimal text (`str(int)`).
    Int(&'a [u8]),
    /// Python `str`: tag `s`, payload its UTF-8 bytes (lone surrogates encoded with `surrogatepass`).
    Str(&'a [u8]),
    /// Python `bytes`/`bytearray`: tag `b`, payload the raw bytes.
    Bytes(&'a [u8]),
}

/// A streaming writer of the tagged serialisation, hashing as it goes.
///
/// Write order is fixed: [`CacheKey::new`] (method, url), one [`CacheKey::query`], then any number of
/// [`CacheKey::part`] calls, then [`CacheKey::hexdigest`].
pub struct CacheKey {
    hasher: Sha256,
}

impl CacheKey {
    /// Start a key with the (already upper-cased) method and the URL without its query.
    #[must_use]
    pub fn new(method: &[u8], url: &[u8]) -> Self {
        let mut key = Self { hasher: Sha256::new() };
        key.field(b'm', method);
        key.field(b'u', url);
        key
    }

    /// Append one field: `tag`, `len(payload)` as u64 little-endian, `payload`.
    fn field(&mut self, tag: u8, payload: &[u8]) {
        self.hasher.update([tag]);
        // usize -> u64 never truncates on the 32/64-bit targets Rust supports.
        self.hasher.update((payload.len() as u64).to_le_bytes());
        self.hasher.update(payload);
    }

    /// Sort the query pairs by the UTF-8 bytes of (key, value) and append them.
    pub fn query<Q: AsRef<[u8]>>(&mut self, pairs: &mut [(Q, Q)]) {
        // Byte order of UTF-8 is code point order; the twin sorts the same encoded bytes.
        pairs.sort_unstable_by(|a, b| (a.0.as_ref(), a.1.as_ref()).cmp(&(b.0.as_ref(), b.1.as_ref())));
        for (name, value) in pairs.iter() {
            self.field(b'k', name.as_ref());
            self.field(b'v', value.as_ref());
        }
    }

    /// Append an extra key part.
    pub fn part(&mut self, part: Part<'_>) {
        match part {
            Part::None => self.field(b'n', b""),
            Part::Bool(true) => self.field(b't', b""),
            Part::Bool(false) => self.field(b'f', b""),
            Part::Int(digits) => self.field(b'i', digits),
            Part::Str(text) => self.field(b's', text),
            Part::Bytes(data) => self.field(b'b', data),
        }
    }

    /// The lowercase hex SHA-256 of everything appended.
    #[must_use]
    pub fn hexdigest(self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.hasher.finalize();
        let mut out = String::with_capacity(digest.len() * 2);
        for byte in digest {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        out
    }
}

/// The key of a request: `method` is already upper-cased, `url` has no query, `query` pairs are sorted here.
///
/// All text arrives as UTF-8 bytes (with `surrogatepass` for lone surrogates, which Rust strings cannot hold).
#[must_use]
pub fn cache_key<Q: AsRef<[u8]>>(method: &[u8], url: &[u8], query: &mut [(Q, Q)], parts: &[Part<'_>]) -> String {
    let mut key = CacheKey::new(method, url);
    key.query(query);
    for part in parts {
        key.part(*part);
    }
    key.hexdigest()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serialisation spelt out by hand, for comparison with the streaming writer.
    fn serialise(fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, payload) in fields {
            out.push(*tag);
            out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(payload);
        }
        out
    }

    fn hex(data: &[u8]) -> String {
        use std::fmt::Write;
        Sha256::digest(data).iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    #[test]
    fn hexdigest_is_lowercase_sha256_of_the_stream() {
        let expected = hex(&serialise(&[(b'm', b""), (b'u', b"")]));
        assert_eq!(CacheKey::new(b"", b"").hexdigest(), expected);
        // Known vector: SHA-256 of the empty string, through the same hex encoder.
        assert_eq!(
            hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn serialisation_is_tag_length_payload() {
        let mut query = [("b", "2"), ("a", "9"), ("a", "10")];
        let got = cache_key(
            b"GET",
            b"https://example.com/x",
            &mut query,
            &[
                Part::None,
                Part::Bool(true),
                Part::Bool(false),
                Part::Int(b"-12"),
                Part::Str("\u{e9}".as_bytes()),
                Part::Bytes(b"\x00\xff"),
            ],
        );
        let expected = hex(&serialise(&[
            (b'm', b"GET"),
            (b'u', b"https://example.com/x"),
            (b'k', b"a"),
            (b'v', b"10"),
            (b'k', b"a"),
            (b'v', b"9"),
            (b'k', b"b"),
            (b'v', b"2"),
            (b'n', b""),
            (b't', b""),
            (b'f', b""),
            (b'i', b"-12"),
            (b's', "\u{e9}".as_bytes()),
            (b'b', b"\x00\xff"),
        ]));
        assert_eq!(got, expected);
    }

    #[test]
    fn query_order_does_not_matter_but_part_order_does() {
        let mut q1 = [("a", "1"), ("b", "2")];
        let mut q2 = [("b", "2"), ("a", "1")];
        assert_eq!(
            cache_key(b"GET", b"u", &mut q1, &[]),
            cache_key(b"GET", b"u", &mut q2, &[])
        );
        let p1 = [Part::Str(b"x"), Part::Str(b"y")];
        let p2 = [Part::Str(b"y"), Part::Str(b"x")];
        let mut none: [(&str, &str); 0] = [];
        assert_ne!(
            cache_key(b"GET", b"u", &mut none, &p1),
            cache_key(b"GET", b"u", &mut none, &p2)
        );
    }

    #[test]
    fn lengths_keep_fields_apart() {
        let mut none: [(&str, &str); 0] = [];
        let split_late = cache_key(b"GET", b"u", &mut none, &[Part::Str(b"ab"), Part::Str(b"c")]);
        let split_early = cache_key(b"GET", b"u", &mut none, &[Part::Str(b"a"), Part::Str(b"bc")]);
        assert_ne!(split_late, split_early);
        // Same payload, different type.
        let text = cache_key(b"GET", b"u", &mut none, &[Part::Str(b"1")]);
        let int = cache_key(b"GET", b"u", &mut none, &[Part::Int(b"1")]);
        let bytes = cache_key(b"GET", b"u", &mut none, &[Part::Bytes(b"1")]);
        assert_ne!(text, int);
        assert_ne!(text, bytes);
        assert_ne!(int, bytes);
    }

    #[test]
    fn query_sorts_by_utf8_bytes_which_is_code_point_order() {
        // U+FFFD (EF BF BD) sorts before U+10000 (F0 90 80 80) by code point and by UTF-8 bytes;
        // UTF-16 order would put the surrogate pair first.
        let mut q1 = [("\u{10000}", ""), ("\u{fffd}", "")];
        let expected = hex(&serialise(&[
            (b'm', b"GET"),
            (b'u', b"u"),
            (b'k', "\u{fffd}".as_bytes()),
            (b'v', b""),
            (b'k', "\u{10000}".as_bytes()),
            (b'v', b""),
        ]));
        assert_eq!(cache_key(b"GET", b"u", &mut q1, &[]), expected);
        // A key that is a prefix of another sorts first; equal keys sort by value.
        let mut q2 = [("ab", "1"), ("a", "2"), ("a", "1")];
        let expected = hex(&serialise(&[
            (b'm', b"GET"),
            (b'u', b"u"),
            (b'k', b"a"),
            (b'v', b"1"),
            (b'k', b"a"),
            (b'v', b"2"),
            (b'k', b"ab"),
            (b'v', b"1"),
        ]));
        assert_eq!(cache_key(b"GET", b"u", &mut q2, &[]), expected);
    }
}
