//! The client against scripted brokers: every request it sends is decoded as a broker would
//! decode it (gregor-core's wire layer), and every answer is a response body encoded at the
//! version the client asked for. Happy paths and the error paths a real cluster produces.

use bytes::Bytes;
use gregor_client::kafka_protocol::messages::*;
use gregor_client::kafka_protocol::protocol::StrBytes;
use gregor_client::kafka_protocol::records::{Compression, RecordBatchDecoder};
use gregor_client::kafka_protocol::ResponseError;
use gregor_client::partitioner::partition_for_key;
use gregor_client::*;
use gregor_core::io::Request;
use gregor_core::testkit::{batch, Rec};
use gregor_core::wire;

const T0: u64 = 1_700_000_000_000_000_000;

struct Harness {
    client: Client,
    now: Instant,
    /// Requests sent and not yet answered, in order: (node, request).
    sent: Vec<(NodeId, Request)>,
    connecting: Vec<NodeId>,
    closed: Vec<NodeId>,
    app: Vec<Output>,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Harness {
    fn new(config: Config) -> Harness {
        let now = Instant(T0);
        let mut h = Harness {
            client: Client::new(config, now).unwrap(),
            now,
            sent: vec![],
            connecting: vec![],
            closed: vec![],
            app: vec![],
        };
        h.pump();
        h
    }

    fn pump(&mut self) {
        while let Some(o) = self.client.poll_output() {
            match o {
                Output::Connect { node, .. } => self.connecting.push(node),
                Output::Send { node, frame } => {
                    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
                    assert_eq!(len + 4, frame.len(), "one whole frame");
                    let r = wire::decode_request(frame.slice(4..)).expect("a request decodes");
                    self.sent.push((node, r));
                }
                Output::Close { node, .. } => self.closed.push(node),
                Output::Log { .. } => {}
                other => self.app.push(other),
            }
        }
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now = self.now + Duration::from_ms(ms);
        self.client.handle(Input::Tick { now: self.now });
        self.pump();
    }

    fn connect_all(&mut self) {
        for node in std::mem::take(&mut self.connecting) {
            self.client.handle(Input::Connected {
                now: self.now,
                node,
            });
        }
        self.pump();
    }

    /// Take the oldest unanswered request of this API.
    fn take(&mut self, key: ApiKey) -> (NodeId, Request) {
        if key != ApiKey::ApiVersions {
            // Connections the client opened meanwhile finish their handshake first.
            self.handshake();
        }
        let i = self
            .sent
            .iter()
            .position(|(_, r)| r.header.request_api_key == key as i16)
            .unwrap_or_else(|| panic!("no {key:?} request among {:?}", self.keys()));
        self.sent.remove(i)
    }

    fn keys(&self) -> Vec<(i32, i16)> {
        self.sent
            .iter()
            .map(|(n, r)| (n.0, r.header.request_api_key))
            .collect()
    }

    fn answer(&mut self, node: NodeId, req: &Request, body: ResponseKind) {
        let f = wire::encode_response(
            req.header.correlation_id,
            req.header.request_api_version,
            &body,
        )
        .unwrap();
        self.client.handle(Input::Frame {
            now: self.now,
            node,
            frame: f.slice(4..),
        });
        self.pump();
    }

    /// Connect, answer ApiVersions with gregor's list, on every node asked for.
    fn handshake(&mut self) {
        self.connect_all();
        while let Some(i) = self
            .sent
            .iter()
            .position(|(_, r)| r.header.request_api_key == ApiKey::ApiVersions as i16)
        {
            let (node, r) = self.sent.remove(i);
            let keys = wire::SUPPORTED
                .iter()
                .map(|(k, lo, hi)| {
                    api_versions_response::ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*lo)
                        .with_max_version(*hi)
                })
                .collect();
            self.answer(
                node,
                &r,
                ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(keys)),
            );
            self.connect_all();
        }
    }

    /// Answer the next Metadata request: brokers 1..=n on localhost, `topic` with `leaders`.
    fn metadata(&mut self, brokers: i32, topic: &str, leaders: &[i32]) {
        let (node, r) = self.take(ApiKey::Metadata);
        let body = MetadataResponse::default()
            .with_brokers(
                (1..=brokers)
                    .map(|b| {
                        metadata_response::MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b))
                            .with_host(sb("localhost"))
                            .with_port(9000 + b)
                    })
                    .collect(),
            )
            .with_topics(vec![metadata_response::MetadataResponseTopic::default()
                .with_name(Some(TopicName(sb(topic))))
                .with_partitions(
                    leaders
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            metadata_response::MetadataResponsePartition::default()
                                .with_partition_index(i as i32)
                                .with_leader_id(BrokerId(*l))
                                .with_leader_epoch(0)
                        })
                        .collect(),
                )]);
        self.answer(node, &r, ResponseKind::Metadata(body));
        self.handshake();
    }

    fn send(&mut self, topic: &str, key: Option<&str>, value: &str) -> RecordId {
        let id = self.client.send(
            self.now,
            ProducerRecord {
                topic: topic.into(),
                key: key.map(|k| Bytes::from(k.to_string())),
                value: Some(Bytes::from(value.to_string())),
                ..Default::default()
            },
        );
        self.pump();
        id
    }

    fn admin(&mut self, op: AdminOp) -> AdminId {
        let id = self.client.admin(self.now, op);
        self.pump();
        id
    }

    fn deliveries(&mut self) -> Vec<Delivery> {
        let (d, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.app)
            .into_iter()
            .partition(|o| matches!(o, Output::Delivered(_)));
        self.app = rest;
        d.into_iter()
            .map(|o| match o {
                Output::Delivered(d) => d,
                _ => unreachable!(),
            })
            .collect()
    }
}

