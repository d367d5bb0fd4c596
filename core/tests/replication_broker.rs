//! Replication between KRaft-mode brokers (issue 10): three `Pair`s fed the same metadata
//! image, and a router that hands each follower's `ReplicaFetch` to its leader as a Kafka
//! Fetch request and the leader's response back as `ReplicaFetched`. Each test checks what a
//! user of the cluster would: when produce answers come, what every replica holds, the ISR
//! changes the leader asks the controller for.

use bytes::Bytes;
use gregor_core::cluster::records::{Endpoint, PartitionChange, PartitionRecord};
use gregor_core::cluster::{
    BrokerEpoch, BrokerId as Node, LeaderChange, MetadataImage, MetadataRecord, RegisterBroker,
    Request as Ask, TopicId as Tid,
};
use gregor_core::error::*;
use gregor_core::io::{Input, ReplicaFetchId, StorageFault, StorageReply, StorageRequest};
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::kafka_protocol::records::Compression;
use gregor_core::log::recover::{recover_partition, DirEntry};
use gregor_core::testkit::{self, Pair, Rec};
use gregor_core::{Config, Durability, Recovered};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Files by path (`dir/name`), in memory.
#[derive(Default)]
struct Disk {
    map: BTreeMap<String, Vec<u8>>,
}

impl testkit::Storage for Disk {
    fn exec(
        &mut self,
        request: &StorageRequest,
        _prng: &mut gregor_core::prng::Prng,
    ) -> Result<StorageReply, StorageFault> {
        let path =
            |f: &gregor_core::io::SegmentFile| format!("{}/{}", f.dir.dir_name(), f.file_name());
        match request {
            StorageRequest::CreatePartition { dir, meta } => {
                let name = format!("{}/partition.meta", dir.dir_name());
                self.map.insert(name, meta.to_vec());
            }
            StorageRequest::DeletePartition { dir } => {
                let prefix = format!("{}/", dir.dir_name());
                self.map.retain(|k, _| !k.starts_with(&prefix));
            }
            StorageRequest::CreateSegment { file, header } => {
                self.map.insert(path(file), header.to_vec());
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                let f = self.map.get_mut(&path(file)).unwrap();
                let end = *position as usize + data.len();
                f.resize(f.len().max(end), 0);
                f[*position as usize..end].copy_from_slice(data);
            }
            StorageRequest::Truncate { file, len } => {
                self.map
                    .get_mut(&path(file))
                    .unwrap()
                    .truncate(*len as usize);
            }
            StorageRequest::DeleteSegment { file } => {
                self.map.remove(&path(file));
            }
            StorageRequest::Read {
                file,
                position,
                len,
            } => {
                let f = &self.map[&path(file)];
                let from = (*position as usize).min(f.len());
                let to = (from + *len as usize).min(f.len());
                return Ok(StorageReply::Read(Bytes::copy_from_slice(&f[from..to])));
            }
            _ => {}
        }
        Ok(StorageReply::Done)
    }
}

impl Disk {
    /// What a broker restarted on this disk recovers (every write taken as durable).
    fn recovered(&self) -> Recovered {
        let mut dirs: Vec<&str> = self
            .map
            .keys()
            .map(|k| k.split_once('/').unwrap().0)
            .collect();
        dirs.dedup();
        let partitions = dirs.into_iter().map(|dir| {
            let entries: Vec<DirEntry> = (self.map.iter())
                .filter_map(|(k, v)| {
                    let name = k.strip_prefix(&format!("{dir}/"))?;
                    let len = v.len() as u64;
                    Some(DirEntry {
                        name: name.to_string(),
                        len,
                    })
                })
                .collect();
            let meta = self.map.get(&format!("{dir}/partition.meta"));
            let read = |name: &str, from: u64, to: u64| {
                Ok::<_, ()>(self.map[&format!("{dir}/{name}")][from as usize..to as usize].to_vec())
            };
            let meta = meta.cloned().map(Bytes::from);
            recover_partition(dir.to_string(), meta, &entries, read).unwrap()
        });
        Recovered {
            clean_shutdown: false,
            broker_meta: None,
            partitions: partitions.collect(),
        }
    }
}

/// The metadata log, replayed as the controller would write it.
struct Log {
    image: MetadataImage,
}

impl Log {
    fn write(&mut self, r: MetadataRecord) {
        let at = self.image.offset() + 1;
        self.image.replay(at, &r).unwrap();
    }
    fn broker(&mut self, id: i32) {
        let epoch = BrokerEpoch(self.image.offset() + 1);
        self.write(MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: Node(id),
            incarnation_id: [id as u8; 16],
            broker_epoch: epoch,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: format!("b{id}.example"),
                port: 9092,
            }],
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
        }));
        self.write(MetadataRecord::BrokerRegistrationChange {
            broker_id: Node(id),
            broker_epoch: epoch,
            fenced: Some(false),
            in_controlled_shutdown: None,
        });
    }
    fn epoch_of(&self, id: i32) -> BrokerEpoch {
        self.image.broker(Node(id)).unwrap().broker_epoch
    }
    /// Topic `r` (one partition) on `replicas`, led by the first, with ISR `isr`.
    fn topic(&mut self, replicas: &[i32], isr: &[i32]) -> Tid {
        let topic_id = Tid([9; 16]);
        self.write(MetadataRecord::Topic {
            name: "r".into(),
            topic_id,
        });
        self.write(MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 0,
            isr: isr.iter().map(|b| Node(*b)).collect(),
            leader: Some(Node(replicas[0])),
            replicas: replicas.iter().map(|b| Node(*b)).collect(),
            leader_epoch: 0,
            partition_epoch: 0,
        }));
        topic_id
    }
    fn change(&mut self, t: Tid, isr: Option<&[i32]>, leader: LeaderChange) {
        self.write(MetadataRecord::PartitionChange(PartitionChange {
            topic_id: t,
            partition: 0,
            isr: isr.map(|i| i.iter().map(|b| Node(*b)).collect()),
            leader,
            replicas: None,
        }));
    }
}

