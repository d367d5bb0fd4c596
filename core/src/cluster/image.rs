//! The metadata image: the cluster's state as of one offset of the metadata log, built only by
//! replaying committed records (Kafka's `MetadataImage`, which its brokers and controllers build
//! through a `MetadataDelta` from the same records).
//!
//! Invariants, asserted after every record replayed (`invariants`):
//! * each topic name maps to one topic id and back;
//! * a topic's partitions are numbered 0..n without gaps;
//! * for every partition: the replicas are distinct and not empty, **leader ∈ ISR ⊆ replicas**
//!   (or no leader: the partition is offline), epochs are not negative; the ELR (KIP-966) is
//!   distinct replicas outside the ISR, and a lost ISR is one member with no leader;
//! * a broker registration is keyed by its id, and its epoch is not above the image's offset;
//! * every unclean election on record (gregor's UncleanElection records) names a partition that
//!   exists, one per leader epoch, in order. Replayed live, such a record must follow the change
//!   that made its broker the leader, alone in the ISR.
//!
//! The replication invariants that hold only between two of the controller's decisions (no
//! fenced broker in an ISR but the last member of an offline partition) are
//! the replication module's `check`.
//!
//! And for every PartitionChange replayed (asserted in `replay`): the partition epoch rises by
//! one; the leader epoch rises by one when the leader changes and stays otherwise. Those epochs
//! are how Kafka fences stale leaders and stale ISR updates (KIP-320, AlterPartition), so a
//! replay that got them wrong would let two brokers both believe they lead.
//!
//! A record that does not fit the image (a partition of an unknown topic, a leader outside the
//! ISR, a change for an older broker incarnation) is refused with a [`ReplayError`] and leaves
//! the image as it was. The controller only writes records that fit, so on a committed log
//! this does not happen; a node that sees it has a corrupt log or a controller bug to report.

use super::records::{
    LeaderChange, MetadataRecord, PartitionChange, PartitionRecord, RegisterBroker,
    CONFIG_RESOURCE_TOPIC,
};
use super::{BrokerEpoch, BrokerId, TopicId};
use crate::scram::Credentials;
use shape::{bump, check_assignment, check_elr, check_reassignment};
use std::collections::BTreeMap;

mod shape;

/// What the image knows of one broker (Kafka's `BrokerRegistration`): its registration record,
/// with the fencing and shutdown flags as later changes left them. A fenced broker leads
/// nothing and joins no ISR (KIP-841).
pub type BrokerRegistration = RegisterBroker;

/// What the image knows of one partition (Kafka's `PartitionRegistration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    /// Raised on every leader change: stamped into the batches the leader writes, and checked
    /// on every fetch and produce (KIP-101, KIP-320).
    pub leader_epoch: i32,
    /// Raised on every change: AlterPartition names it, so a stale ISR update is refused.
    pub partition_epoch: i32,
    /// KIP-966's *eligible leader replicas*: replicas outside the ISR that still hold every
    /// committed record, because they left the ISR while it was below `min.insync.replicas`
    /// (the high watermark cannot move then). Electable when no ISR member is live. Disjoint
    /// from the ISR; set by ElrChange records, and a broker joining the ISR leaves it.
    pub elr: Vec<BrokerId>,
    /// The ISR's one member is only the *last known* one: it came back with its log lost
    /// (KIP-903's empty disk) and no other replica was left in the ISR. gregor keeps the ISR
    /// never empty (Kafka empties it and keeps the broker in `LastKnownElr`), so this marks it
    /// unelectable: the partition has no leader until an ELR member returns or an unclean
    /// election picks one. Cleared by any ISR change.
    pub isr_lost: bool,
    /// A reassignment in progress (KIP-455): the replicas being added (in the target, not in
    /// the original set) and being removed (in the original set, not in the target). Both
    /// empty when none is. Set by ReassignmentChange records; a change of the replicas clears
    /// them until the ReassignmentChange that follows it.
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

/// One topic: its name, its partitions by index, and its config overrides (`retention.ms`
/// and the like, from ConfigRecords; a key absent here takes the broker's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
    pub configs: BTreeMap<String, String>,
}

