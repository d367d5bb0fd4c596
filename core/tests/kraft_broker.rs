//! A KRaft-mode broker (`Config.kraft = true`) fed metadata images built by replaying records,
//! spoken to in Kafka: it serves what it leads, redirects what others lead, follows leader
//! changes, deletions and re-creations, forwards admin requests to the controller, finds
//! coordinators and takes producer ids from the controller (see `core/src/broker/cluster.rs`).

use bytes::Bytes;
use gregor_core::cluster::records::{Endpoint, PartitionChange, PartitionRecord};
use gregor_core::cluster::{
    BrokerEpoch, BrokerId as Node, ControllerError, LeaderChange, MetadataImage, MetadataRecord,
    RegisterBroker, Reply, Request as Ask, RequestId, TopicId as Tid,
};
use gregor_core::error::*;
use gregor_core::io::{Input, StorageFault, StorageReply, StorageRequest};
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::kafka_protocol::records::{Compression, RecordBatchDecoder};
use gregor_core::log::recover::{recover_partition, DirEntry};
use gregor_core::testkit::{self, Pair, Rec};
use gregor_core::{Config, Recovered};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Files by path (`dir/name`); every write is taken as durable (no power loss here).
#[derive(Default)]
struct Files {
    map: BTreeMap<String, Vec<u8>>,
    broker_meta: Option<Vec<u8>>,
}

impl Files {
    fn dirs(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .map
            .keys()
            .map(|k| k.split_once('/').unwrap().0.to_string())
            .collect();
        d.dedup();
        d
    }
    fn meta_of(&self, dir: &str) -> Option<&Vec<u8>> {
        self.map.get(&format!("{dir}/partition.meta"))
    }

    /// What a restarted broker finds on this disk.
    fn restart(&self) -> Recovered {
        let partitions = self.dirs().into_iter().map(|dir| {
            let entries: Vec<DirEntry> = self
                .map
                .iter()
                .filter_map(|(k, v)| {
                    let name = k.strip_prefix(&format!("{dir}/"))?;
                    Some(DirEntry {
                        name: name.to_string(),
                        len: v.len() as u64,
                    })
                })
                .collect();
            let meta = self.meta_of(&dir).cloned().map(Bytes::from);
            let read = |name: &str, from: u64, to: u64| {
                Ok::<_, ()>(self.map[&format!("{dir}/{name}")][from as usize..to as usize].to_vec())
            };
            recover_partition(dir.clone(), meta, &entries, read).unwrap()
        });
        Recovered {
            clean_shutdown: false,
            broker_meta: self.broker_meta.clone().map(Bytes::from),
            partitions: partitions.collect(),
        }
    }
}

impl testkit::Storage for Files {
    fn exec(
        &mut self,
        request: &StorageRequest,
        _prng: &mut gregor_core::prng::Prng,
    ) -> Result<StorageReply, StorageFault> {
        let path = |dir: &gregor_core::io::PartitionDir, name: String| {
            format!("{}/{name}", dir.dir_name())
        };
        match request {
            StorageRequest::CreatePartition { dir, meta } => {
                self.map
                    .insert(path(dir, "partition.meta".into()), meta.to_vec());
            }
            StorageRequest::DeletePartition { dir } => {
                let prefix = format!("{}/", dir.dir_name());
                self.map.retain(|k, _| !k.starts_with(&prefix));
            }
            StorageRequest::CreateSegment { file, header } => {
                self.map
                    .insert(path(&file.dir, file.file_name()), header.to_vec());
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                let f = self
                    .map
                    .get_mut(&path(&file.dir, file.file_name()))
                    .unwrap();
                let end = *position as usize + data.len();
                f.resize(f.len().max(end), 0);
                f[*position as usize..end].copy_from_slice(data);
            }
            StorageRequest::Read {
                file,
                position,
                len,
            } => {
                let f = &self.map[&path(&file.dir, file.file_name())];
                let from = (*position as usize).min(f.len());
                let to = (from + *len as usize).min(f.len());
                return Ok(StorageReply::Read(Bytes::copy_from_slice(&f[from..to])));
            }
            StorageRequest::WriteBrokerMeta { data } => self.broker_meta = Some(data.to_vec()),
            // Producer snapshots are kept: the leader epochs they carry are what a restart
            // trusts without reading the batch headers again (seed 748).
            StorageRequest::WriteProducerSnapshot {
                dir,
                offset,
                data,
                delete_below,
                ..
            } => {
                let prefix = format!("{}/", dir.dir_name());
                self.map.retain(|k, _| {
                    let Some(stem) = k
                        .strip_prefix(&prefix)
                        .and_then(|n| n.strip_suffix(".snapshot"))
                    else {
                        return true;
                    };
                    stem.parse::<i64>().is_ok_and(|o| o >= *delete_below)
                });
                let name = gregor_core::io::PartitionDir::snapshot_file_name(*offset);
                self.map.insert(path(dir, name), data.to_vec());
            }
            StorageRequest::DeleteProducerSnapshots { dir, above } => {
                let prefix = format!("{}/", dir.dir_name());
                self.map.retain(|k, _| {
                    let Some(stem) = k
                        .strip_prefix(&prefix)
                        .and_then(|n| n.strip_suffix(".snapshot"))
                    else {
                        return true;
                    };
                    stem.parse::<i64>().is_ok_and(|o| o <= *above)
                });
            }
            // Indexes only shorten recovery; syncs are no-ops on this disk.
            _ => {}
        }
        Ok(StorageReply::Done)
    }
}

/// The metadata log, replayed as the controller would write it.
struct Log {
    image: MetadataImage,
}

impl Log {
    fn new() -> Log {
        Log {
            image: MetadataImage::new(),
        }
    }
    fn write(&mut self, r: MetadataRecord) {
        let at = self.image.offset() + 1;
        self.image.replay(at, &r).unwrap();
    }
    fn now(&self) -> Arc<MetadataImage> {
        Arc::new(self.image.clone())
    }
    /// Register broker `id` at `host`:`port` and unfence it, as the controller does once the
    /// broker has caught up.
    fn broker(&mut self, id: i32, host: &str, port: u16) {
        self.register(id, host, port, id as u8);
    }
    /// Register the run of broker `id` whose incarnation id is all `incarnation`s, and unfence it.
    fn register(&mut self, id: i32, host: &str, port: u16, incarnation: u8) {
        let epoch = BrokerEpoch(self.image.offset() + 1);
        self.write(MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: Node(id),
            incarnation_id: [incarnation; 16],
            broker_epoch: epoch,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: host.into(),
                port,
            }],
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
        }));
        self.fence(id, false);
    }
    fn fence(&mut self, id: i32, fenced: bool) {
        let epoch = self.image.broker(Node(id)).unwrap().broker_epoch;
        self.write(MetadataRecord::BrokerRegistrationChange {
            broker_id: Node(id),
            broker_epoch: epoch,
            fenced: Some(fenced),
            in_controlled_shutdown: None,
        });
    }
    /// A topic whose partition `i` has replicas `parts[i]`, led by the first (its only ISR member).
    fn topic(&mut self, name: &str, id: u8, parts: &[&[i32]]) -> Tid {
        let topic_id = Tid([id; 16]);
        self.write(MetadataRecord::Topic {
            name: name.into(),
            topic_id,
        });
        for (i, replicas) in parts.iter().enumerate() {
            let replicas: Vec<Node> = replicas.iter().map(|b| Node(*b)).collect();
            self.write(MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: i as i32,
                // Only the leader is in sync: the other brokers named here are never started,
                // so they never fetch (replication_broker.rs runs real followers).
                isr: replicas[..1].to_vec(),
                leader: Some(replicas[0]),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            }));
        }
        topic_id
    }
    /// Move the leadership; the new leader becomes the only ISR member (see `topic`).
    fn lead(&mut self, topic_id: Tid, partition: i32, leader: LeaderChange) {
        let isr = match leader {
            LeaderChange::To(b) => Some(vec![b]),
            _ => None,
        };
        self.write(MetadataRecord::PartitionChange(PartitionChange {
            topic_id,
            partition,
            isr,
            leader,
            replicas: None,
        }));
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn config() -> Config {
    Config {
        kraft: true,
        broker_id: gregor_core::ids::BrokerId(1),
        advertised_host: "one.example".into(),
        advertised_port: 9092,
        ..Config::default()
    }
}

fn broker() -> Pair<Files> {
    let files = Files::default();
    Pair::new(config(), files.restart(), files)
}

fn image(b: &mut Pair<Files>, log: &Log) {
    let now = b.now;
    b.input(Input::Metadata {
        now,
        image: log.now(),
    });
}

fn produce(b: &mut Pair<Files>, topic: &str, partition: i32, value: &str) -> (i16, i64) {
    let rec = Rec {
        value: Some(Bytes::from(value.to_string())),
        ..Rec::default()
    };
    let data = produce_request::PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(testkit::batch(&[rec], None, Compression::None)));
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![data])]);
    let c = b.send(1, ApiKey::Produce, 9, RequestKind::Produce(req));
    let Some(ResponseKind::Produce(r)) = b.take(c) else {
        panic!("no produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// (error, the current leader named (id, epoch), (offset, value, partitionLeaderEpoch) read)
type Fetched = (i16, (i32, i32), Vec<(i64, String, i32)>);

fn fetch(b: &mut Pair<Files>, topic: &str, partition: i32) -> Fetched {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_partition_max_bytes(1 << 20)])]);
    let c = b.send(2, ApiKey::Fetch, 12, RequestKind::Fetch(req));
    let Some(ResponseKind::Fetch(r)) = b.take(c) else {
        panic!("no fetch response")
    };
    let p = &r.responses[0].partitions[0];
    let mut out = Vec::new();
    let mut bytes = p.records.clone().unwrap_or_default();
    while !bytes.is_empty() {
        let epoch = i32::from_be_bytes(bytes[12..16].try_into().unwrap());
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for rec in set.records {
            let v = String::from_utf8(rec.value.unwrap().to_vec()).unwrap();
            out.push((rec.offset, v, epoch));
        }
    }
    let leader = (p.current_leader.leader_id.0, p.current_leader.leader_epoch);
    (p.error_code, leader, out)
}

