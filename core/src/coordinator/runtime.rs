//! Writes waiting for durability, and how a coordinator's result is carried out.
//!
//! Kafka's `CoordinatorRuntime` keeps, per partition, the writes whose high watermark has not
//! come yet (its `DeferredEventQueue`, keyed by offset) and completes them from the partition's
//! high-watermark listener. [`PendingWrites`] is that table: waits are keyed by the partition
//! they wait on, and only the partitions whose ends moved in a step are looked at, so the work
//! per input does not grow with the number of waiting writes elsewhere.
//!
//! Safety properties, asserted in [`PendingWrites::invariants`]:
//! - every pending write is indexed under exactly one partition, its mark's;
//! - the table never holds more than its limit (`coordinator_writes_pending_max`): a write
//!   beyond it is refused before anything is appended;
//! - a write is released at most once, as durable or as lost, never both;
//! - a write with an answer to give has a deadline (Kafka's `offsets.commit.timeout.ms`):
//!   past it the answer is the error, and the write waits on answerless, to replay its records
//!   or undo its membership once settled.

use super::{Host, ReplyTo, WriteMark};
use crate::error::{ClientError, ErrorCode};
use crate::ids::{GenerationId, GroupId, PartitionIndex, TopicPartition};
use crate::io::{ConnId, LogLevel};
use crate::time::{Instant, TimerTable};
use kafka_protocol::messages::ResponseKind;
use std::collections::{BTreeMap, BTreeSet};

/// Where to answer, what to answer once the write is durable, what to answer if it is lost.
pub type Reply = (ReplyTo, ResponseKind, ResponseKind);

/// An internal write waiting to be durable: then its deferred records are replayed and `reply`
/// gets its `ok` response; if the write is lost first (failed and cut back, partition offline),
/// nothing is replayed and `reply` gets `err`.
#[derive(Debug)]
pub struct PendingWrite<R> {
    pub mark: WriteMark,
    pub reply: Option<Reply>,
    /// Records that take effect only once durable (committed offsets, as in Kafka).
    pub apply: Vec<R>,
    /// A group's membership record at this generation: if the write is lost, the group must
    /// rebalance (as Kafka's coordinator does), or it would stay on a record that was never
    /// written and every SyncGroup would fail forever (found by simulator seed 610).
    pub membership: Option<(GroupId, GenerationId)>,
}

/// The purgatory of internal writes, keyed by the partition they wait on.
#[derive(Debug)]
pub struct PendingWrites<R> {
    max: usize,
    next_id: u64,
    /// Every pending write by id; ids grow, so this is also the order writes were parked in,
    /// the order they are released in.
    writes: BTreeMap<u64, PendingWrite<R>>,
    by_partition: BTreeMap<TopicPartition, BTreeSet<u64>>,
    /// Partitions with writes parked since the last release: their marks may be durable
    /// already, without the partition moving again.
    fresh: BTreeSet<TopicPartition>,
    /// When each write that still has an answer to give must give it.
    deadlines: TimerTable<u64>,
}

impl<R> PendingWrites<R> {
    pub fn new(max: usize) -> Self {
        assert!(max > 0);
        PendingWrites {
            max,
            next_id: 0,
            writes: BTreeMap::new(),
            by_partition: BTreeMap::new(),
            fresh: BTreeSet::new(),
            deadlines: TimerTable::default(),
        }
    }
    pub fn len(&self) -> usize {
        self.writes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.writes.len() >= self.max
    }

