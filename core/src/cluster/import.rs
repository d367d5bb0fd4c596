//! gregor's own migration: a standalone broker's topics into a new metadata log.
//!
//! Before the metadata quorum, `gregor serve` was a standalone broker: its topics lived only in
//! its data directory (`partition.meta` in each partition directory: the topic's name, its id,
//! its partition count and settings) and its producer ids in `broker.meta`. Now the same
//! command runs a one-voter KRaft quorum, and a KRaft broker keeps only the partitions the
//! metadata image names: at its first image it deletes the others as strays (KIP-858). So the
//! first start of such a directory must write its topics into the metadata log first, or the
//! upgrade would delete every topic.
//!
//! Kafka's own migration is KIP-866 (ZooKeeper to KRaft): controllers copy the ZooKeeper
//! metadata into the log while brokers still run in ZooKeeper mode, a dual-write phase keeps
//! both in step, and brokers are rolled over one at a time. Ours is much simpler: there is one
//! broker and no second source of truth to keep in step. When the metadata log is empty and the
//! data directory holds partitions, the node's controller writes, once, before the broker
//! serves anything:
//! * a TopicRecord per local topic, **with the topic id already on disk** (KIP-516: the id is
//!   what tells the broker its local partitions are the image's, not strays);
//! * a PartitionRecord per partition: this broker the only replica and in the ISR; the leader
//!   too if it is already unfenced, otherwise its heartbeat unfences it and the controller
//!   elects it then, as for any offline partition whose ISR holds a returning broker;
//! * a ConfigRecord per topic config that differs from the broker's default (the overrides);
//! * a ProducerIdsRecord moving the cluster's next producer id past every id the standalone
//!   broker handed out, so no new idempotent producer reuses an old producer's id.
//!
//! `__consumer_offsets` is a topic like the others here: imported with its partition count,
//! its committed offsets stay in its partitions and are read back when the broker becomes their
//! coordinator.

use super::records::{PartitionRecord, CONFIG_RESOURCE_TOPIC};
use super::TOPIC_CONFIGS;
use super::{BrokerEpoch, BrokerId, ControllerError, MetadataImage, MetadataRecord, TopicId};
use std::collections::BTreeMap;

/// One topic found in a standalone broker's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTopic {
    pub name: String,
    /// The id in its `partition.meta` files.
    pub topic_id: TopicId,
    pub partitions: i32,
    /// Its configs that differ from the broker's defaults.
    pub configs: BTreeMap<String, String>,
}

/// What a standalone broker's data directory holds, to import.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LocalTopics {
    pub topics: Vec<LocalTopic>,
    /// Producer ids below this may have been handed out (`broker.meta`).
    pub next_producer_id: i64,
}

impl LocalTopics {
    /// Whether there is anything to import.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.next_producer_id <= 0
    }
}

