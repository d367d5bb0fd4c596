//! The recorded history: every operation a simulated client invoked, its outcome, and the
//! faults that happened, each with its simulated time. Checkers read only this; they never look
//! inside the broker. That separation is what lets a checker be tested on its own, by feeding it
//! a hand-made history with one anomaly planted (see `check`'s tests).

/// Simulated milliseconds since the start of the run.
pub type Ms = u64;

/// A record's value: unique across the whole run, so any observation names exactly one write.
pub type Value = u64;

/// Which partition (topic `t`, partition index).
pub type Part = i32;

/// What a producer's write attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at this base offset (records at base, base+1, ...).
    Ok { base_offset: i64 },
    /// Definitely not written (the broker refused the batch).
    Fail { code: i16 },
    /// May or may not have been written (timeout, connection lost, storage error).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A producer sends `values` to `part`. `attempt` > 0 marks a retry of the same values.
    Send {
        t: Ms,
        producer: usize,
        part: Part,
        values: Vec<Value>,
        acks: i16,
        idempotent: bool,
        attempt: u32,
        /// Each record's timestamp (CreateTime), one per value, the same in every attempt.
        timestamps_ms: Vec<i64>,
    },
    /// The outcome of the producer's outstanding send of `values`.
    SendDone {
        t: Ms,
        producer: usize,
        part: Part,
        values: Vec<Value>,
        outcome: Outcome,
    },
    /// A consumer's fetch returned these (offset, value) records, in order. `session` numbers the
    /// consumer's position: it changes whenever the consumer explicitly resets its position.
    Poll {
        t: Ms,
        reader: usize,
        session: u32,
        part: Part,
        records: Vec<(i64, Value)>,
    },
    /// The broker process died. `power_loss`: the machine too (unsynced writes lost).
    Crash { t: Ms, power_loss: bool },
    /// The broker started again; per partition, the log end offset recovery found.
    Restart { t: Ms, log_ends: Vec<(Part, i64)> },
    /// The auditor's complete read of each partition at the end of the liveness phase, from the
    /// log start offset it found (retention may have deleted what was below it).
    Final {
        part: Part,
        log_start: i64,
        records: Vec<(i64, Value)>,
    },
    // ---- log start, retention and ListOffsets
    /// One partition of a reader's fetch, sent at `sent`, answered at `t`: the offset asked for,
    /// the error code, and the log start offset and high watermark the broker reported.
    Fetched {
        t: Ms,
        sent: Ms,
        reader: usize,
        part: Part,
        offset: i64,
        error: i16,
        log_start: i64,
        high_watermark: i64,
    },
    /// A ListOffsets answer: `spec` is −2 (earliest), −1 (latest) or a timestamp in ms; the
    /// broker answered `offset` (−1: no record at or after the timestamp).
    Offsets {
        t: Ms,
        sent: Ms,
        reader: usize,
        part: Part,
        spec: i64,
        offset: i64,
    },
    /// A consumer reset its position in `part` (`auto.offset.reset`, after OFFSET_OUT_OF_RANGE)
    /// to `offset`, the ListOffsets earliest or latest answer; its reads from there on are
    /// `session`.
    Reset {
        t: Ms,
        reader: usize,
        part: Part,
        session: u32,
        offset: i64,
    },
    /// A DeleteRecords (KIP-107) of `part`, sent at `sent`, acknowledged at `t`: the partition's
    /// log start (low watermark) is now `low_watermark`, and nothing below it may be served.
    RecordsDeleted {
        t: Ms,
        sent: Ms,
        reader: usize,
        part: Part,
        low_watermark: i64,
    },
    // ---- consumer groups
    /// A group member was handed `parts` for `generation` (SyncGroup answered).
    Assigned {
        t: Ms,
        group: usize,
        member: usize,
        generation: i32,
        parts: Vec<Part>,
    },
    /// A group member gave up `parts`: it revoked them (a cooperative member whose new
    /// assignment lacks them; an eager member, all of them, as it rejoins; a member leaving), or
    /// lost them (`lost`: it crashed, or learned it was no longer a member). Its ownership of
    /// them, begun by an `Assigned`, ends here.
    Revoked {
        t: Ms,
        group: usize,
        member: usize,
        parts: Vec<Part>,
        lost: bool,
    },
    /// A group member processed one record (handed it to the application).
    Processed {
        t: Ms,
        group: usize,
        member: usize,
        generation: i32,
        part: Part,
        offset: i64,
        value: Value,
    },
    /// A group member's OffsetCommit was sent (at `sent`) and acknowledged (at `t`).
    Committed {
        t: Ms,
        sent: Ms,
        group: usize,
        member: usize,
        generation: i32,
        part: Part,
        offset: i64,
    },
    /// A group member's OffsetFetch, sent at `sent`, answered `offset` (-1: none) at `t`.
    CommittedRead {
        t: Ms,
        sent: Ms,
        group: usize,
        member: usize,
        part: Part,
        offset: i64,
    },
    // ---- fetch limits
    /// A fetch over several partitions asked for at most `max_bytes` in all (the top-level
    /// limit, a consumer's `fetch.max.bytes`); the response carried `total` bytes of records,
    /// of which the first batch was `first_batch` bytes.
    FetchBytes {
        t: Ms,
        reader: usize,
        max_bytes: i32,
        total: u64,
        first_batch: u64,
    },
}

