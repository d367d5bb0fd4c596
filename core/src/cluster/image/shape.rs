//! The shape checks [`super::MetadataImage`]'s replay applies to every partition record before
//! it changes anything: assignments, KIP-966's ELR, KIP-455's reassignments, epochs.

use super::{PartitionRegistration, ReplayError};
use crate::cluster::BrokerId;
use std::collections::BTreeSet;

/// KIP-966's shape of a partition's ELR: distinct replicas outside the ISR; and a lost ISR is
/// one member with no leader.
pub(super) fn check_elr(
    p: &PartitionRegistration,
    elr: &[BrokerId],
    isr_lost: bool,
) -> Result<(), ReplayError> {
    let set: BTreeSet<BrokerId> = elr.iter().copied().collect();
    if set.len() != elr.len()
        || elr
            .iter()
            .any(|b| !p.replicas.contains(b) || p.isr.contains(b))
    {
        return Err(ReplayError::InvalidAssignment(format!(
            "ELR {elr:?} repeated, outside the replicas {:?} or overlapping the ISR {:?}",
            p.replicas, p.isr
        )));
    }
    if isr_lost && (p.isr.len() != 1 || p.leader.is_some()) {
        return Err(ReplayError::InvalidAssignment(format!(
            "a lost ISR {:?} led by {:?}: it is one unelectable member",
            p.isr, p.leader
        )));
    }
    Ok(())
}

/// KIP-455's shape of a reassignment: adding and removing are distinct replicas, disjoint, and
/// at least one replica is neither being removed (the target is never empty).
pub(super) fn check_reassignment(
    replicas: &[BrokerId],
    adding: &[BrokerId],
    removing: &[BrokerId],
) -> Result<(), ReplayError> {
    let (a, r): (BTreeSet<BrokerId>, BTreeSet<BrokerId>) = (
        adding.iter().copied().collect(),
        removing.iter().copied().collect(),
    );
    let within = |b: &BrokerId| replicas.contains(b);
    if a.len() != adding.len()
        || r.len() != removing.len()
        || !a.is_disjoint(&r)
        || !adding.iter().all(within)
        || !removing.iter().all(within)
        || removing.len() >= replicas.len()
    {
        return Err(ReplayError::InvalidAssignment(format!(
            "reassignment adding {adding:?} removing {removing:?} does not fit replicas {replicas:?}"
        )));
    }
    Ok(())
}

/// `epoch`, plus one if `changed`; an epoch at its maximum cannot change again.
pub(super) fn bump(epoch: i32, changed: bool) -> Result<i32, ReplayError> {
    epoch
        .checked_add(i32::from(changed))
        .ok_or_else(|| ReplayError::InvalidAssignment(format!("epoch {epoch} at its maximum")))
}

/// Replicas distinct and not empty; ISR distinct, not empty and within the replicas; the leader,
/// if any, in the ISR.
pub(super) fn check_assignment(
    replicas: &[BrokerId],
    isr: &[BrokerId],
    leader: Option<BrokerId>,
) -> Result<(), ReplayError> {
    let bad = |m: String| Err(ReplayError::InvalidAssignment(m));
    let replica_set: BTreeSet<BrokerId> = replicas.iter().copied().collect();
    let isr_set: BTreeSet<BrokerId> = isr.iter().copied().collect();
    if replicas.is_empty() || replica_set.len() != replicas.len() {
        return bad(format!("replicas {replicas:?} empty or repeated"));
    }
    // Kafka never shrinks the ISR to empty (without KIP-966's ELR): the last member stays
    // as the one to elect when it returns.
    if isr.is_empty() || isr_set.len() != isr.len() || !isr_set.is_subset(&replica_set) {
        return bad(format!(
            "ISR {isr:?} empty, repeated or outside {replicas:?}"
        ));
    }
    if leader.is_some_and(|l| !isr_set.contains(&l)) {
        return bad(format!("leader {leader:?} outside the ISR {isr:?}"));
    }
    Ok(())
}
