//! The bytes of the Connect protocol: codecs (`json`, `proto`),
//! compression (`identity`, `gzip`), the envelopes of streaming calls, and
//! `connect-timeout-ms`. Pure functions, no IO.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use crate::errors::ApiError;

/// How messages are encoded: the suffix of the content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Proto3 JSON.
    Json,
    /// Protobuf binary.
    Proto,
}

impl Codec {
    /// The codec's name in a content type (`application/{name}`,
    /// `application/connect+{name}`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Proto => "proto",
        }
    }

    /// A message of type `input` from its encoding.
    pub fn decode(
        self,
        input: MessageDescriptor,
        bytes: &[u8],
    ) -> Result<DynamicMessage, ApiError> {
        match self {
            Codec::Proto => DynamicMessage::decode(input, bytes)
                .map_err(|e| ApiError::invalid("body", format!("is not a valid message: {e}"))),
            // An empty JSON body is the empty message, as in Connect's GET.
            Codec::Json if bytes.iter().all(u8::is_ascii_whitespace) => {
                Ok(DynamicMessage::new(input))
            }
            Codec::Json => {
                let value = serde_json::from_slice(bytes)
                    .map_err(|e| ApiError::invalid("body", format!("is not valid JSON: {e}")))?;
                crate::transcode::from_json(input, value)
            }
        }
    }

    /// A message's encoding.
    pub fn encode(self, message: &DynamicMessage) -> Result<Vec<u8>, ApiError> {
        match self {
            Codec::Proto => Ok(message.encode_to_vec()),
            Codec::Json => {
                let value = crate::transcode::to_json(message)?;
                serde_json::to_vec(&value)
                    .map_err(|e| ApiError::from_status(tonic::Status::internal(e.to_string())))
            }
        }
    }
}

/// The kind of call a content type asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `application/{json,proto}`: one message each way, bare.
    Unary(Codec),
    /// `application/connect+{json,proto}`: enveloped messages.
    Streaming(Codec),
}

impl Shape {
    /// The shape of a request's content type; `None` for anything else.
    pub fn of(content_type: &str) -> Option<Shape> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Shape::Unary(Codec::Json)),
            "application/proto" => Some(Shape::Unary(Codec::Proto)),
            "application/connect+json" => Some(Shape::Streaming(Codec::Json)),
            "application/connect+proto" => Some(Shape::Streaming(Codec::Proto)),
            _ => None,
        }
    }

    /// The content type of the response.
    pub fn content_type(self) -> String {
        match self {
            Shape::Unary(codec) => format!("application/{}", codec.name()),
            Shape::Streaming(codec) => format!("application/connect+{}", codec.name()),
        }
    }
}

/// A body's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// None.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
}

/// What the gateway accepts in `Content-Encoding` and
/// `Connect-Content-Encoding`.
pub const ACCEPTED: &str = "gzip, identity";

impl Compression {
    /// The compression a request names; `None` for one the gateway does
    /// not support (`unimplemented` in Connect).
    pub fn named(name: Option<&str>) -> Option<Compression> {
        match name.map(str::trim) {
            None | Some("") | Some("identity") => Some(Compression::Identity),
            Some("gzip") => Some(Compression::Gzip),
            Some(_) => None,
        }
    }

    /// What to answer with, given the client's accepted encodings.
    pub fn preferred(accept: Option<&str>) -> Compression {
        let gzip = accept.is_some_and(|list| {
            list.split(',')
                .any(|item| item.split(';').next().unwrap_or_default().trim() == "gzip")
        });
        if gzip {
            Compression::Gzip
        } else {
            Compression::Identity
        }
    }

    /// The name of the encoding in a header.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Identity => "identity",
            Compression::Gzip => "gzip",
        }
    }

    /// `bytes` compressed.
    pub fn compress(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Compression::Identity => bytes,
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                // Writing to a Vec cannot fail.
                let _ = encoder.write_all(&bytes);
                encoder.finish().unwrap_or_default()
            }
        }
    }

    /// `bytes` decompressed, at most `limit` bytes of them: a small body
    /// must not inflate past what an uncompressed one may be.
    pub fn decompress(self, bytes: Bytes, limit: usize) -> Result<Bytes, ApiError> {
        match self {
            Compression::Identity => Ok(bytes),
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(bytes.as_ref())
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|_| ApiError::invalid("body", "is not valid gzip"))?;
                if out.len() > limit {
                    return Err(crate::error::Error::BodyTooLarge { limit }.into());
                }
                Ok(out.into())
            }
        }
    }
}

