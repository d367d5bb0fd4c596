//! One partition replica on this broker: its log, its ends and its fsync accounting.

use crate::config::Durability;
use crate::log::PartitionLog;
use crate::producer::ProducerStates;
use crate::time::Instant;

/// One partition's replica on this broker (with one broker, always the leader).
#[derive(Debug)]
pub struct Partition {
    pub log: PartitionLog,
    pub producers: ProducerStates,
    /// Every offset below this has been written (the write completed).
    pub written_end: i64,
    /// Every offset below this has been synced to stable storage.
    pub durable_end: i64,
    /// Consumers read below this; acks wait for it. Never moves backwards.
    pub high_watermark: i64,
    /// Bumped when the log is cut after a failed write; completions from before are stale.
    pub(crate) generation: u64,
    /// `cuts[g]`: where the log was cut back to when generation `g` ended. A write made in
    /// generation `g` ending at `end` survived iff every cut since left it whole.
    pub(crate) cuts: Vec<i64>,
    pub(crate) sync: Option<SyncInFlight>,
    /// Syncs issued so far: each sync's number, so a completion is matched to its own sync. (A
    /// late completion taken for a later sync's would move the high watermark past unsynced
    /// data: found by simulator seed 528.)
    pub(crate) syncs_issued: u64,
    /// The log end offset the last sync issued covers.
    pub(crate) sync_requested_end: i64,
    /// Since when records have been waiting for a sync (the interval policy).
    pub(crate) unsynced_since: Option<Instant>,
    /// Set when the partition's storage failed in a way it cannot recover from while running
    /// (a failed fsync: the page cache can no longer be trusted). Cleared by a restart.
    pub offline: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncInFlight {
    pub(crate) id: u64,
    pub(crate) remaining: usize,
    pub(crate) covers_end: i64,
}

impl Partition {
    pub(crate) fn new(log: PartitionLog, producers: ProducerStates) -> Partition {
        let end = log.log_end_offset();
        Partition {
            log,
            producers,
            written_end: end,
            durable_end: end,
            high_watermark: end,
            generation: 0,
            cuts: Vec::new(),
            sync: None,
            syncs_issued: 0,
            sync_requested_end: end,
            unsynced_since: None,
            offline: None,
        }
    }

    /// Whether a write made in generation `generation`, ending at `end`, is still in the log:
    /// no failed write since cut the log below its end.
    pub(crate) fn write_survives(&self, end: i64, generation: u64) -> bool {
        self.cuts
            .get(generation as usize..)
            .is_some_and(|cuts| cuts.iter().all(|&keep| keep >= end))
    }

    /// The end offset that the durability policy lets the broker acknowledge and expose.
    pub(crate) fn ack_end(&self, durability: Durability) -> i64 {
        match durability {
            Durability::GroupCommit => self.durable_end.min(self.written_end),
            Durability::None | Durability::Interval { .. } => self.written_end,
        }
    }
}
