//! Snapshots (KIP-630): taking one and dropping the log behind it, serving one in chunks, and
//! installing one fetched from the leader.
//!
//! Safety properties, and how they are kept:
//! * **A snapshot holds only committed entries.** [`RaftNode::take_snapshot`] refuses an end
//!   offset above the high watermark, and an installed snapshot comes from the leader, whose
//!   snapshot obeyed the same rule. Since committed entries are the same on every node, so is
//!   the state a snapshot of a given end offset describes, whichever node made it.
//! * **The log starts where the snapshot ends**, and the epoch just below the start is the
//!   snapshot's (asserted in `RaftNode::invariants`), so fetch validation and votes compare a
//!   snapshotted log exactly as they would the full one.
//! * **An install only moves a follower forward**: a snapshot whose end is not past the
//!   follower's high watermark is dropped, never loaded over newer state.

use super::node::{RaftNode, Role};
use super::{Epoch, Message, NodeId, Output, Snapshot, SnapshotId, SnapshotResult};
use bytes::Bytes;

impl RaftNode {
    /// The state machine has applied every committed entry below `end_offset` and serialized
    /// its state as `data`: keep that as this node's snapshot and drop the log behind it.
    /// Any node may do this on its own schedule (Kafka's controllers snapshot after
    /// `metadata.log.max.record.bytes.between.snapshots`). Emits [`Output::SaveSnapshot`].
    ///
    /// Panics if `end_offset` is not committed or not past the current snapshot: the driver
    /// knows both (the [`Output::Committed`] it applied, and its last snapshot), so asking
    /// otherwise is a bug in the driver.
    pub fn take_snapshot(&mut self, end_offset: i64, data: Bytes) -> SnapshotId {
        assert!(
            end_offset <= self.high_watermark,
            "a snapshot at {end_offset} holds only committed entries (high watermark {})",
            self.high_watermark
        );
        assert!(
            end_offset > self.log.start(),
            "a snapshot at {end_offset} is newer than the log start {}",
            self.log.start()
        );
        let id = SnapshotId {
            end_offset,
            epoch: self.log.epoch_before(end_offset),
        };
        self.log.truncate_prefix(end_offset);
        let snapshot = Snapshot { id, data };
        self.snapshot = Some(snapshot.clone());
        self.outputs.push_back(Output::SaveSnapshot(snapshot));
        self.invariants();
        id
    }

    /// The leader said our fetch needs its snapshot `id`: download it from the start (or go on
    /// with a download of the same snapshot already under way).
    pub(super) fn start_snapshot_download(&mut self, leader: NodeId, id: SnapshotId) {
        if id.end_offset <= self.high_watermark || id.epoch > self.state.epoch {
            // Not ahead of what we hold, or from an epoch we have not seen: a stale answer,
            // which a correct leader does not send for a current fetch. Ask again later.
            return self.set_next_fetch();
        }
        if self.pending_snapshot.as_ref().map(|(p, _)| *p) != Some(id) {
            self.pending_snapshot = Some((id, Vec::new()));
        }
        self.send_fetch(leader);
    }

    /// FetchSnapshot on the leader: send the chunk at `position` of the snapshot asked for.
    pub(super) fn on_fetch_snapshot(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        fetch_id: u64,
        snapshot_id: SnapshotId,
        position: u64,
    ) {
        let current = self.state.epoch;
        let result = if !self.is_leader() || epoch != current {
            SnapshotResult::NotLeader
        } else {
            // A download in progress is a sign of life, as a fetch is (check-quorum).
            self.fetched_by(from, None);
            match &self.snapshot {
                Some(s) if s.id == snapshot_id && position <= s.data.len() as u64 => {
                    let size = s.data.len() as u64;
                    let end = (position + self.config.snapshot_chunk_bytes_max as u64).min(size);
                    let bytes = s.data.slice(position as usize..end as usize);
                    assert!(position + bytes.len() as u64 <= size);
                    SnapshotResult::Chunk {
                        snapshot_id,
                        size,
                        position,
                        bytes,
                    }
                }
                // A newer snapshot replaced it, or a position past its end.
                _ => SnapshotResult::NotFound,
            }
        };
        let leader = self.leader();
        self.send(
            from,
            Message::FetchSnapshotResponse {
                epoch: current,
                fetch_id,
                leader,
                result,
            },
        );
    }

    /// A chunk (or a refusal) from the leader: keep it, ask for the next, and install the
    /// snapshot when it is whole.
    pub(super) fn on_fetch_snapshot_response(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        fetch_id: u64,
        leader: Option<NodeId>,
        result: SnapshotResult,
    ) {
        if !self.answer_from_leader(from, epoch, fetch_id, leader) {
            return;
        }
        self.heard_from_leader();
        let (chunk_id, size, position, bytes) = match result {
            SnapshotResult::Chunk {
                snapshot_id,
                size,
                position,
                bytes,
            } => (snapshot_id, size, position, bytes),
            SnapshotResult::NotFound => {
                // The leader moved on to a newer snapshot: a plain fetch tells us which.
                self.pending_snapshot = None;
                return self.send_fetch(from);
            }
            SnapshotResult::NotLeader => {
                self.stop_fetching();
                self.role = Role::Unattached {
                    election_at: self.election_deadline(),
                };
                return;
            }
        };
        let Some((id, buf)) = &mut self.pending_snapshot else {
            return self.send_fetch(from);
        };
        let fits = position + bytes.len() as u64 <= size;
        if *id != chunk_id || position != buf.len() as u64 || !fits {
            // Not the chunk we asked for: start that snapshot over.
            self.pending_snapshot = None;
            return self.send_fetch(from);
        }
        buf.extend_from_slice(&bytes);
        if (buf.len() as u64) < size {
            if bytes.is_empty() {
                // A leader that sends nothing of what is left would loop us; start over.
                self.pending_snapshot = None;
            }
            return self.send_fetch(from);
        }
        let (id, buf) = self.pending_snapshot.take().expect("a download under way");
        assert_eq!(buf.len() as u64, size, "the snapshot is whole");
        self.install_snapshot(Snapshot {
            id,
            data: Bytes::from(buf),
        });
        self.send_fetch(from);
    }

    /// Replace the log and the state machine by the leader's snapshot (Kafka's
    /// `truncateToLatestSnapshot` on the follower): every entry below its end is committed.
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let id = snapshot.id;
        assert!(
            id.end_offset > self.high_watermark,
            "an installed snapshot moves the node forward"
        );
        assert!(
            id.epoch <= self.state.epoch,
            "no snapshot from a future epoch"
        );
        self.log.reset_to_snapshot(id.end_offset, id.epoch);
        self.snapshot = Some(snapshot.clone());
        self.outputs.push_back(Output::InstallSnapshot(snapshot));
        self.high_watermark = id.end_offset;
        self.outputs.push_back(Output::Committed {
            high_watermark: id.end_offset,
        });
        assert_eq!(self.log.end(), id.end_offset);
    }
}
