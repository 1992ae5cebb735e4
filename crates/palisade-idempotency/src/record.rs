//! What a store keeps: a record per (scope, key), named by a hash, holding the request's
//! fingerprint and, once the first request has finished, its response.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

/// The name of a record: SHA-256 of the scope and the key. The raw key a client sent never
/// reaches a store, and two scopes can never name the same record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey([u8; 32]);

impl RecordKey {
    /// The record of `key` within `scope`.
    pub fn new(scope: &str, key: &str) -> Self {
        let mut hash = Sha256::new();
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        hash.update((scope.len() as u64).to_be_bytes());
        hash.update(scope.as_bytes());
        hash.update(key.as_bytes());
        Self(hash.finalize().into())
    }

    /// The hash, as lowercase hex (64 characters).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({})", &self.to_hex()[..16])
    }
}

/// A digest of what a request asks for (method, path, query, body): a key reused for a
/// different request is told apart by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &hex(&self.0)[..16])
    }
}

/// Who holds a claim: a random token drawn for each claim. Every write to a record names its
/// owner, and a store refuses a write from anyone else — so a holder whose lease expired,
/// and whose key was claimed again meanwhile, cannot overwrite the new holder's record
/// (fencing).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner(pub u128);

impl Owner {
    /// A new, random owner token.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({:08x})", (self.0 >> 96) as u32)
    }
}

/// A response as stored, to be replayed byte for byte: status, the headers worth replaying,
/// the whole body and the trailers.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status code.
    pub status: StatusCode,
    /// The headers, without the hop-by-hop ones, `Content-Length`, `Date` and `Set-Cookie`.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The trailers, if the response had any (gRPC's status lives there).
    pub trailers: Option<HeaderMap>,
}

impl fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .field("trailers", &self.trailers.as_ref().map(HeaderMap::len))
            .finish()
    }
}

/// Headers a replay must not repeat: they describe one connection or one moment, or (for
/// `Set-Cookie`) hand one client's session to whoever replays.
pub(crate) fn is_replayable(name: &HeaderName) -> bool {
    use http::header::*;
    ![
        CONNECTION,
        CONTENT_LENGTH,
        DATE,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        SET_COOKIE,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ]
    .contains(name)
        && name.as_str() != "keep-alive"
        && name.as_str() != "proxy-connection"
}

/// The encoding version, first byte of every encoded response.
const VERSION: u8 = 1;

impl StoredResponse {
    /// The response as bytes, for stores that keep bytes: a version, the status, the headers
    /// and trailers as length-prefixed pairs, then the body.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(VERSION);
        out.put_u16(self.status.as_u16());
        put_headers(&mut out, &self.headers);
        match &self.trailers {
            Some(trailers) => {
                out.put_u8(1);
                put_headers(&mut out, trailers);
            }
            None => out.put_u8(0),
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    /// The size of [`encode`](Self::encode)'s output: what the response costs a store.
    pub fn encoded_len(&self) -> usize {
        let headers = |map: &HeaderMap| {
            4 + map
                .iter()
                .map(|(n, v)| 8 + n.as_str().len() + v.len())
                .sum::<usize>()
        };
        1 + 2
            + headers(&self.headers)
            + 1
            + self.trailers.as_ref().map_or(0, headers)
            + self.body.len()
    }

    /// Reads what [`encode`](Self::encode) wrote; `None` if the bytes are not such a response.
    pub fn decode(mut bytes: Bytes) -> Option<Self> {
        if bytes.remaining() < 3 || bytes.get_u8() != VERSION {
            return None;
        }
        let status = StatusCode::from_u16(bytes.get_u16()).ok()?;
        let headers = get_headers(&mut bytes)?;
        let trailers = match bytes.try_get_u8().ok()? {
            0 => None,
            1 => Some(get_headers(&mut bytes)?),
            _ => return None,
        };
        Some(Self {
            status,
            headers,
            body: bytes,
            trailers,
        })
    }
}

fn put_headers(out: &mut BytesMut, headers: &HeaderMap) {
    out.put_u32(headers.len() as u32);
    for (name, value) in headers {
        out.put_u32(name.as_str().len() as u32);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(value.len() as u32);
        out.put_slice(value.as_bytes());
    }
}

fn get_headers(bytes: &mut Bytes) -> Option<HeaderMap> {
    let count = bytes.try_get_u32().ok()? as usize;
    let mut headers = HeaderMap::with_capacity(count.min(64));
    for _ in 0..count {
        let name = get_chunk(bytes)?;
        let value = get_chunk(bytes)?;
        headers.append(
            HeaderName::from_bytes(&name).ok()?,
            HeaderValue::from_maybe_shared(value).ok()?,
        );
    }
    Some(headers)
}

fn get_chunk(bytes: &mut Bytes) -> Option<Bytes> {
    let len = bytes.try_get_u32().ok()? as usize;
    (bytes.remaining() >= len).then(|| bytes.split_to(len))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` to `out` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_survives_encoding_byte_for_byte() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-many", HeaderValue::from_static("one"));
        headers.append("x-many", HeaderValue::from_static("two"));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let response = StoredResponse {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"id\":1}\x00\xff"),
            trailers: Some(trailers),
        };
        let encoded = response.encode();
        assert_eq!(encoded.len(), response.encoded_len());
        assert_eq!(StoredResponse::decode(encoded), Some(response));
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(StoredResponse::decode(Bytes::from_static(b"")), None);
        assert_eq!(
            StoredResponse::decode(Bytes::from_static(b"\x02\x00\xc8")),
            None
        );
        assert_eq!(
            StoredResponse::decode(Bytes::from_static(b"\x01\x00\xc8\x00\x00\x00\x05")),
            None
        );
    }

    #[test]
    fn scopes_and_keys_name_distinct_records() {
        assert_ne!(RecordKey::new("ab", "c"), RecordKey::new("a", "bc"));
        assert_ne!(RecordKey::new("alice", "k"), RecordKey::new("bob", "k"));
        assert_eq!(RecordKey::new("alice", "k"), RecordKey::new("alice", "k"));
        assert_eq!(RecordKey::new("alice", "k").to_hex().len(), 64);
    }
}