/// A fetch routed to a leader: (follower index, leader index, correlation id at the leader,
/// the follower's fetch id).
type Routed = (usize, usize, i32, ReplicaFetchId);

/// Brokers 1..=n (at indexes 0..n), their metadata log and the fetches in flight between them.
struct Cluster {
    b: Vec<Pair<Disk>>,
    log: Log,
    t: Tid,
    routed: Vec<Routed>,
    /// Followers whose fetches are held (never reach the leader): a silent broker.
    silent: Vec<bool>,
    held: Vec<(usize, Node, ReplicaFetchId)>,
}

fn config(id: i32, durability: Durability, min_isr: u32) -> Config {
    Config {
        kraft: true,
        broker_id: gregor_core::ids::BrokerId(id),
        durability,
        min_insync_replicas: min_isr,
        ..Config::default()
    }
}

impl Cluster {
    fn new(n: i32, isr: &[i32], durability: Durability, min_isr: u32) -> Cluster {
        let mut log = Log {
            image: MetadataImage::new(),
        };
        for id in 1..=n {
            log.broker(id);
        }
        let replicas: Vec<i32> = (1..=n).collect();
        let t = log.topic(&replicas, isr);
        let b = (1..=n)
            .map(|id| {
                let cfg = config(id, durability, min_isr);
                Pair::new(cfg, Recovered::default(), Disk::default())
            })
            .collect();
        let mut c = Cluster {
            b,
            log,
            t,
            routed: Vec::new(),
            silent: vec![false; n as usize],
            held: Vec::new(),
        };
        c.publish();
        c
    }

    /// Every broker gets the current image, then fetches are routed until quiet.
    fn publish(&mut self) {
        let image = Arc::new(self.log.image.clone());
        for b in &mut self.b {
            let now = b.now;
            b.input(Input::Metadata {
                now,
                image: image.clone(),
            });
        }
        self.route();
    }