fn produce_answer(req: &Request, code: i16, base: i64) -> ResponseKind {
    let RequestKind::Produce(p) = &req.body else {
        panic!("not a produce")
    };
    ResponseKind::Produce(
        ProduceResponse::default().with_responses(
            p.topic_data
                .iter()
                .map(|t| {
                    produce_response::TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|pd| {
                                    produce_response::PartitionProduceResponse::default()
                                        .with_index(pd.index)
                                        .with_error_code(code)
                                        .with_base_offset(if code == 0 { base } else { -1 })
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

/// The one batch of a produce request: (partition, bytes).
fn produced(req: &Request) -> Vec<(i32, Bytes)> {
    let RequestKind::Produce(p) = &req.body else {
        panic!("not a produce")
    };
    p.topic_data
        .iter()
        .flat_map(|t| {
            t.partition_data
                .iter()
                .map(|pd| (pd.index, pd.records.clone().unwrap()))
        })
        .collect()
}

fn header(b: &Bytes) -> gregor_core::batch::BatchHeader {
    gregor_core::batch::BatchHeader::parse(b).unwrap()
}

fn init_pid(h: &mut Harness, pid: i64) {
    let (node, r) = h.take(ApiKey::InitProducerId);
    h.answer(
        node,
        &r,
        ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0),
        ),
    );
}

fn config() -> Config {
    Config {
        linger_ms: 10,
        ..Config::default()
    }
}

/// Bootstrap, one broker leading every partition of `t`, producer id 7 known.
fn ready_producer(partitions: usize, config: Config) -> Harness {
    let mut h = Harness::new(config);
    h.send("t", Some("k"), "first");
    assert_eq!(h.connecting, vec![NodeId::bootstrap(0)]);
    h.handshake();
    h.metadata(1, "t", &vec![1; partitions]);
    if h.client.config().idempotent() {
        h.advance_ms(10);
        init_pid(&mut h, 7);
    }
    h.advance_ms(h.client.config().linger_ms);
    let (node, r) = h.take(ApiKey::Produce);
    if h.client.config().acks != Acks::None {
        h.answer(node, &r, produce_answer(&r, 0, 0));
    }
    assert_eq!(h.deliveries().len(), 1);
    h
}

/// While metadata is wanted but no connection is ready (the bootstrap server does not answer
/// the connection attempt), the client has nothing to do until a connection event: its next
/// deadline is never in the past, or a driver that sleeps until it would wake it at once,
/// forever (found by the cluster simulator: millions of wake-ups per seed).
#[test]
fn no_deadline_in_the_past_while_waiting_for_a_connection() {
    let mut h = Harness::new(config());
    h.send("t", None, "v");
    assert_eq!(h.connecting, vec![NodeId::bootstrap(0)]);
    for _ in 0..5 {
        h.advance_ms(1);
        if let Some(t) = h.client.poll_timeout() {
            assert!(t > h.now, "deadline {t:?} not after now {:?}", h.now);
        }
    }
    // Once the connection is up, the request goes out as before.
    h.handshake();
    h.take(ApiKey::Metadata);
}

#[test]
fn bootstrap_handshake_metadata_then_an_idempotent_keyed_batch() {
    let mut h = Harness::new(config());
    assert!(
        h.connecting.is_empty(),
        "nothing to do yet, nothing connects"
    );
    let a = h.send("orders", Some("alice"), "1");
    let b = h.send("orders", Some("alice"), "2");
    h.connect_all();
    let (node, r) = h.take(ApiKey::ApiVersions);
    assert_eq!(node, NodeId::bootstrap(0));
    assert_eq!(r.header.request_api_version, 3, "ApiVersions v3 first");
    assert!(h.sent.is_empty(), "nothing else before the handshake ends");
    h.sent.push((node, r));
    h.handshake();
    let (_, m) = h.take(ApiKey::Metadata);
    assert_eq!(
        m.header.request_api_version, 9,
        "highest Metadata both speak"
    );
    let RequestKind::Metadata(body) = &m.body else {
        panic!()
    };
    assert!(body.allow_auto_topic_creation);
    h.sent.insert(0, (NodeId::bootstrap(0), m));
    h.metadata(3, "orders", &[1, 2, 3, 1]);
    h.advance_ms(10);
    init_pid(&mut h, 42);
    h.pump();
    let want = partition_for_key(b"alice", 4);
    let (node, r) = h.take(ApiKey::Produce);
    assert_eq!(
        node,
        NodeId([1, 2, 3, 1][want as usize]),
        "sent to the leader"
    );
    let batches = produced(&r);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0, want, "murmur2 partition");
    let hd = header(&batches[0].1);
    assert_eq!(
        (hd.producer_id, hd.producer_epoch, hd.base_sequence),
        (42, 0, 0)
    );
    assert_eq!(hd.records_count, 2, "both records in one batch");
    let RequestKind::Produce(p) = &r.body else {
        panic!()
    };
    assert_eq!(p.acks, -1);
    h.answer(node, &r, produce_answer(&r, 0, 100));
    let d = h.deliveries();
    assert_eq!(
        d.iter()
            .map(|d| (d.id, d.partition, d.result.clone()))
            .collect::<Vec<_>>(),
        vec![(a, want, Ok(100)), (b, want, Ok(101))]
    );
    assert_eq!(h.client.unreported(), 0);
}

#[test]
fn api_versions_above_the_brokers_falls_back_as_kip_511_says() {
    let mut h = Harness::new(config());
    h.send("t", None, "v");
    h.connect_all();
    let (node, r) = h.take(ApiKey::ApiVersions);
    // An old broker answers a v0 body: UNSUPPORTED_VERSION and its ApiVersions range 0..=2.
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![api_versions_response::ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_max_version(2)]);
    let f = wire::encode_response(r.header.correlation_id, 0, &ResponseKind::ApiVersions(body))
        .unwrap();
    h.client.handle(Input::Frame {
        now: h.now,
        node,
        frame: f.slice(4..),
    });
    h.pump();
    let (_, again) = h.take(ApiKey::ApiVersions);
    assert_eq!(again.header.request_api_version, 2);
}

#[test]
fn not_leader_refreshes_metadata_and_resends_the_same_bytes_to_the_new_leader() {
    let mut h = ready_producer(1, config());
    h.send("t", None, "x");
    h.advance_ms(10);
    let (node, r) = h.take(ApiKey::Produce);
    assert_eq!(node, NodeId(1));
    let first = produced(&r);
    h.answer(
        node,
        &r,
        produce_answer(&r, ResponseError::NotLeaderOrFollower.code(), 0),
    );
    assert!(h.deliveries().is_empty(), "retriable: not reported");
    h.advance_ms(100);
    h.metadata(2, "t", &[2]);
    h.advance_ms(100);
    let (node, r) = h.take(ApiKey::Produce);
    assert_eq!(node, NodeId(2), "the new leader");
    assert_eq!(produced(&r), first, "the very same batch, same sequence");
    h.answer(node, &r, produce_answer(&r, 0, 5));
    assert_eq!(h.deliveries()[0].result, Ok(5));
}

#[test]
fn batches_in_flight_retry_in_sequence_order_after_a_failure() {
    let mut cfg = config();
    cfg.batch_bytes_max = 140;
    let mut h = ready_producer(1, cfg);
    for i in 0..6 {
        h.send("t", Some("k"), &format!("{i:0>40}"));
    }
    h.advance_ms(10);
    // Three batches of two records: three requests in flight, sequences 1, 3, 5.
    let reqs: Vec<(NodeId, Request)> = (0..3).map(|_| h.take(ApiKey::Produce)).collect();
    let seqs: Vec<i32> = reqs
        .iter()
        .map(|(_, r)| header(&produced(r)[0].1).base_sequence)
        .collect();
    assert_eq!(seqs, vec![1, 3, 5]);
    h.answer(
        reqs[0].0,
        &reqs[0].1,
        produce_answer(&reqs[0].1, ResponseError::NotEnoughReplicas.code(), 0),
    );
    h.answer(
        reqs[1].0,
        &reqs[1].1,
        produce_answer(
            &reqs[1].1,
            ResponseError::OutOfOrderSequenceNumber.code(),
            0,
        ),
    );
    h.advance_ms(100);
    assert!(
        h.sent
            .iter()
            .all(|(_, r)| r.header.request_api_key != ApiKey::Produce as i16),
        "nothing resent while a batch is still in flight"
    );
    h.answer(
        reqs[2].0,
        &reqs[2].1,
        produce_answer(
            &reqs[2].1,
            ResponseError::OutOfOrderSequenceNumber.code(),
            0,
        ),
    );
    assert!(h.deliveries().is_empty());
    h.advance_ms(100);
    let again: Vec<i32> = (0..3)
        .map(|_| header(&produced(&h.take(ApiKey::Produce).1)[0].1).base_sequence)
        .collect();
    assert_eq!(again, vec![1, 3, 5], "resent in order with their sequences");
}

#[test]
fn a_batch_refused_for_good_fails_its_records_and_renumbers_under_a_new_producer_id() {
    let mut h = ready_producer(1, config());
    let bad = h.send("t", Some("k"), "too big for the broker");
    h.advance_ms(10);
    let (node, r) = h.take(ApiKey::Produce);
    h.answer(
        node,
        &r,
        produce_answer(&r, ResponseError::MessageTooLarge.code(), 0),
    );
    let d = h.deliveries();
    assert_eq!(d[0].id, bad);
    assert_eq!(
        d[0].result.as_ref().unwrap_err().code(),
        Some(ResponseError::MessageTooLarge.code())
    );
    h.send("t", Some("k"), "next");
    h.advance_ms(10);
    init_pid(&mut h, 8);
    let (_, r) = h.take(ApiKey::Produce);
    let hd = header(&produced(&r)[0].1);
    assert_eq!(
        (hd.producer_id, hd.base_sequence),
        (8, 0),
        "a new id, sequences from 0"
    );
}

#[test]
fn duplicate_sequence_counts_as_delivered() {
    let mut h = ready_producer(1, config());
    let id = h.send("t", Some("k"), "v");
    h.advance_ms(10);
    let (node, r) = h.take(ApiKey::Produce);
    h.answer(
        node,
        &r,
        produce_answer(&r, ResponseError::DuplicateSequenceNumber.code(), 0),
    );
    let d = h.deliveries();
    assert_eq!((d[0].id, d[0].result.clone()), (id, Ok(-1)));
}

#[test]
fn a_dropped_connection_resends_what_was_in_flight() {
    let mut h = ready_producer(1, config());
    h.send("t", Some("k"), "v");
    h.advance_ms(10);
    let (node, r) = h.take(ApiKey::Produce);
    let bytes = produced(&r);
    h.client.handle(Input::Disconnected {
        now: h.now,
        node,
        reason: "reset".into(),
    });
    h.pump();
    h.advance_ms(100);
    h.handshake();
    h.metadata(1, "t", &[1]);
    h.advance_ms(100);
    let (node, r) = h.take(ApiKey::Produce);
    assert_eq!(produced(&r), bytes);
    h.answer(node, &r, produce_answer(&r, 0, 1));
    assert_eq!(h.deliveries()[0].result, Ok(1));
}

#[test]
fn acks_zero_reports_on_send_and_expects_no_answer() {
    let cfg = Config {
        acks: Acks::None,
        ..config()
    };
    let mut h = ready_producer(1, cfg);
    let id = h.send("t", None, "fire and forget");
    h.advance_ms(10);
    let (_, r) = h.take(ApiKey::Produce);
    let RequestKind::Produce(p) = &r.body else {
        panic!()
    };
    assert_eq!(p.acks, 0);
    assert_eq!(header(&produced(&r)[0].1).producer_id, -1, "no idempotence");
    let d = h.deliveries();
    assert_eq!((d[0].id, d[0].result.clone()), (id, Ok(-1)));
}

#[test]
fn linger_holds_a_batch_and_batch_size_closes_it() {
    let mut cfg = config();
    cfg.linger_ms = 50;
    cfg.batch_bytes_max = 1000;
    let mut h = ready_producer(1, cfg);
    h.send("t", Some("k"), "a");
    h.advance_ms(49);
    assert!(h.sent.is_empty(), "lingering");
    assert_eq!(h.client.poll_timeout(), Some(h.now + Duration::from_ms(1)));
    h.advance_ms(1);
    let (node, r) = h.take(ApiKey::Produce);
    h.answer(node, &r, produce_answer(&r, 0, 1));
    for i in 0..30 {
        h.send("t", Some("k"), &format!("{i:0>60}"));
    }
    // 30 records of ~90 bytes: full batches leave without lingering.
    let (_, r) = h.take(ApiKey::Produce);
    let n = header(&produced(&r)[0].1).records_count;
    assert!((9..=12).contains(&n), "a full batch: {n} records");
}

#[test]
fn unkeyed_records_stick_to_one_partition_until_the_batch_closes() {
    let mut cfg = config();
    cfg.batch_bytes_max = 500;
    let mut h = ready_producer(8, cfg);
    for i in 0..40 {
        h.send("t", None, &format!("{i:0>60}"));
    }
    h.advance_ms(10);
    let mut parts = vec![];
    while let Some(i) = h
        .sent
        .iter()
        .position(|(_, r)| r.header.request_api_key == 0)
    {
        let (_, r) = h.sent.remove(i);
        for (p, b) in produced(&r) {
            parts.push((p, header(&b).records_count));
        }
    }
    assert!(
        parts.iter().all(|(_, n)| *n >= 5 || parts.len() == 1),
        "whole batches: {parts:?}"
    );
    let distinct: std::collections::BTreeSet<i32> = parts.iter().map(|(p, _)| *p).collect();
    assert!(distinct.len() > 1, "moves on after a batch: {parts:?}");
}

#[test]
fn records_for_a_topic_that_never_appears_time_out() {
    let cfg = Config {
        delivery_timeout_ms: 1000,
        ..config()
    };
    let mut h = Harness::new(cfg);
    let id = h.send("ghost", None, "v");
    h.handshake();
    for _ in 0..5 {
        let (node, r) = h.take(ApiKey::Metadata);
        let body = MetadataResponse::default().with_topics(vec![
            metadata_response::MetadataResponseTopic::default()
                .with_name(Some(TopicName(sb("ghost"))))
                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
        ]);
        h.answer(node, &r, ResponseKind::Metadata(body));
        h.advance_ms(200);
    }
    let d = h.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].id, id);
    assert!(matches!(d[0].result, Err(ClientError::Timeout(_))), "{d:?}");
    assert_eq!(h.client.unreported(), 0);
}

