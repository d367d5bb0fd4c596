//! The Kafka wire protocol at the edge: frames in, typed requests out; typed responses in,
//! frames out. Pure functions, so the network runtime, the simulator and the fuzzers share them.
//!
//! A Kafka connection carries size-prefixed frames: a 4-byte big-endian length, then that many
//! bytes. A request frame holds a request header (API key, API version, correlation id, client
//! id, and from "flexible" versions on, tagged fields) and the request body. Message bodies are
//! encoded and decoded by the `kafka-protocol` crate, generated from Kafka's own JSON schemas.
//!
//! What this module adds:
//! * [`SUPPORTED`]: the API versions gregor advertises in ApiVersions, the ranges real clients
//!   need (see `docs/protocol.md`);
//! * peeking at the API key and version before decoding, so an unknown API or version gets a
//!   clear answer instead of a decode error;
//! * KIP-511: an ApiVersions request at a version above ours is answered with a v0 body carrying
//!   UNSUPPORTED_VERSION and our full list, so the client can retry at a version we speak.

use crate::io::Request;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;

/// The API versions gregor speaks: (API, min, max).
///
/// Produce advertises min 0 although versions 0–2 are refused on receipt: librdkafka before 2.11
/// compresses only if Produce v0 is advertised, and Apache Kafka 4 does the same.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 9),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 5),
    (ApiKey::DeleteTopics, 1, 4),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // ACLs (KIP-11): v0 went in Kafka 4.0 (KIP-896). Without an authorizer they answer
    // SECURITY_DISABLED, as Kafka's do.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // SASL (KIP-43, KIP-152): answered by the connection's `sasl::SaslSession`, which the
    // runtime runs in front of the broker; a broker core that sees one closes the connection.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // Advertised by a broker in KRaft mode only (forwarded to the active controller).
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // SCRAM users in the metadata log (KIP-554): described from the image, altered through
    // the active controller; KRaft mode only.
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

// Every advertised range is a range: checked when the crate compiles.
const _: () = {
    let mut i = 0;
    while i < SUPPORTED.len() {
        let (_, lo, hi) = SUPPORTED[i];
        assert!(
            0 <= lo && lo <= hi,
            "an advertised version range is lo..=hi"
        );
        i += 1;
    }
};

/// The advertised range for an API, if gregor speaks it at all.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Length-prefix size of every Kafka frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Why a frame could not become a request. The runtime answers what it can and closes the
/// connection otherwise, logging the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer than the 8 bytes that carry API key, version and correlation id.
    TooShort(usize),
    /// An API key gregor does not know.
    UnknownApi {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// A known API at a version gregor does not advertise (ApiVersions is handled per KIP-511
    /// and never yields this).
    UnsupportedVersion {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// The header or body does not parse.
    Malformed {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        why: String,
    },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TooShort(n) => {
                write!(f, "request frame of {n} bytes is too short for a header")
            }
            WireError::UnknownApi {
                api_key,
                api_version,
                correlation_id,
            } => write!(
                f,
                "unknown API key {api_key} (version {api_version}, correlation id {correlation_id})"
            ),
            WireError::UnsupportedVersion {
                api_key,
                api_version,
                correlation_id,
            } => write!(
                f,
                "unsupported version {api_version} of API {} (correlation id {correlation_id})",
                api_name(*api_key)
            ),
            WireError::Malformed {
                api_key,
                api_version,
                correlation_id,
                why,
            } => write!(
                f,
                "malformed {} v{api_version} request (correlation id {correlation_id}): {why}",
                api_name(*api_key)
            ),
        }
    }
}

/// A readable name for an API key, for log lines.
pub fn api_name(api_key: i16) -> String {
    match ApiKey::try_from(api_key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api#{api_key}"),
    }
}