    /// Hand fetches to leaders and answers back until nothing moves.
    fn route(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.b.len() {
                for rf in std::mem::take(&mut self.b[i].replica_fetches) {
                    moved = true;
                    if self.silent[i] {
                        self.held.push((i, rf.to, rf.id));
                        continue;
                    }
                    let j = (rf.to.0 - 1) as usize;
                    let corr = self.b[j].send(
                        100 + i as u64,
                        ApiKey::Fetch,
                        rf.api_version,
                        RequestKind::Fetch(rf.request),
                    );
                    self.routed.push((i, j, corr, rf.id));
                }
            }
            for (i, j, corr, id) in std::mem::take(&mut self.routed) {
                match self.b[j].take(corr) {
                    Some(ResponseKind::Fetch(r)) => {
                        moved = true;
                        let now = self.b[i].now;
                        self.b[i].input(Input::ReplicaFetched {
                            now,
                            from: Node(j as i32 + 1),
                            id,
                            result: Ok(r),
                        });
                    }
                    Some(other) => panic!("a fetch answered with {other:?}"),
                    None => self.routed.push((i, j, corr, id)),
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Every broker's clock moves on (parked fetches answer, timers fire), then routing.
    fn advance(&mut self, ms: u64) {
        for b in &mut self.b {
            b.advance_ms(ms);
        }
        self.route();
    }

    /// Follower `i` goes silent: its fetches in flight (parked at the leader) and any later
    /// ones never reach the leader, or come back.
    fn silence(&mut self, i: usize) {
        self.silent[i] = true;
        let (gone, kept) = std::mem::take(&mut self.routed)
            .into_iter()
            .partition(|r| r.0 == i);
        self.routed = kept;
        let gone: Vec<Routed> = gone;
        for (f, j, _, id) in gone {
            self.held.push((f, Node(j as i32 + 1), id));
        }
    }

    /// Silent followers speak again: their held fetches fail (the connection was lost).
    fn wake(&mut self) {
        self.silent.iter_mut().for_each(|s| *s = false);
        let held = std::mem::take(&mut self.held);
        self.lose_fetches(held);
    }

    /// Held fetches fail as a lost connection fails them, and what that sends is routed.
    fn lose_fetches(&mut self, held: Vec<(usize, Node, ReplicaFetchId)>) {
        for (f, from, id) in held {
            let now = self.b[f].now;
            self.b[f].input(Input::ReplicaFetched {
                now,
                from,
                id,
                result: Err("connection lost".into()),
            });
        }
        self.route();
    }

    fn hw(&self, i: usize) -> i64 {
        self.b[i].broker.topics()["r"].partitions[0].high_watermark
    }

    fn log_end(&self, i: usize) -> i64 {
        self.b[i].broker.topics()["r"].partitions[0]
            .log
            .log_end_offset()
    }

    /// The bytes of `r`-0's segment files on broker `i`.
    fn segments(&self, i: usize) -> Vec<(String, Vec<u8>)> {
        let disk = &self.b[i].storage.map;
        let files = disk
            .iter()
            .filter(|(k, _)| k.starts_with("r-0/") && k.ends_with(".log"));
        files.map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Send a produce of one record to broker index `i` with `acks`; returns its correlation id.
fn produce(b: &mut Pair<Disk>, acks: i16, value: &str) -> i32 {
    produce_from(b, acks, None, value)
}

/// The record of idempotent producer 7 (epoch 0) with sequence `seq`.
fn produce_idempotent(b: &mut Pair<Disk>, acks: i16, seq: i32) -> i32 {
    produce_from(b, acks, Some((7, 0, seq)), &format!("seq {seq}"))
}

fn produce_from(
    b: &mut Pair<Disk>,
    acks: i16,
    producer: Option<(i64, i16, i32)>,
    value: &str,
) -> i32 {
    let rec = Rec {
        value: Some(Bytes::from(value.to_string())),
        ..Rec::default()
    };
    let data = produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(testkit::batch(&[rec], producer, Compression::None)));
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(120_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(sb("r")))
            .with_partition_data(vec![data])]);
    b.send(1, ApiKey::Produce, 9, RequestKind::Produce(req))
}

/// The produce answer `c`, if released: (error, base offset).
fn answer(b: &mut Pair<Disk>, c: i32) -> Option<(i16, i64)> {
    let Some(ResponseKind::Produce(r)) = b.take(c) else {
        return None;
    };
    let p = &r.responses[0].partition_responses[0];
    Some((p.error_code, p.base_offset))
}

/// ListOffsets latest (-1) at broker index `i`: (error, offset).
fn latest(b: &mut Pair<Disk>) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(sb("r")))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-1),
            ])]);
    let c = b.send(3, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req));
    let Some(ResponseKind::ListOffsets(r)) = b.take(c) else {
        panic!("no list offsets response")
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[test]
fn acks_all_answers_once_both_followers_hold_the_batch_byte_for_byte() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 2);
    c.silence(2);
    let p = produce(&mut c.b[0], -1, "a");
    assert_eq!(answer(&mut c.b[0], p), None, "no follower has it yet");
    c.route();
    assert_eq!(c.log_end(1), 1, "follower 2 appended the batch");
    assert_eq!(c.log_end(2), 0, "follower 3 is silent");
    assert_eq!(
        answer(&mut c.b[0], p),
        None,
        "acks=all waits for the whole ISR"
    );
    assert_eq!(c.hw(0), 0);
    c.wake();
    c.advance(1_000);
    assert_eq!(
        c.hw(0),
        1,
        "every ISR member reported an end past the batch"
    );
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)));
    // Followers learn the high watermark from their next fetch's answer.
    c.advance(500);
    assert_eq!((c.hw(1), c.hw(2)), (1, 1));
    for _ in 0..5 {
        let p = produce(&mut c.b[0], -1, "more");
        c.route();
        assert!(matches!(answer(&mut c.b[0], p), Some((NONE, _))));
    }
    assert_eq!(c.segments(0), c.segments(1), "follower 2 is byte-identical");
    assert_eq!(c.segments(0), c.segments(2), "follower 3 is byte-identical");
    assert_eq!(c.log_end(2), 6);
}

#[test]
fn acks_one_answers_at_once_and_acks_two_after_one_follower() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    c.silence(2);
    let p = produce(&mut c.b[0], 1, "a");
    assert_eq!(
        answer(&mut c.b[0], p),
        Some((NONE, 0)),
        "the leader's own end"
    );
    c.route();
    let p = produce(&mut c.b[0], 2, "b");
    assert_eq!(answer(&mut c.b[0], p), None, "acks=2 waits for a follower");
    c.route();
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 1)), "follower 2 has it");
    assert_eq!(c.hw(0), 0, "the silent ISR member holds the high watermark");
    let p = produce(&mut c.b[0], 4, "c");
    assert_eq!(answer(&mut c.b[0], p), Some((INVALID_REQUIRED_ACKS, -1)));
}

#[test]
fn acks_n_is_refused_while_fewer_than_n_replicas_are_in_the_isr() {
    let mut c = Cluster::new(3, &[1, 2], Durability::GroupCommit, 1);
    let p = produce(&mut c.b[0], 3, "a");
    assert_eq!(answer(&mut c.b[0], p), Some((NOT_ENOUGH_REPLICAS, -1)));
    assert_eq!(c.log_end(0), 0, "nothing appended");
    let p = produce(&mut c.b[0], 2, "b");
    c.route();
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)), "two in the ISR");
    let t = c.t;
    c.log.change(t, Some(&[1]), LeaderChange::Unchanged);
    c.publish();
    let p = produce(&mut c.b[0], 2, "c");
    assert_eq!(answer(&mut c.b[0], p), Some((NOT_ENOUGH_REPLICAS, -1)));
    assert_eq!(c.log_end(0), 1, "nothing appended");
}

