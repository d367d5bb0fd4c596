//! Partition reassignment (KIP-455): moving a partition's replicas to other brokers, so an
//! operator can add a broker, take one away, or change a topic's replication factor
//! (`kafka-reassign-partitions.sh`, `AdminClient.alterPartitionReassignments`,
//! `gregor reassign`). The active controller decides, as Kafka's `ReplicationControlManager`
//! does; every step is a metadata record, so a reassignment survives a controller failover.
//!
//! Moving partition P from replicas R to a target T takes three steps:
//!
//! 1. **Start** ([`alter`]): one PartitionChange sets the replicas to T followed by R\T, and
//!    the ReassignmentChange after it names `adding` = T\R and `removing` = R\T. The leader and
//!    the ISR stay: nothing is lost while the new copies are empty.
//! 2. **Catch up**: each adding broker sees itself among the replicas, creates the partition
//!    and fetches from the leader like any follower. The leader adds it to the ISR with
//!    AlterPartition once it has caught up, as it would any lagging follower.
//! 3. **Complete** ([`complete_all`], run after every decision that changes something, so after
//!    each AlterPartition, and in the periodic check): once every adding replica is in the ISR,
//!    the replicas become T, the ISR becomes ISR ∩ T, and a leader outside T gives way to one
//!    in it, elected by the same KIP-966 rule as every election (`replication::elect`). The
//!    removed brokers see they no longer hold the partition, stop fetching and delete it.
//!
//! A reassignment of a partition already being moved replaces its target, computed from the
//! current replicas as Kafka does. A cancel (a null target) reverts to R: the adding replicas
//! leave the replicas and the ISR, and a leader among them gives way. A cancel of nothing is
//! NO_REASSIGNMENT_IN_PROGRESS; a target that is empty, repeats a broker or names one that is
//! not registered is INVALID_REPLICA_ASSIGNMENT.

use super::error::ControllerError;
use super::image::PartitionRegistration;
use super::records::{LeaderChange, PartitionChange};
use super::replication;
use super::{BrokerId, MetadataImage, MetadataRecord, TopicId};
use std::collections::BTreeSet;

/// One partition being moved, as ListPartitionReassignments reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    /// The current replicas: the target first, then the ones leaving.
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

/// Whether partition `p` is being reassigned.
pub fn in_progress(p: &PartitionRegistration) -> bool {
    !p.adding.is_empty() || !p.removing.is_empty()
}

/// The target of a reassignment in progress (the replicas not being removed).
pub fn target_of(p: &PartitionRegistration) -> Vec<BrokerId> {
    let t: Vec<BrokerId> = (p.replicas.iter().copied())
        .filter(|b| !p.removing.contains(b))
        .collect();
    assert!(!t.is_empty(), "a target is never empty");
    t
}

/// The records that start moving partition `partition` of `topic` to `target` (or, with `None`,
/// cancel the reassignment in progress), and complete it at once when nothing needs to catch
/// up; or why not.
pub fn alter(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[BrokerId]>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let unknown = || ControllerError::UnknownTopicOrPartition(partition);
    let topic_id = image.topic_id(topic).ok_or_else(unknown)?;
    let p = image.partition(topic_id, partition).ok_or_else(unknown)?;
    let name = format!("{topic}-{partition}");
    // The replicas before this reassignment (or the one it replaces) began.
    let original: Vec<BrokerId> = (p.replicas.iter().copied())
        .filter(|b| !p.adding.contains(b))
        .collect();
    let (replicas, adding, removing) = match target {
        Some(target) => {
            check_target(image, &name, target)?;
            // The target, then every original replica that is not in it, leaving at the end.
            let leaving: Vec<BrokerId> = (original.iter().copied())
                .filter(|b| !target.contains(b))
                .collect();
            let adding: Vec<BrokerId> = (target.iter().copied())
                .filter(|b| !original.contains(b))
                .collect();
            (
                target.iter().chain(&leaving).copied().collect(),
                adding,
                leaving,
            )
        }
        None if !in_progress(p) => {
            return Err(ControllerError::NoReassignmentInProgress(format!(
                "{name} is not being reassigned"
            )));
        }
        None => (original, Vec::new(), Vec::new()),
    };
    if replicas == p.replicas && adding == p.adding && removing == p.removing {
        return Ok(Vec::new());
    }
    // Replicas added by a reassignment now replaced or cancelled leave the ISR too.
    let isr: Vec<BrokerId> = (p.isr.iter().copied())
        .filter(|b| replicas.contains(b))
        .collect();
    if isr.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "{name}: every in-sync replica {:?} is one the change drops; it would leave no \
             copy of the committed records in the ISR",
            ids(&p.isr)
        )));
    }
    let records = move_to(
        image, topic_id, partition, p, replicas, isr, adding, removing,
    );
    let mut staged = image.clone();
    staged.stage(&records);
    let mut records = records;
    let p = staged.partition(topic_id, partition).expect("still there");
    records.extend(complete(&staged, topic_id, partition, p));
    assert!(records.iter().all(|r| touches(r, topic_id, partition)));
    Ok(records)
}

/// The records that complete every reassignment whose adding replicas are all in the ISR (see
/// the module docs); none when no reassignment is ready.
pub fn complete_all(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (topic_id, t) in image.topics() {
        for (i, p) in &t.partitions {
            records.extend(complete(image, *topic_id, *i, p));
        }
    }
    records
}