#[test]
fn a_record_larger_than_a_request_fails_at_once() {
    let mut h = Harness::new(config());
    h.client.send(
        h.now,
        ProducerRecord {
            topic: "t".into(),
            value: Some(Bytes::from(vec![0u8; 2 * 1024 * 1024])),
            ..Default::default()
        },
    );
    h.pump();
    let d = h.deliveries();
    assert!(matches!(d[0].result, Err(ClientError::Invalid(_))));
    assert!(h.connecting.is_empty());
}

// ---- consumer --------------------------------------------------------------------------

fn fetch_answer(req: &Request, code: i16, records: Bytes, hw: i64) -> ResponseKind {
    let RequestKind::Fetch(f) = &req.body else {
        panic!("not a fetch")
    };
    ResponseKind::Fetch(
        FetchResponse::default().with_responses(
            f.topics
                .iter()
                .map(|t| {
                    fetch_response::FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    fetch_response::PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(code)
                                        .with_high_watermark(hw)
                                        .with_records(Some(records.clone()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

fn list_answer(req: &Request, offset: i64) -> ResponseKind {
    let RequestKind::ListOffsets(l) = &req.body else {
        panic!("not a list offsets")
    };
    ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(
            l.topics
                .iter()
                .map(|t| {
                    list_offsets_response::ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    list_offsets_response::ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_offset(offset)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

/// A stored batch of `n` records from `base`, as a broker serves it.
fn stored(base: i64, n: usize, compression: Compression) -> Bytes {
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec {
            key: Some(Bytes::from(format!("k{}", base + i as i64))),
            value: Some(Bytes::from(format!("v{}", base + i as i64))),
            timestamp_ms: 1,
            headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
        })
        .collect();
    let mut b = batch(&recs, None, compression).to_vec();
    gregor_core::batch::assign(&mut b, base, 0);
    Bytes::from(b)
}

fn records(h: &mut Harness) -> Vec<(i32, i64, String)> {
    let mut out = vec![];
    for o in std::mem::take(&mut h.app) {
        match o {
            Output::Records(f) => out.extend(f.records.iter().map(|r| {
                (
                    f.partition,
                    r.offset,
                    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
                )
            })),
            other => h.app.push(other),
        }
    }
    out
}

fn consumer(reset: OffsetReset) -> Harness {
    let mut h = Harness::new(Config {
        auto_offset_reset: reset,
        ..config()
    });
    h.client.assign_topic(h.now, "t", None);
    h.pump();
    h.handshake();
    h.metadata(1, "t", &[1]);
    h
}

#[test]
fn consumer_resets_to_earliest_fetches_and_skips_what_precedes_its_position() {
    let mut h = consumer(OffsetReset::Earliest);
    let (node, r) = h.take(ApiKey::ListOffsets);
    let RequestKind::ListOffsets(l) = &r.body else {
        panic!()
    };
    assert_eq!(l.topics[0].partitions[0].timestamp, -2, "earliest");
    h.answer(node, &r, list_answer(&r, 3));
    let (node, f) = h.take(ApiKey::Fetch);
    let RequestKind::Fetch(body) = &f.body else {
        panic!()
    };
    assert_eq!(body.topics[0].partitions[0].fetch_offset, 3);
    assert_eq!(
        (body.session_id, body.session_epoch),
        (0, -1),
        "sessionless"
    );
    // The stored batch starts at 0; the consumer asked for 3. Then a batch cut by the limit.
    let mut data = stored(0, 5, Compression::None).to_vec();
    let next = stored(5, 3, Compression::Gzip);
    data.extend_from_slice(&next[..next.len() - 7]);
    h.answer(node, &f, fetch_answer(&f, 0, Bytes::from(data), 8));
    assert_eq!(
        records(&mut h),
        vec![(0, 3, "v3".into()), (0, 4, "v4".into())]
    );
    assert_eq!(h.client.position(&("t".into(), 0)), Some(5));
    let (node, f) = h.take(ApiKey::Fetch);
    h.answer(node, &f, fetch_answer(&f, 0, next, 8));
    assert_eq!(records(&mut h).len(), 3);
    assert!(h.client.caught_up());
}

#[test]
fn offset_out_of_range_resets_by_policy_or_stops_with_none() {
    let mut h = consumer(OffsetReset::Latest);
    h.client.seek(h.now, ("t".into(), 0), 1000);
    h.pump();
    // The lookup made before the seek is answered and ignored.
    let (node, r) = h.take(ApiKey::ListOffsets);
    h.answer(node, &r, list_answer(&r, 7));
    assert_eq!(h.client.position(&("t".into(), 0)), Some(1000));
    let (node, f) = h.take(ApiKey::Fetch);
    h.answer(
        node,
        &f,
        fetch_answer(&f, ResponseError::OffsetOutOfRange.code(), Bytes::new(), 10),
    );
    let (node, r) = h.take(ApiKey::ListOffsets);
    let RequestKind::ListOffsets(l) = &r.body else {
        panic!()
    };
    assert_eq!(l.topics[0].partitions[0].timestamp, -1, "latest");
    h.answer(node, &r, list_answer(&r, 10));
    assert_eq!(h.client.position(&("t".into(), 0)), Some(10));

    let mut h = consumer(OffsetReset::None);
    assert!(
        matches!(h.app.as_slice(), [Output::ConsumeError { .. }]),
        "no position and no reset policy: {:?}",
        h.app
    );
    h.app.clear();
    h.client.seek(h.now, ("t".into(), 0), 1000);
    h.pump();
    let (node, f) = h.take(ApiKey::Fetch);
    h.answer(
        node,
        &f,
        fetch_answer(&f, ResponseError::OffsetOutOfRange.code(), Bytes::new(), 10),
    );
    match h.app.as_slice() {
        [Output::ConsumeError { error, .. }] => {
            assert_eq!(error.code(), Some(ResponseError::OffsetOutOfRange.code()))
        }
        other => panic!("{other:?}"),
    }
    h.advance_ms(1000);
    assert!(h.sent.is_empty(), "a stopped partition is not fetched");
}

#[test]
fn a_fetch_from_a_follower_refreshes_metadata_and_moves_to_the_leader() {
    let mut h = consumer(OffsetReset::Earliest);
    let (node, r) = h.take(ApiKey::ListOffsets);
    h.answer(node, &r, list_answer(&r, 0));
    let (node, f) = h.take(ApiKey::Fetch);
    h.answer(
        node,
        &f,
        fetch_answer(
            &f,
            ResponseError::NotLeaderOrFollower.code(),
            Bytes::new(),
            0,
        ),
    );
    h.advance_ms(100);
    h.metadata(2, "t", &[2]);
    h.advance_ms(100);
    let (node, f) = h.take(ApiKey::Fetch);
    assert_eq!(node, NodeId(2));
    h.answer(
        node,
        &f,
        fetch_answer(&f, 0, stored(0, 2, Compression::Snappy), 2),
    );
    assert_eq!(records(&mut h).len(), 2);
}

#[test]
fn seek_to_time_uses_list_offsets_and_falls_back_to_the_end() {
    let mut h = consumer(OffsetReset::Earliest);
    let (node, r) = h.take(ApiKey::ListOffsets);
    h.answer(node, &r, list_answer(&r, 0));
    let (node, f) = h.take(ApiKey::Fetch);
    h.client
        .seek_to(h.now, ("t".into(), 0), SeekTo::Time(5_000));
    h.pump();
    // The fetch for the old position answers after the seek: ignored.
    h.answer(
        node,
        &f,
        fetch_answer(&f, 0, stored(0, 2, Compression::None), 2),
    );
    assert!(records(&mut h).is_empty());
    let (node, r) = h.take(ApiKey::ListOffsets);
    let RequestKind::ListOffsets(l) = &r.body else {
        panic!()
    };
    assert_eq!(l.topics[0].partitions[0].timestamp, 5_000);
    h.answer(node, &r, list_answer(&r, -1));
    let (node, r) = h.take(ApiKey::ListOffsets);
    h.answer(node, &r, list_answer(&r, 2));
    assert_eq!(h.client.position(&("t".into(), 0)), Some(2));
}

#[test]
fn a_response_out_of_order_closes_the_connection() {
    let mut h = consumer(OffsetReset::Earliest);
    let (node, r) = h.take(ApiKey::ListOffsets);
    let mut wrong = r.clone();
    wrong.header.correlation_id += 100;
    h.answer(node, &wrong, list_answer(&r, 0));
    assert_eq!(h.closed, vec![node]);
}

#[test]
fn records_decode_from_every_codec_the_encoder_writes() {
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Zstd,
    ] {
        let b = stored(10, 3, c);
        let (recs, next) = gregor_client::consumer::read_records(b.clone(), 11).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 12]
        );
        assert_eq!(next, 13);
        assert_eq!(
            recs[0].headers,
            vec![("h".to_string(), Some(Bytes::from_static(b"x")))]
        );
        let mut corrupt = b.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(gregor_client::consumer::read_records(Bytes::from(corrupt), 0).is_err());
        assert!(RecordBatchDecoder::decode(&mut b.clone()).is_ok());
    }
}

// ---- group member ----------------------------------------------------------------------

#[test]
fn a_group_member_joins_leads_assigns_resumes_from_commits_and_rejoins_on_rebalance() {
    use gregor_client::kafka_protocol::protocol::{Decodable, Encodable};
    let mut h = Harness::new(config());
    h.client
        .subscribe(h.now, GroupConfig::new("g"), &["t".to_string()]);
    h.pump();
    h.handshake();
    h.metadata(1, "t", &[1, 1]);
    let (node, r) = h.take(ApiKey::FindCoordinator);
    let coordinator = FindCoordinatorResponse::default()
        .with_node_id(BrokerId(1))
        .with_host(sb("localhost"))
        .with_port(9001);
    h.answer(node, &r, ResponseKind::FindCoordinator(coordinator));
    let (node, r) = h.take(ApiKey::JoinGroup);
    assert_eq!(
        node,
        NodeId(i32::MAX - 1),
        "JoinGroup goes to the coordinator, on a connection of its own"
    );
    let RequestKind::JoinGroup(join) = &r.body else {
        panic!()
    };
    assert_eq!(join.member_id.as_str(), "");
    assert_eq!(join.protocols[0].name.as_str(), "range");
    let metadata = join.protocols[0].metadata.clone();
    // KIP-394: a new member is told its id and joins again with it.
    h.answer(
        node,
        &r,
        ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(ResponseError::MemberIdRequired.code())
                .with_member_id(sb("m-1")),
        ),
    );
    let (node, r) = h.take(ApiKey::JoinGroup);
    let RequestKind::JoinGroup(join) = &r.body else {
        panic!()
    };
    assert_eq!(join.member_id.as_str(), "m-1");
    let members = ["m-1", "m-2"]
        .iter()
        .map(|m| {
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(sb(m))
                .with_metadata(metadata.clone())
        })
        .collect();
    h.answer(
        node,
        &r,
        ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_generation_id(1)
                .with_protocol_name(Some(sb("range")))
                .with_leader(sb("m-1"))
                .with_member_id(sb("m-1"))
                .with_members(members),
        ),
    );
    let (node, r) = h.take(ApiKey::SyncGroup);
    let RequestKind::SyncGroup(sync) = &r.body else {
        panic!()
    };
    assert_eq!(sync.generation_id, 1);
    let decode = |b: &Bytes| {
        let mut b = b.clone();
        let v = i16::from_be_bytes([b[0], b[1]]);
        let _ = bytes::Buf::get_i16(&mut b);
        let a = ConsumerProtocolAssignment::decode(&mut b, v).unwrap();
        a.assigned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.to_string(), *p)))
            .collect::<Vec<_>>()
    };
    let plan: Vec<(String, Vec<(String, i32)>)> = sync
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), decode(&a.assignment)))
        .collect();
    assert_eq!(
        plan,
        vec![
            ("m-1".to_string(), vec![("t".to_string(), 0)]),
            ("m-2".to_string(), vec![("t".to_string(), 1)])
        ],
        "the leader's range assignment"
    );
    let mine = sync.assignments[0].assignment.clone();
    h.answer(
        node,
        &r,
        ResponseKind::SyncGroup(SyncGroupResponse::default().with_assignment(mine)),
    );
    assert_eq!(h.client.assignment(), vec![("t".to_string(), 0)]);
    let (node, r) = h.take(ApiKey::OffsetFetch);
    let committed = OffsetFetchResponse::default().with_topics(vec![
        offset_fetch_response::OffsetFetchResponseTopic::default()
            .with_name(TopicName(sb("t")))
            .with_partitions(vec![
                offset_fetch_response::OffsetFetchResponsePartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(7),
            ]),
    ]);
    h.answer(node, &r, ResponseKind::OffsetFetch(committed));
    let (node, f) = h.take(ApiKey::Fetch);
    let RequestKind::Fetch(body) = &f.body else {
        panic!()
    };
    assert_eq!(
        body.topics[0].partitions[0].fetch_offset, 7,
        "from the commit"
    );
    h.answer(
        node,
        &f,
        fetch_answer(&f, 0, stored(7, 2, Compression::None), 9),
    );
    assert_eq!(records(&mut h).len(), 2);
    // A heartbeat learns of a rebalance: commit the position, give up, join again.
    h.advance_ms(3_000);
    let (node, r) = h.take(ApiKey::Heartbeat);
    h.answer(
        node,
        &r,
        ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(ResponseError::RebalanceInProgress.code()),
        ),
    );
    assert!(
        h.client.assignment().is_empty(),
        "eager: gave everything up"
    );
    let (_, c) = h.take(ApiKey::OffsetCommit);
    let RequestKind::OffsetCommit(commit) = &c.body else {
        panic!()
    };
    assert_eq!(commit.generation_id_or_member_epoch, 1);
    assert_eq!(commit.topics[0].partitions[0].committed_offset, 9);
    let (_, r) = h.take(ApiKey::JoinGroup);
    let RequestKind::JoinGroup(join) = &r.body else {
        panic!()
    };
    assert_eq!(join.member_id.as_str(), "m-1", "keeps its id");
    let mut m = join.protocols[0].metadata.clone();
    let v = bytes::Buf::get_i16(&mut m);
    let s = ConsumerProtocolSubscription::decode(&mut m, v).unwrap();
    assert_eq!(
        s.owned_partitions[0].partitions,
        vec![0],
        "reports what it owned"
    );
    let _ = s.encode(&mut bytes::BytesMut::new(), v);
}

