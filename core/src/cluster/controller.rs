//! The active controller's decisions: which records to write when a broker registers or
//! heartbeats, when its session lapses, and when a topic is created or deleted (Kafka's
//! `QuorumController` with its `ClusterControlManager`, `BrokerHeartbeatManager` and
//! `ReplicationControlManager`; KIP-631).
//!
//! The controller changes nothing itself. Each decision reads the [`MetadataImage`] and returns
//! the [`MetadataRecord`]s that carry it out; the caller proposes them to the Raft quorum, and
//! every node (this one included) replays them once committed. The image it decides on must
//! include every record this controller has already written (Kafka's controller applies its own
//! records to its in-memory state as it writes them), or two decisions could contradict.
//!
//! The one thing kept outside the log is each broker's session: when it last heartbeat. Kafka
//! does not log heartbeats either, so a newly elected controller starts every session afresh and
//! fencing a dead broker can take one more session timeout after a failover.
//!
//! Rules, each from Kafka:
//! * A registration is fenced until the broker's heartbeat shows it has replayed the metadata
//!   log up to its own registration record (`currentMetadataOffset >= brokerEpoch`): only then
//!   can it know what it leads. The broker epoch is that record's offset.
//! * A broker whose session lapses (`broker.session.timeout.ms`, 9 s) is fenced: it leaves every
//!   ISR it is in (never emptying one: the last member stays, to be elected when it returns) and
//!   every partition it led gets a new leader: the first replica in assignment order that is in
//!   the ISR and unfenced (`PartitionChangeBuilder.electAnyLeader`, not "the longest log": every
//!   ISR member has every committed record), or none, and the partition is offline (unless the
//!   topic allows unclean elections). The rules are in [`super::replication`].
//! * When a broker is unfenced, offline partitions whose ISR holds it get it as leader.
//! * A broker in controlled shutdown, or unregistered, leaves partitions as a fenced one does.
//! * A topic's configs are ConfigRecords in the batch that creates it; only the keys the
//!   brokers know ([`TOPIC_CONFIGS`]) are accepted.
//! * New partitions (of a new topic, or added by CreatePartitions) are placed round-robin over the unfenced brokers from a random start, each
//!   replica list shifted by a random step, so leaders spread evenly (Kafka's rack-unaware
//!   placement in `AdminUtils`/`StripedReplicaPlacer`).

use super::records::{Endpoint, PartitionRecord, RegisterBroker, CONFIG_RESOURCE_TOPIC};
use super::replication;
use super::{BrokerEpoch, BrokerId, MetadataImage, MetadataRecord, TopicId};
use crate::prng::Prng;
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

pub use super::error::ControllerError;

/// The topic config keys a topic may be created with: the ones gregor's brokers honour or
/// accept (the list `core/src/broker/admin` checks alter requests against). The controller
/// checks names only; the broker that forwards a CreateTopics checks the values, as Kafka's
/// `ControllerConfigurationValidator` leaves value checks to the config definitions.
pub const TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// How many producer ids one AllocateProducerIds hands out (Kafka's
/// `ProducerIdManager` block size).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// What a broker sends to register (Kafka's BrokerRegistrationRequest, the fields used here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub broker_id: BrokerId,
    pub incarnation_id: [u8; 16],
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// The broker found its log directory new or emptied when it started: a first start, or
    /// a replaced disk (KIP-903). Its copies hold no committed record, so it leaves every ISR
    /// and ELR it is in and is never elected clean from them (KIP-966's unclean-shutdown
    /// rule; Kafka's brokers say it by sending no `PreviousBrokerEpoch`, and gregor's wire
    /// does the same: -1 when new, else the epoch is not read). A log that survived a crash
    /// needs no such flag in gregor: a follower reports only what it has synced.
    pub log_dir_new: bool,
}

/// The active controller's decision-making state: broker sessions and the placement PRNG.
#[derive(Debug)]
pub struct Controller {
    /// `broker.session.timeout.ms` (9 s).
    session_timeout: Duration,
    /// When each registered broker last heartbeat (or registered).
    sessions: BTreeMap<BrokerId, Instant>,
    prng: Prng,
}

impl Controller {
    /// A controller that has just become active: every session starts now.
    pub fn new(session_timeout: Duration, seed: u64) -> Controller {
        assert!(session_timeout.0 > 0, "a session lasts some time");
        Controller {
            session_timeout,
            sessions: BTreeMap::new(),
            prng: Prng::new(seed),
        }
    }