fn metadata(b: &mut Pair<Files>, topics: Option<&[&str]>) -> MetadataResponse {
    let topics = topics.map(|ts| {
        ts.iter()
            .map(|t| {
                metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(sb(t))))
            })
            .collect()
    });
    let req = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false);
    let c = b.send(3, ApiKey::Metadata, 9, RequestKind::Metadata(req));
    let Some(ResponseKind::Metadata(r)) = b.take(c) else {
        panic!("no metadata response")
    };
    r
}

/// Two brokers; topic `t`: partition 0 on broker 1 (this one), partition 1 on broker 2.
fn two_brokers() -> (Pair<Files>, Log, Tid) {
    let mut b = broker();
    let mut log = Log::new();
    log.broker(1, "one.example", 9092);
    log.broker(2, "two.example", 9093);
    let t = log.topic("t", 7, &[&[1], &[2]]);
    image(&mut b, &log);
    (b, log, t)
}

#[test]
fn before_the_first_image_the_broker_knows_only_itself() {
    let mut b = broker();
    let m = metadata(&mut b, None);
    let ids: Vec<i32> = m.brokers.iter().map(|x| x.node_id.0).collect();
    assert_eq!(ids, vec![1]);
    assert!(m.topics.is_empty());
    assert_eq!(produce(&mut b, "t", 0, "x").0, UNKNOWN_TOPIC_OR_PARTITION);
    // No `__consumer_offsets` of its own: that topic comes from the image too.
    assert!(b.storage.dirs().is_empty(), "{:?}", b.storage.dirs());
}

#[test]
fn the_leader_serves_and_the_others_redirect() {
    let (mut b, _, _) = two_brokers();
    assert_eq!(produce(&mut b, "t", 0, "a"), (NONE, 0));
    let (code, _, read) = fetch(&mut b, "t", 0);
    assert_eq!((code, read), (NONE, vec![(0, "a".to_string(), 0)]));

    assert_eq!(produce(&mut b, "t", 1, "b").0, NOT_LEADER_OR_FOLLOWER);
    // KIP-951: the refusal names the leader and its epoch.
    let (code, leader, read) = fetch(&mut b, "t", 1);
    assert_eq!((code, leader), (NOT_LEADER_OR_FOLLOWER, (2, 0)));
    assert!(read.is_empty());
    assert_eq!(produce(&mut b, "t", 2, "c").0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(fetch(&mut b, "nope", 0).0, UNKNOWN_TOPIC_OR_PARTITION);

    // Only this broker's partition has files here.
    assert_eq!(b.storage.dirs(), vec!["t-0".to_string()]);

    let m = metadata(&mut b, None);
    let brokers: Vec<(i32, String, i32)> = m
        .brokers
        .iter()
        .map(|x| (x.node_id.0, x.host.to_string(), x.port))
        .collect();
    assert_eq!(
        brokers,
        vec![
            (1, "one.example".into(), 9092),
            (2, "two.example".into(), 9093)
        ]
    );
    assert!([1, 2].contains(&m.controller_id.0), "a live broker");
    let t = &m.topics[0];
    assert_eq!(t.topic_id, gregor_core::ids::TopicId([7; 16]).to_uuid());
    let leaders: Vec<(i32, i32, i16)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0, p.error_code))
        .collect();
    assert_eq!(leaders, vec![(0, 1, NONE), (1, 2, NONE)]);
}

#[test]
fn a_fenced_leader_leaves_its_partition_offline() {
    let (mut b, mut log, t) = two_brokers();
    log.fence(2, true);
    log.lead(t, 1, LeaderChange::NoLeader);
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "t", 1, "x").0, LEADER_NOT_AVAILABLE);
    assert_eq!(fetch(&mut b, "t", 1).0, NOT_LEADER_OR_FOLLOWER);
    let m = metadata(&mut b, Some(&["t"]));
    let ids: Vec<i32> = m.brokers.iter().map(|x| x.node_id.0).collect();
    assert_eq!(ids, vec![1], "a fenced broker is not offered to clients");
    let p = &m.topics[0].partitions[1];
    assert_eq!((p.leader_id.0, p.error_code), (-1, LEADER_NOT_AVAILABLE));
    assert_eq!(p.leader_epoch, 1);
    assert_eq!(p.offline_replicas, vec![BrokerId(2)]);
}

/// A partition whose only in-sync replica came back with an empty log (KIP-966's lost ISR)
/// is offline for good: the broker says why once, naming the partition, the broker and the way
/// out, and says nothing more while it stays so; the unclean election that brings it back is
/// said too, once.
#[test]
fn a_lost_isr_and_its_unclean_election_are_each_warned_once() {
    let (mut b, mut log, t) = two_brokers();
    let warned = |b: &Pair<Files>, what: &str| -> Vec<String> {
        b.logs
            .iter()
            .filter(|l| l.contains(what))
            .cloned()
            .collect()
    };
    // Not "has no leader" alone: a refused produce logs "t-0 has no leader (offline)".
    let lost_line = "has no leader: its only in-sync replica";
    log.lead(t, 0, LeaderChange::NoLeader);
    image(&mut b, &log);
    assert!(warned(&b, lost_line).is_empty(), "offline, not lost");
    log.write(MetadataRecord::ElrChange {
        topic_id: t,
        partition: 0,
        elr: vec![],
        isr_lost: true,
    });
    image(&mut b, &log);
    log.fence(2, true);
    image(&mut b, &log);
    let lost = warned(&b, lost_line);
    assert_eq!(lost.len(), 1, "once per change: {lost:?}");
    assert!(
        lost[0].contains("partition t-0")
            && lost[0].contains("broker 1, returned with an empty log")
            && lost[0].contains("unclean.leader.election.enable=true"),
        "{}",
        lost[0]
    );
    assert_eq!(produce(&mut b, "t", 0, "x").0, LEADER_NOT_AVAILABLE);
    // The operator allows it; the controller elects this broker, on record.
    log.write(MetadataRecord::Config {
        resource_type: gregor_core::cluster::records::CONFIG_RESOURCE_TOPIC,
        resource_name: "t".into(),
        name: "unclean.leader.election.enable".into(),
        value: Some("true".into()),
    });
    log.lead(t, 0, LeaderChange::To(Node(1)));
    log.write(MetadataRecord::UncleanElection {
        topic_id: t,
        partition: 0,
        leader: Node(1),
        leader_epoch: 2,
    });
    image(&mut b, &log);
    image(&mut b, &log);
    let unclean = warned(&b, "unclean leader election");
    assert_eq!(unclean.len(), 1, "{unclean:?}");
    assert!(
        unclean[0].contains("partition t-0")
            && unclean[0].contains("broker 1 leads in leader epoch 2"),
        "{}",
        unclean[0]
    );
    assert_eq!(warned(&b, lost_line).len(), 1, "no more");
    assert_eq!(
        produce(&mut b, "t", 0, "x"),
        (NONE, 0),
        "serving again, empty"
    );
}

/// Topic `f`, one partition on brokers 1 (this one, the leader) and 2, holding "a" and "b".
fn led_here_with_two_records() -> (Pair<Files>, Log, Tid) {
    let mut b = broker();
    let mut log = Log::new();
    log.broker(1, "one.example", 9092);
    log.broker(2, "two.example", 9093);
    let t = log.topic("f", 3, &[&[1, 2]]);
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "f", 0, "a"), (NONE, 0));
    assert_eq!(produce(&mut b, "f", 0, "b"), (NONE, 1));
    (b, log, t)
}

#[test]
fn a_leader_change_flips_serving_both_ways_and_keeps_the_records() {
    let (mut b, mut log, t) = led_here_with_two_records();

    log.lead(t, 0, LeaderChange::To(Node(2)));
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "f", 0, "no").0, NOT_LEADER_OR_FOLLOWER);
    let (code, leader, _) = fetch(&mut b, "f", 0);
    assert_eq!((code, leader), (NOT_LEADER_OR_FOLLOWER, (2, 1)));
    let m = metadata(&mut b, Some(&["f"]));
    assert_eq!(m.topics[0].partitions[0].leader_id.0, 2);

    log.lead(t, 0, LeaderChange::To(Node(1)));
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "f", 0, "c"), (NONE, 2));
    let (code, _, read) = fetch(&mut b, "f", 0);
    assert_eq!(code, NONE);
    // Every batch carries the leader epoch it was written under (KIP-101).
    let want = vec![
        (0, "a".to_string(), 0),
        (1, "b".to_string(), 0),
        (2, "c".to_string(), 2),
    ];
    assert_eq!(read, want);
}