/// acks=N counts followers in the ISR only (Kafka 0.8's acks>1 did too): broker 3, outside
/// it, holding the record does not make an acks=2 answer; it is no clean successor
/// (simulator, `--cluster 5 --replication` seed 85: a record so acknowledged was lost).
#[test]
fn acks_n_does_not_count_a_follower_outside_the_isr() {
    let mut c = Cluster::new(3, &[1, 2], Durability::GroupCommit, 1);
    c.silence(1);
    let p = produce(&mut c.b[0], 2, "a");
    c.route();
    assert_eq!(c.log_end(2), 1, "broker 3 fetched it");
    assert_eq!(answer(&mut c.b[0], p), None, "but is not in the ISR");
    c.wake();
    c.advance(1_000);
    c.advance(1_000);
    assert_eq!(
        answer(&mut c.b[0], p),
        Some((NONE, 0)),
        "broker 2, in the ISR, has it"
    );
}

#[test]
fn the_high_watermark_waits_for_each_followers_fsync() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 2);
    c.b[1].hold_syncs = true;
    c.b[2].hold_syncs = true;
    let p = produce(&mut c.b[0], -1, "a");
    c.route();
    assert_eq!((c.log_end(1), c.log_end(2)), (1, 1), "both appended");
    c.advance(1_000);
    assert_eq!(c.hw(0), 0, "neither follower's copy is durable");
    c.b[1].release_syncs();
    c.route();
    c.advance(1_000);
    assert_eq!(c.hw(0), 0, "follower 3's copy is not durable");
    assert_eq!(answer(&mut c.b[0], p), None);
    c.b[2].release_syncs();
    c.route();
    assert_eq!(c.hw(0), 1);
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)));
}

#[test]
fn acks_all_is_refused_while_the_isr_is_below_min_insync_replicas() {
    let mut c = Cluster::new(3, &[1], Durability::GroupCommit, 2);
    let p = produce(&mut c.b[0], -1, "a");
    assert_eq!(answer(&mut c.b[0], p), Some((NOT_ENOUGH_REPLICAS, -1)));
    assert_eq!(c.log_end(0), 0, "nothing appended");
    let p = produce(&mut c.b[0], 1, "b");
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)));
    c.route();
    assert_eq!(
        c.hw(0),
        0,
        "the high watermark stands still below min.insync.replicas"
    );
}

#[test]
fn a_silent_follower_is_shrunk_out_and_taken_back_once_caught_up() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    c.silence(2);
    for _ in 0..3 {
        c.advance(15_000);
    }
    let asked: Vec<Ask> = c.b[0].controller.drain(..).map(|(_, r)| r).collect();
    let want = Ask::AlterPartition {
        broker_id: Node(1),
        broker_epoch: c.log.epoch_of(1),
        topic_id: c.t,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: vec![(Node(1), c.log.epoch_of(1)), (Node(2), c.log.epoch_of(2))],
        successor: None,
    };
    assert_eq!(asked, vec![want], "shrink broker 3 out, once");
    let t = c.t;
    c.log.change(t, Some(&[1, 2]), LeaderChange::Unchanged);
    c.publish();
    // With broker 3 out, acks=all needs only brokers 1 and 2.
    let p = produce(&mut c.b[0], -1, "a");
    c.route();
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)));
    c.wake();
    c.advance(1_000);
    assert_eq!(c.log_end(2), 1, "broker 3 caught up");
    let asked: Vec<Ask> = c.b[0].controller.drain(..).map(|(_, r)| r).collect();
    let all = vec![
        (Node(1), c.log.epoch_of(1)),
        (Node(2), c.log.epoch_of(2)),
        (Node(3), c.log.epoch_of(3)),
    ];
    assert!(
        matches!(&asked[..], [Ask::AlterPartition { new_isr, partition_epoch: 1, .. }] if *new_isr == all),
        "expand to all three: {asked:?}"
    );
}

#[test]
fn a_diverged_follower_truncates_and_then_matches_the_leader() {
    let mut c = Cluster::new(2, &[1, 2], Durability::GroupCommit, 1);
    for v in ["a", "b"] {
        let p = produce(&mut c.b[0], -1, v);
        c.route();
        assert!(answer(&mut c.b[0], p).is_some());
    }
    // Broker 1 appends two more that broker 2 never fetches, then loses the leadership.
    c.silence(1);
    c.route();
    for v in ["c", "d"] {
        let p = produce(&mut c.b[0], 1, v);
        assert!(answer(&mut c.b[0], p).is_some());
    }
    assert_eq!((c.log_end(0), c.log_end(1)), (4, 2));
    c.routed.clear();
    let t = c.t;
    c.log.change(t, None, LeaderChange::To(Node(2)));
    c.wake();
    c.silence(0);
    c.publish();
    // Broker 1 stays silent: broker 2's probe for followers ahead of it (acks=N,
    // `replica/probe.rs`) ends at the lag time, and broker 1 is treated as Kafka treats it.
    c.advance(30_001);
    assert_eq!(
        latest(&mut c.b[1]).0,
        OFFSET_NOT_AVAILABLE,
        "the new leader's high watermark is below its epoch's start"
    );
    let p = produce(&mut c.b[1], 1, "x");
    assert_eq!(answer(&mut c.b[1], p), Some((NONE, 2)));
    c.wake();
    c.advance(1_000);
    assert_eq!(
        latest(&mut c.b[1]),
        (NONE, 3),
        "x is replicated: latest is known"
    );
    assert_eq!(c.log_end(0), 3, "cut back to 2, then fetched x");
    assert_eq!(
        c.segments(0),
        c.segments(1),
        "byte for byte the leader's log"
    );
}