/// Decode one request frame (without its length prefix).
pub fn decode_request(frame: Bytes) -> Result<Request, WireError> {
    if frame.len() < 8 {
        return Err(WireError::TooShort(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = match ApiKey::try_from(api_key) {
        Ok(k) if supported_range(k).is_some() => k,
        _ => {
            return Err(WireError::UnknownApi {
                api_key,
                api_version,
                correlation_id,
            })
        }
    };
    let (lo, hi) = supported_range(key).expect("checked above");
    let malformed = |why: String| WireError::Malformed {
        api_key,
        api_version,
        correlation_id,
        why,
    };

    if key == ApiKey::ApiVersions && api_version > hi {
        // KIP-511: the client used a newer ApiVersions than ours. We cannot parse its body, but
        // we must answer so it can retry. The header's client id is still readable (the header
        // is v2 for all flexible versions), but nothing depends on it.
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(api_version)
            .with_correlation_id(correlation_id);
        return Ok(Request {
            header,
            body: RequestKind::ApiVersions(Default::default()),
        });
    }
    if api_version < lo || api_version > hi {
        return Err(WireError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let mut buf = frame;
    let header_version = key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut buf, header_version)
        .map_err(|e| malformed(format!("header: {e}")))?;
    // The header decoder read the same eight bytes we peeked at.
    assert_eq!(
        (header.request_api_key, header.request_api_version),
        (api_key, api_version)
    );
    assert_eq!(header.correlation_id, correlation_id);
    let mut body = RequestKind::decode(key, &mut buf, api_version)
        .map_err(|e| malformed(format!("body: {e}")))?;
    // Bytes left over after the body are ignored, as Apache Kafka ignores them: some clients
    // send them (librdkafka 2.16's admin Metadata v9 request carries one extra byte), and a
    // broker that refused them would be unusable with those clients.
    let mut header = header;
    if let RequestKind::Produce(produce) = &mut body {
        detach_from_frame(&mut header, produce);
    }
    Ok(Request { header, body })
}

/// Leave a produce request's record batches the only holders of the frame they were read into.
///
/// The decoder hands out every string and byte field as a slice of the request frame, sharing
/// its buffer. A produce request's strings (client id, transactional id, topic names, tagged
/// fields) are a few bytes; its record batch is nearly all of the frame. Copying the strings out
/// leaves a lone batch (one partition per request, what a producer sends a partition's leader
/// most often) the only reference to the frame's buffer, so the broker can take it as a mutable
/// buffer (`Bytes::try_into_mut`), rewrite the base offset in the batch header in place and write
/// the very bytes the socket delivered to the segment: no copy of the batch in user space. With
/// several batches in one request they still share the buffer, and each is copied once when
/// appended, as before.
fn detach_from_frame(header: &mut RequestHeader, produce: &mut ProduceRequest) {
    fn own(s: &StrBytes) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }
    fn own_tags(tags: &mut BTreeMap<i32, Bytes>) {
        for v in tags.values_mut() {
            *v = Bytes::copy_from_slice(v);
        }
    }
    if let Some(c) = &mut header.client_id {
        *c = own(c);
    }
    own_tags(&mut header.unknown_tagged_fields);
    if let Some(t) = &mut produce.transactional_id {
        t.0 = own(&t.0);
    }
    own_tags(&mut produce.unknown_tagged_fields);
    for topic in &mut produce.topic_data {
        topic.name.0 = own(&topic.name.0);
        own_tags(&mut topic.unknown_tagged_fields);
        for p in &mut topic.partition_data {
            own_tags(&mut p.unknown_tagged_fields);
        }
    }
}

/// Encode a response as a whole frame: length prefix, response header, body.
///
/// Fails only if the body cannot be represented at `api_version` (a bug in the broker, which
/// the caller logs before closing the connection).
pub fn encode_response(
    correlation_id: i32,
    api_version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let records: usize = record_sections(body).iter().map(|r| r.len()).sum();
    let mut buf = BytesMut::with_capacity(128 + records);
    buf.put_u32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, body.header_version(api_version))?;
    body.encode(&mut buf, api_version)?;
    let len = u32::try_from(buf.len() - FRAME_PREFIX_BYTES)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(buf.len(), FRAME_PREFIX_BYTES + len as usize);
    Ok(buf.freeze())
}

/// Encode a response's header and body (the frame without its length prefix) into `buf`.
///
/// The buffer is any of `kafka-protocol`'s `ByteBufMut`s, such as the network runtime's frame
/// builder, which keeps the record sections listed by
/// [`record_sections`] as references to the stored bytes instead of copying them.
pub fn encode_response_into<B: ByteBufMut>(
    buf: &mut B,
    correlation_id: i32,
    api_version: i16,
    body: &ResponseKind,
) -> anyhow::Result<()> {
    let header_version = body.header_version(api_version);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, header_version)?;
    match body {
        // Generic over the buffer: its record sections reach `buf` as the stored `Bytes`.
        ResponseKind::Fetch(fetch) => fetch.encode(buf, api_version)?,
        // `ResponseKind` encodes only into a `BytesMut`; the other responses are small.
        other => {
            let mut b = BytesMut::with_capacity(128);
            other.encode(&mut b, api_version)?;
            buf.put_slice(&b);
        }
    }
    Ok(())
}

/// The record sections a response carries, in the order they are encoded: a fetch response's
/// batches, read from the segment files. They are nearly all of a fetch response's bytes, and
/// are sent as they were read: whole stored batches, never rebuilt.
pub fn record_sections(body: &ResponseKind) -> Vec<&Bytes> {
    match body {
        ResponseKind::Fetch(f) => f
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref())
            .filter(|r| !r.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// Encode a request as a whole frame. Used by gregor's own tools (`gregor topics`), the
/// simulator's tests and the fuzz corpus.
pub fn encode_request(header: &RequestHeader, body: &RequestKind) -> anyhow::Result<Bytes> {
    let key =
        ApiKey::try_from(header.request_api_key).map_err(|_| anyhow::anyhow!("unknown api key"))?;
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u32(0);
    header.encode(
        &mut buf,
        key.request_header_version(header.request_api_version),
    )?;
    body.encode(&mut buf, header.request_api_version)?;
    let len = u32::try_from(buf.len() - FRAME_PREFIX_BYTES)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(buf.len(), FRAME_PREFIX_BYTES + len as usize);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame_of(key: ApiKey, version: i16, body: RequestKind) -> Bytes {
        let h = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut f = encode_request(&h, &body).unwrap();
        let _ = f.split_to(4);
        f
    }

    #[test]
    fn round_trip_and_refusals() {
        let f = frame_of(
            ApiKey::Metadata,
            9,
            RequestKind::Metadata(MetadataRequest::default()),
        );
        let r = decode_request(f.clone()).unwrap();
        assert_eq!(r.header.correlation_id, 7);
        assert!(matches!(r.body, RequestKind::Metadata(_)));

        let mut extra = BytesMut::from(&f[..]);
        extra.put_u8(0);
        assert!(
            decode_request(extra.freeze()).is_ok(),
            "trailing bytes are ignored, as Kafka does"
        );
        assert!(matches!(
            decode_request(f.slice(..f.len() - 1)),
            Err(WireError::Malformed { .. })
        ));
        assert_eq!(
            decode_request(Bytes::from_static(b"\x00\x03")),
            Err(WireError::TooShort(2))
        );

        let mut unknown = f.to_vec();
        unknown[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(
            decode_request(Bytes::from(unknown)),
            Err(WireError::UnknownApi { api_key: 999, .. })
        ));

        let mut high = f.to_vec();
        high[2..4].copy_from_slice(&50i16.to_be_bytes());
        assert!(matches!(
            decode_request(Bytes::from(high)),
            Err(WireError::UnsupportedVersion {
                api_version: 50,
                ..
            })
        ));
    }

    #[test]
    fn api_versions_above_our_max_still_decodes() {
        let f = frame_of(
            ApiKey::ApiVersions,
            3,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        let mut v = f.to_vec();
        v[2..4].copy_from_slice(&127i16.to_be_bytes());
        let r = decode_request(Bytes::from(v)).unwrap();
        assert_eq!(r.header.request_api_version, 127);
        assert_eq!(r.header.correlation_id, 7);
    }
}