#[test]
fn deleted_and_recreated_topics_follow_the_image() {
    let (mut b, mut log, t) = two_brokers();
    assert_eq!(produce(&mut b, "t", 0, "old"), (NONE, 0));
    let old_meta = b.storage.meta_of("t-0").cloned().unwrap();
    log.write(MetadataRecord::RemoveTopic { topic_id: t });
    image(&mut b, &log);
    assert!(b.storage.dirs().is_empty(), "the topic's files are deleted");
    assert_eq!(produce(&mut b, "t", 0, "x").0, UNKNOWN_TOPIC_OR_PARTITION);

    // The same name again, with a new id: a new, empty log.
    log.topic("t", 8, &[&[1]]);
    image(&mut b, &log);
    let new_meta = b.storage.meta_of("t-0").cloned().unwrap();
    assert_ne!(old_meta, new_meta, "partition.meta names the new topic id");
    assert_eq!(produce(&mut b, "t", 0, "new"), (NONE, 0));
    let (_, _, read) = fetch(&mut b, "t", 0);
    assert_eq!(read, vec![(0, "new".to_string(), 0)]);
}

#[test]
fn stray_partitions_are_kept_until_the_first_image_then_deleted() {
    let mut b = broker();
    let mut log = Log::new();
    log.broker(1, "one.example", 9092);
    log.broker(2, "two.example", 9093);
    let keep = log.topic("keep", 1, &[&[1], &[2]]);
    let gone = log.topic("gone", 2, &[&[1]]);
    let renewed = log.topic("renewed", 3, &[&[1]]);
    image(&mut b, &log);
    for t in ["keep", "gone", "renewed"] {
        assert_eq!(produce(&mut b, t, 0, t), (NONE, 0));
    }
    // While the broker is down, two topics change.
    log.write(MetadataRecord::RemoveTopic { topic_id: gone });
    log.write(MetadataRecord::RemoveTopic { topic_id: renewed });
    log.topic("renewed", 4, &[&[1]]);

    let files = std::mem::take(&mut b.storage);
    let mut b = Pair::new(config(), files.restart(), files);
    // Until an image arrives the logs on disk stay untouched.
    assert!(metadata(&mut b, None).topics.is_empty());
    assert_eq!(b.storage.dirs(), vec!["gone-0", "keep-0", "renewed-0"]);

    image(&mut b, &log);
    assert_eq!(b.storage.dirs(), vec!["keep-0", "renewed-0"]);
    let (_, _, read) = fetch(&mut b, "keep", 0);
    assert_eq!(read, vec![(0, "keep".to_string(), 0)]);
    // The partition on the other broker is that broker's, not a missing one here.
    assert_eq!(produce(&mut b, "keep", 1, "x").0, NOT_LEADER_OR_FOLLOWER);
    log.lead(keep, 1, LeaderChange::NoLeader);
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "keep", 1, "x").0, LEADER_NOT_AVAILABLE);
    let (_, _, read) = fetch(&mut b, "renewed", 0);
    assert!(read.is_empty(), "the stray log of the old id is gone");
}

fn create_topics(b: &mut Pair<Files>, name: &str, validate_only: bool, timeout_ms: i32) -> i32 {
    let t = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(3)
        .with_replication_factor(-1);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only);
    b.send(4, ApiKey::CreateTopics, 5, RequestKind::CreateTopics(req))
}

fn answer(b: &mut Pair<Files>, id: RequestId, result: Result<Reply, ControllerError>) {
    let now = b.now;
    b.input(Input::ControllerReply { now, id, result });
}

#[test]
fn create_topics_is_forwarded_and_answered_after_the_controller() {
    let (mut b, _, _) = two_brokers();
    let c = create_topics(&mut b, "new", false, 5000);
    assert!(b.take(c).is_none(), "waits for the controller");
    let (id, ask) = b.controller.pop().expect("one request to the controller");
    assert_eq!(
        ask,
        Ask::CreateTopic {
            name: "new".into(),
            partitions: 3,
            // -1 (KIP-464) is the controller's to resolve with `default.replication.factor`.
            replication_factor: -1,
            configs: Default::default(),
        }
    );
    answer(
        &mut b,
        id,
        Ok(Reply::CreateTopic {
            topic_id: Tid([9; 16]),
        }),
    );
    let Some(ResponseKind::CreateTopics(r)) = b.take(c) else {
        panic!("answered once the controller did")
    };
    assert_eq!(r.topics[0].error_code, NONE);
    assert_eq!(
        r.topics[0].topic_id,
        gregor_core::ids::TopicId([9; 16]).to_uuid()
    );

    // The controller's refusal is the client's error.
    let c = create_topics(&mut b, "t2", false, 5000);
    let (id, _) = b.controller.pop().unwrap();
    answer(
        &mut b,
        id,
        Err(ControllerError::InvalidReplicationFactor {
            asked: 1,
            brokers: 0,
        }),
    );
    let Some(ResponseKind::CreateTopics(r)) = b.take(c) else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, INVALID_REPLICATION_FACTOR);

    // validate_only is answered here, without the controller.
    let c = create_topics(&mut b, "dry", true, 5000);
    assert!(b.controller.is_empty());
    let Some(ResponseKind::CreateTopics(r)) = b.take(c) else {
        panic!()
    };
    assert_eq!(
        (r.topics[0].error_code, r.topics[0].num_partitions),
        (NONE, 3)
    );
    // An existing topic is refused at once.
    let c = create_topics(&mut b, "t", false, 5000);
    let Some(ResponseKind::CreateTopics(r)) = b.take(c) else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, TOPIC_ALREADY_EXISTS);
}

#[test]
fn create_topics_times_out_without_a_controller_answer() {
    let (mut b, _, _) = two_brokers();
    let c = create_topics(&mut b, "slow", false, 1000);
    let (id, _) = b.controller.pop().unwrap();
    b.advance_ms(999);
    assert!(b.take(c).is_none());
    b.advance_ms(1);
    let Some(ResponseKind::CreateTopics(r)) = b.take(c) else {
        panic!("answered at the timeout")
    };
    assert_eq!(r.topics[0].error_code, REQUEST_TIMED_OUT);
    // A late answer finds nothing waiting.
    answer(
        &mut b,
        id,
        Ok(Reply::CreateTopic {
            topic_id: Tid([5; 16]),
        }),
    );
    assert!(b.responses.is_empty());
}

#[test]
fn delete_topics_is_forwarded() {
    let (mut b, _, _) = two_brokers();
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(sb("t")), TopicName(sb("nope"))])
        .with_timeout_ms(5000);
    let c = b.send(4, ApiKey::DeleteTopics, 4, RequestKind::DeleteTopics(req));
    let (id, ask) = b.controller.pop().unwrap();
    assert_eq!(ask, Ask::DeleteTopic { name: "t".into() });
    assert!(b.controller.is_empty());
    answer(&mut b, id, Ok(Reply::DeleteTopic));
    let Some(ResponseKind::DeleteTopics(r)) = b.take(c) else {
        panic!()
    };
    let codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![NONE, UNKNOWN_TOPIC_OR_PARTITION]);
}

fn find_coordinator(b: &mut Pair<Files>, group: &str) -> (i16, i32, String, i32) {
    let req = FindCoordinatorRequest::default().with_key(sb(group));
    let c = b.send(
        5,
        ApiKey::FindCoordinator,
        3,
        RequestKind::FindCoordinator(req),
    );
    let Some(ResponseKind::FindCoordinator(r)) = b.take(c) else {
        panic!()
    };
    (r.error_code, r.node_id.0, r.host.to_string(), r.port)
}

#[test]
fn find_coordinator_names_the_leader_of_the_groups_offsets_partition() {
    let (mut b, mut log, _) = two_brokers();
    let (code, ..) = find_coordinator(&mut b, "g");
    assert_eq!(code, COORDINATOR_NOT_AVAILABLE);
    let (_, ask) = b.controller.pop().expect("the offsets topic is asked for");
    // offsets.topic.replication.factor is 3, capped at the two brokers registered.
    assert_eq!(
        ask,
        Ask::CreateTopic {
            name: "__consumer_offsets".into(),
            partitions: 4,
            replication_factor: 2,
            configs: Default::default(),
        }
    );
    find_coordinator(&mut b, "g");
    assert!(b.controller.is_empty(), "asked once at a time");

    // Partitions 0 and 2 on broker 1, 1 and 3 on broker 2.
    log.topic("__consumer_offsets", 50, &[&[1], &[2], &[1], &[2]]);
    image(&mut b, &log);
    let p = gregor_core::group::partition_for("g", 4).0;
    let (code, node, host, port) = find_coordinator(&mut b, "g");
    assert_eq!(code, NONE);
    if p % 2 == 0 {
        assert_eq!((node, host.as_str(), port), (1, "one.example", 9092));
    } else {
        assert_eq!((node, host.as_str(), port), (2, "two.example", 9093));
    }
    // Some group lands on each broker.
    let nodes: std::collections::BTreeSet<i32> = (0..20)
        .map(|i| find_coordinator(&mut b, &format!("group-{i}")).1)
        .collect();
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), vec![1, 2]);
    // The offsets partitions this broker holds exist locally, with no retention.
    assert!(b.storage.meta_of("__consumer_offsets-0").is_some());
    assert!(b.storage.meta_of("__consumer_offsets-1").is_none());
    // Internal topics stay out of a listing of all topics.
    assert_eq!(metadata(&mut b, None).topics.len(), 1);
}

