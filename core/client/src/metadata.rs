//! The client's view of the cluster: which brokers exist, how many partitions each topic has,
//! and which broker leads each partition.
//!
//! A client learns this from Metadata responses and keeps it only as a cache: it is refreshed
//! when it grows older than `metadata.max.age.ms`, when a topic the client needs is missing,
//! and whenever a broker says it is not the leader (NOT_LEADER_OR_FOLLOWER) or does not know a
//! topic (UNKNOWN_TOPIC_OR_PARTITION) — the leader moved, and the next Metadata answer says
//! where. Leader epochs (KIP-320) are kept so an answer older than what the client already knows
//! never moves a leader backwards.

use gregor_core::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

pub type TopicPartition = (String, i32);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMeta {
    /// The leader's node id, or `None` while the partition has none (LEADER_NOT_AVAILABLE).
    pub leader: Option<i32>,
    /// −1 when the broker does not track epochs.
    pub leader_epoch: i32,
}

#[derive(Clone, Debug, Default)]
pub struct Metadata {
    /// node id → (host, port).
    pub brokers: BTreeMap<i32, (String, u16)>,
    /// topic → its partitions, by index.
    pub topics: BTreeMap<String, Vec<PartitionMeta>>,
    /// Topics the last answer refused, with the error code (UNKNOWN_TOPIC_OR_PARTITION...).
    pub topic_errors: BTreeMap<String, i16>,
    /// Topics the application uses: every Metadata request asks for these.
    pub wanted: BTreeSet<String>,
    /// When the last answer arrived.
    pub updated_at: Option<Instant>,
    /// A refresh was asked for (an error, a new topic); sent once `backoff_until` passes.
    pub refresh: bool,
    pub backoff_until: Instant,
    pub in_flight: bool,
    /// The brokers are needed even with no topic wanted (the admin's ListGroups asks every
    /// broker).
    pub cluster_wanted: bool,
    /// How many answers have arrived: an operation that saw `n` knows a later one is fresh.
    pub answers: u64,
}

impl Metadata {
    pub fn partitions(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|p| p.len() as i32)
    }

    pub fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        let p = self.topics.get(&tp.0)?.get(usize::try_from(tp.1).ok()?)?;
        p.leader.filter(|l| self.brokers.contains_key(l))
    }

    /// Whether anything needs metadata at all.
    fn needed(&self) -> bool {
        !self.wanted.is_empty() || self.cluster_wanted
    }

    /// Whether a Metadata request should go out now.
    pub fn due(&self, now: Instant, max_age_ms: u64) -> bool {
        if self.in_flight || !self.needed() || now < self.backoff_until {
            return false;
        }
        let missing = self.wanted.iter().any(|t| !self.topics.contains_key(t));
        let stale = self
            .updated_at
            .is_none_or(|t| now >= t + Duration::from_ms(max_age_ms));
        self.refresh || missing || stale
    }

    /// When [`Metadata::due`] may next become true by the passing of time.
    pub fn next_deadline(&self, max_age_ms: u64) -> Option<Instant> {
        if self.in_flight || !self.needed() {
            return None;
        }
        let missing = self.wanted.iter().any(|t| !self.topics.contains_key(t));
        if self.refresh || missing {
            return Some(self.backoff_until);
        }
        self.updated_at
            .map(|t| (t + Duration::from_ms(max_age_ms)).max(self.backoff_until))
    }

    /// Take a topic's partitions from an answer. A partition whose known leader epoch is newer
    /// than the answer's keeps what it had: the answer came from a broker that has not heard
    /// of the latest election yet (KIP-320).
    pub fn update_topic(&mut self, topic: &str, mut parts: Vec<PartitionMeta>) {
        if let Some(old) = self.topics.get(topic) {
            for (i, p) in parts.iter_mut().enumerate() {
                if let Some(o) = old.get(i) {
                    if o.leader_epoch >= 0 && p.leader_epoch >= 0 && o.leader_epoch > p.leader_epoch
                    {
                        *p = o.clone();
                    }
                }
            }
        }
        self.topic_errors.remove(topic);
        self.topics.insert(topic.to_string(), parts);
    }

    /// A broker said it does not lead `tp` (or the connection to its leader dropped): forget
    /// the leader until the next answer names one.
    pub fn forget_leader(&mut self, tp: &TopicPartition) {
        if let Some(p) = self
            .topics
            .get_mut(&tp.0)
            .and_then(|ps| ps.get_mut(usize::try_from(tp.1).unwrap_or(usize::MAX)))
        {
            p.leader = None;
        }
        self.refresh = true;
    }

    pub fn invariants(&self) {
        for (t, ps) in &self.topics {
            assert!(!ps.is_empty(), "topic {t} known with no partitions");
            assert!(
                !self.topic_errors.contains_key(t),
                "{t} both known and refused"
            );
        }
        assert!(
            !self.in_flight || self.needed(),
            "metadata is asked for only when topics or brokers are wanted"
        );
    }
}