    /// A fresh random id (an ACL's, KIP-11 in KRaft), from the controller's seeded generator.
    pub fn fresh_id(&mut self) -> [u8; 16] {
        self.prng.uuid_bytes()
    }

    /// The controller has become active over `image`: every registered broker's session starts
    /// now, as Kafka's new controller does (sessions are not in the log). Without this a
    /// failover would fence every broker at the first tick.
    pub fn start_sessions(&mut self, now: Instant, image: &MetadataImage) {
        for b in image.brokers().keys() {
            self.sessions.insert(*b, now);
        }
        assert!(image.brokers().keys().all(|b| self.session_live(*b, now)));
    }

    /// AllocateProducerIds (KIP-730): the next block of [`PRODUCER_ID_BLOCK`] producer ids for
    /// broker `broker` of incarnation `epoch`. Returns the block's first id and the record that
    /// moves the cluster's next id past it.
    pub fn allocate_producer_ids(
        &self,
        image: &MetadataImage,
        broker: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<(i64, MetadataRecord), ControllerError> {
        registered(image, broker, epoch)?;
        let start = image.next_producer_id();
        let next = start
            .checked_add(PRODUCER_ID_BLOCK)
            .expect("2^63 producer ids are never handed out");
        assert!(start >= 0 && next > start, "blocks move forward");
        let record = MetadataRecord::ProducerIds {
            broker_id: broker,
            broker_epoch: epoch,
            next_producer_id: next,
        };
        Ok((start, record))
    }

    /// BrokerRegistration: a broker (re)joins. Returns its broker epoch, which is
    /// `next_offset`, the offset its RegisterBrokerRecord will have, and the records to write
    /// (none when this incarnation is already registered: a retried request).
    pub fn register(
        &mut self,
        now: Instant,
        image: &MetadataImage,
        next_offset: i64,
        req: &Registration,
    ) -> Result<(BrokerEpoch, Vec<MetadataRecord>), ControllerError> {
        assert!(next_offset > image.offset(), "records go after the image");
        if let Some(old) = image.broker(req.broker_id) {
            if old.incarnation_id == req.incarnation_id {
                self.sessions.insert(req.broker_id, now);
                return Ok((old.broker_epoch, Vec::new()));
            }
            // Only an unfenced registration holds a session another incarnation must wait
            // out (Kafka's `BrokerHeartbeatManager.hasValidSession` is false for a fenced
            // broker): a node that finished a controlled shutdown, or was fenced, comes back
            // at once, even under a controller that took over since and started every
            // registration's session afresh (cluster simulator seeds 962 and 1112: the node
            // that had shut down cleanly waited out a new controller's session, and the
            // workload's replication-factor-3 topic could not be created in time).
            if !old.fenced && self.session_live(req.broker_id, now) {
                return Err(ControllerError::DuplicateBrokerRegistration(req.broker_id));
            }
        }
        let epoch = BrokerEpoch(next_offset);
        let mut records = vec![MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: req.broker_id,
            incarnation_id: req.incarnation_id,
            broker_epoch: epoch,
            endpoints: req.endpoints.clone(),
            rack: req.rack.clone(),
            fenced: true,
            in_controlled_shutdown: false,
        })];
        // The new incarnation starts fenced: what the old one led moves now; with its log
        // gone it also leaves the ELRs and is never elected clean (KIP-966).
        records.extend(if req.log_dir_new {
            replication::lost_log(image, req.broker_id)
        } else {
            replication::leave(image, req.broker_id)
        });
        self.sessions.insert(req.broker_id, now);
        assert!(image
            .broker(req.broker_id)
            .is_none_or(|o| o.broker_epoch < epoch));
        assert!(
            self.session_live(req.broker_id, now),
            "a registration opens a session"
        );
        Ok((epoch, records))
    }

    /// BrokerHeartbeat: the broker is alive and has replayed the log up to
    /// `metadata_offset`. Unfences it once that reaches its registration record, and gives it
    /// the offline partitions it can lead. Returns whether it is (still) fenced after the
    /// records are applied, and the records.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        image: &MetadataImage,
        broker: BrokerId,
        epoch: BrokerEpoch,
        metadata_offset: i64,
    ) -> Result<(bool, Vec<MetadataRecord>), ControllerError> {
        let reg = registered(image, broker, epoch)?;
        self.sessions.insert(broker, now);
        if !reg.fenced || metadata_offset < epoch.0 {
            return Ok((reg.fenced, Vec::new()));
        }
        let mut records = vec![MetadataRecord::BrokerRegistrationChange {
            broker_id: broker,
            broker_epoch: epoch,
            fenced: Some(false),
            in_controlled_shutdown: None,
        }];
        records.extend(replication::unfenced(image, broker));
        assert!(epoch.0 <= metadata_offset, "unfenced only once caught up");
        Ok((false, records))
    }

    /// Fence every unfenced broker whose session has lapsed; returns the records.
    pub fn tick(&mut self, now: Instant, image: &MetadataImage) -> Vec<MetadataRecord> {
        let lapsed: Vec<BrokerId> = image
            .brokers()
            .values()
            .filter(|b| !b.fenced && !self.session_live(b.broker_id, now))
            .map(|b| b.broker_id)
            .collect();
        // Fence them one at a time on an image that already has the previous ones fenced, so
        // no leader is moved onto a broker fenced in the same tick.
        let mut staged = image.clone();
        let mut records = Vec::new();
        for b in lapsed {
            let epoch = staged.broker(b).expect("registered").broker_epoch;
            let mut mine = vec![MetadataRecord::BrokerRegistrationChange {
                broker_id: b,
                broker_epoch: epoch,
                fenced: Some(true),
                in_controlled_shutdown: None,
            }];
            mine.extend(replication::leave(&staged, b));
            staged.stage(&mine);
            records.extend(mine);
            let fenced = staged.broker(b).expect("registered");
            assert!(fenced.fenced && fenced.broker_epoch == epoch);
            assert!(
                staged
                    .topics()
                    .values()
                    .all(|t| t.partitions.values().all(|p| p.leader != Some(b))),
                "a fenced broker leads nothing"
            );
        }
        records
    }

    /// Controlled shutdown (Kafka's BrokerHeartbeat `WantShutDown`): broker `broker` of
    /// incarnation `epoch` is going away on purpose, so its leaderships move to other live ISR
    /// members *before* it stops, and it leaves every ISR (the last member stays, and keeps a
    /// partition no one else can lead). It may not join an ISR again in this incarnation.
    /// Returns the records (none when it is already shutting down).
    pub fn controlled_shutdown(
        &mut self,
        image: &MetadataImage,
        broker: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let reg = registered(image, broker, epoch)?;
        if reg.in_controlled_shutdown {
            return Ok(Vec::new());
        }
        let mut records = vec![MetadataRecord::BrokerRegistrationChange {
            broker_id: broker,
            broker_epoch: epoch,
            fenced: None,
            in_controlled_shutdown: Some(true),
        }];
        records.extend(replication::leave(image, broker));
        Ok(records)
    }

    /// A BrokerHeartbeat with `WantShutDown` set (KIP-631's controlled shutdown, as Kafka's
    /// `BrokerHeartbeatManager` walks it). Returns whether the broker is fenced and whether it
    /// may stop (`ShouldShutDown`) once the records are committed, and the records:
    /// * the first such heartbeat of an unfenced broker writes [`Controller::controlled_shutdown`]'s
    ///   records (its leaderships move, it leaves every ISR) and says "not yet";
    /// * the next one, which the broker sends only after the answer to the first (and so after
    ///   those records committed), fences it and says "stop now". Fencing it here, rather than
    ///   when its session lapses, lets the cluster treat it as gone at once, and ending its
    ///   session lets its next incarnation register without waiting out the old one;
    /// * a fenced broker leads nothing and is in no ISR it could hold back: "stop now" at once.
    pub fn shutdown_heartbeat(
        &mut self,
        now: Instant,
        image: &MetadataImage,
        broker: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<(bool, bool, Vec<MetadataRecord>), ControllerError> {
        let reg = registered(image, broker, epoch)?;
        if reg.fenced {
            self.sessions.remove(&broker);
            return Ok((true, true, Vec::new()));
        }
        if !reg.in_controlled_shutdown {
            self.sessions.insert(broker, now);
            let records = self.controlled_shutdown(image, broker, epoch)?;
            assert!(
                !records.is_empty(),
                "entering controlled shutdown is a record"
            );
            return Ok((false, false, records));
        }
        let mut records = vec![MetadataRecord::BrokerRegistrationChange {
            broker_id: broker,
            broker_epoch: epoch,
            fenced: Some(true),
            in_controlled_shutdown: None,
        }];
        // Whatever it still holds (nothing, unless something changed since the first step)
        // is handed over too: fenced, it leads nothing.
        records.extend(replication::leave(image, broker));
        self.sessions.remove(&broker);
        assert!(!self.sessions.contains_key(&broker), "its session is over");
        Ok((true, true, records))
    }

    /// UnregisterBroker (KIP-500's `kafka-cluster.sh unregister`): the broker's registration
    /// goes; it leaves every partition as a fenced broker does. Its session ends.
    pub fn unregister(
        &mut self,
        image: &MetadataImage,
        broker: BrokerId,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let reg = image
            .broker(broker)
            .ok_or(ControllerError::BrokerIdNotRegistered(broker))?;
        let mut records = vec![MetadataRecord::UnregisterBroker {
            broker_id: broker,
            broker_epoch: reg.broker_epoch,
        }];
        records.extend(replication::leave(image, broker));
        self.sessions.remove(&broker);
        Ok(records)
    }

    /// When [`Controller::tick`] next has something to do (the earliest session end).
    pub fn next_deadline(&self, image: &MetadataImage) -> Option<Instant> {
        image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| self.sessions.get(&b.broker_id))
            .map(|t| *t + self.session_timeout)
            .min()
    }

    /// CreateTopics: a topic of `partitions` partitions with `replication_factor` replicas each,
    /// placed over the unfenced brokers. `name` must already be a legal topic name (the broker
    /// that takes the request checks it).
    pub fn create_topic(
        &mut self,
        image: &MetadataImage,
        name: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let none = BTreeMap::new();
        self.create_topic_with_configs(image, name, partitions, replication_factor, &none)
    }

    /// [`Controller::create_topic`] with config overrides: each becomes a ConfigRecord (topic
    /// resource) after the partitions, in the same batch. A key not in [`TOPIC_CONFIGS`] is
    /// INVALID_CONFIG and nothing is written.
    pub fn create_topic_with_configs(
        &mut self,
        image: &MetadataImage,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if let Some(bad) = configs
            .keys()
            .find(|k| !TOPIC_CONFIGS.contains(&k.as_str()))
        {
            return Err(ControllerError::InvalidConfig(format!(
                "unknown topic config {bad}"
            )));
        }
        assert!(configs.keys().all(|k| TOPIC_CONFIGS.contains(&k.as_str())));
        for (k, v) in configs {
            replication::validate_config(k, v)?;
        }
        if image.topic_id(name).is_some() {
            return Err(ControllerError::TopicAlreadyExists(name.to_string()));
        }
        if partitions <= 0 {
            return Err(ControllerError::InvalidPartitions(partitions));
        }
        let brokers = unfenced(image);
        if replication_factor <= 0 || replication_factor as usize > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor {
                asked: replication_factor,
                brokers: brokers.len(),
            });
        }
        let topic_id = loop {
            let id = TopicId(self.prng.uuid_bytes());
            if !image.topics().contains_key(&id) {
                break id;
            }
        };
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            topic_id,
        }];
        records.extend(self.place_partitions(
            topic_id,
            0..partitions,
            &brokers,
            replication_factor as usize,
        ));
        records.extend(configs.iter().map(|(k, v)| MetadataRecord::Config {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: name.to_string(),
            name: k.clone(),
            value: Some(v.clone()),
        }));
        assert_eq!(
            records.len(),
            partitions as usize + 1 + configs.len(),
            "a topic, its partitions and its configs"
        );
        assert!(records[1 + partitions as usize..]
            .iter()
            .all(|r| matches!(r, MetadataRecord::Config { .. })));
        Ok(records)
    }

    /// CreatePartitions: grow topic `name` to `count` partitions. The new ones get as many
    /// replicas as the topic's first partition has, placed over the unfenced brokers as
    /// [`Controller::create_topic`] places a new topic's (leaders spread evenly). A topic never
    /// shrinks: a count not above the current one is INVALID_PARTITIONS, as in Kafka.
    pub fn create_partitions(
        &mut self,
        image: &MetadataImage,
        name: &str,
        count: i32,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic_id = image
            .topic_id(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        let topic = &image.topics()[&topic_id];
        let now = topic.partitions.len() as i32;
        if count <= now {
            return Err(ControllerError::InvalidPartitions(count));
        }
        let rf = topic.partitions.get(&0).map_or(1, |p| p.replicas.len());
        let brokers = unfenced(image);
        if rf > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor {
                asked: rf as i32,
                brokers: brokers.len(),
            });
        }
        let records = self.place_partitions(topic_id, now..count, &brokers, rf);
        assert_eq!(records.len(), (count - now) as usize);
        for (i, r) in records.iter().enumerate() {
            let MetadataRecord::Partition(p) = r else {
                unreachable!("only partitions are placed")
            };
            assert_eq!(
                p.partition,
                now + i as i32,
                "numbered on from the current count"
            );
            assert_eq!(p.replicas.len(), rf, "the topic's replication factor");
            assert!(
                p.leader.is_some_and(|l| brokers.contains(&l)),
                "an unfenced leader"
            );
        }
        Ok(records)
    }

    /// PartitionRecords for partitions `range` of `topic_id`: each partition's replicas by
    /// [`place`] from a random start and shift, its leader the first replica.
    fn place_partitions(
        &mut self,
        topic_id: TopicId,
        range: std::ops::Range<i32>,
        brokers: &[BrokerId],
        rf: usize,
    ) -> Vec<MetadataRecord> {
        let start = self.prng.below(brokers.len() as u64) as usize;
        let shift = self.prng.below(brokers.len() as u64) as usize;
        let first = range.start;
        let mut leads = BTreeMap::<BrokerId, i32>::new();
        let mut records = Vec::new();
        for p in range {
            let replicas = place(brokers, (p - first) as usize, rf, start, shift);
            *leads.entry(replicas[0]).or_default() += 1;
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: p,
                leader: Some(replicas[0]),
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            }));
        }
        // Leaders spread evenly: counts differ by at most one across the brokers used.
        let (most, least) = (leads.values().max(), leads.values().min());
        assert!(most.zip(least).is_some_and(|(m, l)| m - l <= 1));
        assert!(leads.len() == brokers.len() || records.len() < brokers.len());
        records
    }

    /// DeleteTopics: the topic and its partitions go.
    pub fn delete_topic(
        &self,
        image: &MetadataImage,
        name: &str,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic_id = image
            .topic_id(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        Ok(vec![MetadataRecord::RemoveTopic { topic_id }])
    }

    /// End broker `broker`'s session: its process is known to be gone (a combined node's own
    /// broker, registered by this node's previous run), so a new incarnation may register at
    /// once instead of waiting out the old one's session timeout.
    pub fn end_session(&mut self, broker: BrokerId) {
        self.sessions.remove(&broker);
    }

    fn session_live(&self, broker: BrokerId, now: Instant) -> bool {
        self.sessions
            .get(&broker)
            .is_some_and(|t| now < *t + self.session_timeout)
    }
}

