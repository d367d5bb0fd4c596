//! The numbers and names Kafka gives its things, each its own type.
//!
//! On the wire an offset is an `int64`; a partition index, a leader epoch, a group generation
//! and a broker id are all `int32`; a producer epoch is an `int16`. Nothing stops code from
//! passing one where another belongs, and the bugs that follow are quiet (a generation compared
//! with a leader epoch type-checks). Inside gregor each gets a newtype, so the compiler keeps
//! them apart; the raw value appears only at the edges, where a request is read or a response
//! is built (`From` both ways, and the public field, for that boundary).
//!
//! Every type here is cheap: the integer ones are `Copy`, the string ones are one `String`.
//! The string ids borrow as `str`, so a map keyed by [`GroupId`] or [`MemberId`] is looked up
//! with the `&str` a request carries, without building a key.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

/// A newtype over an integer: `Copy`, ordered, shown as its number, converted both ways at the
/// wire boundary.
macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident($t:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $t);

        impl $name {
            /// The raw value, for the wire.
            pub const fn get(self) -> $t {
                self.0
            }
        }
        impl From<$t> for $name {
            fn from(v: $t) -> $name {
                $name(v)
            }
        }
        impl From<$name> for $t {
            fn from(v: $name) -> $t {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// A newtype over a `String`: ordered, shown as its text, borrowed as `str`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        // `Borrow` requires the same `Eq`/`Ord` as `str`: the derived ones compare the string.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

int_id! {
    /// A record's position in a partition's log: the first record ever written is offset 0,
    /// and each record takes the next. A consumer's *position* and a group's *committed
    /// offset* are offsets too: the next record to read.
    Offset(i64)
}

impl Offset {
    /// "No offset" on the wire (an OffsetFetch for a partition nothing was committed to).
    pub const NONE: Offset = Offset(-1);
}

int_id! {
    /// A partition's number within its topic, `0..partition_count` (Kafka's `partitionIndex`).
    PartitionIndex(i32)
}

impl PartitionIndex {
    /// Whether this partition exists in a topic of `count` partitions. A client may name any
    /// `int32`; one outside the range gets UNKNOWN_TOPIC_OR_PARTITION, never a panic.
    pub fn is_within(self, count: i32) -> bool {
        assert!(count >= 0, "a partition count is never negative");
        self.0 >= 0 && self.0 < count
    }
}

int_id! {
    /// The leader epoch of a partition (KIP-101, KIP-320): a number the controller raises each
    /// time the partition gets a new leader. A replica truncates its log to what the leader
    /// of the latest epoch holds, and a fetch naming an older epoch is fenced. Clients send it
    /// with commits (`committed_leader_epoch`); gregor's single broker has epoch 0.
    LeaderEpoch(i32)
}

impl LeaderEpoch {
    /// "Unknown epoch" on the wire (Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`).
    pub const NONE: LeaderEpoch = LeaderEpoch(-1);
}

int_id! {
    /// A broker's id in its cluster (`broker.id` / `node.id`): what Metadata names as a
    /// partition's leader and a group's coordinator.
    BrokerId(i32)
}

impl From<BrokerId> for kafka_protocol::messages::BrokerId {
    fn from(id: BrokerId) -> Self {
        kafka_protocol::messages::BrokerId(id.0)
    }
}

int_id! {
    /// A consumer group's generation: the number of rebalances the group has completed. Every
    /// rebalance moves it up by exactly one; a member's SyncGroup, Heartbeat and OffsetCommit
    /// name the generation it joined, and one naming any other gets ILLEGAL_GENERATION, which
    /// fences members that missed a rebalance (zombies) out of committing.
    GenerationId(i32)
}

impl GenerationId {
    /// "Not in a generation" (Kafka's `JoinGroupRequest.UNKNOWN_GENERATION_ID`): what a
    /// consumer outside any group commits with, and what a failed JoinGroup answers.
    pub const NONE: GenerationId = GenerationId(-1);
    /// A new group's generation, before its first rebalance.
    pub const FIRST: GenerationId = GenerationId(0);

    /// The generation after this one. Generations only move up, one rebalance at a time.
    pub fn next(self) -> GenerationId {
        assert!(self.0 >= 0, "a group's own generation is never NONE");
        let next = GenerationId(self.0.checked_add(1).expect("generation overflow"));
        assert!(next > self);
        next
    }
}

int_id! {
    /// An idempotent producer's id (KIP-98), handed out by InitProducerId. With its epoch and
    /// per-partition sequence numbers it lets the broker drop a retried batch it already has.
    ProducerId(i64)
}

impl ProducerId {
    /// "Not an idempotent producer" on the wire.
    pub const NONE: ProducerId = ProducerId(-1);
}

int_id! {
    /// An idempotent producer's epoch (KIP-98): raised when a producer with the same id starts
    /// again, so batches of the older instance are fenced (INVALID_PRODUCER_EPOCH).
    ProducerEpoch(i16)
}

impl ProducerEpoch {
    /// "No epoch" on the wire, for batches of producers that are not idempotent.
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

string_id! {
    /// A consumer group's name (`group.id`): the unit of the coordinator's state and of
    /// committed offsets. The empty name is not a valid group (INVALID_GROUP_ID).
    GroupId
}

string_id! {
    /// A group member's id, chosen by the coordinator at its first JoinGroup (KIP-394): a
    /// prefix (the client id or the static `group.instance.id`) and a random suffix. The empty
    /// id is Kafka's `UNKNOWN_MEMBER_ID`: a consumer joining for the first time.
    MemberId
}

impl MemberId {
    /// The id a consumer joins with before it has one (Kafka's `UNKNOWN_MEMBER_ID`, `""`).
    pub fn unknown() -> MemberId {
        MemberId(String::new())
    }
}

/// One partition of one topic, by name: the unit of a log, of a fetch, of a committed offset.
/// Shown as Kafka shows it, `topic-partition` (`orders-3`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: PartitionIndex,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: impl Into<PartitionIndex>) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition: partition.into(),
        }
    }
}