#[test]
fn a_stale_or_repeated_answer_changes_nothing() {
    let mut c = Cluster::new(2, &[1, 2], Durability::GroupCommit, 1);
    // Hold the follower's fetch, and make the answer it would have had: record "a".
    c.silence(1);
    c.route();
    let (_, _, id) = c.held.pop().unwrap();
    let p = produce(&mut c.b[0], 1, "a");
    assert!(answer(&mut c.b[0], p).is_some());
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(2))
        .with_max_wait_ms(0)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb("r")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let corr = c.b[0].send(7, ApiKey::Fetch, 12, RequestKind::Fetch(req));
    let Some(ResponseKind::Fetch(old)) = c.b[0].take(corr) else {
        panic!("no answer")
    };
    assert!(old.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|r| !r.is_empty()));
    // The leadership moves away and back (epoch 2) before the answer arrives: dropped.
    c.silence(0);
    let t = c.t;
    c.log.change(t, None, LeaderChange::To(Node(2)));
    c.publish();
    c.log.change(t, None, LeaderChange::To(Node(1)));
    c.publish();
    let now = c.b[1].now;
    let stale = |id| Input::ReplicaFetched {
        now,
        from: Node(1),
        id,
        result: Ok(old.clone()),
    };
    c.b[1].input(stale(id));
    assert_eq!(
        c.log_end(1),
        0,
        "an answer from an older epoch is not applied"
    );
    c.wake();
    c.advance(1_000);
    assert_eq!(c.log_end(1), 1, "fetched afresh in epoch 2");
    // The same answer again, to a fetch already answered: nothing changes.
    c.b[1].input(stale(id));
    assert_eq!(c.log_end(1), 1);
    assert_eq!(c.segments(0), c.segments(1));
}

#[test]
fn leadership_moving_away_answers_waiting_produces_not_leader() {
    let mut c = Cluster::new(2, &[1, 2], Durability::GroupCommit, 1);
    c.silence(1);
    let p = produce(&mut c.b[0], -1, "a");
    c.route();
    assert_eq!(answer(&mut c.b[0], p), None);
    let t = c.t;
    c.log.change(t, None, LeaderChange::To(Node(2)));
    c.publish();
    assert_eq!(answer(&mut c.b[0], p), Some((NOT_LEADER_OR_FOLLOWER, 0)));
}

/// DeleteRecords up to `offset` at broker index `i`: (error, new log start).
fn delete_records(b: &mut Pair<Disk>, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(sb("r")))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset),
            ])]);
    let c = b.send(4, ApiKey::DeleteRecords, 2, RequestKind::DeleteRecords(req));
    let Some(ResponseKind::DeleteRecords(r)) = b.take(c) else {
        panic!("no DeleteRecords response")
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[test]
fn a_follower_below_the_leaders_log_start_restarts_there_durably() {
    // Broker 3 is a replica outside the ISR that hears nothing while the leader takes three
    // records and DeleteRecords moves its log start to 2.
    let mut c = Cluster::new(3, &[1, 2], Durability::GroupCommit, 1);
    c.silence(2);
    // Its first fetch found it caught up, so the leader asked to take it in; a newer image
    // (ISR still 1, 2) ends that wait, and by now it lags.
    c.advance(31_000);
    let t = c.t;
    c.log.change(t, Some(&[1, 2]), LeaderChange::Unchanged);
    c.publish();
    for (v, offset) in [("a", 0), ("b", 1), ("c", 2)] {
        let p = produce(&mut c.b[0], -1, v);
        c.advance(100);
        assert_eq!(answer(&mut c.b[0], p), Some((NONE, offset)));
    }
    assert_eq!(delete_records(&mut c.b[0], 2), (NONE, 2));
    // Broker 3 fetches from 0, below the leader's start: it empties its log, starts it at 2,
    // and fetches record c from there.
    c.wake();
    c.advance(1_000);
    let log = &c.b[2].broker.topics()["r"].partitions[0].log;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 3));
    assert!(log.epochs().entries().iter().all(|(_, s)| *s >= 2));
    let files: Vec<String> = c.segments(2).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        files,
        vec![format!("r-0/{:020}.log", 2)],
        "segment 0 deleted"
    );
    // A crash now: the restarted broker finds the log starting at 2 and holding c.
    let recovered = c.b[2].storage.recovered();
    let again = Pair::new(
        config(3, Durability::GroupCommit, 1),
        recovered,
        Disk::default(),
    );
    let log = &again.broker.topics()["r"].partitions[0].log;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 3));
}

/// Producer 7's remembered batches at broker index `i`: (first sequence, base offset).
fn remembered(c: &Cluster, i: usize) -> Vec<(i32, i64)> {
    let p = &c.b[i].broker.topics()["r"].partitions[0];
    let entry = p.producers.get(7).expect("producer 7 is remembered");
    entry
        .batches
        .iter()
        .map(|b| (b.first_seq, b.base_offset))
        .collect()
}