#[test]
fn a_group_refusing_the_assignor_is_reported_and_left() {
    let mut h = Harness::new(config());
    h.client
        .subscribe(h.now, GroupConfig::new("g"), &["t".to_string()]);
    h.pump();
    h.handshake();
    h.metadata(1, "t", &[1]);
    let (node, r) = h.take(ApiKey::FindCoordinator);
    let coordinator = FindCoordinatorResponse::default()
        .with_node_id(BrokerId(1))
        .with_host(sb("localhost"))
        .with_port(9001);
    h.answer(node, &r, ResponseKind::FindCoordinator(coordinator));
    let (node, r) = h.take(ApiKey::JoinGroup);
    h.answer(
        node,
        &r,
        ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(ResponseError::InconsistentGroupProtocol.code()),
        ),
    );
    match h.app.as_slice() {
        [Output::GroupError { group, error }] => {
            assert_eq!(group, "g");
            assert_eq!(
                error.code(),
                Some(ResponseError::InconsistentGroupProtocol.code())
            );
        }
        other => panic!("{other:?}"),
    }
    h.advance_ms(10_000);
    assert!(h.sent.is_empty() || h.keys().iter().all(|(_, k)| *k == ApiKey::Metadata as i16));
}

// ---- the admin client ------------------------------------------------------------------------

