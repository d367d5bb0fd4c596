//! Hostile bytes over a raw socket: the broker answers or disconnects, logs what was wrong,
//! keeps serving everyone else and keeps what was already acknowledged.

use crate::harness::{python, Broker};
use bytes::{Bytes, BytesMut};
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::{Decodable, StrBytes};
use gregor_core::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use gregor_core::wire;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Read one response frame, or None if the broker closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(Bytes::from(buf))
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn request(key: ApiKey, version: i16, body: RequestKind) -> Bytes {
    let h = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(77)
        .with_client_id(Some(StrBytes::from_static_str("hostile")));
    wire::encode_request(&h, &body).unwrap()
}

fn call(s: &mut TcpStream, key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    s.write_all(&request(key, version, body)).unwrap();
    let mut f = read_frame(s).expect("a response");
    let h = ResponseHeader::decode(&mut f, key.response_header_version(version)).unwrap();
    assert_eq!(h.correlation_id, 77);
    ResponseKind::decode(key, &mut f, version).unwrap()
}

fn batch(value: &str) -> Bytes {
    let r = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&r],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(s: &mut TcpStream, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])]);
    match call(s, ApiKey::Produce, 9, RequestKind::Produce(req)) {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_input_is_refused_and_the_broker_keeps_serving() {
    let mut b = Broker::start(&[]);
    let mut good = connect(&b);
    // Create the topic and write something acknowledged first.
    let md = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("h"))))]))
        .with_allow_auto_topic_creation(true);
    call(&mut good, ApiKey::Metadata, 9, RequestKind::Metadata(md));
    assert_eq!(produce(&mut good, "h", batch("precious")), (0, 0));

    // Random garbage: a plausible length, nonsense inside.
    let mut s = connect(&b);
    let mut junk = vec![0, 0, 0, 40];
    junk.extend((0..40u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    s.write_all(&junk).unwrap();
    assert!(closed(&mut s), "garbage closes the connection");

    // A 2 GB length prefix and a negative one: refused before any allocation.
    for prefix in [0x7fff_fff0u32.to_be_bytes(), (-5i32).to_be_bytes()] {
        let mut s = connect(&b);
        s.write_all(&prefix).unwrap();
        assert!(closed(&mut s), "absurd length prefix closes the connection");
    }

    // A truncated frame followed by silence: the broker waits without harm; others proceed.
    let mut silent = connect(&b);
    silent.write_all(&[0, 0, 1, 0, 0, 3]).unwrap();

    // An unknown API key, and Metadata at a version we do not speak: clean disconnects.
    let mut s = connect(&b);
    let mut f = request(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    )
    .to_vec();
    f[4..6].copy_from_slice(&999i16.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    let mut s = connect(&b);
    let mut f = request(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    )
    .to_vec();
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));

    // ApiVersions far above our maximum: a v0 answer with UNSUPPORTED_VERSION (KIP-511).
    let mut s = connect(&b);
    let mut f = request(
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
    .to_vec();
    f[6..8].copy_from_slice(&500i16.to_be_bytes());
    s.write_all(&f).unwrap();
    let mut resp = read_frame(&mut s).expect("answered");
    let h = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(h.correlation_id, 77);
    let av = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(av.error_code, 35);
    assert!(av
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Fetch as i16 && k.max_version >= 4));

    // A batch with a wrong CRC: CORRUPT_MESSAGE, and nothing is written.
    let mut bad = batch("corrupted").to_vec();
    let n = bad.len();
    bad[n - 3] ^= 0x55;
    assert_eq!(produce(&mut good, "h", Bytes::from(bad)).0, 2);
    // Unknown topic: UNKNOWN_TOPIC_OR_PARTITION (produce never auto-creates).
    assert_eq!(produce(&mut good, "no-such-topic", batch("x")).0, 3);
    // Oversized batch: MESSAGE_TOO_LARGE.
    assert_eq!(
        produce(&mut good, "h", batch(&"x".repeat(2 * 1024 * 1024))).0,
        10
    );

    // Many idle connections do not stop service.
    let idle: Vec<TcpStream> = (0..500).map(|_| connect(&b)).collect();
    assert!(b.alive(), "the broker survived everything");
    assert_eq!(
        produce(&mut good, "h", batch("after")),
        (0, 1),
        "the next offset: nothing was written by refused input"
    );
    let got = python("consume_all.py", &[&b.bootstrap(), "h", "1"]);
    let vals: Vec<String> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_str().unwrap().to_string())
        .collect();
    assert_eq!(vals, vec!["precious", "after"]);
    let log = b.log();
    assert!(
        log.contains("request frame length out of bounds"),
        "the log names what was wrong: {log}"
    );
    assert!(log.contains("CRC mismatch"), "{log}");
    // Kafka closes the connection too (SocketServer: InvalidRequestException "Received request
    // api key ... with version ... which is not enabled"); the log names the API and version.
    assert!(
        log.contains("unsupported version 99 of API Metadata"),
        "the log names the API and its version: {log}"
    );
    drop(idle);
    drop(silent);
}

