//! Committed entries are never lost or changed. The checker keeps the one log every node's
//! committed prefix must be a prefix of: the first node to commit an offset fixes the entry
//! there; every later commit of that offset, by any node, in any epoch, after any restart, must
//! carry the same entry. A node whose log starts at a snapshot is held to it too: the snapshot
//! ends where the log says, with the epoch the log has there.

use super::Anomaly;
use gregor_core::raft::{Entry, NodeId, SnapshotId};

#[derive(Default)]
pub struct Committed {
    /// The committed log as first seen, offset by offset from 0.
    log: Vec<Entry>,
    /// Snapshot ends seen before the entries they cover were (checked once they are).
    snapshots: Vec<(NodeId, SnapshotId)>,
    pub anomalies: Vec<Anomaly>,
}

impl Committed {
    /// The committed log as far as any node has committed it.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// `node` committed `entry` at `offset` (it was in its log when its high watermark passed it).
    pub fn entry_committed(&mut self, node: NodeId, offset: i64, entry: &Entry) {
        let at = offset as usize;
        if at < self.log.len() {
            if self.log[at] != *entry {
                self.anomalies.push(Anomaly {
                    kind: "committed",
                    detail: format!(
                        "node {} committed {:?} at {offset}, where {:?} was committed before",
                        node.0, entry, self.log[at]
                    ),
                });
            }
        } else if at == self.log.len() {
            self.log.push(entry.clone());
            self.recheck_snapshots();
        } else {
            self.anomalies.push(Anomaly {
                kind: "committed",
                detail: format!(
                    "node {} committed offset {offset} but nothing below {} was ever committed",
                    node.0,
                    self.log.len()
                ),
            });
        }
    }

    /// `node` holds snapshot `id` (taken or installed): everything below its end is committed.
    pub fn snapshot_seen(&mut self, node: NodeId, id: SnapshotId) {
        self.snapshots.push((node, id));
        self.recheck_snapshots();
    }

    fn recheck_snapshots(&mut self) {
        let log = &self.log;
        let mut keep = Vec::new();
        for (node, id) in self.snapshots.drain(..) {
            if id.end_offset as usize > log.len() {
                keep.push((node, id));
                continue;
            }
            let epoch = log[id.end_offset as usize - 1].epoch;
            if epoch != id.epoch {
                self.anomalies.push(Anomaly {
                    kind: "committed",
                    detail: format!(
                        "node {} has snapshot {:?}, but the committed entry at {} has epoch {}",
                        node.0,
                        id,
                        id.end_offset - 1,
                        epoch.0
                    ),
                });
            }
        }
        self.snapshots = keep;
    }

    /// At the end: a snapshot past every commit ever seen claims entries nobody committed.
    pub fn finish(&mut self) {
        for (node, id) in std::mem::take(&mut self.snapshots) {
            self.anomalies.push(Anomaly {
                kind: "committed",
                detail: format!(
                    "node {} has snapshot {:?} past the committed log's end {}",
                    node.0,
                    id,
                    self.log.len()
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gregor_core::raft::{Epoch, Record};

    fn e(epoch: i32, b: &'static str) -> Entry {
        Entry {
            epoch: Epoch(epoch),
            record: Record::Data(Bytes::from_static(b.as_bytes())),
        }
    }

    #[test]
    fn a_changed_or_skipped_committed_entry_and_a_wrong_snapshot_are_caught() {
        let mut c = Committed::default();
        c.entry_committed(NodeId(1), 0, &e(1, "a"));
        c.entry_committed(NodeId(1), 1, &e(1, "b"));
        c.entry_committed(NodeId(2), 0, &e(1, "a"));
        c.snapshot_seen(
            NodeId(3),
            SnapshotId {
                end_offset: 2,
                epoch: Epoch(1),
            },
        );
        c.finish();
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
        // A node whose committed offset 1 differs: lost and replaced after a failover.
        c.entry_committed(NodeId(3), 1, &e(2, "x"));
        assert_eq!(c.anomalies.len(), 1);
        c.entry_committed(NodeId(3), 5, &e(2, "x"));
        assert_eq!(c.anomalies.len(), 2, "a gap");
        c.snapshot_seen(
            NodeId(2),
            SnapshotId {
                end_offset: 2,
                epoch: Epoch(2),
            },
        );
        assert_eq!(c.anomalies.len(), 3, "a snapshot of another history");
        c.snapshot_seen(
            NodeId(2),
            SnapshotId {
                end_offset: 9,
                epoch: Epoch(2),
            },
        );
        c.finish();
        assert_eq!(c.anomalies.len(), 4, "a snapshot past every commit");
    }
}