#[test]
fn a_restarted_follower_cuts_between_index_entries_and_rebuilds_producer_state() {
    let mut c = Cluster::new(2, &[1, 2], Durability::GroupCommit, 1);
    // Producer 7's first seven batches reach both brokers; the next five only broker 1.
    for seq in 0..7 {
        let p = produce_idempotent(&mut c.b[0], -1, seq);
        c.route();
        assert_eq!(answer(&mut c.b[0], p), Some((NONE, seq as i64)));
    }
    c.silence(1);
    c.route();
    for seq in 7..12 {
        let p = produce_idempotent(&mut c.b[0], 1, seq);
        assert_eq!(answer(&mut c.b[0], p), Some((NONE, seq as i64)));
    }
    // Broker 1 restarts: its whole log is settled, so where offset 7 lies is not in memory.
    c.routed.clear();
    let disk = std::mem::take(&mut c.b[0].storage);
    c.b[0] = Pair::new(
        config(1, Durability::GroupCommit, 1),
        disk.recovered(),
        disk,
    );
    let log = &c.b[0].broker.topics()["r"].partitions[0].log;
    assert_eq!(log.log_end_offset(), 12);
    assert!(!log.can_truncate_to(7), "7 is between index entries");
    // Broker 2 leads epoch 1: broker 1's log diverged at 7. It reads to find the cut, and
    // rebuilds producer 7's state from the batches below it: 2..6, as broker 2 has them
    // (cutting the remembered five alone would have forgotten producer 7 altogether).
    // A restarted broker re-registers and leaves the ISR (were it still a member, broker 2
    // would hand it the leadership: it holds more, `replica/probe.rs`).
    let t = c.t;
    c.log.change(t, None, LeaderChange::To(Node(2)));
    c.log.change(t, Some(&[2]), LeaderChange::Unchanged);
    c.wake();
    c.publish();
    c.advance(1_000);
    assert_eq!(c.log_end(0), 7, "cut back to where the logs agree");
    let want: Vec<(i32, i64)> = (2..7).map(|s| (s, s as i64)).collect();
    assert_eq!(remembered(&c, 0), want);
    assert_eq!(
        remembered(&c, 1),
        want,
        "the new leader built it from fetched batches"
    );
    let p = produce(&mut c.b[1], 1, "x");
    assert_eq!(answer(&mut c.b[1], p), Some((NONE, 7)));
    c.advance(1_000);
    assert_eq!(
        c.segments(0),
        c.segments(1),
        "byte for byte the leader's log"
    );
    // Leadership comes back to broker 1 (epoch 2): producer 7's retry of sequence 6 is
    // answered with its first offset, not appended again; sequence 7 follows it.
    c.log.change(t, Some(&[2, 1]), LeaderChange::Unchanged);
    c.log.change(t, None, LeaderChange::To(Node(1)));
    c.publish();
    let p = produce_idempotent(&mut c.b[0], 1, 6);
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 6)), "a duplicate");
    let p = produce_idempotent(&mut c.b[0], 1, 7);
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 8)));
}

/// Partition reassignment (KIP-455) at the brokers: a leader reassigned away hands over and
/// deletes its copy (its other partition of the topic stays), and a replica added back creates
/// the partition, fetches it from the start, and is taken into the ISR, which completes the move.
#[test]
fn a_replica_reassigned_away_deletes_its_copy_and_one_added_catches_up_from_the_start() {
    use gregor_core::cluster::{reassign, replication};
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    // A second partition on brokers 3 and 1, so both keep topic `r` when `r`-0 moves.
    let t = c.t;
    c.log.write(MetadataRecord::Partition(PartitionRecord {
        topic_id: t,
        partition: 1,
        replicas: vec![Node(3), Node(1)],
        isr: vec![Node(3), Node(1)],
        leader: Some(Node(3)),
        leader_epoch: 0,
        partition_epoch: 0,
    }));
    c.publish();
    for (i, v) in ["a", "b", "c"].into_iter().enumerate() {
        let p = produce(&mut c.b[0], -1, v);
        c.route();
        assert_eq!(answer(&mut c.b[0], p), Some((NONE, i as i64)));
    }
    c.advance(500);
    assert_eq!(c.log_end(2), 3, "broker 3 holds all three");
    // Move r-0 to [2, 3]: both in sync, so it completes at once; broker 1 no longer leads.
    let to = |ids: &[i32]| ids.iter().map(|b| Node(*b)).collect::<Vec<_>>();
    for r in reassign::alter(&c.log.image, "r", 0, Some(&to(&[2, 3]))).unwrap() {
        c.log.write(r);
    }
    let p = c.log.image.partition(t, 0).unwrap().clone();
    assert_eq!((p.replicas.clone(), p.leader), (to(&[2, 3]), Some(Node(2))));
    c.publish();
    c.advance(100);
    assert!(c.segments(0).is_empty(), "broker 1 deleted its copy of r-0");
    assert!(c.b[0].broker.topics()["r"].partitions[0].offline.is_some());
    assert!(
        c.b[0].broker.topics()["r"].partitions[1].offline.is_none(),
        "r-1 stays"
    );
    let p = produce(&mut c.b[1], -1, "d");
    c.route();
    assert_eq!(
        answer(&mut c.b[1], p),
        Some((NONE, 3)),
        "the new leader takes writes"
    );
    // Add broker 1 back: it creates r-0 empty and fetches it from offset 0.
    for r in reassign::alter(&c.log.image, "r", 0, Some(&to(&[2, 3, 1]))).unwrap() {
        c.log.write(r);
    }
    assert_eq!(c.log.image.partition(t, 0).unwrap().adding, to(&[1]));
    c.publish();
    c.advance(1_000);
    assert_eq!(c.log_end(0), 4, "broker 1 caught up from the start");
    assert_eq!(c.segments(0), c.segments(1), "byte for byte");
    // The leader asks to take it into the ISR; that change completes the move.
    let asked: Vec<Ask> = c.b[1].controller.drain(..).map(|(_, r)| r).collect();
    let req = alter_request(asked.last().expect("an ISR expansion"));
    let altered = replication::alter_partition(&c.log.image, &req);
    assert!(altered.result.is_ok(), "{altered:?}");
    for r in reassign::then_complete(&c.log.image, altered.records) {
        c.log.write(r);
    }
    let p = c.log.image.partition(t, 0).unwrap().clone();
    assert_eq!((p.replicas, p.isr.len()), (to(&[2, 3, 1]), 3));
    assert!(p.adding.is_empty() && p.removing.is_empty(), "complete");
}

