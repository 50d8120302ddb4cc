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

/// A unary call made with GET: what the query says in place of a POST's
/// content type, `Content-Encoding` and body
/// (`?connect=v1&encoding=json&message=…[&base64=1][&compression=gzip]`).
#[derive(Debug, PartialEq, Eq)]
pub struct GetQuery {
    /// `encoding`: the message's codec.
    pub codec: Codec,
    /// `compression`: how the message is compressed.
    pub compression: Compression,
    /// `message`, percent- and (with `base64=1`) base64-decoded; still
    /// compressed.
    pub message: Bytes,
}

impl GetQuery {
    /// Reads a GET call's query. Parameters other than the protocol's are
    /// ignored (a cache-busting one, say); the protocol's each appear once.
    pub fn parse(query: Option<&str>) -> Result<GetQuery, ApiError> {
        let mut found: [Option<Vec<u8>>; 5] = Default::default();
        const NAMES: [&str; 5] = ["connect", "encoding", "message", "base64", "compression"];
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(slot) = NAMES.iter().position(|known| *known == name) else {
                continue;
            };
            let value = crate::transcode::decode_form_bytes(value)
                .ok_or_else(|| ApiError::invalid(name, "is not valid percent-encoding"))?;
            if found[slot].replace(value).is_some() {
                return Err(ApiError::invalid(name, "must appear once"));
            }
        }
        let [connect, encoding, message, base64, compression] = found;
        let text = |name: &str, value: &Option<Vec<u8>>| -> Result<Option<String>, ApiError> {
            value
                .as_ref()
                .map(|v| String::from_utf8(v.clone()))
                .transpose()
                .map_err(|_| ApiError::invalid(name, "is not valid UTF-8"))
        };
        if let Some(version) = text("connect", &connect)?
            && version != "v1"
        {
            return Err(ApiError::invalid("connect", "must be v1"));
        }
        let codec = match text("encoding", &encoding)?.as_deref() {
            Some("json") => Codec::Json,
            Some("proto") => Codec::Proto,
            Some(_) => return Err(ApiError::invalid("encoding", "must be json or proto")),
            None => return Err(ApiError::invalid("encoding", "is required")),
        };
        let compression = text("compression", &compression)?;
        let compression = Compression::named(compression.as_deref()).ok_or_else(|| {
            ApiError::from_status(tonic::Status::unimplemented(format!(
                "unknown compression; use one of {ACCEPTED}"
            )))
        })?;
        let message = message.ok_or_else(|| ApiError::invalid("message", "is required"))?;
        let message = match text("base64", &base64)?.as_deref() {
            None | Some("0") => message,
            Some("1") => {
                use base64::Engine as _;
                base64::engine::GeneralPurpose::new(
                    &base64::alphabet::URL_SAFE,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                )
                .decode(&message)
                .map_err(|_| ApiError::invalid("message", "is not valid URL-safe base64"))?
            }
            Some(_) => return Err(ApiError::invalid("base64", "must be 0 or 1")),
        };
        Ok(GetQuery {
            codec,
            compression,
            message: message.into(),
        })
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
    fn a_get_query_carries_the_message_and_how_it_is_encoded() {
        let json = GetQuery::parse(Some(
            "connect=v1&encoding=json&message=%7B%22a%22%3A+1%7D&cb=9",
        ));
        assert_eq!(
            json.unwrap(),
            GetQuery {
                codec: Codec::Json,
                compression: Compression::Identity,
                message: Bytes::from_static(b"{\"a\": 1}"),
            }
        );
        // Binary, base64 without padding, and gzip: the bytes come back whole.
        let packed = Compression::Gzip.compress(vec![0xff, 0x00, 0x2b]);
        use base64::Engine as _;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&packed);
        let query = format!("encoding=proto&base64=1&compression=gzip&message={text}");
        let proto = GetQuery::parse(Some(&query)).unwrap();
        assert_eq!(
            (proto.codec, proto.compression),
            (Codec::Proto, Compression::Gzip)
        );
        assert_eq!(proto.message.as_ref(), packed.as_slice());
        // Percent-encoded binary needs no base64.
        let raw = GetQuery::parse(Some("encoding=proto&message=%FF%00%2B")).unwrap();
        assert_eq!(raw.message.as_ref(), &[0xff, 0x00, 0x2b]);
    }

    #[test]
    fn a_get_query_missing_or_repeating_a_parameter_is_refused_by_name() {
        for (query, field) in [
            ("message=%7B%7D", "encoding"),
            ("encoding=json", "message"),
            ("encoding=xml&message=", "encoding"),
            ("connect=v2&encoding=json&message=", "connect"),
            ("encoding=json&encoding=json&message=", "encoding"),
            ("encoding=json&message=%zz", "message"),
            ("encoding=proto&base64=1&message=***", "message"),
            ("encoding=proto&base64=2&message=", "base64"),
        ] {
            let refused = GetQuery::parse(Some(query)).unwrap_err();
            assert_eq!(refused.http, http::StatusCode::BAD_REQUEST, "{query}");
            let message = refused.status.message();
            assert!(
                message.contains(&format!("`{field}`")),
                "{query}: {message}"
            );
        }
        let unknown = GetQuery::parse(Some("encoding=json&message=&compression=br")).unwrap_err();
        assert_eq!(unknown.status.code(), tonic::Code::Unimplemented);
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
