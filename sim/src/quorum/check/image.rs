//! A node's metadata image is a fresh replay of a committed prefix. The checker replays the
//! committed log (as [`super::committed`] fixed it) from nothing, one offset at a time, and
//! compares each node's image, whenever it moves, with the replay at the same offset. An image
//! built any other way (a record applied twice, a snapshot that lost a fact, an uncommitted
//! record applied) differs somewhere.

use super::Anomaly;
use gregor_core::cluster::quorum_controller::replay;
use gregor_core::cluster::MetadataImage;
use gregor_core::raft::{Entry, NodeId};

pub struct ImageReplay {
    /// `replays[i]` is the image of the first `i` committed entries.
    replays: Vec<MetadataImage>,
    pub anomalies: Vec<Anomaly>,
    pub compared: u64,
}

impl Default for ImageReplay {
    fn default() -> ImageReplay {
        ImageReplay {
            replays: vec![MetadataImage::new()],
            anomalies: Vec::new(),
            compared: 0,
        }
    }
}

impl ImageReplay {
    /// `node`'s image, whose offset says how much of the log it covers; `log` is the committed
    /// log as far as known.
    pub fn image_seen(&mut self, node: NodeId, image: &MetadataImage, log: &[Entry]) {
        let covers = (image.offset() + 1) as usize;
        if covers > log.len() {
            self.anomalies.push(Anomaly {
                kind: "image",
                detail: format!(
                    "node {} has an image as of offset {}, past the committed log's end {}",
                    node.0,
                    image.offset(),
                    log.len()
                ),
            });
            return;
        }
        while self.replays.len() <= covers {
            let offset = self.replays.len() as i64 - 1;
            let mut next = self.replays.last().expect("never empty").clone();
            replay(&mut next, offset, &log[offset as usize]);
            self.replays.push(next);
        }
        self.compared += 1;
        if self.replays[covers] != *image {
            self.anomalies.push(Anomaly {
                kind: "image",
                detail: format!(
                    "node {}'s image at offset {} differs from a replay of the committed log: {:?} vs {:?}",
                    node.0,
                    image.offset(),
                    image,
                    self.replays[covers]
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gregor_core::cluster::{MetadataRecord, TopicId};
    use gregor_core::raft::{Epoch, Record};

    fn e(r: &MetadataRecord) -> Entry {
        Entry {
            epoch: Epoch(1),
            record: Record::Data(Bytes::from(r.encode())),
        }
    }

    #[test]
    fn an_image_with_a_fact_the_log_lacks_or_past_the_log_is_caught() {
        let t = MetadataRecord::Topic {
            name: "t".into(),
            topic_id: TopicId([1; 16]),
        };
        let log = vec![e(&MetadataRecord::NoOp), e(&t)];
        let mut c = ImageReplay::default();
        let mut good = MetadataImage::new();
        replay(&mut good, 0, &log[0]);
        c.image_seen(NodeId(1), &good, &log);
        replay(&mut good, 1, &log[1]);
        c.image_seen(NodeId(1), &good, &log);
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
        // An image that applied the topic a record early.
        let mut early = MetadataImage::new();
        early.replay(0, &t).unwrap();
        c.image_seen(NodeId(2), &early, &log);
        assert_eq!(c.anomalies.len(), 1);
        // An image ahead of everything committed.
        let mut ahead = good.clone();
        ahead.replay(2, &MetadataRecord::NoOp).unwrap();
        c.image_seen(NodeId(3), &ahead, &log);
        assert_eq!(c.anomalies.len(), 2);
    }
}
