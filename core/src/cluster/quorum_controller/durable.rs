//! What a controller keeps on disk ([`Durable`]), as its quorum outputs leave it.

use crate::raft::{self, Entry, QuorumState, Snapshot};

/// What a controller has on disk, as its quorum outputs left it: Kafka's `quorum-state` file,
/// the latest `<endOffset>-<epoch>.checkpoint` snapshot, and the log segments after it. A
/// driver that performs each storage output durably before the next keeps exactly this; it is
/// what [`QuorumController::restore`] starts from. (The simulator keeps one per node; a real
/// driver keeps files.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub state: QuorumState,
    pub snapshot: Option<Snapshot>,
    /// The entries from the snapshot's end on (from 0 without a snapshot).
    pub log: Vec<Entry>,
}

impl Durable {
    /// The offset of the first entry of `log`.
    pub fn start(&self) -> i64 {
        self.snapshot.as_ref().map_or(0, |s| s.id.end_offset)
    }
    /// The offset after the last entry.
    pub fn end(&self) -> i64 {
        self.start() + self.log.len() as i64
    }

    /// Make one storage output durable (messages and commits change nothing on disk).
    pub fn perform(&mut self, o: &raft::Output) {
        match o {
            raft::Output::SaveQuorumState(s) => {
                assert!(
                    s.epoch >= self.state.epoch,
                    "the stored epoch never goes down"
                );
                self.state = s.clone();
            }
            raft::Output::Append {
                base_offset,
                entries,
            } => {
                assert_eq!(*base_offset, self.end(), "appends go at the end");
                self.log.extend(entries.iter().cloned());
            }
            raft::Output::Truncate { end_offset } => {
                assert!(*end_offset >= self.start() && *end_offset <= self.end());
                self.log.truncate((end_offset - self.start()) as usize);
            }
            raft::Output::SaveSnapshot(s) => {
                assert!(s.id.end_offset > self.start() && s.id.end_offset <= self.end());
                let behind = (s.id.end_offset - self.start()) as usize;
                self.log.drain(..behind);
                self.snapshot = Some(s.clone());
            }
            raft::Output::InstallSnapshot(s) => {
                self.log.clear();
                self.snapshot = Some(s.clone());
            }
            raft::Output::Send { .. } | raft::Output::Committed { .. } => {}
        }
    }
}
