//! The broker as a state machine: a sequence of arbitrary operations (produce, fetch, commit,
//! offset fetch, join, time passing, disk full, process crash, power loss with torn writes) is
//! applied to the core on the simulator's disk and checked against a simple model: every
//! acknowledged record stays at its offset with its value, through crashes and power losses
//! (the default durability policy is group commit), and committed offsets read back as committed.
#![no_main]

#[global_allocator]
static ALLOC: gregor_fuzz::alloc::GuardedAlloc = gregor_fuzz::alloc::GuardedAlloc;
use arbitrary::Arbitrary;
use gregor_core::error::{CORRUPT_MESSAGE, NONE};
use gregor_core::io::Request;
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::prng::Prng;
use gregor_core::Config;
use gregor_fuzz::Harness;
use gregor_sim::clients::{decode_records, encode_batch};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

#[derive(Arbitrary, Debug)]
enum Op {
    Produce { part: bool, count: u8, acks: u8 },
    CorruptProduce { part: bool, flip: u16 },
    Fetch { part: bool, offset: u16 },
    Commit { part: bool, offset: u16 },
    OffsetFetch,
    Join { session_ms: u16 },
    Advance { ms: u16 },
    DiskFull(bool),
    Crash,
    PowerLoss { torn: bool, flip: bool },
}

fn req(key: ApiKey, version: i16, corr: i32, body: RequestKind) -> Request {
    Request {
        header: RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr),
        body,
    }
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("t"))
}

struct Model {
    h: Harness,
    corr: i32,
    next_value: u64,
    acked: BTreeMap<(i32, i64), u64>,
    committed: BTreeMap<i32, i64>,
    prng: Prng,
}

impl Model {
    fn send(&mut self, key: ApiKey, version: i16, body: RequestKind) -> Option<ResponseKind> {
        self.corr += 1;
        let corr = self.corr;
        self.h.responses.clear();
        self.h.request(1, req(key, version, corr, body));
        self.h
            .responses
            .drain(..)
            .find(|r| r.1 == corr)
            .map(|r| r.2)
    }

    fn produce(&mut self, part: i32, batch: bytes::Bytes, acks: i16) -> Option<(i16, i64)> {
        let r = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(part)
                        .with_records(Some(batch)),
                ])]);
        match self.send(ApiKey::Produce, 9, RequestKind::Produce(r))? {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                Some((p.error_code, p.base_offset))
            }
            other => panic!("{other:?}"),
        }
    }

    fn fetch(&mut self, part: i32, offset: i64) -> Option<(i16, Vec<(i64, u64)>)> {
        let r = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(part)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        match self.send(ApiKey::Fetch, 12, RequestKind::Fetch(r))? {
            ResponseKind::Fetch(r) => {
                let p = &r.responses[0].partitions[0];
                Some((p.error_code, decode_records(p.records.clone())))
            }
            other => panic!("{other:?}"),
        }
    }

    fn check_records(&self, part: i32, recs: &[(i64, u64)]) {
        for (o, v) in recs {
            if let Some(want) = self.acked.get(&(part, *o)) {
                assert_eq!(v, want, "{part}/{o} holds {v}, acknowledged {want}");
            }
        }
    }

    /// After a restart: every acknowledged record is there.
    fn audit(&mut self) {
        for part in 0..2 {
            let mut got = BTreeMap::new();
            let mut offset = 0;
            while let Some((code, recs)) = self.fetch(part, offset) {
                if code != NONE || recs.is_empty() {
                    break;
                }
                offset = recs.last().unwrap().0 + 1;
                got.extend(recs);
            }
            for ((p, o), v) in &self.acked {
                if *p == part {
                    assert_eq!(got.get(o), Some(v), "acknowledged {part}/{o} lost");
                }
            }
        }
    }

    fn restart(&mut self) {
        let disk = std::mem::take(&mut self.h.storage);
        self.h = gregor_fuzz::harness_on(Config::default(), disk);
        self.h.advance_ms(10);
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut m = Model {
        h: gregor_fuzz::harness(Config::default()),
        corr: 0,
        next_value: 0,
        acked: BTreeMap::new(),
        committed: BTreeMap::new(),
        prng: Prng::new(7),
    };
    let t = create_topics_request::CreatableTopic::default()
        .with_name(topic())
        .with_num_partitions(2)
        .with_replication_factor(1);
    m.send(
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![t])),
    );
    for op in ops.into_iter().take(64) {
        match op {
            Op::Produce { part, count, acks } => {
                let part = part as i32;
                let values: Vec<u64> = (0..1 + count % 4)
                    .map(|_| {
                        m.next_value += 1;
                        m.next_value
                    })
                    .collect();
                let acks = [0, 1, -1][acks as usize % 3];
                let timestamps = vec![1_700_000_000_000; values.len()];
                let batch = encode_batch(&values, None, &timestamps);
                if let Some((NONE, base)) = m.produce(part, batch, acks) {
                    assert!(acks != 0, "acks=0 gets no response");
                    for (i, v) in values.iter().enumerate() {
                        m.acked.insert((part, base + i as i64), *v);
                    }
                }
            }
            Op::CorruptProduce { part, flip } => {
                let batch = encode_batch(&[u64::MAX], None, &[0]);
                let mut b = batch.to_vec();
                let at = 21 + flip as usize % (b.len() - 21);
                b[at] ^= 1 << (flip % 8);
                let r = m.produce(part as i32, b.into(), 1);
                assert!(
                    !matches!(r, Some((NONE, _))),
                    "a batch with a flipped bit after the CRC field was accepted"
                );
                let _ = CORRUPT_MESSAGE;
            }
            Op::Fetch { part, offset } => {
                let part = part as i32;
                if let Some((_, recs)) = m.fetch(part, offset as i64 % 64) {
                    m.check_records(part, &recs);
                }
            }
            Op::Commit { part, offset } => {
                let r = OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(part as i32)
                                    .with_committed_offset(offset as i64),
                            ]),
                    ]);
                if let Some(ResponseKind::OffsetCommit(r)) =
                    m.send(ApiKey::OffsetCommit, 7, RequestKind::OffsetCommit(r))
                {
                    if r.topics[0].partitions[0].error_code == NONE {
                        m.committed.insert(part as i32, offset as i64);
                    }
                }
            }
            Op::OffsetFetch => {
                let r = OffsetFetchRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic())
                            .with_partition_indexes(vec![0, 1]),
                    ]));
                if let Some(ResponseKind::OffsetFetch(r)) =
                    m.send(ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(r))
                {
                    if r.error_code == NONE {
                        for p in &r.topics[0].partitions {
                            if let Some(c) = m.committed.get(&p.partition_index) {
                                assert_eq!(p.committed_offset, *c, "committed offset changed");
                            }
                        }
                    }
                }
            }
            Op::Join { session_ms } => {
                let r = JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("j")))
                    .with_session_timeout_ms(session_ms as i32 * 4)
                    .with_rebalance_timeout_ms(session_ms as i32)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                    )
                    .with_name(StrBytes::from_static_str("range"))]);
                m.send(ApiKey::JoinGroup, 5, RequestKind::JoinGroup(r));
            }
            Op::Advance { ms } => m.h.advance_ms(ms as u64),
            Op::DiskFull(on) => m.h.storage.faults.full = on,
            Op::Crash => {
                m.h.storage.process_crash(&mut m.prng);
                m.restart();
                m.audit();
            }
            Op::PowerLoss { torn, flip } => {
                m.h.storage.power_loss(&mut m.prng, torn, flip);
                m.restart();
                m.audit();
            }
        }
        m.h.broker.invariants();
    }
});
