//! What a node hands its broker: every image is a replay of a committed prefix (the [`image`]
//! checker's replay), and within one process life their offsets only grow, so a broker never
//! sees the metadata go back in time (it would un-create a topic, or hand a partition back to a
//! broker that lost it). A restarted node may start lower: its broker starts over too.
//!
//! [`image`]: super::image

use super::image::ImageReplay;
use super::Anomaly;
use gregor_core::cluster::MetadataImage;
use gregor_core::raft::{Entry, NodeId};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct ServedImages {
    replay: ImageReplay,
    /// By node: the process life and the offset of the last image handed over in it.
    last: BTreeMap<NodeId, (u64, i64)>,
    pub anomalies: Vec<Anomaly>,
}

impl ServedImages {
    /// Images compared with the replay.
    pub fn compared(&self) -> u64 {
        self.replay.compared
    }

    /// `node`, in process life `life`, handed `image` to its broker; `log` is the committed log.
    pub fn image_handed(&mut self, node: NodeId, life: u64, image: &MetadataImage, log: &[Entry]) {
        if let Some((l, offset)) = self.last.get(&node) {
            if *l == life && image.offset() <= *offset {
                self.anomalies.push(Anomaly {
                    kind: "served_images",
                    detail: format!(
                        "node {} handed its broker an image at offset {} after one at {offset}",
                        node.0,
                        image.offset()
                    ),
                });
            }
        }
        self.last.insert(node, (life, image.offset()));
        self.replay.image_seen(node, image, log);
        self.anomalies.append(&mut self.replay.anomalies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gregor_core::cluster::quorum_controller::replay;
    use gregor_core::cluster::{MetadataRecord, TopicId};
    use gregor_core::raft::{Epoch, Record};

    #[test]
    fn an_image_going_back_within_a_life_or_not_a_replay_is_caught() {
        let e = |r: &MetadataRecord| Entry {
            epoch: Epoch(1),
            record: Record::Data(Bytes::from(r.encode())),
        };
        let t = MetadataRecord::Topic {
            name: "t".into(),
            topic_id: TopicId([1; 16]),
        };
        let log = vec![e(&MetadataRecord::NoOp), e(&t)];
        let mut at0 = MetadataImage::new();
        replay(&mut at0, 0, &log[0]);
        let mut at1 = at0.clone();
        replay(&mut at1, 1, &log[1]);
        let mut c = ServedImages::default();
        c.image_handed(NodeId(1), 1, &at0, &log);
        c.image_handed(NodeId(1), 1, &at1, &log);
        c.image_handed(NodeId(1), 2, &at0, &log); // a restart starts over
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
        c.image_handed(NodeId(1), 2, &at0, &log);
        assert_eq!(c.anomalies.len(), 1, "the same offset twice in a life");
        assert_eq!(c.anomalies[0].kind, "served_images");
        let mut wrong = MetadataImage::new();
        wrong.replay(0, &t).unwrap();
        c.image_handed(NodeId(2), 1, &wrong, &log);
        assert_eq!(c.anomalies.len(), 2, "not a replay of the committed log");
        assert_eq!(c.compared(), 5);
    }
}