impl Event {
    pub fn time(&self) -> Ms {
        match self {
            Event::Send { t, .. }
            | Event::SendDone { t, .. }
            | Event::Poll { t, .. }
            | Event::Crash { t, .. }
            | Event::Restart { t, .. }
            | Event::Assigned { t, .. }
            | Event::Revoked { t, .. }
            | Event::Processed { t, .. }
            | Event::Committed { t, .. }
            | Event::CommittedRead { t, .. }
            | Event::FetchBytes { t, .. }
            | Event::Fetched { t, .. }
            | Event::Offsets { t, .. }
            | Event::Reset { t, .. }
            | Event::RecordsDeleted { t, .. } => *t,
            Event::Final { .. } => Ms::MAX,
        }
    }
}

/// What a group promises about delivery, by when it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// Commit after processing: at-least-once (never skip, may repeat).
    AfterProcessing,
    /// Commit before processing: at-most-once (never repeat, may skip).
    BeforeProcessing,
}

/// One record of the compacted topic: (offset, key, value; `None` is a tombstone).
pub type KeyedRecord = (i64, Vec<u8>, Option<Vec<u8>>);

/// One write to the compacted topic, where nobody knows its offset: (key, value).
pub type KeyedWrite = (Vec<u8>, Option<Vec<u8>>);

/// The compacted topic's history (`clients::keyed`; judged by `check::compaction`). Its records
/// carry keys and may be removed by the cleaner, so they are kept apart from the events of the
/// main topic, whose checkers expect every acknowledged record to stay readable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Writes the broker acknowledged, each at its offset.
    pub acked: Vec<KeyedRecord>,
    /// Writes whose outcome is unknown (a timeout, a lost connection, a storage error), as
    /// (key, value): each may or may not be in the log, at an offset nobody was told.
    pub unknown: Vec<KeyedWrite>,
    /// The final read of the partition from its start to its high watermark, after faults
    /// healed; `None` if it never finished (a liveness failure of its own).
    pub read: Option<Vec<KeyedRecord>>,
    /// `delete.retention.ms` is shorter than the run: a tombstone may be gone by the final read.
    pub tombstones_may_expire: bool,
}

/// Everything a checker needs besides the events.
#[derive(Clone, Debug)]
pub struct History {
    pub events: Vec<Event>,
    /// Whether the durability policy promises acknowledged records survive power loss.
    pub acks_survive_power_loss: bool,
    /// Each group's commit mode, by group index.
    pub groups: Vec<CommitMode>,
    /// The compacted topic's writes and final read, in seeds that run one.
    pub compacted: Option<Compacted>,
}

impl History {
    pub fn new(acks_survive_power_loss: bool) -> History {
        History {
            events: Vec::new(),
            acks_survive_power_loss,
            groups: Vec::new(),
            compacted: None,
        }
    }
}