/// An envelope's flag: the message is compressed.
pub const FLAG_COMPRESSED: u8 = 0b01;
/// An envelope's flag: this is the end-of-stream message.
pub const FLAG_END_STREAM: u8 = 0b10;

/// One envelope: a flags byte, a big-endian length, the payload.
pub fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flags);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// The single message of a server-streaming request's body, decompressed
/// when its envelope says so.
pub fn single_message(
    body: Bytes,
    compression: Compression,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let bad = |why: &str| ApiError::invalid("body", why.to_string());
    if body.len() < 5 {
        return Err(bad("must be one enveloped message"));
    }
    let flags = body[0];
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() - 5 != length {
        return Err(bad("must be exactly one enveloped message"));
    }
    if flags & FLAG_END_STREAM != 0 || flags & !FLAG_COMPRESSED != 0 {
        return Err(bad("has an envelope with unknown or end-of-stream flags"));
    }
    let payload = body.slice(5..);
    if flags & FLAG_COMPRESSED == 0 {
        return Ok(payload);
    }
    if compression == Compression::Identity {
        return Err(bad(
            "has a compressed message but no Connect-Content-Encoding",
        ));
    }
    compression.decompress(payload, limit)
}

/// The deadline a client asks for in `connect-timeout-ms` (at most ten
/// digits), capped by the gateway's own.
pub fn timeout(header: Option<&str>, cap: Duration) -> Result<Duration, ApiError> {
    let Some(value) = header else {
        return Ok(cap);
    };
    let valid = !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit());
    let millis: u64 = value
        .parse()
        .ok()
        .filter(|_| valid)
        .ok_or_else(|| ApiError::invalid("connect-timeout-ms", "must be 1 to 10 digits"))?;
    Ok(Duration::from_millis(millis).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_pick_the_shape_and_codec() {
        assert_eq!(
            Shape::of("application/json; charset=utf-8"),
            Some(Shape::Unary(Codec::Json))
        );
        assert_eq!(
            Shape::of("application/connect+proto"),
            Some(Shape::Streaming(Codec::Proto))
        );
        assert_eq!(Shape::of("text/plain"), None);
        assert_eq!(
            Shape::Streaming(Codec::Json).content_type(),
            "application/connect+json"
        );
    }

    #[test]
    fn gzip_round_trips_within_the_limit_only() {
        let data = vec![b'a'; 10_000];
        let packed = Bytes::from(Compression::Gzip.compress(data.clone()));
        assert!(packed.len() < data.len());
        let unpacked = Compression::Gzip
            .decompress(packed.clone(), 10_000)
            .unwrap();
        assert_eq!(unpacked.as_ref(), data.as_slice());
        let refused = Compression::Gzip.decompress(packed, 9_999).unwrap_err();
        assert_eq!(refused.http, http::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            Compression::Gzip
                .decompress(Bytes::from_static(b"nope"), 10)
                .is_err()
        );
    }

    #[test]
    fn accepted_encodings_are_read_from_lists() {
        assert_eq!(
            Compression::preferred(Some("br, gzip;q=0.5")),
            Compression::Gzip
        );
        assert_eq!(Compression::preferred(Some("br")), Compression::Identity);
        assert_eq!(Compression::named(Some("br")), None);
        assert_eq!(Compression::named(None), Some(Compression::Identity));
    }

    #[test]
    fn a_request_stream_holds_exactly_one_message() {
        let one = envelope(0, b"abc");
        assert_eq!(
            single_message(one.clone(), Compression::Identity, 10)
                .unwrap()
                .as_ref(),
            b"abc"
        );
        let mut two = one.to_vec();
        two.extend_from_slice(&one);
        assert!(single_message(two.into(), Compression::Identity, 10).is_err());
        assert!(
            single_message(envelope(FLAG_END_STREAM, b"{}"), Compression::Identity, 10).is_err()
        );
        let packed = Compression::Gzip.compress(b"xyz".to_vec());
        let message = single_message(envelope(FLAG_COMPRESSED, &packed), Compression::Gzip, 10);
        assert_eq!(message.unwrap().as_ref(), b"xyz");
        assert!(
            single_message(
                envelope(FLAG_COMPRESSED, &packed),
                Compression::Identity,
                10
            )
            .is_err()
        );
    }

    #[test]
    fn timeouts_are_digits_capped_by_the_gateway() {
        let cap = Duration::from_secs(30);
        assert_eq!(timeout(None, cap).unwrap(), cap);
        assert_eq!(
            timeout(Some("1500"), cap).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(timeout(Some("9999999999"), cap).unwrap(), cap);
        for bad in ["", "-1", "12345678901", "1.5"] {
            assert!(timeout(Some(bad), cap).is_err(), "{bad}");
        }
    }
}
