//! The coordinator runtime: how a coordinator (groups today, transactions later) writes the
//! records its operations produce, and answers only once they are durable.
//!
//! Kafka's new group coordinator (KIP-848) splits a coordinator in two. A *shard*
//! (`GroupMetadataManager`) holds the state and decides: every operation returns a
//! `CoordinatorResult(records, response)` and changes nothing by itself. The
//! `CoordinatorRuntime` carries the result out: it appends the records to the coordinator's
//! partition of an internal topic (`__consumer_offsets`), replays them into the shard, and
//! completes the response when the high watermark passes them, or fails it if the write is
//! lost. gregor keeps that split:
//!
//! - the shard is [`crate::group::Coordinator`], changed only by `replay(record)`;
//! - [`Host`] is what the runtime needs from the broker (Kafka's `PartitionWriter` and the
//!   request channel): append a batch, report where it ended, park a response until that end
//!   is durable, read the partition back at start;
//! - [`runtime`] holds the writes waiting for durability and the rules for releasing them.
//!
//! Architecture invariant: the group coordinator never names the broker. It sees only [`Host`],
//! so `broker` imports `group` and `coordinator`, `group` imports `coordinator`, and nothing
//! points back (checked by `core/tests/shape.rs`).

use crate::config::Config;
use crate::error::ClientError;
use crate::files::TopicSettings;
use crate::ids::{Offset, PartitionIndex, TopicId, TopicPartition};
use crate::io::{ConnId, LogLevel, StorageRequest};
use crate::time::Instant;
use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;

pub mod runtime;

pub use runtime::{PendingWrite, PendingWrites, Reply};

/// Where to send a response: connection, position in its order, header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub conn: ConnId,
    pub seq: u64,
    pub correlation_id: i32,
    pub api_version: i16,
}

/// Where an internal write ended. A response that reveals state derived from that write waits
/// until the partition's high watermark reaches `end`, and fails if the write is lost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMark {
    /// The internal topic's partition written to.
    pub partition: TopicPartition,
    /// The topic's id when written: a topic deleted and created again under the same name is
    /// another topic, and the write is lost with the first.
    pub topic_id: TopicId,
    /// The offset after the write's last record.
    pub end: Offset,
    /// The partition's cut epoch when the write was made (see `Partition::cut_epoch`): if a
    /// failed write cut the partition below `end` since, this write may be gone even though the
    /// log has grown past `end` again.
    pub cut_epoch: u64,
}

/// What the coordinator runtime needs from the broker it runs in. The broker implements it;
/// coordinators receive it as `&mut dyn Host<R>`, `R` being their record type.
pub trait Host<R> {
    fn now(&self) -> Instant;
    fn config(&self) -> &Config;
    /// Hand a response to its connection's ordered queue (`None`: the request gets no answer).
    fn respond(&mut self, to: ReplyTo, body: Option<ResponseKind>);
    fn log(&mut self, level: LogLevel, message: String);
    /// A random UUID in text form (member ids), from the broker's seeded PRNG.
    fn random_suffix(&mut self) -> String;
    /// The client id of the latest request on `conn`.
    fn client_id_of(&self, conn: ConnId) -> String;

    // Kafka's `PartitionWriter`: the internal topic's partitions.
    /// Append a batch the coordinator built, through the same path as a produce.
    fn append(
        &mut self,
        topic: &str,
        partition: PartitionIndex,
        batch: Bytes,
    ) -> Result<WriteMark, ClientError>;
    /// A mark at the current end of a partition (what is there now, durable or not).
    fn end_mark(&self, topic: &str, partition: PartitionIndex) -> Option<WriteMark>;
    /// The partition's high watermark, if it is online.
    fn high_watermark(&self, topic: &str, partition: PartitionIndex) -> Option<Offset>;
    /// The bytes the partition's log holds (0 if offline).
    fn size_bytes(&self, topic: &str, partition: PartitionIndex) -> u64;
    /// Roll the partition and append `batch` as the first batch of the new segment. Returns
    /// the batch's offset.
    fn append_in_new_segment(
        &mut self,
        topic: &str,
        partition: PartitionIndex,
        batch: Bytes,
    ) -> Option<Offset>;
    /// Delete every segment of the partition below `base` (a snapshot's offset).
    fn delete_before(&mut self, topic: &str, partition: PartitionIndex, base: Offset);

    // The purgatory for internal writes.
    /// Whether `coordinator_writes_pending_max` writes already wait: then a write that would
    /// wait is refused before anything is appended.
    fn parking_full(&self) -> bool;
    /// Park `write` until `write.mark` is durable (or lost). Precondition: not
    /// [`Host::parking_full`].
    fn park(&mut self, write: PendingWrite<R>);

    // Kafka's `CoordinatorLoader`: reading a partition of the topic back when it is gained.
    fn default_settings(&self) -> TopicSettings;
    /// The partition count of `topic`, if it exists.
    fn partitions_of(&self, topic: &str) -> Option<i32>;
    fn create_topic(&mut self, topic: &str, partitions: i32, settings: TopicSettings);
    /// Reads that bring back everything stored in one partition of `topic`, in log order
    /// (none if the partition is empty, offline or missing).
    fn load_reads(&self, topic: &str, partition: PartitionIndex) -> Vec<StorageRequest>;
    /// Issue read `slot` of a load; its completion comes back to the coordinator with the same
    /// slot. Slots are the coordinator's to number (it never reuses one).
    fn read_for_load(&mut self, request: StorageRequest, slot: usize);
}