/// The admin results the application received.
fn admin_results(h: &mut Harness) -> Vec<(AdminId, Result<AdminResult, ClientError>)> {
    let (a, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut h.app)
        .into_iter()
        .partition(|o| matches!(o, Output::Admin { .. }));
    h.app = rest;
    a.into_iter()
        .map(|o| match o {
            Output::Admin { id, result } => (id, result),
            _ => unreachable!(),
        })
        .collect()
}

/// The partitions a ListOffsets request names.
fn listed(req: &Request) -> Vec<(String, i32, i64)> {
    let RequestKind::ListOffsets(r) = &req.body else {
        panic!("not a ListOffsets")
    };
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.timestamp))
        })
        .collect()
}

fn list_offsets_op() -> AdminOp {
    AdminOp::ListOffsets {
        partitions: vec![
            (("t".into(), 0), OffsetSpec::Latest),
            (("t".into(), 1), OffsetSpec::Latest),
        ],
    }
}

#[test]
fn admin_list_offsets_goes_to_each_leader_and_merges_the_answers() {
    let mut h = Harness::new(Config::default());
    let id = h.admin(list_offsets_op());
    h.handshake();
    h.metadata(2, "t", &[1, 2]);
    let (n1, r1) = h.take(ApiKey::ListOffsets);
    let (n2, r2) = h.take(ApiKey::ListOffsets);
    let mut asked = vec![(n1, listed(&r1)), (n2, listed(&r2))];
    asked.sort_by_key(|(n, _)| *n);
    assert_eq!(
        asked,
        vec![
            (NodeId(1), vec![("t".into(), 0, -1)]),
            (NodeId(2), vec![("t".into(), 1, -1)]),
        ],
        "one request per leader, each with its own partitions"
    );
    // Each leader answers with its own id times ten.
    h.answer(n1, &r1, list_answer(&r1, n1.0 as i64 * 10));
    assert!(
        admin_results(&mut h).is_empty(),
        "half the answers is no result"
    );
    h.answer(n2, &r2, list_answer(&r2, n2.0 as i64 * 10));
    let results = admin_results(&mut h);
    let [(got, Ok(AdminResult::ListOffsets(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    assert_eq!(*got, id);
    let offsets: Vec<(i32, i64)> = m
        .iter()
        .map(|((_, p), r)| (*p, r.as_ref().unwrap().offset))
        .collect();
    assert_eq!(
        offsets,
        vec![(0, 10), (1, 20)],
        "merged, each from its leader"
    );
    assert_eq!(h.client.admin_pending(), 0);
}

#[test]
fn admin_not_leader_refreshes_metadata_and_retries_at_the_new_leader() {
    let mut h = Harness::new(Config::default());
    h.admin(AdminOp::DeleteRecords {
        partitions: vec![(("t".into(), 0), 5)],
    });
    h.handshake();
    h.metadata(2, "t", &[1]);
    let (n, r) = h.take(ApiKey::DeleteRecords);
    assert_eq!(n, NodeId(1));
    let refuse = ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(vec![
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(TopicName(sb("t")))
                .with_partitions(vec![
                    delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(0)
                        .with_error_code(ResponseError::NotLeaderOrFollower.code())
                        .with_low_watermark(-1),
                ]),
        ]));
    h.answer(n, &r, refuse);
    assert!(admin_results(&mut h).is_empty(), "retried, not failed");
    // Metadata is asked for at once; the request waits for retry.backoff.ms.
    h.metadata(2, "t", &[2]);
    assert!(
        !h.keys()
            .iter()
            .any(|(_, k)| *k == ApiKey::DeleteRecords as i16),
        "nothing before the backoff: {:?}",
        h.keys()
    );
    h.advance_ms(100);
    let (n, r) = h.take(ApiKey::DeleteRecords);
    assert_eq!(n, NodeId(2), "the new leader");
    let ok = ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(vec![
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(TopicName(sb("t")))
                .with_partitions(vec![
                    delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(0)
                        .with_low_watermark(5),
                ]),
        ]));
    h.answer(n, &r, ok);
    let results = admin_results(&mut h);
    let [(_, Ok(AdminResult::DeleteRecords(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    assert_eq!(m[&("t".to_string(), 0)], Ok(5));
}

fn find_coordinator_answer(broker: i32, code: i16) -> ResponseKind {
    ResponseKind::FindCoordinator(
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(BrokerId(if code == 0 { broker } else { -1 }))
            .with_host(sb("localhost"))
            .with_port(9000 + broker),
    )
}

fn describe_groups_answer(group: &str, code: i16) -> ResponseKind {
    let assignment = {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(TopicName(sb("t")))
                .with_partitions(vec![0, 1]),
        ]);
        let mut b = bytes::BytesMut::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        gregor_client::kafka_protocol::protocol::Encodable::encode(&a, &mut b, 0).unwrap();
        b.freeze()
    };
    ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(vec![
        describe_groups_response::DescribedGroup::default()
            .with_error_code(code)
            .with_group_id(GroupId(sb(group)))
            .with_group_state(sb("Stable"))
            .with_protocol_type(sb("consumer"))
            .with_protocol_data(sb("range"))
            .with_members(vec![describe_groups_response::DescribedGroupMember::default()
                .with_member_id(sb("m-1"))
                .with_client_id(sb("c"))
                .with_client_host(sb("/127.0.0.1"))
                .with_member_assignment(assignment)]),
    ]))
}

#[test]
fn admin_group_operations_find_the_coordinator_and_look_again_on_not_coordinator() {
    let mut h = Harness::new(Config::default());
    h.admin(AdminOp::DescribeGroups {
        groups: vec!["g".into()],
    });
    let (n, r) = h.take(ApiKey::FindCoordinator);
    assert!(n.is_bootstrap(), "any broker answers FindCoordinator");
    h.answer(n, &r, find_coordinator_answer(2, 0));
    let (n, r) = h.take(ApiKey::DescribeGroups);
    assert_eq!(n, NodeId(2), "the coordinator");
    h.answer(
        n,
        &r,
        describe_groups_answer("g", ResponseError::NotCoordinator.code()),
    );
    assert!(admin_results(&mut h).is_empty());
    h.advance_ms(100);
    let (n, r) = h.take(ApiKey::FindCoordinator);
    h.answer(n, &r, find_coordinator_answer(3, 0));
    let (n, r) = h.take(ApiKey::DescribeGroups);
    assert_eq!(n, NodeId(3), "the coordinator it was told of next");
    h.answer(n, &r, describe_groups_answer("g", 0));
    let results = admin_results(&mut h);
    let [(_, Ok(AdminResult::DescribeGroups(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    let g = m["g"].as_ref().unwrap();
    assert_eq!((g.state.as_str(), g.coordinator), ("Stable", 3));
    assert_eq!(
        g.members[0].assignment,
        vec![("t".to_string(), 0), ("t".to_string(), 1)]
    );
    // The coordinator is cached: a second operation on the group goes straight to it.
    h.admin(AdminOp::ListGroupOffsets {
        group: "g".into(),
        partitions: None,
    });
    let (n, _) = h.take(ApiKey::OffsetFetch);
    assert_eq!(n, NodeId(3));
}

#[test]
fn admin_list_groups_asks_every_broker_and_merges() {
    let mut h = Harness::new(Config::default());
    h.admin(AdminOp::ListGroups);
    h.handshake();
    h.metadata(2, "t", &[1]);
    let mut asked = vec![];
    for _ in 0..2 {
        let (n, r) = h.take(ApiKey::ListGroups);
        asked.push(n);
        let body = ListGroupsResponse::default().with_groups(vec![
            list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(sb(&format!("g{}", n.0))))
                .with_protocol_type(sb("consumer")),
        ]);
        h.answer(n, &r, ResponseKind::ListGroups(body));
    }
    asked.sort();
    assert_eq!(asked, vec![NodeId(1), NodeId(2)]);
    let results = admin_results(&mut h);
    let [(_, Ok(AdminResult::ListGroups(gs)))] = &results[..] else {
        panic!("{results:?}")
    };
    let names: Vec<(&str, i32)> = gs
        .iter()
        .map(|g| (g.group_id.as_str(), g.coordinator))
        .collect();
    assert_eq!(names, vec![("g1", 1), ("g2", 2)]);
}

#[test]
fn admin_retries_until_default_api_timeout_then_gives_the_error() {
    let mut h = Harness::new(Config {
        default_api_timeout_ms: 1_000,
        ..Config::default()
    });
    h.admin(AdminOp::DeleteGroups {
        groups: vec!["g".into()],
    });
    let mut lookups = 0;
    for _ in 0..30 {
        h.handshake();
        if h.sent
            .iter()
            .any(|(_, r)| r.header.request_api_key == ApiKey::FindCoordinator as i16)
        {
            let (n, r) = h.take(ApiKey::FindCoordinator);
            h.answer(
                n,
                &r,
                find_coordinator_answer(0, ResponseError::CoordinatorNotAvailable.code()),
            );
            lookups += 1;
        }
        h.advance_ms(50);
    }
    assert!(lookups >= 5, "retried with backoff: {lookups}");
    let results = admin_results(&mut h);
    let [(_, Ok(AdminResult::DeleteGroups(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    match &m["g"] {
        Err(ClientError::Timeout(why)) => assert!(why.contains("CoordinatorNotAvailable"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.client.admin_pending(), 0);
    assert_eq!(h.client.poll_timeout().filter(|t| *t <= h.now), None);
}

#[test]
fn admin_describing_a_missing_topic_fails_after_a_fresh_answer_and_creates_nothing() {
    let mut h = Harness::new(Config {
        allow_auto_topic_creation: false,
        ..Config::default()
    });
    h.admin(AdminOp::ListOffsets {
        partitions: vec![(("nope".into(), 0), OffsetSpec::Earliest)],
    });
    h.handshake();
    let (n, r) = h.take(ApiKey::Metadata);
    let RequestKind::Metadata(m) = &r.body else {
        panic!()
    };
    assert!(!m.allow_auto_topic_creation);
    let body = MetadataResponse::default()
        .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(sb("localhost"))
            .with_port(9001)])
        .with_topics(vec![metadata_response::MetadataResponseTopic::default()
            .with_name(Some(TopicName(sb("nope"))))
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())]);
    h.answer(n, &r, ResponseKind::Metadata(body));
    let results = admin_results(&mut h);
    let [(_, Ok(AdminResult::ListOffsets(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    assert_eq!(
        m[&("nope".to_string(), 0)].as_ref().unwrap_err().code(),
        Some(ResponseError::UnknownTopicOrPartition.code())
    );
}

// ---- partition reassignments (KIP-455) ---------------------------------------------------------

/// What an AlterPartitionReassignments request asks: (topic, partition, target) in order.
fn moves_asked(req: &Request) -> Vec<(String, i32, Option<Vec<i32>>)> {
    let RequestKind::AlterPartitionReassignments(r) = &req.body else {
        panic!("not an AlterPartitionReassignments")
    };
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let target = (p.replicas.as_ref()).map(|rs| rs.iter().map(|b| b.0).collect());
                (t.name.to_string(), p.partition_index, target)
            })
        })
        .collect()
}

/// An answer to `req` with a top-level error and one error code per partition asked.
fn moves_answer(req: &Request, top: i16, codes: &[i16]) -> ResponseKind {
    use alter_partition_reassignments_response::{
        ReassignablePartitionResponse, ReassignableTopicResponse,
    };
    let asked = moves_asked(req);
    assert_eq!(asked.len(), codes.len(), "one code per partition asked");
    let mut topics: Vec<ReassignableTopicResponse> = vec![];
    for ((t, p, _), code) in asked.iter().zip(codes) {
        let res = ReassignablePartitionResponse::default()
            .with_partition_index(*p)
            .with_error_code(*code)
            .with_error_message((*code != 0).then(|| sb("refused")));
        match topics.last_mut() {
            Some(x) if x.name.as_str() == t => x.partitions.push(res),
            _ => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(sb(t)))
                    .with_partitions(vec![res]),
            ),
        }
    }
    ResponseKind::AlterPartitionReassignments(
        AlterPartitionReassignmentsResponse::default()
            .with_error_code(top)
            .with_responses(topics),
    )
}

fn moves_result(h: &mut Harness) -> gregor_client::admin::PerPartition<()> {
    let results = admin_results(h);
    let [(_, Ok(AdminResult::AlterPartitionReassignments(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    m.clone()
}

#[test]
fn admin_reassignments_go_to_any_broker_and_retry_only_the_partitions_that_may_succeed() {
    let mut h = Harness::new(Config::default());
    h.admin(AdminOp::AlterPartitionReassignments {
        partitions: vec![
            (("t".into(), 0), Some(vec![2, 3])),
            (("t".into(), 1), None),
            (("u".into(), 0), Some(vec![1])),
        ],
    });
    // Any broker takes it (it forwards to the active controller): no Metadata first, no
    // leader looked up.
    let (n, r) = h.take(ApiKey::AlterPartitionReassignments);
    assert!(n.is_bootstrap(), "{n:?}");
    assert!(!h.keys().iter().any(|(_, k)| *k == ApiKey::Metadata as i16));
    assert_eq!(
        moves_asked(&r),
        vec![
            ("t".into(), 0, Some(vec![2, 3])),
            ("t".into(), 1, None),
            ("u".into(), 0, Some(vec![1])),
        ],
        "a target per partition, a null one to cancel"
    );
    // t-0 times out at the controller (retriable), t-1 has no move to cancel (final), u-0 moves.
    let timed_out = ResponseError::RequestTimedOut.code();
    let none = ResponseError::NoReassignmentInProgress.code();
    h.answer(n, &r, moves_answer(&r, 0, &[timed_out, none, 0]));
    assert!(admin_results(&mut h).is_empty(), "t-0 is asked again");
    h.advance_ms(100);
    let (n, r) = h.take(ApiKey::AlterPartitionReassignments);
    assert_eq!(
        moves_asked(&r),
        vec![("t".into(), 0, Some(vec![2, 3]))],
        "only the partition that may still succeed"
    );
    h.answer(n, &r, moves_answer(&r, 0, &[0]));
    let m = moves_result(&mut h);
    assert_eq!(m[&("t".to_string(), 0)], Ok(()));
    assert_eq!(m[&("u".to_string(), 0)], Ok(()));
    assert_eq!(
        m[&("t".to_string(), 1)].as_ref().unwrap_err().code(),
        Some(none)
    );
    assert_eq!(h.client.admin_pending(), 0);
}

#[test]
fn admin_reassignment_top_level_errors_are_every_partitions() {
    let mut h = Harness::new(Config::default());
    h.admin(AdminOp::AlterPartitionReassignments {
        partitions: vec![
            (("t".into(), 0), Some(vec![2])),
            (("t".into(), 1), Some(vec![3])),
        ],
    });
    // NOT_CONTROLLER with no partitions at all (a broker that refuses the whole request):
    // retriable, both asked again.
    let (n, r) = h.take(ApiKey::AlterPartitionReassignments);
    let not_controller = ResponseError::NotController.code();
    h.answer(
        n,
        &r,
        ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(not_controller),
        ),
    );
    assert!(admin_results(&mut h).is_empty());
    h.advance_ms(100);
    let (n, r) = h.take(ApiKey::AlterPartitionReassignments);
    assert_eq!(moves_asked(&r).len(), 2);
    // A final top-level error wins over the partitions' own codes.
    let denied = ResponseError::ClusterAuthorizationFailed.code();
    h.answer(n, &r, moves_answer(&r, denied, &[0, 0]));
    let m = moves_result(&mut h);
    assert_eq!(m.len(), 2);
    assert!(
        m.values()
            .all(|r| r.as_ref().unwrap_err().code() == Some(denied)),
        "{m:?}"
    );
}

#[test]
fn admin_lists_the_reassignments_in_progress() {
    use list_partition_reassignments_response::{
        OngoingPartitionReassignment, OngoingTopicReassignment,
    };
    let mut h = Harness::new(Config::default());
    h.admin(AdminOp::ListPartitionReassignments {
        partitions: Some(vec![("t".into(), 0), ("t".into(), 2)]),
    });
    let (n, r) = h.take(ApiKey::ListPartitionReassignments);
    let RequestKind::ListPartitionReassignments(asked) = &r.body else {
        panic!()
    };
    let topics = asked.topics.as_ref().expect("the partitions named");
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partition_indexes, vec![0, 2]);
    let ids = |bs: &[i32]| bs.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let body = ListPartitionReassignmentsResponse::default().with_topics(vec![
        OngoingTopicReassignment::default()
            .with_name(TopicName(sb("t")))
            .with_partitions(vec![OngoingPartitionReassignment::default()
                .with_partition_index(2)
                .with_replicas(ids(&[3, 1, 2]))
                .with_adding_replicas(ids(&[3]))
                .with_removing_replicas(ids(&[2]))]),
    ]);
    h.answer(n, &r, ResponseKind::ListPartitionReassignments(body));
    let results = admin_results(&mut h);
    let [(_, Ok(AdminResult::ListPartitionReassignments(m)))] = &results[..] else {
        panic!("{results:?}")
    };
    let want = gregor_client::admin::Reassignment {
        replicas: vec![3, 1, 2],
        adding: vec![3],
        removing: vec![2],
    };
    assert_eq!(m.len(), 1, "partition 0 is not being moved: {m:?}");
    assert_eq!(m[&("t".to_string(), 2)], want);
    // Every move in progress: a null topic list.
    h.admin(AdminOp::ListPartitionReassignments { partitions: None });
    let (_, r) = h.take(ApiKey::ListPartitionReassignments);
    let RequestKind::ListPartitionReassignments(asked) = &r.body else {
        panic!()
    };
    assert!(asked.topics.is_none());
}