/// Why a record does not fit the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The record's offset is not after the last one replayed.
    OffsetNotAfter {
        offset: i64,
        last: i64,
    },
    UnknownBroker(BrokerId),
    /// The record names a broker epoch other than the registration's.
    StaleBrokerEpoch {
        broker: BrokerId,
        record: BrokerEpoch,
        registered: BrokerEpoch,
    },
    /// A registration not newer than the one it replaces, or from after its own offset.
    BadBrokerEpoch(BrokerId, BrokerEpoch),
    DuplicateTopicName(String),
    DuplicateTopicId(TopicId),
    EmptyTopicName,
    UnknownTopic(TopicId),
    /// A PartitionRecord whose index is not the next one of its topic.
    PartitionNotNext {
        topic: TopicId,
        partition: i32,
    },
    UnknownPartition {
        topic: TopicId,
        partition: i32,
    },
    /// The replica set, ISR and leader break leader ∈ ISR ⊆ replicas (or similar).
    InvalidAssignment(String),
    /// A producer-id block that does not start after the last one handed out.
    ProducerIdsNotAfter(i64),
    /// A ConfigRecord for a resource type other than a topic (gregor logs only topic configs).
    UnsupportedConfigResource(i8),
    /// A ConfigRecord naming a topic that does not exist, or with an empty key.
    BadConfig {
        resource: String,
        name: String,
    },
    /// An ACL record that does not fit the ACLs in force (a repeated id or binding, or the
    /// removal of an unknown id).
    Acl(crate::acl::AclReplayError),
    /// A SCRAM credential record that is malformed, or removes what is not there (KIP-554).
    BadScramCredential(String),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "metadata record does not fit the image: {self:?}")
    }
}

/// The cluster's metadata as of `offset`. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// The offset of the last record replayed (-1 before any).
    offset: i64,
    features: BTreeMap<String, i16>,
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<TopicId, TopicImage>,
    topic_ids: BTreeMap<String, TopicId>,
    /// The last producer-id block handed out (KIP-730), as its record said.
    producer_ids: Option<(BrokerId, BrokerEpoch, i64)>,
    /// Every unclean election still on record (gregor's UncleanElection records): for each
    /// partition, the brokers elected from outside the ISR and the leader epoch each started,
    /// in order. They go when the topic does.
    unclean: BTreeMap<(TopicId, i32), Vec<(BrokerId, i32)>>,
    /// The ACLs in force (AccessControlEntry records not yet removed): what every broker's
    /// authorizer checks (`crate::acl`).
    acls: crate::acl::Acls,
    /// The SCRAM users (KIP-554): what every broker's SASL authenticator checks logins against.
    scram: Credentials,
}

impl MetadataImage {
    /// The image of an empty log.
    pub fn new() -> MetadataImage {
        MetadataImage {
            offset: -1,
            ..MetadataImage::default()
        }
    }