// ---- acks=N across a leader change (issue 10, item 4; `replica/probe.rs`) -----------------

use gregor_core::cluster::replication;
use gregor_core::kafka_protocol::records::RecordBatchDecoder;

/// The controller's view of a broker's AlterPartition ask (what the controller wire carries).
fn alter_request(a: &Ask) -> replication::AlterPartition {
    let Ask::AlterPartition {
        broker_id,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch,
        partition_epoch,
        new_isr,
        successor,
    } = a.clone()
    else {
        panic!("an AlterPartition: {a:?}")
    };
    replication::AlterPartition {
        broker_id,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch,
        partition_epoch,
        new_isr,
        successor,
    }
}

impl Cluster {
    /// Broker `id` fails: the controller fences it and takes it out of every ISR, electing
    /// new leaders by its own rule (`replication::leave`: Kafka's assignment order).
    fn fail(&mut self, id: i32) {
        let epoch = self.log.epoch_of(id);
        self.log.write(MetadataRecord::BrokerRegistrationChange {
            broker_id: Node(id),
            broker_epoch: epoch,
            fenced: Some(true),
            in_controlled_shutdown: None,
        });
        for r in replication::leave(&self.log.image, Node(id)) {
            self.log.write(r);
        }
    }

    /// Broker index `i`'s AlterPartition requests, decided by the controller's rule
    /// (`replication::alter_partition`) and their records written: (successor, answer code).
    fn decide_asks(&mut self, i: usize) -> Vec<(Option<Node>, i16)> {
        let asked: Vec<Ask> = self.b[i].controller.drain(..).map(|(_, r)| r).collect();
        let mut out = Vec::new();
        for a in asked {
            let req = alter_request(&a);
            let successor = req.successor;
            let altered = replication::alter_partition(&self.log.image, &req);
            for r in altered.records {
                self.log.write(r);
            }
            out.push((successor, altered.result.err().map_or(0, |e| e.code())));
        }
        out
    }

    fn leader(&self) -> Option<i32> {
        let p = self.log.image.partition(self.t, 0).unwrap();
        p.leader.map(|l| l.0)
    }
}

/// A consumer's fetch of `r`-0 from offset 0 at broker `b`: (error, values below the HW).
fn consume(b: &mut Pair<Disk>) -> (i16, Vec<String>) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb("r")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let c = b.send(4, ApiKey::Fetch, 12, RequestKind::Fetch(req));
    let Some(ResponseKind::Fetch(r)) = b.take(c) else {
        panic!("no fetch response")
    };
    let p = &r.responses[0].partitions[0];
    let mut out = Vec::new();
    let mut bytes = p.records.clone().unwrap_or_default();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for rec in set.records {
            out.push(String::from_utf8(rec.value.unwrap().to_vec()).unwrap());
        }
    }
    (p.error_code, out)
}

/// The case Kafka loses: RF 3, an acks=2 record held by the leader (broker 1) and broker 3;
/// broker 1 fails and the controller elects broker 2, first in assignment order, which lacks
/// it. Broker 2 probes, hears broker 3 ahead of it, and hands the leadership over; the record
/// is kept and readable, and broker 2 gets it.
#[test]
fn an_acks_2_record_survives_when_the_first_isr_member_lacks_it() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    c.silence(1);
    let p = produce(&mut c.b[0], 2, "a");
    c.route();
    assert_eq!(
        answer(&mut c.b[0], p),
        Some((NONE, 0)),
        "leader and broker 3"
    );
    assert_eq!((c.log_end(1), c.log_end(2)), (0, 1), "broker 2 lacks it");
    c.wake();
    c.silence(0);
    c.fail(1);
    assert_eq!(c.leader(), Some(2), "Kafka's rule: first live ISR member");
    c.publish();
    // Broker 2 probes: no write yet, and broker 3 is not cut back.
    let p = produce(&mut c.b[1], 1, "early");
    assert_eq!(answer(&mut c.b[1], p), Some((LEADER_NOT_AVAILABLE, -1)));
    assert_eq!(c.log_end(2), 1, "broker 3 keeps the record while 2 probes");
    assert_eq!(
        c.decide_asks(1),
        vec![(Some(Node(3)), 109)],
        "broker 2 hands the leadership to broker 3"
    );
    c.publish();
    assert_eq!(c.leader(), Some(3));
    c.advance(1_000);
    let p = produce(&mut c.b[2], 2, "b");
    c.route();
    assert_eq!(
        answer(&mut c.b[2], p),
        Some((NONE, 1)),
        "after the kept record"
    );
    c.advance(1_000);
    assert_eq!(consume(&mut c.b[2]), (NONE, vec!["a".into(), "b".into()]));
    assert_eq!(c.log_end(1), 2, "broker 2 fetched both");
    assert_eq!(
        c.segments(1),
        c.segments(2),
        "byte for byte the new leader's"
    );
}