    /// Park a write whose answer is due by `deadline`. Precondition: the table is not full
    /// (callers check [`Self::is_full`] before appending, so a refused write is never in the
    /// log).
    pub fn push(&mut self, write: PendingWrite<R>, deadline: Instant) {
        assert!(!self.is_full(), "pending internal writes over their limit");
        // A write waits for something: an answer to release, records to replay, or a
        // membership to undo if it is lost.
        assert!(write.reply.is_some() || !write.apply.is_empty() || write.membership.is_some());
        // A write of records ends after its first record; a pure wait (an OffsetFetch waiting
        // for what is already written to become durable) may wait on an empty partition (the
        // kafka_request fuzz target found that case).
        assert!(
            write.mark.end.0 > 0 || (write.apply.is_empty() && write.membership.is_none()),
            "a write ends after its first record"
        );
        assert!(write.mark.end.0 >= 0);
        let len_before = self.writes.len();
        let key = write.mark.partition.clone();
        let id = self.next_id;
        self.next_id += 1;
        self.fresh.insert(key.clone());
        if write.reply.is_some() {
            self.deadlines.set(id, deadline);
        }
        assert!(self.by_partition.entry(key).or_default().insert(id));
        assert!(self.writes.insert(id, write).is_none());
        assert_eq!(self.writes.len(), len_before + 1);
        assert!(self.writes.len() <= self.max);
    }

    /// A partition whose writes must be looked at in the next release even if it did not move
    /// (it went offline without a step touching it).
    pub fn recheck(&mut self, topic: &str, partition: i32) {
        let key = TopicPartition::new(topic, partition);
        if self.by_partition.contains_key(&key) {
            self.fresh.insert(key);
        }
    }

    /// The connection closed: its answers have nowhere to go, but what the writes replay still
    /// replays.
    pub fn forget_conn(&mut self, conn: ConnId) {
        let mut gone = Vec::new();
        for (id, w) in self.writes.iter_mut() {
            if w.reply.as_ref().is_some_and(|r| r.0.conn == conn) {
                w.reply = None;
                self.deadlines.stop(id);
            }
            if w.reply.is_none() && w.apply.is_empty() {
                gone.push(*id);
            }
        }
        for id in gone {
            self.remove(id);
        }
        // Postcondition: no answer is left for the closed connection.
        assert!(self
            .writes
            .values()
            .all(|w| w.reply.as_ref().is_none_or(|r| r.0.conn != conn)));
    }

    /// Take every write waiting on `partition`, in the order they were parked: the coordinator
    /// resigned that partition (Kafka's runtime fails its deferred events then), so none of
    /// them is released or replayed here any more.
    pub fn take_partition(&mut self, partition: &TopicPartition) -> Vec<PendingWrite<R>> {
        let ids = self
            .by_partition
            .get(partition)
            .cloned()
            .unwrap_or_default();
        let taken: Vec<PendingWrite<R>> = ids.into_iter().map(|id| self.remove(id)).collect();
        self.fresh.remove(partition);
        // Postcondition: nothing waits on the partition any more.
        assert!(!self.by_partition.contains_key(partition));
        assert!(self.writes.values().all(|w| &w.mark.partition != partition));
        taken
    }

    /// The earliest deadline of a write still owing an answer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// The answers of the writes whose deadline passed by `now` (Kafka fails a coordinator
    /// write after `offsets.commit.timeout.ms`): each write's error reply is taken out for the
    /// caller to send. A write that has records to replay or a membership to undo once settled
    /// stays parked without an answer; one with nothing else to do is dropped.
    pub fn take_timed_out(&mut self, now: Instant) -> Vec<Reply> {
        let expired: Vec<u64> = self.deadlines.expired(now).copied().collect();
        let mut replies = Vec::with_capacity(expired.len());
        for id in expired {
            self.deadlines.stop(&id);
            let w = self
                .writes
                .get_mut(&id)
                .expect("a deadline names a parked write");
            replies.extend(w.reply.take());
            if w.apply.is_empty() && w.membership.is_none() {
                self.remove(id);
            }
        }
        // Postcondition: nothing left owes an answer past `now`.
        assert!(self.deadlines.next().is_none_or(|d| d > now));
        replies
    }

    fn remove(&mut self, id: u64) -> PendingWrite<R> {
        self.deadlines.stop(&id);
        let w = self.writes.remove(&id).expect("pending write indexed");
        let key = &w.mark.partition;
        let ids = self
            .by_partition
            .get_mut(key)
            .expect("indexed by partition");
        assert!(ids.remove(&id), "pending write under its own partition");
        if ids.is_empty() {
            self.by_partition.remove(key);
        }
        assert!(
            !self.writes.contains_key(&id),
            "a write is released at most once"
        );
        w
    }