    /// The offset of the last record replayed (-1 for an empty image).
    pub fn offset(&self) -> i64 {
        self.offset
    }
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerRegistration> {
        &self.brokers
    }
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }
    pub fn topics(&self) -> &BTreeMap<TopicId, TopicImage> {
        &self.topics
    }
    pub fn topic_id(&self, name: &str) -> Option<TopicId> {
        self.topic_ids.get(name).copied()
    }
    pub fn partition(&self, topic: TopicId, partition: i32) -> Option<&PartitionRegistration> {
        self.topics.get(&topic)?.partitions.get(&partition)
    }
    pub fn feature(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }
    /// The unclean elections on record: per partition, (leader, leader epoch) in order.
    pub fn unclean_elections(&self) -> &BTreeMap<(TopicId, i32), Vec<(BrokerId, i32)>> {
        &self.unclean
    }
    /// Topic `topic`'s override of config `name`, if it has one.
    pub fn topic_config(&self, topic: TopicId, name: &str) -> Option<&str> {
        self.topics
            .get(&topic)?
            .configs
            .get(name)
            .map(String::as_str)
    }
    /// The ACLs in force as of this image's offset.
    pub fn acls(&self) -> &crate::acl::Acls {
        &self.acls
    }
    /// The SCRAM credentials (KIP-554's UserScramCredential records), user by user.
    pub fn scram(&self) -> &Credentials {
        &self.scram
    }
    /// Where the next producer-id block starts (0 before any was handed out).
    pub fn next_producer_id(&self) -> i64 {
        self.producer_ids.map_or(0, |(_, _, next)| next)
    }

    /// A Raft control record (a `LeaderChange`) sits at `offset`: it holds no metadata, but the
    /// image is now as of that offset (Kafka's image provenance counts control batches too), so
    /// an image's offset is always the last log offset it has seen.
    pub fn skip(&mut self, offset: i64) {
        assert!(offset > self.offset, "offsets only go up");
        self.offset = offset;
        self.invariants();
    }

    /// Apply `records` the active controller decided on this image, at the offsets after it: what
    /// the image will be once they commit, so a decision can build on the ones before it in the
    /// same batch. They always fit; one that does not is a controller bug.
    pub fn stage(&mut self, records: &[MetadataRecord]) {
        for r in records {
            let at = self.offset + 1;
            self.replay(at, r)
                .expect("the controller's own records fit");
        }
    }

    /// Apply the record at `offset` of the metadata log. On error the image is unchanged.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ReplayError> {
        if offset <= self.offset {
            return Err(ReplayError::OffsetNotAfter {
                offset,
                last: self.offset,
            });
        }
        let before = self.epochs_of(record);
        if let MetadataRecord::UncleanElection {
            topic_id,
            partition,
            leader,
            leader_epoch,
        } = record
        {
            // Live, the record follows the change that made the election: the partition is led
            // by `leader` in `leader_epoch`, alone in its ISR. (A snapshot's older ones are not.)
            let p = self
                .partition(*topic_id, *partition)
                .ok_or(ReplayError::UnknownPartition {
                    topic: *topic_id,
                    partition: *partition,
                })?;
            if p.leader != Some(*leader) || p.leader_epoch != *leader_epoch || p.isr != [*leader] {
                return Err(ReplayError::InvalidAssignment(format!(
                    "unclean election of {leader:?} in epoch {leader_epoch}, but the partition is {p:?}"
                )));
            }
        }
        self.apply(offset, record)?;
        assert!(offset > self.offset, "offsets only go up");
        self.offset = offset;
        if let (MetadataRecord::PartitionChange(c), Some(old)) = (record, before) {
            let new = self.partition(c.topic_id, c.partition).expect("changed");
            assert_eq!(new.partition_epoch, old.partition_epoch + 1);
            if new.leader != old.leader {
                assert_eq!(
                    new.leader_epoch,
                    old.leader_epoch + 1,
                    "a new leader, a new epoch"
                );
            } else {
                assert_eq!(new.leader_epoch, old.leader_epoch);
            }
        }
        self.invariants();
        Ok(())
    }

    /// The image of a snapshot: its records (as [`MetadataImage::to_records`] wrote them)
    /// replayed in order, as of `end_offset` (the snapshot holds every record below it).
    pub fn load_snapshot(
        end_offset: i64,
        records: &[MetadataRecord],
    ) -> Result<MetadataImage, ReplayError> {
        assert!(end_offset >= 0, "a snapshot ends at or after 0");
        let mut image = MetadataImage::new();
        for r in records {
            // Every record of a snapshot counts as of its last offset: broker epochs, which
            // are older offsets, stay at or below it.
            image.apply(end_offset - 1, r)?;
        }
        image.offset = end_offset - 1;
        image.invariants();
        assert_eq!(
            image.to_records().len(),
            records.len(),
            "a snapshot has no repeats"
        );
        Ok(image)
    }

    /// The records that rebuild this image from nothing: what a metadata snapshot holds
    /// (Kafka writes its snapshots as records too). `load_snapshot` of them gives this image.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out: Vec<MetadataRecord> = self
            .features
            .iter()
            .map(|(name, level)| MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
            })
            .collect();
        out.extend(
            self.brokers
                .values()
                .map(|b| MetadataRecord::RegisterBroker(b.clone())),
        );
        for (id, t) in &self.topics {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: *id,
            });
            for (p, r) in &t.partitions {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: *id,
                    partition: *p,
                    replicas: r.replicas.clone(),
                    isr: r.isr.clone(),
                    leader: r.leader,
                    leader_epoch: r.leader_epoch,
                    partition_epoch: r.partition_epoch,
                }));
                if !r.elr.is_empty() || r.isr_lost {
                    out.push(MetadataRecord::ElrChange {
                        topic_id: *id,
                        partition: *p,
                        elr: r.elr.clone(),
                        isr_lost: r.isr_lost,
                    });
                }
                if !r.adding.is_empty() || !r.removing.is_empty() {
                    out.push(MetadataRecord::ReassignmentChange {
                        topic_id: *id,
                        partition: *p,
                        adding: r.adding.clone(),
                        removing: r.removing.clone(),
                    });
                }
            }
            out.extend(t.configs.iter().map(|(k, v)| MetadataRecord::Config {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: t.name.clone(),
                name: k.clone(),
                value: Some(v.clone()),
            }));
        }
        out.extend(
            self.producer_ids
                .map(
                    |(broker_id, broker_epoch, next_producer_id)| MetadataRecord::ProducerIds {
                        broker_id,
                        broker_epoch,
                        next_producer_id,
                    },
                ),
        );
        let partitions: usize = self.topics.values().map(|t| t.partitions.len()).sum();
        let configs: usize = self.topics.values().map(|t| t.configs.len()).sum();
        for ((topic_id, partition), elections) in &self.unclean {
            out.extend(elections.iter().map(|(leader, leader_epoch)| {
                MetadataRecord::UncleanElection {
                    topic_id: *topic_id,
                    partition: *partition,
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                }
            }));
        }
        out.extend(
            self.acls
                .iter()
                .map(|(id, b)| MetadataRecord::AccessControlEntry {
                    id: *id,
                    binding: b.clone(),
                }),
        );
        let unclean: usize = self.unclean.values().map(Vec::len).sum();
        let scram = super::scram::records_of(&self.scram);
        let scram_count = scram.len();
        out.extend(scram);
        let elrs = (self.topics.values())
            .flat_map(|t| t.partitions.values())
            .filter(|r| !r.elr.is_empty() || r.isr_lost)
            .count();
        let moving = (self.topics.values())
            .flat_map(|t| t.partitions.values())
            .filter(|r| !r.adding.is_empty() || !r.removing.is_empty())
            .count();
        let records = elrs
            + moving
            + self.features.len()
            + self.brokers.len()
            + self.topics.len()
            + partitions
            + configs
            + usize::from(self.producer_ids.is_some())
            + unclean
            + self.acls.len()
            + scram_count;
        assert_eq!(out.len(), records, "one record per fact");
        out
    }

    /// The partition a PartitionChange names, as it was, for the postconditions.
    fn epochs_of(&self, record: &MetadataRecord) -> Option<PartitionRegistration> {
        match record {
            MetadataRecord::PartitionChange(c) => self.partition(c.topic_id, c.partition).cloned(),
            _ => None,
        }
    }

    /// Check, then change: nothing is modified before every check has passed.
    fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                let newer = self
                    .brokers
                    .get(&r.broker_id)
                    .is_none_or(|b| b.broker_epoch < r.broker_epoch);
                if !newer || r.broker_epoch.0 > offset || r.broker_epoch.0 < 0 {
                    return Err(ReplayError::BadBrokerEpoch(r.broker_id, r.broker_epoch));
                }
                // A new incarnation replaces the old registration whole.
                let old = self.brokers.insert(r.broker_id, r.clone());
                assert!(old.is_none_or(|o| o.broker_epoch < r.broker_epoch));
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.registered(*broker_id, *broker_epoch)?;
                let gone = self.brokers.remove(broker_id);
                assert!(gone.is_some_and(|g| g.broker_epoch == *broker_epoch));
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                self.registered(*broker_id, *broker_epoch)?;
                let b = self.brokers.get_mut(broker_id).expect("registered");
                b.fenced = fenced.unwrap_or(b.fenced);
                b.in_controlled_shutdown =
                    in_controlled_shutdown.unwrap_or(b.in_controlled_shutdown);
                assert_eq!(
                    b.broker_epoch, *broker_epoch,
                    "a change keeps the incarnation"
                );
            }
            MetadataRecord::Topic { name, topic_id } => {
                if name.is_empty() {
                    return Err(ReplayError::EmptyTopicName);
                }
                if self.topic_ids.contains_key(name) {
                    return Err(ReplayError::DuplicateTopicName(name.clone()));
                }
                if self.topics.contains_key(topic_id) {
                    return Err(ReplayError::DuplicateTopicId(*topic_id));
                }
                self.topic_ids.insert(name.clone(), *topic_id);
                let topic = TopicImage {
                    name: name.clone(),
                    partitions: BTreeMap::new(),
                    configs: BTreeMap::new(),
                };
                let old = self.topics.insert(*topic_id, topic);
                assert!(old.is_none(), "a new topic id");
            }
            MetadataRecord::Partition(p) => {
                let topic = self
                    .topics
                    .get(&p.topic_id)
                    .ok_or(ReplayError::UnknownTopic(p.topic_id))?;
                if p.partition != topic.partitions.len() as i32 {
                    return Err(ReplayError::PartitionNotNext {
                        topic: p.topic_id,
                        partition: p.partition,
                    });
                }
                if p.leader_epoch < 0 || p.partition_epoch < 0 {
                    return Err(ReplayError::InvalidAssignment("negative epoch".into()));
                }
                check_assignment(&p.replicas, &p.isr, p.leader)?;
                let registration = PartitionRegistration {
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    elr: Vec::new(),
                    isr_lost: false,
                    adding: Vec::new(),
                    removing: Vec::new(),
                };
                let topic = self.topics.get_mut(&p.topic_id).expect("looked up");
                let old = topic.partitions.insert(p.partition, registration);
                assert!(old.is_none(), "a new partition");
                assert_eq!(topic.partitions.len() as i32, p.partition + 1);
            }
            MetadataRecord::AccessControlEntry { id, binding } => {
                self.acls
                    .check_add(*id, binding)
                    .map_err(ReplayError::Acl)?;
                self.acls.add(*id, binding.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                self.acls.check_remove(*id).map_err(ReplayError::Acl)?;
                self.acls.remove(*id);
            }
            MetadataRecord::ElrChange {
                topic_id,
                partition,
                elr,
                isr_lost,
            } => {
                let p =
                    self.partition(*topic_id, *partition)
                        .ok_or(ReplayError::UnknownPartition {
                            topic: *topic_id,
                            partition: *partition,
                        })?;
                check_elr(p, elr, *isr_lost)?;
                let topic = self.topics.get_mut(topic_id).expect("looked up");
                let p = topic.partitions.get_mut(partition).expect("looked up");
                p.elr = elr.clone();
                p.isr_lost = *isr_lost;
            }
            MetadataRecord::ReassignmentChange {
                topic_id,
                partition,
                adding,
                removing,
            } => {
                let p =
                    self.partition(*topic_id, *partition)
                        .ok_or(ReplayError::UnknownPartition {
                            topic: *topic_id,
                            partition: *partition,
                        })?;
                check_reassignment(&p.replicas, adding, removing)?;
                let topic = self.topics.get_mut(topic_id).expect("looked up");
                let p = topic.partitions.get_mut(partition).expect("looked up");
                p.adding = adding.clone();
                p.removing = removing.clone();
            }
            MetadataRecord::PartitionChange(c) => {
                let merged = self.merged(c)?;
                let topic = self.topics.get_mut(&c.topic_id).expect("merged");
                let old = topic.partitions.insert(c.partition, merged);
                assert!(old.is_some(), "a change to an existing partition");
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let t = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ReplayError::UnknownTopic(*topic_id))?;
                let id = self.topic_ids.remove(&t.name);
                assert_eq!(id, Some(*topic_id), "the name goes with the topic");
                self.unclean.retain(|(t, _), _| t != topic_id);
            }
            MetadataRecord::FeatureLevel { name, level } => {
                if *level == 0 {
                    self.features.remove(name);
                } else {
                    self.features.insert(name.clone(), *level);
                }
                assert_eq!(self.feature(name).unwrap_or(0), *level);
            }
            MetadataRecord::ProducerIds {
                broker_id,
                broker_epoch,
                next_producer_id,
            } => {
                // Blocks only move forward; which broker asked is checked by the controller
                // when it decides (the broker may have gone since, so replay does not).
                if *next_producer_id <= self.next_producer_id() {
                    return Err(ReplayError::ProducerIdsNotAfter(*next_producer_id));
                }
                self.producer_ids = Some((*broker_id, *broker_epoch, *next_producer_id));
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                if *resource_type != CONFIG_RESOURCE_TOPIC {
                    return Err(ReplayError::UnsupportedConfigResource(*resource_type));
                }
                let bad = || ReplayError::BadConfig {
                    resource: resource_name.clone(),
                    name: name.clone(),
                };
                let id = self.topic_ids.get(resource_name).ok_or_else(bad)?;
                if name.is_empty() {
                    return Err(bad());
                }
                assert!(self.topics.contains_key(id), "names and ids pair up");
                let configs = &mut self.topics.get_mut(id).expect("named topic").configs;
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
                assert_eq!(configs.get(name), value.as_ref());
            }
            MetadataRecord::NoOp => {}
            MetadataRecord::UserScramCredential { .. }
            | MetadataRecord::RemoveUserScramCredential { .. } => {
                // An error leaves the store as it was (checked before any change).
                let replayed = super::scram::replay(&mut self.scram, record)
                    .map_err(ReplayError::BadScramCredential)?;
                assert!(replayed, "a SCRAM record");
            }
            MetadataRecord::UncleanElection {
                topic_id,
                partition,
                leader,
                leader_epoch,
            } => {
                if self.partition(*topic_id, *partition).is_none() {
                    return Err(ReplayError::UnknownPartition {
                        topic: *topic_id,
                        partition: *partition,
                    });
                }
                let list = self.unclean.entry((*topic_id, *partition)).or_default();
                if list.last().is_some_and(|(_, e)| *e >= *leader_epoch) {
                    return Err(ReplayError::InvalidAssignment(format!(
                        "unclean election in epoch {leader_epoch} not after {list:?}"
                    )));
                }
                list.push((*leader, *leader_epoch));
            }
        }
        Ok(())
    }

    /// `broker` is registered with exactly `epoch`.
    fn registered(&self, broker: BrokerId, epoch: BrokerEpoch) -> Result<(), ReplayError> {
        let b = self
            .brokers
            .get(&broker)
            .ok_or(ReplayError::UnknownBroker(broker))?;
        if b.broker_epoch != epoch {
            return Err(ReplayError::StaleBrokerEpoch {
                broker,
                record: epoch,
                registered: b.broker_epoch,
            });
        }
        Ok(())
    }

    /// The partition after a PartitionChange (Kafka's `PartitionRegistration.merge`).
    fn merged(&self, c: &PartitionChange) -> Result<PartitionRegistration, ReplayError> {
        let old = self
            .partition(c.topic_id, c.partition)
            .ok_or(ReplayError::UnknownPartition {
                topic: c.topic_id,
                partition: c.partition,
            })?;
        let leader = match c.leader {
            LeaderChange::Unchanged => old.leader,
            LeaderChange::NoLeader => None,
            LeaderChange::To(b) => Some(b),
        };
        let new = PartitionRegistration {
            replicas: c.replicas.clone().unwrap_or_else(|| old.replicas.clone()),
            isr: c.isr.clone().unwrap_or_else(|| old.isr.clone()),
            leader,
            leader_epoch: bump(old.leader_epoch, leader != old.leader)?,
            partition_epoch: bump(old.partition_epoch, true)?,
            elr: Vec::new(),
            isr_lost: false,
            adding: Vec::new(),
            removing: Vec::new(),
        };
        check_assignment(&new.replicas, &new.isr, new.leader)?;
        // KIP-966: a broker joining the ISR leaves the ELR; an ISR change or a leader ends a
        // lost ISR (the controller elects its member only uncleanly, on record).
        let mut new = new;
        new.elr = (old.elr.iter())
            .filter(|b| !new.isr.contains(b) && new.replicas.contains(b))
            .copied()
            .collect();
        new.isr_lost = old.isr_lost && new.isr == old.isr && new.leader.is_none();
        // A reassignment stays while the replicas do (KIP-455's record sets both again).
        if new.replicas == old.replicas {
            new.adding = old.adding.clone();
            new.removing = old.removing.clone();
        }
        assert!(new.partition_epoch > old.partition_epoch);
        assert!(new.leader_epoch >= old.leader_epoch);
        Ok(new)
    }

    /// Checked after every replay.
    fn invariants(&self) {
        assert_eq!(
            self.topics.len(),
            self.topic_ids.len(),
            "names and ids pair up"
        );
        for (name, id) in &self.topic_ids {
            assert_eq!(self.topics.get(id).map(|t| &t.name), Some(name));
        }
        for t in self.topics.values() {
            let n = t.partitions.len() as i32;
            assert!(t.partitions.keys().copied().eq(0..n), "partitions 0..{n}");
            assert!(
                t.configs.keys().all(|k| !k.is_empty()),
                "config keys are named"
            );
            for p in t.partitions.values() {
                assert!(check_assignment(&p.replicas, &p.isr, p.leader).is_ok());
                assert!(check_elr(p, &p.elr, p.isr_lost).is_ok(), "ELR invariants");
                assert!(check_reassignment(&p.replicas, &p.adding, &p.removing).is_ok());
                assert!(p.leader_epoch >= 0 && p.partition_epoch >= 0);
            }
        }
        for (id, b) in &self.brokers {
            assert_eq!(*id, b.broker_id, "a registration under its own id");
            assert!(
                b.broker_epoch.0 <= self.offset,
                "registered at or before this offset"
            );
        }
        assert!(
            self.features.values().all(|l| *l != 0),
            "level 0 means absent"
        );
        for ((t, p), list) in &self.unclean {
            assert!(
                self.partition(*t, *p).is_some(),
                "unclean elections of a partition that exists"
            );
            assert!(
                !list.is_empty() && list.windows(2).all(|w| w[0].1 < w[1].1),
                "one record per unclean election, epochs in order"
            );
        }
    }
}