fn init_producer_id(b: &mut Pair<Files>) -> i32 {
    let req = InitProducerIdRequest::default().with_transaction_timeout_ms(-1);
    b.send(
        6,
        ApiKey::InitProducerId,
        4,
        RequestKind::InitProducerId(req),
    )
}

fn producer_id(b: &mut Pair<Files>, c: i32) -> Option<(i16, i64)> {
    match b.take(c)? {
        ResponseKind::InitProducerId(r) => Some((r.error_code, r.producer_id.0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn producer_ids_come_in_blocks_from_the_controller() {
    let mut b = broker();
    // Not registered yet: the request waits, nothing is asked.
    let c = init_producer_id(&mut b);
    assert!(producer_id(&mut b, c).is_none());
    assert!(b.controller.is_empty());

    let mut log = Log::new();
    log.broker(1, "one.example", 9092);
    image(&mut b, &log);
    let (id, ask) = b.controller.pop().expect("asked once registered");
    let epoch = log.image.broker(Node(1)).unwrap().broker_epoch;
    assert_eq!(
        ask,
        Ask::AllocateProducerIds {
            broker_id: Node(1),
            broker_epoch: epoch
        }
    );
    answer(
        &mut b,
        id,
        Ok(Reply::AllocateProducerIds {
            first: 5000,
            count: 10,
        }),
    );
    assert_eq!(producer_id(&mut b, c), Some((NONE, 5000)));
    // The next block is asked for once 90% of this one is used (9 of 10), not before.
    for i in 1..8 {
        let c = init_producer_id(&mut b);
        assert_eq!(producer_id(&mut b, c), Some((NONE, 5000 + i)));
        assert!(b.controller.is_empty(), "asked early at {i}");
    }
    let c = init_producer_id(&mut b);
    assert_eq!(producer_id(&mut b, c), Some((NONE, 5008)));
    let (id, _) = b.controller.pop().expect("prefetch at 90%");
    answer(
        &mut b,
        id,
        Ok(Reply::AllocateProducerIds {
            first: 7000,
            count: 10,
        }),
    );
    let c = init_producer_id(&mut b);
    assert_eq!(
        producer_id(&mut b, c),
        Some((NONE, 5009)),
        "the current block first"
    );
    let c = init_producer_id(&mut b);
    assert_eq!(
        producer_id(&mut b, c),
        Some((NONE, 7000)),
        "then the prefetched one"
    );
    // A refusal answers the waiters with a retriable error.
    for _ in 1..9 {
        let c = init_producer_id(&mut b);
        producer_id(&mut b, c).unwrap();
    }
    let (id, _) = b.controller.pop().unwrap();
    let c = init_producer_id(&mut b);
    assert_eq!(producer_id(&mut b, c), Some((NONE, 7009)));
    let c = init_producer_id(&mut b);
    assert!(producer_id(&mut b, c).is_none(), "the block is used up");
    assert!(b.controller.is_empty(), "one block asked for at a time");
    answer(
        &mut b,
        id,
        Err(ControllerError::NotController { leader: None }),
    );
    assert_eq!(
        producer_id(&mut b, c),
        Some((COORDINATOR_LOAD_IN_PROGRESS, -1))
    );
}

#[test]
fn describe_cluster_lists_the_live_brokers() {
    let (mut b, _, _) = two_brokers();
    let req = DescribeClusterRequest::default().with_endpoint_type(1);
    let c = b.send(
        7,
        ApiKey::DescribeCluster,
        1,
        RequestKind::DescribeCluster(req),
    );
    let Some(ResponseKind::DescribeCluster(r)) = b.take(c) else {
        panic!()
    };
    let ids: Vec<i32> = r.brokers.iter().map(|x| x.broker_id.0).collect();
    assert_eq!(ids, vec![1, 2]);
}

/// A group-less commit of `offset` to partition 0 of `t` under `group`; the error code.
fn commit(b: &mut Pair<Files>, group: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let c = b.send(4, ApiKey::OffsetCommit, 7, RequestKind::OffsetCommit(req));
    let Some(ResponseKind::OffsetCommit(r)) = b.take(c) else {
        panic!("no offset commit response")
    };
    r.topics[0].partitions[0].error_code
}

/// The group's committed offset for partition 0 of `t`: (error, offset).
fn committed(b: &mut Pair<Files>, group: &str) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb("t")))
                .with_partition_indexes(vec![0]),
        ]));
    let c = b.send(5, ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(req));
    let Some(ResponseKind::OffsetFetch(r)) = b.take(c) else {
        panic!("no offset fetch response")
    };
    if r.error_code != NONE {
        return (r.error_code, -1);
    }
    (NONE, r.topics[0].partitions[0].committed_offset)
}

#[test]
fn a_group_is_coordinated_where_its_offsets_partition_is_led() {
    let (mut b, mut log, _) = two_brokers();
    // Every offsets partition has a replica here; 0 and 2 are led here, 1 and 3 by broker 2.
    let offsets = log.topic(
        "__consumer_offsets",
        50,
        &[&[1, 2], &[2, 1], &[1, 2], &[2, 1]],
    );
    image(&mut b, &log);
    let mine = (0..100)
        .map(|i| format!("g{i}"))
        .find(|g| gregor_core::group::partition_for(g, 4).0 == 0)
        .unwrap();
    let theirs = (0..100)
        .map(|i| format!("g{i}"))
        .find(|g| gregor_core::group::partition_for(g, 4).0 == 1)
        .unwrap();
    assert_eq!(commit(&mut b, &mine, 42), NONE);
    assert_eq!(committed(&mut b, &mine), (NONE, 42));
    assert_eq!(commit(&mut b, &theirs, 7), NOT_COORDINATOR);

    // Partition 0's leadership moves to broker 2: this broker resigns as the group's
    // coordinator; clients are sent to look it up again.
    log.lead(offsets, 0, LeaderChange::To(Node(2)));
    image(&mut b, &log);
    assert_eq!(commit(&mut b, &mine, 43), NOT_COORDINATOR);
    assert_eq!(committed(&mut b, &mine).0, NOT_COORDINATOR);
    assert_eq!(find_coordinator(&mut b, &mine).1, 2);

    // It comes back: the group is loaded again from the partition's log, offset 42 and all.
    log.lead(offsets, 0, LeaderChange::To(Node(1)));
    image(&mut b, &log);
    assert_eq!(committed(&mut b, &mine), (NONE, 42));
    assert_eq!(find_coordinator(&mut b, &mine).1, 1);
}

/// A restarted broker whose previous run is still registered (another incarnation id) does not
/// coordinate the offsets partitions the image says that run led: its log may have gone with
/// its disk, and what it loaded from it would answer OffsetFetch with nothing for offsets the
/// old run acknowledged (cluster simulator seeds 8 and 170). Its groups hear NOT_COORDINATOR
/// until the registration of this run commits; then the partition is loaded and served.
#[test]
fn a_restarted_broker_coordinates_nothing_until_its_new_run_is_registered() {
    let files = Files::default();
    let cfg = Config {
        incarnation_id: Some([77; 16]),
        ..config()
    };
    let mut b = Pair::new(cfg, files.restart(), files);
    let mut log = Log::new();
    // The previous run of broker 1 (incarnation id [1; 16]) leads the only offsets partition.
    log.broker(1, "one.example", 9092);
    log.broker(2, "two.example", 9093);
    log.topic("t", 7, &[&[1], &[2]]);
    log.topic("__consumer_offsets", 50, &[&[1, 2]]);
    image(&mut b, &log);
    assert_eq!(commit(&mut b, "g", 5), NOT_COORDINATOR);
    assert_eq!(committed(&mut b, "g").0, NOT_COORDINATOR);

    // This run registers; the image still names broker 1 the leader: now it is this run's.
    log.register(1, "one.example", 9092, 77);
    image(&mut b, &log);
    assert_eq!(committed(&mut b, "g"), (NONE, -1));
    assert_eq!(commit(&mut b, "g", 5), NONE);
    assert_eq!(committed(&mut b, "g"), (NONE, 5));
}