/// Broker `broker`'s registration, if `epoch` is its current incarnation's: a request from
/// an unknown broker is BROKER_ID_NOT_REGISTERED, from an older incarnation STALE_BROKER_EPOCH.
fn registered(
    image: &MetadataImage,
    broker: BrokerId,
    epoch: BrokerEpoch,
) -> Result<&super::BrokerRegistration, ControllerError> {
    let reg = image
        .broker(broker)
        .ok_or(ControllerError::BrokerIdNotRegistered(broker))?;
    if reg.broker_epoch != epoch {
        return Err(ControllerError::StaleBrokerEpoch(broker));
    }
    assert_eq!(reg.broker_id, broker);
    Ok(reg)
}

/// The unfenced brokers, by id: where new partitions may go.
fn unfenced(image: &MetadataImage) -> Vec<BrokerId> {
    image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.broker_id)
        .collect()
}

/// The replicas of partition `p`: Kafka's rack-unaware placement. The first replica walks the
/// brokers round-robin from `start`; the others follow it at a distance that changes every full
/// round of brokers, so replica pairs spread too.
fn place(brokers: &[BrokerId], p: usize, rf: usize, start: usize, shift: usize) -> Vec<BrokerId> {
    let n = brokers.len();
    assert!(rf >= 1 && rf <= n, "{rf} replicas over {n} brokers");
    let first = (start + p) % n;
    let mut out = vec![brokers[first]];
    // The distance of the j-th follower; never 0 (a repeat) nor a multiple of n.
    let round_shift = shift + p / n;
    for j in 0..rf - 1 {
        let distance = 1 + (round_shift + j) % (n - 1);
        out.push(brokers[(first + distance) % n]);
    }
    let distinct: BTreeSet<BrokerId> = out.iter().copied().collect();
    assert_eq!(distinct.len(), rf, "replicas of one partition are distinct");
    out
}
