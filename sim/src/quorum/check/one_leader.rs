//! At most one leader per quorum epoch (Raft's Election Safety; KIP-595 keeps it by persisting
//! each vote before answering). Fed every (epoch, node) seen leading, after every step.

use super::Anomaly;
use gregor_core::raft::{Epoch, NodeId};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct OneLeader {
    leaders: BTreeMap<Epoch, NodeId>,
    pub anomalies: Vec<Anomaly>,
}

impl OneLeader {
    /// `node` leads `epoch` (as of now).
    pub fn leader_seen(&mut self, epoch: Epoch, node: NodeId) {
        let first = *self.leaders.entry(epoch).or_insert(node);
        if first != node {
            self.anomalies.push(Anomaly {
                kind: "one_leader",
                detail: format!("epoch {} led by {} and by {}", epoch.0, first.0, node.0),
            });
        }
    }

    /// How many epochs had a leader.
    pub fn epochs_led(&self) -> usize {
        self.leaders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leaders_in_one_epoch_are_caught_and_one_per_epoch_is_not() {
        let mut c = OneLeader::default();
        c.leader_seen(Epoch(1), NodeId(1));
        c.leader_seen(Epoch(1), NodeId(1));
        c.leader_seen(Epoch(2), NodeId(2));
        assert!(c.anomalies.is_empty());
        c.leader_seen(Epoch(2), NodeId(3));
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        assert!(c.anomalies[0].detail.contains("epoch 2"));
    }
}