/// The coordinator writes with acks=all: with its offsets partition's ISR below
/// `min.insync.replicas` a commit is refused before anything is appended, with
/// COORDINATOR_NOT_AVAILABLE (Kafka's mapping of NOT_ENOUGH_REPLICAS for commits, which the
/// client retries), and is never read back; with the ISR large enough again it is taken.
#[test]
fn a_commit_needs_the_offsets_partitions_min_insync_replicas() {
    let (mut b, mut log, _) = two_brokers();
    log.topic(
        "__consumer_offsets",
        50,
        &[&[1, 2], &[1, 2], &[1, 2], &[1, 2]],
    );
    log.write(MetadataRecord::Config {
        resource_type: 2,
        resource_name: "__consumer_offsets".into(),
        name: "min.insync.replicas".into(),
        value: Some("2".into()),
    });
    image(&mut b, &log);
    assert_eq!(commit(&mut b, "g", 42), COORDINATOR_NOT_AVAILABLE);
    assert_eq!(
        committed(&mut b, "g"),
        (NONE, -1),
        "a refused commit is not read back"
    );
    log.write(MetadataRecord::Config {
        resource_type: 2,
        resource_name: "__consumer_offsets".into(),
        name: "min.insync.replicas".into(),
        value: Some("1".into()),
    });
    image(&mut b, &log);
    assert_eq!(commit(&mut b, "g", 43), NONE);
    assert_eq!(committed(&mut b, "g"), (NONE, 43));
}

fn create_partitions(b: &mut Pair<Files>, name: &str, count: i32) -> i32 {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_count(count),
        ]);
    b.send(
        6,
        ApiKey::CreatePartitions,
        3,
        RequestKind::CreatePartitions(req),
    )
}

#[test]
fn create_partitions_is_checked_then_forwarded() {
    let (mut b, _, _) = two_brokers();
    // Fewer partitions than the topic has: refused here, nothing asked.
    let c = create_partitions(&mut b, "t", 2);
    let Some(ResponseKind::CreatePartitions(r)) = b.take(c) else {
        panic!("no answer")
    };
    assert_eq!(r.results[0].error_code, INVALID_PARTITIONS);
    assert!(b.controller.is_empty());
    // Growing it goes to the controller and is answered with its reply.
    let c = create_partitions(&mut b, "t", 5);
    assert!(b.take(c).is_none(), "waits for the controller");
    let (id, ask) = b.controller.pop().expect("one request to the controller");
    assert_eq!(
        ask,
        Ask::CreatePartitions {
            name: "t".into(),
            count: 5
        }
    );
    answer(&mut b, id, Ok(Reply::CreatePartitions));
    let Some(ResponseKind::CreatePartitions(r)) = b.take(c) else {
        panic!("no answer after the reply")
    };
    assert_eq!(r.results[0].error_code, NONE);
}

/// OffsetForLeaderEpoch `(error, epoch, end offset)` for `f`-0, with KIP-320's current epoch.
fn end_offset_for(b: &mut Pair<Files>, current: i32, epoch: i32) -> (i16, i32, i64) {
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(sb("f")))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let c = b.send(
        4,
        ApiKey::OffsetForLeaderEpoch,
        4,
        RequestKind::OffsetForLeaderEpoch(req),
    );
    let Some(ResponseKind::OffsetForLeaderEpoch(r)) = b.take(c) else {
        panic!("no OffsetForLeaderEpoch response")
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// ListOffsets v7 `(error, offset, leader epoch)` for `f`-0.
fn list_offset(b: &mut Pair<Files>, current: i32, timestamp: i64) -> (i16, i64, i32) {
    list_offset_at(b, 7, current, timestamp)
}

/// ListOffsets at `version` `(error, offset, leader epoch)` for `f`-0.
fn list_offset_at(
    b: &mut Pair<Files>,
    version: i16,
    current: i32,
    timestamp: i64,
) -> (i16, i64, i32) {
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(sb("f")))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(current)
                .with_timestamp(timestamp)]),
    ]);
    let c = b.send(
        5,
        ApiKey::ListOffsets,
        version,
        RequestKind::ListOffsets(req),
    );
    let Some(ResponseKind::ListOffsets(r)) = b.take(c) else {
        panic!("no ListOffsets response")
    };
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

/// Fetch v12 of `f`-0 as a follower would send it: `(error, diverging (epoch, end offset),
/// records returned)`.
fn fetch_as_follower(
    b: &mut Pair<Files>,
    current: i32,
    last_fetched_epoch: i32,
    offset: i64,
) -> (i16, (i32, i64), usize) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb("f")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let c = b.send(6, ApiKey::Fetch, 12, RequestKind::Fetch(req));
    let Some(ResponseKind::Fetch(r)) = b.take(c) else {
        panic!("no fetch response")
    };
    let p = &r.responses[0].partitions[0];
    let d = (p.diverging_epoch.epoch, p.diverging_epoch.end_offset);
    (p.error_code, d, p.records.as_ref().map_or(0, |r| r.len()))
}

/// librdkafka 2.0 (Debian's kcat) asks ListOffsets v2, which has no leader epoch field: the
/// answer leaves it out instead of failing to encode (the client saw its connection closed and
/// retried forever; the test kit checks every answer encodes at the version asked).
#[test]
fn list_offsets_before_v4_answers_without_a_leader_epoch() {
    let (mut b, mut log, t) = led_here_with_two_records();
    log.lead(t, 0, LeaderChange::To(Node(2)));
    image(&mut b, &log);
    log.lead(t, 0, LeaderChange::To(Node(1)));
    image(&mut b, &log);
    assert_eq!(list_offset_at(&mut b, 2, -1, -2), (NONE, 0, -1));
    assert_eq!(list_offset_at(&mut b, 2, -1, -1), (NONE, 2, -1));
    assert_eq!(
        list_offset_at(&mut b, 7, -1, -1),
        (NONE, 2, 2),
        "v4+ names it"
    );
}

/// KIP-101/279/320 on a KRaft broker: the epoch the image names is recorded at the log end when
/// leadership starts (before any append in it), OffsetForLeaderEpoch and ListOffsets answer
/// from the cache, stale and future current epochs are fenced, a follower's fetch from a log
/// that diverged gets DivergingEpoch, and the cache survives a restart.
#[test]
fn leader_epochs_are_recorded_answered_and_fenced() {
    let (mut b, mut log, t) = led_here_with_two_records();
    // Away (epoch 1) and back (epoch 2): epoch 2 starts at offset 2, before anything is in it.
    log.lead(t, 0, LeaderChange::To(Node(2)));
    image(&mut b, &log);
    assert_eq!(end_offset_for(&mut b, 1, 0).0, NOT_LEADER_OR_FOLLOWER);
    log.lead(t, 0, LeaderChange::To(Node(1)));
    image(&mut b, &log);
    assert_eq!(
        end_offset_for(&mut b, 2, 2),
        (NONE, 2, 2),
        "the latest: the log end"
    );
    assert_eq!(
        end_offset_for(&mut b, 2, 0),
        (NONE, 0, 2),
        "epoch 0 ends where 2 starts"
    );
    assert_eq!(
        end_offset_for(&mut b, -1, 1),
        (NONE, 0, 2),
        "1 never wrote here: its floor"
    );
    assert_eq!(
        end_offset_for(&mut b, 2, 3),
        (NONE, -1, -1),
        "above every epoch"
    );
    assert_eq!(end_offset_for(&mut b, 1, 0), (FENCED_LEADER_EPOCH, -1, -1));
    assert_eq!(end_offset_for(&mut b, 3, 0), (UNKNOWN_LEADER_EPOCH, -1, -1));
    assert_eq!(produce(&mut b, "f", 0, "c"), (NONE, 2));
    assert_eq!(end_offset_for(&mut b, 2, 2), (NONE, 2, 3));
    // ListOffsets answers the epoch of the offset it names, and fences the same way.
    assert_eq!(list_offset(&mut b, 2, -1), (NONE, 3, 2));
    assert_eq!(list_offset(&mut b, -1, -2), (NONE, 0, 0));
    assert_eq!(list_offset(&mut b, 1, -1).0, FENCED_LEADER_EPOCH);
    assert_eq!(list_offset(&mut b, 3, -1).0, UNKNOWN_LEADER_EPOCH);
    // Fetch v12: a follower that holds epoch 0 up to offset 3 diverged at 2; one that holds
    // epoch 1 (which this log never wrote) learns epoch 0's end; one in step gets records.
    assert_eq!(fetch_as_follower(&mut b, 2, 0, 3), (NONE, (0, 2), 0));
    assert_eq!(fetch_as_follower(&mut b, 2, 1, 3), (NONE, (0, 2), 0));
    let (code, diverging, bytes) = fetch_as_follower(&mut b, 2, 0, 2);
    assert_eq!((code, diverging), (NONE, (-1, -1)), "no divergence");
    assert!(bytes > 0, "records from offset 2");
    assert_eq!(fetch_as_follower(&mut b, 2, 7, 3).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch_as_follower(&mut b, 1, 2, 3).0, FENCED_LEADER_EPOCH);
    // A restart rebuilds the cache from the batches' headers (no snapshot was written yet).
    let files = std::mem::take(&mut b.storage);
    let mut b = Pair::new(config(), files.restart(), files);
    image(&mut b, &log);
    assert_eq!(end_offset_for(&mut b, 2, 0), (NONE, 0, 2));
    assert_eq!(end_offset_for(&mut b, 2, 2), (NONE, 2, 3));
}