/// acks=1 promises nothing on a leader change: a record only the leader held is gone once a
/// follower leads, and the old leader cuts it when it follows again.
#[test]
fn an_acks_1_record_only_the_failed_leader_held_is_lost() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    c.silence(1);
    c.silence(2);
    let p = produce(&mut c.b[0], 1, "x");
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)));
    c.wake();
    c.silence(0);
    c.fail(1);
    c.publish();
    assert_eq!(c.leader(), Some(2));
    assert!(c.decide_asks(1).is_empty(), "no one is ahead of broker 2");
    let p = produce(&mut c.b[1], 1, "y");
    assert_eq!(
        answer(&mut c.b[1], p),
        Some((NONE, 0)),
        "y takes x's offset"
    );
    c.wake();
    c.advance(1_000);
    assert_eq!(c.log_end(0), 1, "broker 1 cut x and fetched y");
    assert_eq!(c.segments(0), c.segments(1));
}

/// A live ISR follower that never fetches holds a new leader's writes back at most
/// `replica.lag.time.max.ms` (30 s); then the leader leads without it.
#[test]
fn a_silent_isr_follower_holds_a_new_leader_at_most_the_lag_time() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    c.silence(0);
    c.silence(2);
    c.fail(1);
    c.publish();
    assert_eq!(c.leader(), Some(2));
    c.advance(29_000);
    let p = produce(&mut c.b[1], 1, "held");
    assert_eq!(answer(&mut c.b[1], p), Some((LEADER_NOT_AVAILABLE, -1)));
    c.advance(1_001);
    let p = produce(&mut c.b[1], 1, "led");
    assert_eq!(answer(&mut c.b[1], p), Some((NONE, 0)), "the probe ended");
    assert!(c.decide_asks(1).is_empty(), "no handover: no one was ahead");
}

impl Cluster {
    /// Only follower `i` speaks again: its held fetches fail (the connection was lost).
    fn wake_one(&mut self, i: usize) {
        self.silent[i] = false;
        let (mine, others) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.0 == i);
        self.held = others;
        self.lose_fetches(mine);
    }
}

/// A probing leader's answer to a follower carries no high watermark: it has not checked the
/// follower's log against its own, and a follower that capped the leader's watermark at its
/// own log end would expose a diverged tail it is about to cut (simulator, replicated seed
/// 731: the old leader, back as a follower, exposed its uncommitted acks=1 tail, then cut it).
#[test]
fn a_probing_leaders_answer_does_not_expose_a_followers_diverged_tail() {
    let mut c = Cluster::new(3, &[1, 2, 3], Durability::GroupCommit, 1);
    let p = produce(&mut c.b[0], -1, "a");
    c.route();
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 0)));
    // "x" only on broker 1 (acks=1): its tail, never committed.
    c.silence(1);
    c.silence(2);
    let p = produce(&mut c.b[0], 1, "x");
    assert_eq!(answer(&mut c.b[0], p), Some((NONE, 1)));
    c.wake();
    c.silence(0);
    // Broker 2 leads epoch 1 with broker 3 (broker 1 out of the ISR) and commits "c" at 1.
    let t = c.t;
    c.log.change(t, Some(&[2, 3]), LeaderChange::To(Node(2)));
    c.publish();
    let p = produce(&mut c.b[1], -1, "c");
    c.route();
    assert_eq!(answer(&mut c.b[1], p), Some((NONE, 1)));
    c.advance(1_000);
    assert_eq!((c.hw(1), c.hw(2)), (2, 2));
    // Broker 3 leads epoch 2 and probes: broker 2, a live ISR member, is silent.
    c.silence(1);
    c.log.change(t, None, LeaderChange::To(Node(3)));
    c.publish();
    // Broker 1 follows it, fetching from (epoch 0, offset 2): held, no records, no cut.
    c.wake_one(0);
    c.advance(1_000); // its fetch backs off, then reaches broker 3 and is parked there
    c.advance(1_000); // answered: held
    assert_eq!(c.log_end(0), 2, "broker 1 still holds its tail");
    assert_eq!(c.hw(0), 1, "and does not expose it");
    // The probe ends at the lag time: broker 1 cuts "x" and takes "c".
    c.advance(30_000);
    assert_eq!((c.log_end(0), c.hw(0)), (2, 2));
    assert_eq!(c.segments(0), c.segments(2), "byte for byte the leader's");
    assert_eq!(consume(&mut c.b[2]), (NONE, vec!["a".into(), "c".into()]));
}