    /// Take the writes of `moved` partitions (and of partitions with fresh writes) that are
    /// settled: `settled(mark)` says `Some(true)` once durable, `Some(false)` once lost, `None`
    /// while still waiting. Returned in the order they were parked.
    pub fn take_settled(
        &mut self,
        moved: impl IntoIterator<Item = TopicPartition>,
        mut settled: impl FnMut(&WriteMark) -> Option<bool>,
    ) -> Vec<(PendingWrite<R>, bool)> {
        let mut keys = std::mem::take(&mut self.fresh);
        keys.extend(moved);
        let mut done = BTreeMap::new();
        for key in &keys {
            let Some(ids) = self.by_partition.get(key) else {
                continue;
            };
            for id in ids {
                if let Some(ok) = settled(&self.writes[id].mark) {
                    done.insert(*id, ok);
                }
            }
        }
        let len_before = self.writes.len();
        let settled: Vec<(PendingWrite<R>, bool)> = done
            .into_iter()
            .map(|(id, ok)| (self.remove(id), ok))
            .collect();
        assert_eq!(self.writes.len() + settled.len(), len_before);
        assert!(self.fresh.is_empty(), "every fresh partition was looked at");
        settled
    }

    pub fn invariants(&self) {
        assert!(
            self.writes.len() <= self.max,
            "pending writes over their limit"
        );
        self.deadlines.invariants();
        assert!(
            self.deadlines.len() <= self.writes.len(),
            "a deadline per answer"
        );
        let indexed: usize = self.by_partition.values().map(|ids| ids.len()).sum();
        assert_eq!(
            indexed,
            self.writes.len(),
            "every pending write indexed once"
        );
        for (key, ids) in &self.by_partition {
            assert!(!ids.is_empty(), "no empty partition entries");
            for id in ids {
                let w = &self.writes[id];
                assert_eq!(&w.mark.partition, key);
                assert!(*id < self.next_id);
                // A write with nothing to release or replay would never be looked for.
                assert!(w.reply.is_some() || !w.apply.is_empty() || w.membership.is_some());
                // A write owes its answer by a deadline, and only then has one.
                assert_eq!(w.reply.is_some(), self.deadlines.get(id).is_some());
            }
        }
    }
}

/// Carry out a coordinator's result (Kafka's `CoordinatorResult(records, response)`): append
/// `batch` (the encoded records) to `topic`-`partition`, then park the write so that `apply`
/// is replayed and `reply` released once it is durable. If the write cannot be taken (the
/// partition is offline, the disk refused it, or too many writes wait already), nothing is
/// appended or replayed, the error is logged and `reply` gets its error response at once; the
/// caller learns it from the `Err` (a group then rebalances away from an unwritten generation).
pub fn write<R>(
    host: &mut dyn Host<R>,
    topic: &str,
    partition: PartitionIndex,
    batch: bytes::Bytes,
    apply: Vec<R>,
    reply: Option<Reply>,
    membership: Option<(GroupId, GenerationId)>,
) -> Result<WriteMark, ClientError> {
    assert!(!batch.is_empty(), "a write carries a batch");
    let waits = reply.is_some() || !apply.is_empty() || membership.is_some();
    let result = if waits && host.parking_full() {
        Err(ClientError::new(
            ErrorCode::COORDINATOR_NOT_AVAILABLE,
            format!(
                "{} internal writes already wait for durability (coordinator_writes_pending_max)",
                host.config().coordinator_writes_pending_max
            ),
        ))
    } else {
        host.append(topic, partition, batch)
    };
    match result {
        Ok(mark) => {
            assert_eq!(mark.partition, TopicPartition::new(topic, partition));
            if waits {
                host.park(PendingWrite {
                    mark: mark.clone(),
                    reply,
                    apply,
                    membership,
                });
            }
            Ok(mark)
        }
        Err(refused) => {
            host.log(
                LogLevel::Error,
                format!("writing to {topic}-{partition} failed: {refused}"),
            );
            if let Some((to, _, err)) = reply {
                host.respond(to, Some(err));
            }
            Err(refused)
        }
    }
}