// ---- operating the cluster through a broker (DescribeQuorum, DescribeCluster) -------------

fn describe_quorum(b: &mut Pair<Files>, topic: &str, version: i16) -> i32 {
    let req = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(sb(topic)))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    b.send(
        5,
        ApiKey::DescribeQuorum,
        version,
        RequestKind::DescribeQuorum(req),
    )
}

fn api_keys(b: &mut Pair<Files>) -> Vec<i16> {
    let c = b.send(
        6,
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    let Some(ResponseKind::ApiVersions(r)) = b.take(c) else {
        panic!("no ApiVersions response")
    };
    r.api_keys.iter().map(|k| k.api_key).collect()
}

#[test]
fn describe_quorum_is_forwarded_to_the_active_controller_and_answered_with_its_status() {
    use gregor_core::raft::wire::{QuorumStatus, ReplicaStatus};
    use gregor_core::raft::{Epoch, NodeId};
    let (mut b, _, _) = two_brokers();
    assert!(
        api_keys(&mut b).contains(&(ApiKey::DescribeQuorum as i16)),
        "a KRaft broker offers DescribeQuorum"
    );
    let c = describe_quorum(&mut b, "__cluster_metadata", 1);
    assert!(b.take(c).is_none(), "waits for the controller");
    let (id, ask) = b.controller.pop().expect("forwarded");
    assert_eq!(ask, Ask::DescribeQuorum);
    let replica = |id: i32, end: i64, fetch: i64| ReplicaStatus {
        id: NodeId(id),
        log_end_offset: end,
        last_fetch_ms: fetch,
        last_caught_up_ms: fetch,
    };
    let status = QuorumStatus {
        leader: Some(NodeId(2)),
        epoch: Epoch(4),
        high_watermark: 90,
        voters: vec![
            replica(1, 88, 1000),
            replica(2, 95, 1001),
            replica(3, 95, 1002),
        ],
        observers: vec![replica(7, 80, 999)],
    };
    answer(&mut b, id, Ok(Reply::DescribeQuorum(status)));
    let Some(ResponseKind::DescribeQuorum(r)) = b.take(c) else {
        panic!("answered once the controller did")
    };
    assert_eq!(r.error_code, NONE);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        (
            p.error_code,
            p.leader_id.0,
            p.leader_epoch,
            p.high_watermark
        ),
        (NONE, 2, 4, 90)
    );
    let voters: Vec<(i32, i64, i64)> = p
        .current_voters
        .iter()
        .map(|v| (v.replica_id.0, v.log_end_offset, v.last_fetch_timestamp))
        .collect();
    assert_eq!(voters, vec![(1, 88, 1000), (2, 95, 1001), (3, 95, 1002)]);
    assert_eq!(p.observers[0].replica_id.0, 7);

    // No active controller reachable: the controller's error is the client's.
    let c = describe_quorum(&mut b, "__cluster_metadata", 2);
    let (id, _) = b.controller.pop().unwrap();
    answer(
        &mut b,
        id,
        Err(ControllerError::NotController { leader: None }),
    );
    let Some(ResponseKind::DescribeQuorum(r)) = b.take(c) else {
        panic!()
    };
    assert_eq!(r.error_code, 41, "NOT_CONTROLLER");

    // Another topic than the metadata log's is refused here, as Kafka does.
    let c = describe_quorum(&mut b, "t", 1);
    assert!(b.controller.is_empty(), "not forwarded");
    let Some(ResponseKind::DescribeQuorum(r)) = b.take(c) else {
        panic!()
    };
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn a_standalone_broker_does_not_offer_describe_quorum() {
    let files = Files::default();
    let config = Config {
        kraft: false,
        ..config()
    };
    let mut b = Pair::new(config, files.restart(), files);
    let keys = api_keys(&mut b);
    assert!(keys.contains(&(ApiKey::DescribeCluster as i16)));
    assert!(!keys.contains(&(ApiKey::DescribeQuorum as i16)));
}

#[test]
fn describe_cluster_lists_fenced_brokers_only_when_asked_and_no_controllers() {
    let (mut b, mut log, _) = two_brokers();
    log.broker(3, "three.example", 9094);
    log.fence(3, true);
    image(&mut b, &log);
    let ask = |b: &mut Pair<Files>, version: i16, fenced: bool, endpoint_type: i8| {
        let req = DescribeClusterRequest::default()
            .with_include_fenced_brokers(fenced)
            .with_endpoint_type(endpoint_type);
        let c = b.send(
            7,
            ApiKey::DescribeCluster,
            version,
            RequestKind::DescribeCluster(req),
        );
        let Some(ResponseKind::DescribeCluster(r)) = b.take(c) else {
            panic!("no DescribeCluster response")
        };
        r
    };
    let listed = |r: &DescribeClusterResponse| -> Vec<(i32, bool)> {
        r.brokers
            .iter()
            .map(|x| (x.broker_id.0, x.is_fenced))
            .collect()
    };
    // v2 with IncludeFencedBrokers (KIP-1073): every registered broker, fenced marked.
    let r = ask(&mut b, 2, true, 1);
    assert_eq!(r.error_code, NONE);
    assert_eq!(listed(&r), vec![(1, false), (2, false), (3, true)]);
    // Without it, and before v2: the unfenced ones, as Metadata lists them.
    assert_eq!(
        listed(&ask(&mut b, 2, false, 1)),
        vec![(1, false), (2, false)]
    );
    assert_eq!(
        listed(&ask(&mut b, 1, true, 1)),
        vec![(1, false), (2, false)]
    );
    // Controllers (KIP-919) are listed by a controller listener, not a broker.
    let r = ask(&mut b, 1, false, 2);
    assert_eq!(r.error_code, 120, "UNSUPPORTED_ENDPOINT_TYPE");
    assert!(r.brokers.is_empty());
}

// ---- topic configs through the controller (KIP-339 over KIP-500) ------------------------

fn alter(k: &str, v: Option<&str>) -> incremental_alter_configs_request::AlterableConfig {
    incremental_alter_configs_request::AlterableConfig::default()
        .with_name(sb(k))
        .with_config_operation(if v.is_some() { 0 } else { 1 })
        .with_value(v.map(sb))
}

fn incremental_alter(
    b: &mut Pair<Files>,
    resources: Vec<(
        &str,
        Vec<incremental_alter_configs_request::AlterableConfig>,
    )>,
    validate_only: bool,
) -> i32 {
    let resources = resources
        .into_iter()
        .map(|(name, configs)| {
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb(name))
                .with_configs(configs)
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    b.send(
        4,
        ApiKey::IncrementalAlterConfigs,
        1,
        RequestKind::IncrementalAlterConfigs(req),
    )
}

fn alter_codes(b: &mut Pair<Files>, c: i32) -> Option<Vec<i16>> {
    match b.take(c)? {
        ResponseKind::IncrementalAlterConfigs(r) => {
            Some(r.responses.iter().map(|r| r.error_code).collect())
        }
        other => panic!("{other:?}"),
    }
}

/// DescribeConfigs of topic `name` on this broker: key -> (value, config source).
fn describe_topic(b: &mut Pair<Files>, name: &str) -> BTreeMap<String, (String, i8)> {
    let res = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(sb(name));
    let req = DescribeConfigsRequest::default().with_resources(vec![res]);
    // Another connection: responses on one leave in request order.
    let c = b.send(
        5,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(req),
    );
    let Some(ResponseKind::DescribeConfigs(r)) = b.take(c) else {
        panic!("DescribeConfigs is answered at once")
    };
    assert_eq!(r.results[0].error_code, NONE, "{name}");
    r.results[0]
        .configs
        .iter()
        .map(|e| {
            let v = e.value.as_ref().map_or(String::new(), |v| v.to_string());
            (e.name.to_string(), (v, e.config_source))
        })
        .collect()
}

const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

#[test]
fn alter_configs_are_forwarded_answered_after_commit_and_applied_from_the_image() {
    let (mut b, mut log, _) = two_brokers();
    let c = incremental_alter(
        &mut b,
        vec![
            (
                "t",
                vec![
                    alter("retention.ms", Some("1000")),
                    alter("min.insync.replicas", Some("2")),
                    alter("unclean.leader.election.enable", Some("true")),
                    alter("segment.ms", None),
                ],
            ),
            ("nope", vec![alter("retention.ms", Some("1"))]),
        ],
        false,
    );
    assert!(alter_codes(&mut b, c).is_none(), "waits for the controller");
    let (id, ask) = b.controller.pop().expect("one request, for t");
    assert!(
        b.controller.is_empty(),
        "nothing asked for an unknown topic"
    );
    let Ask::AlterConfigs { name, changes } = ask else {
        panic!("{ask:?}")
    };
    assert_eq!(name, "t");
    assert_eq!(changes.len(), 4);
    assert!(changes.contains(&("segment.ms".to_string(), None)));
    // Nothing changes locally before the records are committed and reach the image.
    assert_eq!(
        describe_topic(&mut b, "t")["retention.ms"].1,
        DEFAULT_CONFIG
    );
    answer(&mut b, id, Ok(Reply::AlterConfigs));
    assert_eq!(
        alter_codes(&mut b, c),
        Some(vec![NONE, UNKNOWN_TOPIC_OR_PARTITION])
    );

    // The committed records arrive: the hosted partition's settings change and are stored.
    for (k, v) in [
        ("retention.ms", "1000"),
        ("min.insync.replicas", "2"),
        ("unclean.leader.election.enable", "true"),
    ] {
        log.write(MetadataRecord::Config {
            resource_type: 2,
            resource_name: "t".into(),
            name: k.into(),
            value: Some(v.into()),
        });
    }
    image(&mut b, &log);
    let meta = b
        .storage
        .meta_of("t-0")
        .cloned()
        .expect("t-0 is hosted here");
    let meta = gregor_core::files::PartitionMeta::decode(&meta).unwrap();
    assert_eq!(meta.settings.retention_ms, 1000, "stored for a restart");
    let described = describe_topic(&mut b, "t");
    assert_eq!(
        described["retention.ms"],
        ("1000".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        described["min.insync.replicas"],
        ("2".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        described["unclean.leader.election.enable"],
        ("true".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(described["segment.bytes"].1, DEFAULT_CONFIG);

    // A delete goes back to the default.
    log.write(MetadataRecord::Config {
        resource_type: 2,
        resource_name: "t".into(),
        name: "retention.ms".into(),
        value: None,
    });
    image(&mut b, &log);
    let described = describe_topic(&mut b, "t");
    assert_eq!(described["retention.ms"].1, DEFAULT_CONFIG);
    let meta = b.storage.meta_of("t-0").cloned().unwrap();
    let meta = gregor_core::files::PartitionMeta::decode(&meta).unwrap();
    assert_eq!(meta.settings.retention_ms, config().retention_ms);
}

#[test]
fn alter_configs_refusals_carry_kafkas_codes_and_validate_only_asks_nobody() {
    let (mut b, _, _) = two_brokers();
    let cases: Vec<(Vec<_>, i16)> = vec![
        (
            vec![alter("min.insync.replicas", Some("0"))],
            INVALID_CONFIG,
        ),
        (
            vec![alter("min.insync.replicas", Some("x"))],
            INVALID_CONFIG,
        ),
        (
            vec![alter("unclean.leader.election.enable", Some("yes"))],
            INVALID_CONFIG,
        ),
        (vec![alter("no.such.config", Some("1"))], INVALID_CONFIG),
        (vec![alter("retention.ms", Some("soon"))], INVALID_CONFIG),
        (
            vec![
                alter("retention.ms", Some("1")),
                alter("retention.ms", None),
            ],
            INVALID_REQUEST,
        ),
    ];
    for (configs, code) in cases {
        let c = incremental_alter(&mut b, vec![("t", configs.clone())], false);
        assert_eq!(alter_codes(&mut b, c), Some(vec![code]), "{configs:?}");
    }
    // The same topic twice in one request: the second is INVALID_REQUEST.
    let ok = vec![alter("retention.ms", Some("5"))];
    let c = incremental_alter(&mut b, vec![("t", ok.clone()), ("t", ok.clone())], true);
    assert_eq!(alter_codes(&mut b, c), Some(vec![NONE, INVALID_REQUEST]));
    assert!(b.controller.is_empty(), "no refusal nor validate_only asks");
    // A controller refusal is the client's error.
    let c = incremental_alter(&mut b, vec![("t", ok)], false);
    let (id, _) = b.controller.pop().unwrap();
    answer(&mut b, id, Err(ControllerError::InvalidConfig("no".into())));
    assert_eq!(alter_codes(&mut b, c), Some(vec![INVALID_CONFIG]));
}

// ---- ElectLeaders (KIP-460) ------------------------------------------------------------------

#[test]
fn elect_leaders_is_forwarded_per_partition_and_all_partitions_come_from_the_image() {
    use gregor_core::cluster::elect_leaders::ElectionType;
    use gregor_core::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use gregor_core::kafka_protocol::messages::ElectLeadersRequest;
    let (mut b, _, _) = two_brokers();
    assert!(
        api_keys(&mut b).contains(&(ApiKey::ElectLeaders as i16)),
        "a KRaft broker offers ElectLeaders"
    );
    // Named partitions, one of them unknown: that one is answered here.
    let named = ElectLeadersRequest::default()
        .with_election_type(1)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(TopicName(sb("t")))
            .with_partitions(vec![1, 9])]))
        .with_timeout_ms(5_000);
    let c = b.send(7, ApiKey::ElectLeaders, 2, RequestKind::ElectLeaders(named));
    assert!(b.take(c).is_none(), "waits for the controller");
    let (id, ask) = b.controller.pop().expect("forwarded");
    assert!(b.controller.is_empty(), "only the known partition");
    assert_eq!(
        ask,
        Ask::ElectLeader {
            topic: "t".into(),
            partition: 1,
            kind: ElectionType::Unclean
        }
    );
    answer(
        &mut b,
        id,
        Err(ControllerError::ElectionNotNeeded(
            "t-1 has a leader".into(),
        )),
    );
    let Some(ResponseKind::ElectLeaders(r)) = b.take(c) else {
        panic!("answered once the controller did")
    };
    let codes: Vec<(i32, i16)> = r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    assert_eq!(codes, vec![(1, 84), (9, UNKNOWN_TOPIC_OR_PARTITION)]);

    // Every partition (a null list), preferred, at v0 (no election type field).
    let all = ElectLeadersRequest::default()
        .with_topic_partitions(None)
        .with_timeout_ms(5_000);
    let c = b.send(8, ApiKey::ElectLeaders, 0, RequestKind::ElectLeaders(all));
    let mut asked = Vec::new();
    while let Some((id, ask)) = b.controller.pop() {
        asked.push(ask);
        answer(&mut b, id, Ok(Reply::ElectLeader));
    }
    asked.sort_by_key(|a| format!("{a:?}"));
    let want: Vec<Ask> = (0..2)
        .map(|p| Ask::ElectLeader {
            topic: "t".into(),
            partition: p,
            kind: ElectionType::Preferred,
        })
        .collect();
    assert_eq!(asked, want, "both partitions of the image's one topic");
    let Some(ResponseKind::ElectLeaders(r)) = b.take(c) else {
        panic!("answered")
    };
    assert!(r.replica_election_results[0]
        .partition_result
        .iter()
        .all(|p| p.error_code == NONE));
}

// ---- leader epochs a torn write damaged (cluster simulator seed 477) ---------------------

/// Overwrite, in `dir`'s first segment on `files`, the `partitionLeaderEpoch` of the batch
/// whose base offset is `offset`: the field lies outside the batch CRC (as in Kafka), so a
/// torn write can change it without recovery seeing any damage.
fn set_batch_epoch(files: &mut Files, dir: &str, offset: i64, epoch: i32) {
    let seg = files
        .map
        .get_mut(&format!("{dir}/{:020}.log", 0))
        .expect("the first segment");
    let mut at = gregor_core::files::SEGMENT_HEADER_BYTES as usize;
    while at + 12 <= seg.len() {
        let base = i64::from_be_bytes(seg[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(seg[at + 8..at + 12].try_into().unwrap()) as usize;
        if base == offset {
            seg[at + 12..at + 16].copy_from_slice(&epoch.to_be_bytes());
            return;
        }
        at += 12 + len;
    }
    panic!("no batch at offset {offset}");
}

/// A batch whose header names an epoch above the controller's (a bit flipped in its
/// `partitionLeaderEpoch`), followed by batches in the real epoch: recovery cuts where the
/// epochs go back, the first image cuts the impossible epoch away, and the broker goes on
/// leading and appending in its real epoch (the append used to assert: seed 477's panic).
/// What is below the damaged batch is kept.
#[test]
fn a_leader_epoch_above_the_controllers_is_cut_away_and_appends_go_on() {
    let (mut b, log, _) = led_here_with_two_records();
    assert_eq!(produce(&mut b, "f", 0, "c"), (NONE, 2));
    let mut files = std::mem::take(&mut b.storage);
    set_batch_epoch(&mut files, "f-0", 1, 1 << 20);
    let mut b = Pair::new(config(), files.restart(), files);
    image(&mut b, &log);
    let logged = b.logs.join("\n");
    assert!(logged.contains("above the controller's 0"), "{logged}");
    assert_eq!(
        produce(&mut b, "f", 0, "d"),
        (NONE, 1),
        "appended in epoch 0"
    );
    let (code, _, read) = fetch(&mut b, "f", 0);
    assert_eq!(code, NONE);
    assert_eq!(read, vec![(0, "a".into(), 0), (1, "d".into(), 0)]);
    assert_eq!(end_offset_for(&mut b, 0, 0), (NONE, 0, 2), "epoch 0 only");
}

/// Seed 748 (cluster simulator): recovery reads a damaged epoch from a torn batch header and
/// the broker loses power again before its new run is registered, so the first image never
/// checked the epoch. The restart after must not trust it from a producer snapshot written in
/// between: the check of the first registered image still knows where to cut, and the only
/// replica stays online (it used to go offline for good, "no known cut").
#[test]
fn a_damaged_leader_epoch_is_not_trusted_across_a_restart_before_the_first_image() {
    let (mut b, log, _) = led_here_with_two_records();
    assert_eq!(produce(&mut b, "f", 0, "c"), (NONE, 2));
    let mut files = std::mem::take(&mut b.storage);
    set_batch_epoch(&mut files, "f-0", 1, 66);
    // First restart: recovery replays the damaged header; time passes, no image comes.
    let mut b = Pair::new(config(), files.restart(), files);
    b.advance_ms(10_000);
    let files = std::mem::take(&mut b.storage);
    // Second restart, then the first image this run is registered in.
    let mut b = Pair::new(config(), files.restart(), files);
    image(&mut b, &log);
    let logged = b.logs.join("\n");
    assert!(logged.contains("above the controller's 0"), "{logged}");
    assert!(!logged.contains("no known cut"), "{logged}");
    assert_eq!(
        produce(&mut b, "f", 0, "d"),
        (NONE, 1),
        "cut at the damaged batch, appended in epoch 0"
    );
    let (code, _, read) = fetch(&mut b, "f", 0);
    assert_eq!(code, NONE);
    assert_eq!(read, vec![(0, "a".into(), 0), (1, "d".into(), 0)]);
}

/// A batch whose epoch is below an earlier batch's (Kafka's epoch cache never goes back):
/// recovery cuts the log before it, keeps the producer state below, and the leader appends on.
#[test]
fn recovery_cuts_the_log_where_leader_epochs_go_back() {
    let (mut b, mut log, t) = led_here_with_two_records();
    log.lead(t, 0, LeaderChange::To(Node(2)));
    image(&mut b, &log);
    log.lead(t, 0, LeaderChange::To(Node(1)));
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "f", 0, "c"), (NONE, 2));
    assert_eq!(produce(&mut b, "f", 0, "d"), (NONE, 3));
    let mut files = std::mem::take(&mut b.storage);
    set_batch_epoch(&mut files, "f-0", 3, 1);
    let mut b = Pair::new(config(), files.restart(), files);
    let logged = b.logs.join("\n");
    assert!(
        logged.contains("names leader epoch 1 after epoch Some(2)"),
        "{logged}"
    );
    image(&mut b, &log);
    assert_eq!(produce(&mut b, "f", 0, "e"), (NONE, 3));
    let (code, _, read) = fetch(&mut b, "f", 0);
    assert_eq!(code, NONE);
    let want = [(0, "a", 0), (1, "b", 0), (2, "c", 2), (3, "e", 2)];
    let want: Vec<(i64, String, i32)> = want
        .iter()
        .map(|(o, v, e)| (*o, v.to_string(), *e))
        .collect();
    assert_eq!(read, want);
}

/// Kafka's `offsets.commit.timeout.ms`: a commit whose write the offsets partition's ISR does
/// not replicate in time is answered COORDINATOR_NOT_AVAILABLE (Kafka's mapping of the timeout:
/// the client retries) once the deadline passes, not left waiting forever. The record stays in
/// the log, so when the high watermark covers it later the commit takes effect after all.
#[test]
fn a_coordinator_write_not_replicated_in_time_fails_after_the_commit_timeout() {
    let (mut b, mut log, _) = two_brokers();
    let offsets = log.topic("__consumer_offsets", 50, &[&[1, 2]]);
    // Broker 2 is in the ISR but never fetches: the high watermark cannot pass the commit.
    log.write(MetadataRecord::PartitionChange(PartitionChange {
        topic_id: offsets,
        partition: 0,
        isr: Some(vec![Node(1), Node(2)]),
        leader: LeaderChange::Unchanged,
        replicas: None,
    }));
    image(&mut b, &log);
    // A new leader first probes its ISR (acks=N across a leader change, replica/probe.rs) and
    // refuses writes until every live ISR follower fetched or `replica.lag.time.max.ms` passed:
    // let the silent follower's probe run out, so the commit is written and then waits.
    b.advance_ms(30_001);
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                ]),
        ]);
    let c = b.send(4, ApiKey::OffsetCommit, 7, RequestKind::OffsetCommit(req));
    assert!(
        b.take(c).is_none(),
        "the commit waits for the high watermark"
    );
    b.advance_ms(4_999);
    assert!(
        b.take(c).is_none(),
        "still within offsets.commit.timeout.ms"
    );
    b.advance_ms(1);
    let Some(ResponseKind::OffsetCommit(r)) = b.take(c) else {
        panic!("no offset commit response at the deadline")
    };
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        COORDINATOR_NOT_AVAILABLE
    );
    assert!(b
        .logs
        .iter()
        .any(|l| l.contains("offsets.commit.timeout.ms")));
    // The ISR shrinks to the leader: the high watermark covers the write, which takes effect.
    log.write(MetadataRecord::PartitionChange(PartitionChange {
        topic_id: offsets,
        partition: 0,
        isr: Some(vec![Node(1)]),
        leader: LeaderChange::Unchanged,
        replicas: None,
    }));
    image(&mut b, &log);
    assert_eq!(committed(&mut b, "g"), (NONE, 42));
}

