//! Every node's broker is registered and unfenced by the end of the liveness phase: once a
//! majority of the quorum can talk, a broker (the one inside a combined node as much as a
//! broker-only one) registers, replays the log up to its own registration, and is unfenced.
//! Both sides must agree: the node's lifecycle says Unfenced with some broker epoch, and the
//! image it serves has that broker registered with that epoch, not fenced.

use super::Anomaly;
use gregor_core::cluster::lifecycle::BrokerState;
use gregor_core::cluster::{BrokerId, MetadataImage};
use gregor_core::raft::NodeId;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Registered {
    /// By node: what was last seen, as a complaint, or none when it was registered and unfenced.
    last: BTreeMap<NodeId, Option<String>>,
}

impl Registered {
    /// `node` (broker id = node id) after a step in the liveness phase.
    pub fn seen(&mut self, node: NodeId, state: BrokerState, image: &MetadataImage) {
        let complaint = match state {
            BrokerState::Unfenced { epoch } => match image.broker(BrokerId(node.0)) {
                Some(r) if r.broker_epoch == epoch && !r.fenced => None,
                other => Some(format!(
                    "unfenced as epoch {} but its image (offset {}) has {:?}",
                    epoch.0,
                    image.offset(),
                    other.map(|r| (r.broker_epoch.0, r.fenced))
                )),
            },
            other => Some(format!("its lifecycle is {other:?}")),
        };
        self.last.insert(node, complaint);
    }

    /// The verdict at the end of the run over the nodes that should be registered.
    pub fn finish(&self, nodes: &[NodeId]) -> Vec<Anomaly> {
        nodes
            .iter()
            .filter_map(|n| {
                let why = match self.last.get(n) {
                    None => "never seen in the liveness phase".to_string(),
                    Some(None) => return None,
                    Some(Some(why)) => why.clone(),
                };
                Some(Anomaly {
                    kind: "registered",
                    detail: format!("node {}'s broker at the end of the run: {why}", n.0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::cluster::{BrokerEpoch, MetadataRecord, RegisterBroker};

    #[test]
    fn a_broker_left_fenced_or_disagreeing_with_its_image_is_caught() {
        let mut image = MetadataImage::new();
        let reg = RegisterBroker {
            broker_id: BrokerId(1),
            incarnation_id: [1; 16],
            broker_epoch: BrokerEpoch(0),
            endpoints: Vec::new(),
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
        };
        image
            .replay(0, &MetadataRecord::RegisterBroker(reg))
            .unwrap();
        let ok = BrokerState::Unfenced {
            epoch: BrokerEpoch(0),
        };
        let mut c = Registered::default();
        c.seen(NodeId(1), ok, &image);
        assert!(c.finish(&[NodeId(1)]).is_empty());
        assert_eq!(c.finish(&[NodeId(1), NodeId(2)]).len(), 1, "node 2 unseen");
        c.seen(NodeId(1), BrokerState::Starting, &image);
        assert_eq!(c.finish(&[NodeId(1)]).len(), 1, "still registering");
        let stale = BrokerState::Unfenced {
            epoch: BrokerEpoch(5),
        };
        c.seen(NodeId(1), stale, &image);
        assert_eq!(c.finish(&[NodeId(1)])[0].kind, "registered");
    }
}
