//! ElectLeaders (key 43, KIP-460): an operator asks the active controller to elect a
//! partition's leader now, rather than wait for the periodic check (Kafka's
//! `kafka-leader-election.sh`, `AdminClient.electLeaders`). Two kinds:
//!
//! * **Preferred**: leadership goes back to the partition's *preferred* replica, the first of
//!   its assignment, which is where placement spread the leaders evenly. After a broker
//!   restarts, the partitions it led are led elsewhere, and the cluster's load is lopsided until
//!   they move back. It is only done when the preferred replica is a live ISR member, so it is
//!   always clean: it has every committed record.
//! * **Unclean**: a partition with no leader (every ISR member is gone) gets one from the live
//!   replicas outside the ISR, *accepting the loss* of whatever records only the ISR had. An
//!   operator does this by hand when waiting for an ISR member to return costs more than the
//!   lost records (KIP-460 made it a per-request choice instead of the topic's
//!   `unclean.leader.election.enable`). A clean leader is taken first when one is live.
//!
//! Each decision reads the image and returns the records or the refusal Kafka gives:
//! ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE or
//! UNKNOWN_TOPIC_OR_PARTITION.

use super::error::ControllerError;
use super::records::{LeaderChange, PartitionChange};
use super::replication;
use super::{MetadataImage, MetadataRecord};

/// Which election (ElectLeaders' `ElectionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// 0: back to the preferred replica.
    Preferred,
    /// 1: a leaderless partition takes any live replica.
    Unclean,
}

impl ElectionType {
    /// From ElectLeaders' `ElectionType` byte (v0 has no field: preferred).
    pub fn from_wire(b: i8) -> Option<ElectionType> {
        match b {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
    pub fn wire(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// The records that elect partition `partition` of topic `topic` as `kind` asks, or why not.
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    kind: ElectionType,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic_id = image
        .topic_id(topic)
        .ok_or(ControllerError::UnknownTopicOrPartition(partition))?;
    let p = image.topics()[&topic_id]
        .partitions
        .get(&partition)
        .ok_or(ControllerError::UnknownTopicOrPartition(partition))?;
    let live = |b| replication::eligible(image, b);
    let name = format!("{topic}-{partition}");
    let records = match kind {
        ElectionType::Preferred => {
            let preferred = p.replicas[0];
            if p.leader == Some(preferred) {
                return Err(ControllerError::ElectionNotNeeded(format!(
                    "{name}: broker {} already leads it",
                    preferred.0
                )));
            }
            if !p.isr.contains(&preferred) || !live(preferred) {
                return Err(ControllerError::PreferredLeaderNotAvailable(format!(
                    "{name}: preferred replica {} is not a live in-sync replica (ISR {:?})",
                    preferred.0,
                    p.isr.iter().map(|b| b.0).collect::<Vec<_>>()
                )));
            }
            vec![MetadataRecord::PartitionChange(PartitionChange {
                topic_id,
                partition,
                isr: None,
                leader: LeaderChange::To(preferred),
                replicas: None,
            })]
        }
        ElectionType::Unclean => {
            if p.leader.is_some_and(live) {
                return Err(ControllerError::ElectionNotNeeded(format!(
                    "{name}: it has a leader"
                )));
            }
            // The same rule as every other election (KIP-966): a live ISR member, else a live
            // ELR member, else (this being an unclean election) any live replica, recorded as
            // unclean. The ISR is kept as it is (an empty target).
            let min_isr = replication::min_insync_replicas(image, topic_id, partition, 1)
                .expect("the partition exists");
            let records = replication::change_to(
                topic_id,
                partition,
                p,
                Vec::new(),
                None,
                min_isr,
                live,
                true,
            );
            let elected = records.iter().any(|r| {
                matches!(
                    r,
                    MetadataRecord::PartitionChange(PartitionChange {
                        leader: LeaderChange::To(_),
                        ..
                    })
                )
            });
            if !elected {
                return Err(ControllerError::EligibleLeadersNotAvailable(format!(
                    "{name}: none of its replicas {:?} is live",
                    p.replicas.iter().map(|b| b.0).collect::<Vec<_>>()
                )));
            }
            records
        }
    };
    assert!(!records.is_empty(), "an election is a record");
    assert!(records.iter().all(|r| matches!(
        r,
        MetadataRecord::PartitionChange(c) if c.topic_id == topic_id && c.partition == partition
    ) || matches!(
        r,
        MetadataRecord::UncleanElection { .. } | MetadataRecord::ElrChange { .. }
    )));
    Ok(records)
}
