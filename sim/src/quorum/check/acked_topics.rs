//! A topic whose creation was acknowledged to the client is in every later image: the
//! controller answers CreateTopics only once the topic's records are committed, and committed
//! records are never lost, so from the offset the answer came at, every image at or past it
//! holds the topic (same name, same id) until the client itself asks to delete it.

use super::Anomaly;
use gregor_core::cluster::{MetadataImage, TopicId};
use gregor_core::raft::NodeId;
use gregor_core::time::Instant;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct AckedTopics {
    /// By name: the id acknowledged, and the offset the acknowledging node had committed to.
    acked: BTreeMap<String, (TopicId, i64)>,
    /// Names the client has asked to delete (from then on, the topic may go).
    deleting: BTreeMap<String, Instant>,
    pub anomalies: Vec<Anomaly>,
}

impl AckedTopics {
    /// The client was told topic `name` was created as `id` by a node that had committed every
    /// offset below `committed`.
    pub fn create_acked(&mut self, name: &str, id: TopicId, committed: i64) {
        self.deleting.remove(name);
        self.acked.insert(name.to_string(), (id, committed));
    }

    /// The client asked to delete `name` (whatever the answer, it may have happened).
    pub fn delete_invoked(&mut self, name: &str, at: Instant) {
        self.deleting.entry(name.to_string()).or_insert(at);
    }

    /// `node`'s image, observed at `at`.
    pub fn image_seen(&mut self, node: NodeId, image: &MetadataImage) {
        for (name, (id, committed)) in &self.acked {
            if image.offset() + 1 < *committed || self.deleting.contains_key(name) {
                continue;
            }
            if image.topic_id(name) != Some(*id) {
                self.anomalies.push(Anomaly {
                    kind: "acked_topics",
                    detail: format!(
                        "topic {name} was acknowledged (committed below {committed}) but node {}'s image at offset {} has {:?}",
                        node.0,
                        image.offset(),
                        image.topic_id(name)
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::cluster::MetadataRecord;

    #[test]
    fn an_acknowledged_topic_missing_from_a_later_image_is_caught() {
        let id = TopicId([7; 16]);
        let mut with = MetadataImage::new();
        with.replay(0, &MetadataRecord::NoOp).unwrap();
        with.replay(
            1,
            &MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
        )
        .unwrap();
        let mut without = MetadataImage::new();
        without.replay(0, &MetadataRecord::NoOp).unwrap();
        let mut c = AckedTopics::default();
        c.create_acked("t", id, 2);
        c.image_seen(NodeId(1), &with);
        c.image_seen(NodeId(2), &without);
        assert!(
            c.anomalies.is_empty(),
            "an image older than the ack may lack it"
        );
        let mut lost = without.clone();
        lost.replay(1, &MetadataRecord::NoOp).unwrap();
        c.image_seen(NodeId(2), &lost);
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        c.delete_invoked("t", Instant::from_unix_ms(5));
        c.image_seen(NodeId(2), &lost);
        assert_eq!(c.anomalies.len(), 1, "the client asked for it to go");
    }
}