/// The records that import `local` into `image` for broker `broker`. A topic the image already
/// has under the same id is skipped (the import is idempotent); one it has under another id,
/// or with another name for the same id, is refused, and nothing is written.
pub fn records(
    image: &MetadataImage,
    broker: BrokerId,
    local: &LocalTopics,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let unfenced = image.broker(broker).is_some_and(|b| !b.fenced);
    let mut out = Vec::new();
    for t in &local.topics {
        crate::ids::validate_topic_name(&t.name).map_err(ControllerError::InvalidTopic)?;
        if t.partitions <= 0 {
            return Err(ControllerError::InvalidPartitions(t.partitions));
        }
        if let Some(bad) = t
            .configs
            .keys()
            .find(|k| !TOPIC_CONFIGS.contains(&k.as_str()))
        {
            return Err(ControllerError::InvalidConfig(format!(
                "topic {}: unknown topic config {bad}",
                t.name
            )));
        }
        match (image.topic_id(&t.name), image.topics().get(&t.topic_id)) {
            (Some(id), _) if id == t.topic_id => continue,
            (None, None) => {}
            _ => {
                return Err(ControllerError::TopicAlreadyExists(format!(
                    "{} (the metadata log has another topic under its name or id)",
                    t.name
                )))
            }
        }
        assert!(image.topic_id(&t.name).is_none() && !image.topics().contains_key(&t.topic_id));
        out.push(MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id: t.topic_id,
        });
        for p in 0..t.partitions {
            out.push(MetadataRecord::Partition(PartitionRecord {
                topic_id: t.topic_id,
                partition: p,
                replicas: vec![broker],
                isr: vec![broker],
                leader: unfenced.then_some(broker),
                leader_epoch: 0,
                partition_epoch: 0,
            }));
        }
        out.extend(t.configs.iter().map(|(k, v)| MetadataRecord::Config {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: t.name.clone(),
            name: k.clone(),
            value: Some(v.clone()),
        }));
    }
    // Every partition record names this broker alone, as replica, ISR and (unfenced) leader.
    assert!(out.iter().all(|r| match r {
        MetadataRecord::Partition(p) => p.replicas == [broker] && p.isr == [broker],
        _ => true,
    }));
    if local.next_producer_id > image.next_producer_id() {
        // Handed out by the standalone broker itself, before any registration: epoch -1.
        out.push(MetadataRecord::ProducerIds {
            broker_id: broker,
            broker_epoch: BrokerEpoch(-1),
            next_producer_id: local.next_producer_id,
        });
    }
    let blocks = out
        .iter()
        .filter(|r| matches!(r, MetadataRecord::ProducerIds { .. }));
    assert!(blocks.count() <= 1, "one producer-id record at most");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalTopics {
        LocalTopics {
            topics: vec![
                LocalTopic {
                    name: "orders".into(),
                    topic_id: TopicId([7; 16]),
                    partitions: 3,
                    configs: [("retention.ms".to_string(), "60000".to_string())].into(),
                },
                LocalTopic {
                    name: "__consumer_offsets".into(),
                    topic_id: TopicId([9; 16]),
                    partitions: 1,
                    configs: BTreeMap::new(),
                },
            ],
            next_producer_id: 2000,
        }
    }

    fn replayed(records: &[MetadataRecord]) -> MetadataImage {
        let mut image = MetadataImage::new();
        for (i, r) in records.iter().enumerate() {
            image.replay(i as i64, r).unwrap();
        }
        image
    }

    #[test]
    fn topics_keep_their_ids_counts_and_overrides() {
        let b = BrokerId(1);
        let records = records(&MetadataImage::new(), b, &local()).unwrap();
        let image = replayed(&records);
        let orders = image.topic_id("orders").unwrap();
        assert_eq!(orders, TopicId([7; 16]));
        let t = &image.topics()[&orders];
        assert_eq!(t.partitions.len(), 3);
        assert!(t
            .partitions
            .values()
            .all(|p| p.replicas == vec![b] && p.isr == vec![b] && p.leader.is_none()));
        assert_eq!(
            t.configs.get("retention.ms").map(String::as_str),
            Some("60000")
        );
        assert_eq!(image.topic_id("__consumer_offsets"), Some(TopicId([9; 16])));
        assert_eq!(image.next_producer_id(), 2000);
        // Again on the result: nothing more to write.
        let again = LocalTopics {
            next_producer_id: 0,
            ..local()
        };
        assert_eq!(super::records(&image, b, &again).unwrap(), vec![]);
    }

    #[test]
    fn a_clash_with_the_log_or_a_bad_topic_is_refused() {
        let b = BrokerId(1);
        let image = replayed(&records(&MetadataImage::new(), b, &local()).unwrap());
        let mut other_id = local();
        other_id.topics[0].topic_id = TopicId([8; 16]);
        assert!(matches!(
            records(&image, b, &other_id),
            Err(ControllerError::TopicAlreadyExists(_))
        ));
        let mut bad = local();
        bad.topics[0].configs.insert("nonsense".into(), "1".into());
        assert!(matches!(
            records(&MetadataImage::new(), b, &bad),
            Err(ControllerError::InvalidConfig(_))
        ));
        let mut empty = local();
        empty.topics[0].partitions = 0;
        assert!(records(&MetadataImage::new(), b, &empty).is_err());
    }
}