/// Resident memory of a process, from /proc, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

fn fetch_all(topic: &str, max_bytes: i32) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(max_bytes)])]);
    request(ApiKey::Fetch, 12, RequestKind::Fetch(req))
}

/// The limits hold: connections beyond `--connections-max` are refused and the limit frees up
/// again; a fetch asking for 2 GB gets at most what the broker allows; a client that pipelines
/// thousands of fetches and never reads the answers is simply not read from, and the broker's
/// memory stays bounded; well-behaved clients are served throughout and acknowledged data stays.
#[test]
fn limits_bound_memory_and_keep_others_served() {
    let mut b = Broker::start(&[
        "--connections-max",
        "200",
        "--connection-buffer-bytes-max",
        "1048576",
        "--requests-per-connection-max",
        "16",
    ]);
    let pid = b.pid();
    let mut good = connect(&b);
    let md = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("big"))))]))
        .with_allow_auto_topic_creation(true);
    call(&mut good, ApiKey::Metadata, 9, RequestKind::Metadata(md));
    // About 1 MB of acknowledged data.
    let value = "v".repeat(100_000);
    for i in 0..10 {
        assert_eq!(produce(&mut good, "big", batch(&value)), (0, i));
    }
    let base = rss_mib(pid);

    // Thousands of connection attempts: 200 are held, the rest refused; service goes on.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..2_000 {
        let mut s = connect(&b);
        s.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        let mut one = [0u8; 1];
        match s.read(&mut one) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                idle.push(s)
            }
            _ => refused += 1,
        }
    }
    assert!(refused >= 1_700, "only {refused} of 2000 refused");
    assert!(b.log().contains("connection limit reached"));
    assert_eq!(produce(&mut good, "big", batch("during")), (0, 10));
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut again = connect(&b);
    call(
        &mut again,
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );

    // A fetch for 2 GB: answered, with no more than the broker's response limit.
    again.write_all(&fetch_all("big", i32::MAX)).unwrap();
    let resp = read_frame(&mut again).expect("answered");
    assert!(resp.len() > 1_000_000 && resp.len() < 60 * 1024 * 1024);

    // A client pipelining 3000 fetches of ~1 MB each without reading: not 3 GB of buffers.
    let mut greedy = connect(&b);
    greedy
        .set_write_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let f = fetch_all("big", 4 * 1024 * 1024);
    let mut written = 0;
    for _ in 0..3_000 {
        if greedy.write_all(&f).is_err() {
            break; // the broker stopped reading us: exactly the point
        }
        written += 1;
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let grown = rss_mib(pid).saturating_sub(base);
    assert!(
        grown < 200,
        "broker grew by {grown} MiB for a client that never reads ({written} fetches written)"
    );
    // Everyone else is still served, and the data is intact.
    assert_eq!(produce(&mut good, "big", batch("after")), (0, 11));
    drop(greedy);
    assert!(b.alive());
    let got = python("consume_all.py", &[&b.bootstrap(), "big", "12"]);
    let vals: Vec<String> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_str().unwrap().to_string())
        .collect();
    assert_eq!(vals.len(), 12);
    assert_eq!(vals[10], "during");
    assert_eq!(vals[11], "after");
}