/// The records completing partition `p`'s reassignment, if it is ready.
fn complete(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    p: &PartitionRegistration,
) -> Vec<MetadataRecord> {
    if !in_progress(p) || !p.adding.iter().all(|b| p.isr.contains(b)) {
        return Vec::new();
    }
    let target = target_of(p);
    let isr: Vec<BrokerId> = (p.isr.iter().copied())
        .filter(|b| target.contains(b))
        .collect();
    // Wait for a member of the new ISR that can lead (it returns, or joins the ISR).
    if !isr.iter().any(|b| replication::eligible(image, *b)) {
        return Vec::new();
    }
    let records = move_to(image, topic_id, partition, p, target, isr, vec![], vec![]);
    assert!(matches!(
        records.first(),
        Some(MetadataRecord::PartitionChange(_))
    ));
    records
}

/// Every reassignment in progress, by topic name and partition.
pub fn ongoing(image: &MetadataImage) -> Vec<Ongoing> {
    let mut out = Vec::new();
    for t in image.topics().values() {
        for (i, p) in t.partitions.iter().filter(|(_, p)| in_progress(p)) {
            out.push(Ongoing {
                topic: t.name.clone(),
                partition: *i,
                replicas: p.replicas.clone(),
                adding: p.adding.clone(),
                removing: p.removing.clone(),
            });
        }
    }
    assert!(out
        .iter()
        .all(|o| !o.adding.is_empty() || !o.removing.is_empty()));
    out
}

/// INVALID_REPLICA_ASSIGNMENT unless `target` is distinct registered brokers, not empty.
fn check_target(
    image: &MetadataImage,
    name: &str,
    target: &[BrokerId],
) -> Result<(), ControllerError> {
    let bad = |why: String| {
        Err(ControllerError::InvalidReplicaAssignment(format!(
            "{name}: {why}"
        )))
    };
    if target.is_empty() {
        return bad("the target replica list is empty".into());
    }
    let set: BTreeSet<BrokerId> = target.iter().copied().collect();
    if set.len() != target.len() {
        return bad(format!("the target {:?} names a broker twice", ids(target)));
    }
    if let Some(b) = target.iter().find(|b| image.broker(**b).is_none()) {
        return bad(format!(
            "broker {} in the target {:?} is not registered",
            b.0,
            ids(target)
        ));
    }
    Ok(())
}

/// The records that give partition `p` the replicas `replicas` and ISR `isr` (⊆ both), a leader
/// elected over them when the current one is not in `isr` (clean only: a reassignment never
/// loses records), the ELR kept to the new replicas, and the reassignment `adding`/`removing`.
#[allow(clippy::too_many_arguments)]
fn move_to(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    p: &PartitionRegistration,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    adding: Vec<BrokerId>,
    removing: Vec<BrokerId>,
) -> Vec<MetadataRecord> {
    assert!(
        !isr.is_empty() && isr.iter().all(|b| replicas.contains(b)),
        "ISR ⊆ replicas"
    );
    // The partition as the election sees it: the new replicas (their order is the preference)
    // and the ELR members that stay replicas, as the image's merge keeps them.
    let seen = PartitionRegistration {
        replicas: replicas.clone(),
        elr: (p.elr.iter().copied())
            .filter(|b| replicas.contains(b))
            .collect(),
        ..p.clone()
    };
    let min_isr = replication::min_insync_replicas(image, topic_id, partition, 1)
        .expect("the partition exists")
        .min(replicas.len());
    let live = |b| replication::eligible(image, b);
    let mut records =
        replication::change_to(topic_id, partition, &seen, isr, None, min_isr, live, false);
    match records.first_mut() {
        Some(MetadataRecord::PartitionChange(c)) => c.replicas = Some(replicas.clone()),
        _ => records.insert(
            0,
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id,
                partition,
                isr: None,
                leader: LeaderChange::Unchanged,
                replicas: Some(replicas.clone()),
            }),
        ),
    }
    // Named whenever a reassignment starts, changes or ends (a change of the replicas alone
    // clears it on replay, but an end that keeps the replicas' order needs saying).
    if in_progress(p) || !adding.is_empty() || !removing.is_empty() {
        records.push(MetadataRecord::ReassignmentChange {
            topic_id,
            partition,
            adding,
            removing,
        });
    }
    assert!(
        !records
            .iter()
            .any(|r| matches!(r, MetadataRecord::UncleanElection { .. })),
        "a reassignment elects cleanly"
    );
    records
}

/// The records of any decision, followed by those completing the reassignments they made
/// ready (an ISR grown to hold every adding replica, a broker back that can lead).
pub fn then_complete(image: &MetadataImage, records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
    let moving = (image.topics().values())
        .flat_map(|t| t.partitions.values())
        .any(in_progress);
    if records.is_empty() || !moving {
        return records;
    }
    let mut staged = image.clone();
    staged.stage(&records);
    let done = complete_all(&staged);
    let mut records = records;
    records.extend(done);
    records
}

fn touches(r: &MetadataRecord, topic: TopicId, partition: i32) -> bool {
    match r {
        MetadataRecord::PartitionChange(c) => c.topic_id == topic && c.partition == partition,
        MetadataRecord::ElrChange {
            topic_id,
            partition: p,
            ..
        }
        | MetadataRecord::ReassignmentChange {
            topic_id,
            partition: p,
            ..
        } => *topic_id == topic && *p == partition,
        _ => false,
    }
}

fn ids(bs: &[BrokerId]) -> Vec<i32> {
    bs.iter().map(|b| b.0).collect()
}