impl From<(String, i32)> for TopicPartition {
    fn from((topic, partition): (String, i32)) -> Self {
        TopicPartition::new(topic, partition)
    }
}

impl From<&(String, i32)> for TopicPartition {
    fn from((topic, partition): &(String, i32)) -> Self {
        TopicPartition::new(topic.clone(), *partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A topic's id (KIP-516): a UUID given when the topic is created and never reused, so a topic
/// deleted and created again under the same name is a different topic. Fetch (v13+) and
/// Metadata (v10+) carry it. Shown as Kafka's tools show it: the 16 bytes in URL-safe base64
/// without padding, 22 characters (`kafka-topics --describe` prints `TopicId: …` this way).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// The all-zero UUID: "no topic id" on the wire (Kafka's `Uuid.ZERO_UUID`).
    pub const ZERO: TopicId = TopicId([0; 16]);

    /// The id as the UUID type the protocol messages carry.
    pub fn to_uuid(self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.0)
    }
}

impl From<[u8; 16]> for TopicId {
    fn from(b: [u8; 16]) -> TopicId {
        TopicId(b)
    }
}

impl From<TopicId> for [u8; 16] {
    fn from(t: TopicId) -> [u8; 16] {
        t.0
    }
}

impl From<uuid::Uuid> for TopicId {
    fn from(u: uuid::Uuid) -> TopicId {
        TopicId(*u.as_bytes())
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RFC 4648 §5 (base64url), no padding: 16 bytes are 128 bits, 21 full sextets and 2
        // bits more.
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let mut n = 0u32;
            for (i, b) in chunk.iter().enumerate() {
                n |= (*b as u32) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        assert_eq!(out.len(), 22, "a topic id is 22 base64 characters");
        f.write_str(&out)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

/// Kafka's legal topic names: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!(
            "topic name length {} is not within 1..=249",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!("topic name contains illegal character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn topic_ids_show_as_kafka_tools_show_them() {
        // Kafka's `Uuid.toString` of the UUID 00010203-0405-0607-0809-0a0b0c0d0e0f.
        let id = TopicId(std::array::from_fn(|i| i as u8));
        assert_eq!(id.to_string(), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(TopicId::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(TopicId([0xff; 16]).to_string(), "_____________________w");
        assert_eq!(TopicId::from(id.to_uuid()), id);
    }

    #[test]
    fn string_ids_are_looked_up_by_str() {
        let mut groups: BTreeMap<GroupId, u32> = BTreeMap::new();
        groups.insert(GroupId::from("payments"), 1);
        assert_eq!(groups.get("payments"), Some(&1));
        assert!(!groups.contains_key("orders"));
        assert!(MemberId::unknown().is_empty());
        assert_eq!(MemberId::from("m-1"), "m-1");
    }

    #[test]
    fn generations_move_up_by_one_and_partitions_check_their_range() {
        assert_eq!(GenerationId::FIRST.next(), GenerationId(1));
        assert!(GenerationId::NONE < GenerationId::FIRST);
        assert!(PartitionIndex(0).is_within(1));
        assert!(!PartitionIndex(1).is_within(1));
        assert!(!PartitionIndex(-1).is_within(4));
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
        assert_eq!(i64::from(Offset(7)), 7);
    }

    #[test]
    #[should_panic(expected = "never NONE")]
    fn no_generation_has_no_next() {
        GenerationId::NONE.next();
    }
}