// ---- SCRAM users (KIP-554) -------------------------------------------------------------------

#[test]
fn scram_users_are_described_from_the_image_and_altered_through_the_controller() {
    use gregor_core::cluster::scram::{record_of, ScramChange};
    use gregor_core::kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use gregor_core::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use gregor_core::kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
    };
    use gregor_core::sasl::scram::{ScramCredential, ScramMechanism};
    let (mut b, mut log, _) = two_brokers();
    let keys = api_keys(&mut b);
    assert!(keys.contains(&(ApiKey::DescribeUserScramCredentials as i16)));
    assert!(keys.contains(&(ApiKey::AlterUserScramCredentials as i16)));
    let cred = ScramCredential::derive(ScramMechanism::Sha512, b"pw", b"salt", 8192);
    log.write(record_of("alice", &cred));
    image(&mut b, &log);
    // Describe: alice from the image; bob has none; a name given twice is DUPLICATE_RESOURCE.
    let named = |n: &str| UserName::default().with_name(sb(n));
    let d = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
        named("alice"),
        named("bob"),
        named("eve"),
        named("eve"),
    ]));
    let c = b.send(
        9,
        ApiKey::DescribeUserScramCredentials,
        0,
        RequestKind::DescribeUserScramCredentials(d),
    );
    let Some(ResponseKind::DescribeUserScramCredentials(r)) = b.take(c) else {
        panic!("answered from the image")
    };
    type Described = (String, i16, Vec<(i8, i32)>);
    let got: Vec<Described> = r
        .results
        .iter()
        .map(|u| {
            let infos = u.credential_infos.iter();
            (
                u.user.to_string(),
                u.error_code,
                infos.map(|i| (i.mechanism, i.iterations)).collect(),
            )
        })
        .collect();
    assert_eq!(got[0], ("alice".into(), NONE, vec![(2, 8192)]));
    assert_eq!(got[1], ("bob".into(), 91, vec![]), "RESOURCE_NOT_FOUND");
    assert_eq!((got[2].1, got[3].1), (92, 92), "DUPLICATE_RESOURCE");
    assert!(b.controller.is_empty(), "describing asks no controller");
    // Alter: a good upsertion is forwarded; too few iterations, an unknown mechanism and a
    // user named twice are answered here; the controller's refusal is the client's error.
    let up = |n: &str, m: i8, i: i32| {
        ScramCredentialUpsertion::default()
            .with_name(sb(n))
            .with_mechanism(m)
            .with_iterations(i)
            .with_salt(Bytes::from_static(b"NaCl"))
            .with_salted_password(Bytes::from(vec![1u8; 64]))
    };
    let a = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(sb("bob"))
            .with_mechanism(2)])
        .with_upsertions(vec![
            up("carol", 2, 4096),
            up("dan", 2, 100),
            up("erin", 7, 4096),
            up("", 2, 4096),
        ]);
    let c = b.send(
        10,
        ApiKey::AlterUserScramCredentials,
        0,
        RequestKind::AlterUserScramCredentials(a),
    );
    assert!(b.take(c).is_none(), "waits for the controller");
    let mut asked = Vec::new();
    while let Some((id, ask)) = b.controller.pop() {
        let Ask::AlterScram { user, change } = &ask else {
            panic!("{ask:?}")
        };
        let result = match change {
            ScramChange::Delete { .. } => Err(ControllerError::ResourceNotFound(format!(
                "{user} has none"
            ))),
            ScramChange::Upsert { .. } => Ok(Reply::AlterScram),
        };
        asked.push(user.clone());
        answer(&mut b, id, result);
    }
    asked.sort();
    assert_eq!(
        asked,
        ["bob", "carol"],
        "only the well-formed changes are forwarded"
    );
    let Some(ResponseKind::AlterUserScramCredentials(r)) = b.take(c) else {
        panic!("answered once the controller did")
    };
    let codes: Vec<(String, i16)> = (r.results.iter())
        .map(|u| (u.user.to_string(), u.error_code))
        .collect();
    let want = [
        ("bob", 91),
        ("carol", 0),
        ("dan", 93),
        ("erin", 33),
        ("", 93),
    ];
    let want: Vec<(String, i16)> = want.iter().map(|(u, c)| (u.to_string(), *c)).collect();
    assert_eq!(codes, want);
}
