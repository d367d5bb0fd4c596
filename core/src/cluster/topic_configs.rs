//! The active controller's decision on a topic config change (Kafka's
//! `ConfigurationControlManager.incrementalAlterConfigs`; KIP-339 for the API, KIP-500 for
//! configs living in the metadata log).
//!
//! In a KRaft cluster a topic's config overrides (`retention.ms`, `min.insync.replicas`, ...)
//! are ConfigRecords in the metadata log, not files on one broker: the controller writes them,
//! and every broker replays them into its image and applies them to the partitions it hosts.
//! A change therefore goes through the controller like a topic creation does: a broker that
//! takes an IncrementalAlterConfigs (or the older AlterConfigs, which it turns into the same
//! set-and-delete changes) forwards it, one topic per request, and answers its client once the
//! records are committed.
//!
//! The checks, each with Kafka's error code:
//! * the topic exists (UNKNOWN_TOPIC_OR_PARTITION);
//! * no key is named twice (INVALID_REQUEST);
//! * every key is one the brokers know ([`TOPIC_CONFIGS`]), and the replication configs have
//!   legal values ([`replication::validate_config`]): INVALID_CONFIG. As at creation, the
//!   broker that forwards the request checks the other values (it knows what its log settings
//!   accept); the controller checks names.
//!
//! A SET to the value already set, or a DELETE of a key not set, writes nothing: the answer
//! still waits for everything written before it to commit, so the client reads its change.
//!
//! Setting `unclean.leader.election.enable` to true also elects, in the same batch, a leader
//! for each of the topic's offline partitions that has a live replica
//! ([`replication::unclean_enabled`]): that is why an operator sets it.

use super::controller::TOPIC_CONFIGS;
use super::error::ControllerError;
use super::records::CONFIG_RESOURCE_TOPIC;
use super::replication;
use super::{MetadataImage, MetadataRecord};
use std::collections::BTreeSet;

/// A topic's config changes, in order: a key set to `Some` value, or deleted (`None`).
pub type ConfigChanges = Vec<(String, Option<String>)>;

/// The ConfigRecords that make topic `name`'s overrides follow `changes` (`None`: delete the
/// override), or why the change is refused (nothing is written then).
pub fn alter(
    image: &MetadataImage,
    name: &str,
    changes: &[(String, Option<String>)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topic_id(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    let mut seen = BTreeSet::new();
    if let Some((k, _)) = changes.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(ControllerError::InvalidRequest(format!(
            "config {k} appears twice for topic {name}"
        )));
    }
    for (k, v) in changes {
        if !TOPIC_CONFIGS.contains(&k.as_str()) {
            return Err(ControllerError::InvalidConfig(format!(
                "unknown topic config {k}"
            )));
        }
        if let Some(v) = v {
            replication::validate_config(k, v)?;
        }
    }
    assert!(changes
        .iter()
        .all(|(k, _)| TOPIC_CONFIGS.contains(&k.as_str())));
    let records: Vec<MetadataRecord> = changes
        .iter()
        .filter(|(k, v)| image.topic_config(topic, k) != v.as_deref())
        .map(|(k, v)| MetadataRecord::Config {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: name.to_string(),
            name: k.clone(),
            value: v.clone(),
        })
        .collect();
    // Postcondition: one record per key that changes, none for a key left as it is.
    assert!(records.len() <= changes.len());
    for r in &records {
        let MetadataRecord::Config {
            resource_type,
            resource_name,
            name: key,
            value,
        } = r
        else {
            unreachable!("only ConfigRecords are written")
        };
        assert_eq!(*resource_type, CONFIG_RESOURCE_TOPIC);
        assert_eq!(resource_name, name, "the topic asked about");
        assert_ne!(image.topic_config(topic, key), value.as_deref(), "a change");
    }
    // Turning unclean leader election on elects the topic's offline partitions in the same
    // batch, so the operator's way out works when the change is acknowledged.
    let mut records = records;
    if !replication::unclean_allowed(image, topic) {
        let mut staged = image.clone();
        staged.stage(&records);
        if replication::unclean_allowed(&staged, topic) {
            records.extend(replication::unclean_enabled(&staged, topic));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::TopicId;

    fn image_with_topic() -> MetadataImage {
        let mut image = MetadataImage::new();
        let topic_id = TopicId([7; 16]);
        let records = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
            },
            MetadataRecord::Config {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
        ];
        for (i, r) in records.iter().enumerate() {
            image.replay(i as i64, r).expect("fits");
        }
        image
    }

    fn set(k: &str, v: &str) -> (String, Option<String>) {
        (k.to_string(), Some(v.to_string()))
    }

    #[test]
    fn sets_and_deletes_become_config_records_and_unchanged_keys_write_nothing() {
        let image = image_with_topic();
        let changes = vec![
            set("min.insync.replicas", "2"),
            ("retention.ms".to_string(), None),
            ("segment.ms".to_string(), None),
        ];
        let records = alter(&image, "t", &changes).expect("legal");
        assert_eq!(
            records.len(),
            2,
            "segment.ms was not set: nothing to delete"
        );
        assert!(
            matches!(&records[1], MetadataRecord::Config { name, value: None, .. }
            if name == "retention.ms")
        );
        let same = alter(&image, "t", &[set("retention.ms", "1000")]).expect("legal");
        assert!(same.is_empty(), "the value already set");
    }

    #[test]
    fn refusals_carry_kafkas_codes() {
        let image = image_with_topic();
        let code = |name: &str, changes: &[(String, Option<String>)]| {
            alter(&image, name, changes).expect_err("refused").code()
        };
        assert_eq!(code("nope", &[set("retention.ms", "1")]), 3);
        assert_eq!(code("t", &[set("no.such.key", "1")]), 40);
        assert_eq!(code("t", &[set("min.insync.replicas", "0")]), 40);
        assert_eq!(
            code("t", &[set("unclean.leader.election.enable", "yes")]),
            40
        );
        let twice = [set("retention.ms", "1"), ("retention.ms".to_string(), None)];
        assert_eq!(code("t", &twice), 42);
    }
}
