//! The controller's replication decisions: who is in a partition's ISR, who leads it, and what
//! happens when a broker goes (Kafka's `ReplicationControlManager` with its
//! `PartitionChangeBuilder`; KIP-497, KIP-841, KIP-903).
//!
//! ## The ISR
//! A partition's *in-sync replicas* are the replicas that hold every record the partition has
//! committed (below its high watermark). Only the leader knows how far each follower has
//! fetched, so only the leader proposes ISR changes, with **AlterPartition** (KIP-497): "shrink
//! to these" when a follower lags (`replica.lag.time.max.ms`), "expand to these" when one has
//! caught up. The controller is the only writer: it checks the request against the image and
//! writes one PartitionChangeRecord, which raises the *partition epoch* (not the leader epoch:
//! the leader is the same). Every request names the partition epoch the leader last saw, so two
//! changes can never be built on the same state (optimistic concurrency): the second one is
//! INVALID_UPDATE_VERSION and the leader learns the new state from its metadata first.
//!
//! [`alter_partition`] checks, in Kafka's order: the asker is registered with that broker epoch
//! (STALE_BROKER_EPOCH), the topic (UNKNOWN_TOPIC_ID) and partition
//! (UNKNOWN_TOPIC_OR_PARTITION) exist, its epochs are not *ahead* of the controller's (then this
//! controller is the stale one: NOT_CONTROLLER), its leader epoch is current
//! (FENCED_LEADER_EPOCH), it is the leader (NOT_LEADER_OR_FOLLOWER; Kafka answers
//! INVALID_REQUEST here, gregor names the condition), its partition epoch is current
//! (INVALID_UPDATE_VERSION), the new ISR is distinct replicas holding the leader
//! (INVALID_REQUEST), and every broker it *adds* is registered, unfenced, not in controlled
//! shutdown (KIP-841), and, where the leader named a broker epoch (v3's `NewIsrWithEpochs`,
//! KIP-903), still on that epoch: a broker that restarted with an empty disk has a new epoch,
//! so the leader's stale view of it cannot put it back in the ISR (INELIGIBLE_REPLICA). The
//! ISR may shrink to the leader alone, below `min.insync.replicas`: producing with acks=all
//! then fails with NOT_ENOUGH_REPLICAS, and the high watermark stands still.
//!
//! ## Eligible leader replicas and lost logs (KIP-966)
//! A replica that leaves the ISR while the ISR is (or becomes) smaller than
//! `min.insync.replicas` still holds every committed record, since the high watermark cannot
//! move then: it joins the partition's *ELR* (`next_elr`, Kafka's `PartitionChangeBuilder`).
//! The ELR empties once the ISR is back at `min.insync.replicas`, and a broker joining the ISR
//! leaves it. A broker that registers saying its log directory is new
//! (`Registration::log_dir_new`: a first start or a replaced disk, KIP-903's case; on the wire
//! `PreviousBrokerEpoch` -1) holds nothing: [`lost_log`] takes it out of every ISR and ELR, and
//! where it is the ISR's last member the ISR keeps it (never empty: the last known member) but
//! is marked *lost*, so it is never elected clean. A broker whose log survived a crash stays
//! eligible: gregor's followers report only synced data (group commit). The controller reads
//! `min.insync.replicas` from the topic config (1 when unset). The ELR travels in gregor's own
//! ElrChange record, after the PartitionChange it belongs to.
//!
//! ## Elections
//! [`elect`] is Kafka's `electAnyLeader` with KIP-966: keep the current leader if it is still
//! a live ISR member; else the first replica in assignment order that is in the ISR (not a
//! lost one) and live (registered, unfenced, not shutting down); else the first live ELR
//! member, which leads alone in a new ISR (clean: it holds every committed record); else, only
//! if the topic sets `unclean.leader.election.enable`, the first live replica, which becomes
//! the ISR alone (an *unclean* election: records the old ISR acknowledged may be gone, so it is
//! recorded with an UncleanElection record, and the ELR empties); else no leader, and the
//! partition is offline until an ISR or ELR member returns.
//!
//! Every ISR member holds every committed record, so any of them is a safe leader for acks=all;
//! Kafka picks by assignment order, not by log length. gregor promises more for acks=N (issue
//! 10): the leader with the greatest (last epoch, log end offset) among the live ISR. The
//! controller cannot see log ends; the rule gregor takes (docs/kraft.md, "How an election picks
//! a leader") is that the controller elects in assignment order as here, and the elected
//! leader, before it takes a write or moves its high watermark in its new epoch, learns each
//! live ISR member's (last epoch, log end) from their first fetch of the epoch and hands the
//! leadership on to a member ahead of it (`broker/replica/probe.rs`): an AlterPartition that
//! names a successor, which [`alter_partition`] grants through `hand_over`.
//!
//! When a broker is fenced, re-registers or shuts down, [`leave`] takes it out of every ISR
//! (never the last member: the ISR is never empty, so the last in-sync copy can lead again
//! when it returns) and re-elects where it led. When a broker is unfenced, offline partitions
//! it can lead get it. [`balance`] runs on the controller's periodic check: offline partitions
//! whose topic allows unclean elections get a live replica (the AlterConfigs that allows them
//! already did so, [`unclean_enabled`]), and when
//! `auto.leader.rebalance.enable` is on, leadership goes back to the preferred (first) replica
//! wherever it is a live ISR member (Kafka's `leader.imbalance.check.interval.seconds`).

use super::error::ControllerError;
use super::image::PartitionRegistration;
use super::records::{LeaderChange, PartitionChange};
use super::{BrokerEpoch, BrokerId, MetadataImage, MetadataRecord, TopicId};
use std::collections::BTreeSet;

/// The topic config that allows electing a leader from outside the ISR (default false).
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";
/// The topic config: the fewest in-sync replicas an acks=all produce needs (default: the
/// broker's `min.insync.replicas`, 1). Enforced as min(it, replication factor), as Kafka does.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// Whether broker `b` may lead a partition or join an ISR: registered, unfenced, and not in
/// controlled shutdown (KIP-841).
pub fn eligible(image: &MetadataImage, b: BrokerId) -> bool {
    image
        .broker(b)
        .is_some_and(|r| !r.fenced && !r.in_controlled_shutdown)
}

/// Whether topic `topic` allows unclean leader elections (its config, default false).
pub fn unclean_allowed(image: &MetadataImage, topic: TopicId) -> bool {
    image
        .topic_config(topic, UNCLEAN_LEADER_ELECTION_ENABLE)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The `min.insync.replicas` acks=all needs on partition `partition` of `topic`: the topic's
/// setting (or `broker_default`), capped at the replication factor, as Kafka enforces it.
pub fn min_insync_replicas(
    image: &MetadataImage,
    topic: TopicId,
    partition: i32,
    broker_default: u32,
) -> Option<usize> {
    let p = image.partition(topic, partition)?;
    let set = image
        .topic_config(topic, MIN_INSYNC_REPLICAS)
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(broker_default)
        .max(1);
    Some((set as usize).min(p.replicas.len()))
}

/// Check the values of the replication configs a topic is created or altered with: Kafka's
/// `min.insync.replicas` is an int at least 1 (any value: it is capped at the replication
/// factor when enforced), `unclean.leader.election.enable` a boolean.
pub fn validate_config(name: &str, value: &str) -> Result<(), ControllerError> {
    let ok = match name {
        MIN_INSYNC_REPLICAS => value.parse::<i32>().is_ok_and(|n| n >= 1),
        UNCLEAN_LEADER_ELECTION_ENABLE => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ControllerError::InvalidConfig(format!(
            "invalid value {value:?} for topic config {name}"
        )))
    }
}

/// An election's outcome (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// A live ISR member leads (possibly the same leader as before).
    Clean(BrokerId),
    /// A live eligible leader replica (KIP-966) leads, alone in the ISR: no ISR member was
    /// live, and it holds every committed record, so the election is clean.
    Eligible(BrokerId),
    /// A live replica outside the ISR and the ELR leads, alone in the ISR.
    Unclean(BrokerId),
    /// Nobody: the partition is offline.
    Offline,
}

/// Who an election may pick from: the ISR (unless `isr_lost`: its last member came back with
/// no log) and then the ELR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidates {
    pub isr: Vec<BrokerId>,
    pub isr_lost: bool,
    pub elr: Vec<BrokerId>,
}

/// Kafka's `electAnyLeader` with KIP-966: keep the current leader if it is a live ISR
/// member; else the first live ISR member in assignment order; else the first live ELR member;
/// else, with `unclean`, the first live replica; else none. `live` says who may lead.
pub fn elect(
    p: &PartitionRegistration,
    c: &Candidates,
    live: impl Fn(BrokerId) -> bool,
    unclean: bool,
) -> Election {
    let in_isr = |b: &BrokerId| !c.isr_lost && c.isr.contains(b);
    let out = if let Some(l) = p.leader.filter(|l| in_isr(l) && live(*l)) {
        Election::Clean(l)
    } else if let Some(b) = p.replicas.iter().find(|b| in_isr(b) && live(**b)) {
        Election::Clean(*b)
    } else if let Some(b) = p.replicas.iter().find(|b| c.elr.contains(b) && live(**b)) {
        Election::Eligible(*b)
    } else if let Some(b) = p.replicas.iter().find(|b| unclean && live(**b)) {
        Election::Unclean(*b)
    } else {
        Election::Offline
    };
    match out {
        Election::Clean(b) => assert!(in_isr(&b) && live(b)),
        Election::Eligible(b) => assert!(c.elr.contains(&b) && !c.isr.contains(&b) && live(b)),
        Election::Unclean(b) => assert!(unclean && !in_isr(&b) && !c.elr.contains(&b) && live(b)),
        Election::Offline => assert!(c
            .isr
            .iter()
            .chain(&c.elr)
            .all(|b| !live(*b) || c.isr_lost && c.isr.contains(b))),
    }
    out
}

/// KIP-966's ELR after the ISR becomes `isr` (Kafka's `PartitionChangeBuilder`): empty while
/// the ISR holds `min_isr` members (the high watermark moves, and whoever is outside falls
/// behind); below it, the old ELR and the old ISR's members that are not in the new one, for
/// the high watermark cannot have moved since they left. Never `lost` (a log gone), never a
/// member of a lost ISR.
fn next_elr(
    p: &PartitionRegistration,
    isr: &[BrokerId],
    min_isr: usize,
    lost: Option<BrokerId>,
) -> Vec<BrokerId> {
    if isr.len() >= min_isr {
        return Vec::new();
    }
    let elr: Vec<BrokerId> = (p.replicas.iter().copied())
        .filter(|b| p.elr.contains(b) || (p.isr.contains(b) && !p.isr_lost))
        .filter(|b| !isr.contains(b) && Some(*b) != lost)
        .collect();
    assert!(elr
        .iter()
        .all(|b| p.replicas.contains(b) && !isr.contains(b)));
    elr
}

/// The records that move partition `p` of `topic` to ISR `target` (the current one when
/// `target` would be empty: the last member stays, *lost* if it is `lost`, the broker whose log
/// is gone) with a leader elected over it and the ELR (KIP-966) kept; none if nothing changes.
/// An unclean election adds its UncleanElection record, an ELR change its ElrChange.
#[allow(clippy::too_many_arguments)]
pub(crate) fn change_to(
    topic: TopicId,
    partition: i32,
    p: &PartitionRegistration,
    target: Vec<BrokerId>,
    lost: Option<BrokerId>,
    min_isr: usize,
    live: impl Fn(BrokerId) -> bool,
    unclean: bool,
) -> Vec<MetadataRecord> {
    let isr_lost = if target.is_empty() {
        p.isr_lost || lost.is_some_and(|b| p.isr == [b])
    } else {
        p.isr_lost && target == p.isr
    };
    let mut isr = if target.is_empty() {
        p.isr.clone()
    } else {
        target
    };
    assert!(
        !isr.is_empty(),
        "an ISR is never emptied: its last member stays"
    );
    assert!(isr.iter().all(|b| p.replicas.contains(b)), "ISR ⊆ replicas");
    // A lost ISR holds nothing: the ELR stays whatever min.insync.replicas is.
    let mut elr = next_elr(p, &isr, if isr_lost { usize::MAX } else { min_isr }, lost);
    let candidates = Candidates {
        isr: isr.clone(),
        isr_lost,
        elr: elr.clone(),
    };
    let election = elect(p, &candidates, live, unclean);
    let leader = match election {
        Election::Clean(b) | Election::Eligible(b) | Election::Unclean(b) => Some(b),
        Election::Offline => None,
    };
    match election {
        Election::Eligible(b) => {
            // The ELR member leads alone; the old members it replaces keep their records.
            let before = PartitionRegistration {
                isr: isr.clone(),
                elr: elr.clone(),
                isr_lost,
                ..p.clone()
            };
            isr = vec![b];
            elr = next_elr(&before, &isr, min_isr, lost);
        }
        Election::Unclean(b) => {
            isr = vec![b];
            elr = Vec::new();
        }
        Election::Clean(_) | Election::Offline => {}
    }
    let isr_lost = isr_lost && leader.is_none();
    let leader_change = if leader == p.leader {
        LeaderChange::Unchanged
    } else {
        leader.map_or(LeaderChange::NoLeader, LeaderChange::To)
    };
    assert!(
        leader.is_none_or(|l| isr.contains(&l)),
        "the leader is in the ISR"
    );
    assert!(
        elr.iter().all(|b| !isr.contains(b)),
        "ELR and ISR are disjoint"
    );
    let new_isr = (isr != p.isr).then_some(isr.clone());
    let mut out = Vec::new();
    if new_isr.is_some() || leader_change != LeaderChange::Unchanged {
        out.push(MetadataRecord::PartitionChange(PartitionChange {
            topic_id: topic,
            partition,
            isr: new_isr,
            leader: leader_change,
            replicas: None,
        }));
    }
    if let Election::Unclean(b) = election {
        out.push(MetadataRecord::UncleanElection {
            topic_id: topic,
            partition,
            leader: b,
            leader_epoch: p.leader_epoch + 1,
        });
    }
    // What replaying the PartitionChange alone leaves (see the image's merge).
    let merged_elr: Vec<BrokerId> = p.elr.iter().copied().filter(|b| !isr.contains(b)).collect();
    let merged_lost = p.isr_lost && isr == p.isr && leader.is_none();
    if elr != merged_elr || isr_lost != merged_lost {
        out.push(MetadataRecord::ElrChange {
            topic_id: topic,
            partition,
            elr,
            isr_lost,
        });
    }
    out
}

/// Why a leaderless partition whose ISR is *lost* (its last member registered with a new,
/// empty log directory: [`lost_log`]) stays offline, in an operator's words; `None` for any
/// other partition. Such a partition waits for nobody: the one broker that held its committed
/// records came back without them, so no clean election can ever happen, and only an operator
/// can choose availability over those records (an unclean election). Kafka brokers log nothing
/// here and clients just time out; gregor's brokers log this once per change
/// (`broker/cluster`).
pub fn lost_isr_reason(p: &PartitionRegistration, unclean: bool) -> Option<String> {
    if p.leader.is_some() || !p.isr_lost {
        return None;
    }
    assert_eq!(p.isr.len(), 1, "a lost ISR is its last known member alone");
    let b = p.isr[0].0;
    let way_out = if unclean {
        "unclean.leader.election.enable is set on the topic: it is elected (empty) as soon as a \
         replica is live"
    } else {
        "set unclean.leader.election.enable=true on the topic (gregor configs alter), or run \
         gregor leaders elect --type unclean, to bring it back empty"
    };
    Some(format!(
        "its only in-sync replica, broker {b}, returned with an empty log (a new or wiped data \
         directory): the partition stays offline rather than lose its records; {way_out}"
    ))
}

/// The records that take `broker` (being fenced, re-registered, shut down or unregistered) out
/// of every partition: it leaves each ISR it is in unless it is the last member, and each
/// partition it led gets a leader by [`elect`] over the rest, or goes offline. It stays in
/// the ELRs it is in, and enters those of partitions whose ISR it leaves below
/// `min.insync.replicas` (KIP-966): its log still holds every committed record.
pub fn leave(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    depart(image, broker, false)
}

/// [`leave`] for a broker that registered with its log directory new or lost (KIP-903's
/// empty disk; gregor's `Registration::log_dir_new`): its copies hold nothing, so it also
/// leaves every ELR, and where it was the ISR's last member the ISR is marked lost: it is
/// never elected clean there (KIP-966's unclean-shutdown rule).
pub fn lost_log(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    depart(image, broker, true)
}

fn depart(image: &MetadataImage, broker: BrokerId, lost: bool) -> Vec<MetadataRecord> {
    let live = |b: BrokerId| b != broker && eligible(image, b);
    let mut records = Vec::new();
    for (topic_id, t) in image.topics() {
        for (p, r) in &t.partitions {
            let in_elr = lost && r.elr.contains(&broker);
            if !r.isr.contains(&broker) && r.leader != Some(broker) && !in_elr {
                continue;
            }
            let target: Vec<BrokerId> = r.isr.iter().copied().filter(|b| *b != broker).collect();
            assert!(target.len() < r.isr.len() || r.leader == Some(broker) || in_elr);
            let unclean = unclean_allowed(image, *topic_id);
            let min_isr = min_insync_replicas(image, *topic_id, *p, 1).expect("exists");
            let lost = lost.then_some(broker);
            records.extend(change_to(
                *topic_id, *p, r, target, lost, min_isr, live, unclean,
            ));
        }
    }
    assert!(records.iter().all(only_partition_changes));
    records
}

/// What moving brokers in and out of partitions writes: partition changes, and the record of
/// an unclean election beside the change that made it.
fn only_partition_changes(r: &MetadataRecord) -> bool {
    matches!(
        r,
        MetadataRecord::PartitionChange(_)
            | MetadataRecord::UncleanElection { .. }
            | MetadataRecord::ElrChange { .. }
    )
}

/// The records that give the offline partitions `broker` can lead to it as it is unfenced
/// (it is still fenced in `image`: the records follow its unfencing): where it is in the ISR,
/// and, where the topic allows unclean elections, where it is only a replica.
pub fn unfenced(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let live = |b: BrokerId| b == broker || eligible(image, b);
    let mut records = Vec::new();
    for (topic_id, t) in image.topics() {
        for (p, r) in &t.partitions {
            if r.leader.is_none() && r.replicas.contains(&broker) {
                let unclean = unclean_allowed(image, *topic_id);
                let min_isr = min_insync_replicas(image, *topic_id, *p, 1).expect("exists");
                records.extend(change_to(
                    *topic_id,
                    *p,
                    r,
                    r.isr.clone(),
                    None,
                    min_isr,
                    live,
                    unclean,
                ));
            }
        }
    }
    assert!(records.iter().all(only_partition_changes));
    records
}

/// The periodic check: brokers no longer eligible that are still in an ISR they should have
/// left (a deposed controller's batch cut short: its later records never committed) leave it;
/// offline partitions get a leader where one is live (unclean where the topic allows it); and,
/// with `preferred` (`auto.leader.rebalance.enable`), each partition whose preferred (first)
/// replica is a live ISR member goes back to it.
pub fn balance(image: &MetadataImage, preferred: bool) -> Vec<MetadataRecord> {
    let mut staged = image.clone();
    let mut records = Vec::new();
    let mut apply = |staged: &mut MetadataImage, rs: Vec<MetadataRecord>| {
        staged.stage(&rs);
        records.extend(rs);
    };
    let stray: BTreeSet<BrokerId> = image
        .topics()
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| !(p.leader.is_none() && p.isr.len() == 1))
        .flat_map(|p| p.isr.iter().copied())
        .filter(|b| image.broker(*b).is_none_or(|r| r.fenced))
        .collect();
    for b in stray {
        let rs = leave(&staged, b);
        apply(&mut staged, rs);
    }
    let live = |image: &MetadataImage, b: BrokerId| eligible(image, b);
    let topics: Vec<TopicId> = staged.topics().keys().copied().collect();
    for topic in topics {
        let partitions: Vec<(i32, PartitionRegistration)> = staged.topics()[&topic]
            .partitions
            .iter()
            .map(|(p, r)| (*p, r.clone()))
            .collect();
        for (p, r) in partitions {
            let rs = if r.leader.is_none() {
                lead_offline(&staged, topic, p, &r)
            } else if preferred
                && r.leader != Some(r.replicas[0])
                && r.isr.contains(&r.replicas[0])
                && live(&staged, r.replicas[0])
            {
                vec![MetadataRecord::PartitionChange(PartitionChange {
                    topic_id: topic,
                    partition: p,
                    isr: None,
                    leader: LeaderChange::To(r.replicas[0]),
                    replicas: None,
                })]
            } else {
                Vec::new()
            };
            apply(&mut staged, rs);
        }
    }
    assert!(records.iter().all(only_partition_changes));
    assert_eq!(staged.offset(), image.offset() + records.len() as i64);
    assert!(
        check(&staged).is_ok(),
        "a balanced image keeps the replication invariants: {:?}",
        check(&staged)
    );
    records
}

/// The records that give leaderless partition `partition` of `topic` a leader where one is
/// live (unclean where the topic allows it, on record); none while nobody can lead it.
fn lead_offline(
    image: &MetadataImage,
    topic: TopicId,
    partition: i32,
    p: &PartitionRegistration,
) -> Vec<MetadataRecord> {
    assert!(
        p.leader.is_none(),
        "only a leaderless partition is elected here"
    );
    let unclean = unclean_allowed(image, topic);
    let min_isr = min_insync_replicas(image, topic, partition, 1).expect("exists");
    let live = |b| eligible(image, b);
    change_to(
        topic,
        partition,
        p,
        p.isr.clone(),
        None,
        min_isr,
        live,
        unclean,
    )
}

/// The records that elect leaders, at once, for the offline partitions of `topic` whose
/// `unclean.leader.election.enable` was just turned on (`image` holds the new config): an
/// operator sets it to bring back a partition whose in-sync replicas are gone or came back
/// empty, and should not wait for the periodic check ([`balance`], 5 minutes by default) to
/// see it. Kafka's ZooKeeper controller did the same on a topic config change (KAFKA-6835);
/// its KRaft controller waits for the periodic check (KAFKA-12670).
pub fn unclean_enabled(image: &MetadataImage, topic: TopicId) -> Vec<MetadataRecord> {
    assert!(
        unclean_allowed(image, topic),
        "the topic allows unclean elections"
    );
    let mut records = Vec::new();
    for (p, r) in &image.topics()[&topic].partitions {
        if r.leader.is_none() {
            records.extend(lead_offline(image, topic, *p, r));
        }
    }
    assert!(records.iter().all(only_partition_changes));
    records
}

/// An AlterPartition request (KIP-497), as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartition {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The ISR the leader wants, each with the broker epoch it saw (-1: not given, v0–2).
    pub new_isr: Vec<(BrokerId, BrokerEpoch)>,
    /// gregor's leader handover (not Kafka's): the ISR member the leader hands its leadership
    /// to, with the ISR unchanged ([`hand_over`]). `None`: an ordinary ISR change.
    pub successor: Option<BrokerId>,
}

/// What the controller decided on an AlterPartition: the answer (the partition's state after
/// the change, or the error) and the records to write. NEW_LEADER_ELECTED comes with records:
/// the change was made, and it moved the leadership away from the asker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Altered {
    pub result: Result<PartitionRegistration, ControllerError>,
    pub records: Vec<MetadataRecord>,
}

/// Decide an AlterPartition; see the module docs for the checks and their order.
pub fn alter_partition(image: &MetadataImage, req: &AlterPartition) -> Altered {
    let refused = |e: ControllerError| Altered {
        result: Err(e),
        records: Vec::new(),
    };
    let asker = req.broker_id;
    // Kafka's `checkBrokerEpoch`: an unregistered asker is as stale as an old incarnation.
    if image
        .broker(asker)
        .is_none_or(|r| r.broker_epoch != req.broker_epoch)
    {
        return refused(ControllerError::StaleBrokerEpoch(asker));
    }
    if !image.topics().contains_key(&req.topic_id) {
        return refused(ControllerError::UnknownTopicId(req.topic_id));
    }
    let Some(p) = image.partition(req.topic_id, req.partition) else {
        return refused(ControllerError::UnknownTopicOrPartition(req.partition));
    };
    if req.leader_epoch > p.leader_epoch || req.partition_epoch > p.partition_epoch {
        // The leader has seen a state this controller has not: it is the stale one.
        return refused(ControllerError::NotController { leader: None });
    }
    if req.leader_epoch < p.leader_epoch {
        return refused(ControllerError::FencedLeaderEpoch {
            asked: req.leader_epoch,
            current: p.leader_epoch,
        });
    }
    if p.leader != Some(asker) {
        return refused(ControllerError::NotLeaderOrFollower(asker));
    }
    if req.partition_epoch < p.partition_epoch {
        return refused(ControllerError::InvalidUpdateVersion {
            asked: req.partition_epoch,
            current: p.partition_epoch,
        });
    }
    let isr: Vec<BrokerId> = req.new_isr.iter().map(|(b, _)| *b).collect();
    let distinct: BTreeSet<BrokerId> = isr.iter().copied().collect();
    if distinct.len() != isr.len() || !isr.iter().all(|b| p.replicas.contains(b)) {
        return refused(ControllerError::InvalidRequest(format!(
            "ISR {isr:?} repeats a broker or is not within the replicas {:?}",
            p.replicas
        )));
    }
    if !isr.contains(&asker) {
        return refused(ControllerError::InvalidRequest(format!(
            "ISR {isr:?} leaves out the leader {}",
            asker.0
        )));
    }
    if let Some(to) = req.successor {
        return hand_over(image, req, p, to);
    }
    for (b, epoch) in &req.new_isr {
        let why = match image.broker(*b) {
            None => Some("not registered"),
            Some(r) if epoch.0 != -1 && r.broker_epoch != *epoch => Some("on another broker epoch"),
            Some(_) if p.isr.contains(b) => None,
            Some(r) if r.fenced => Some("fenced"),
            Some(r) if r.in_controlled_shutdown => Some("in controlled shutdown"),
            Some(_) => None,
        };
        if let Some(why) = why {
            return refused(ControllerError::IneligibleReplica(format!(
                "broker {} may not join the ISR: {why}",
                b.0
            )));
        }
    }
    // The asker stays leader unless it is shutting down and another member can take over
    // (then the change elects that one and the asker hears NEW_LEADER_ELECTED).
    let shutting_down = image
        .broker(asker)
        .is_some_and(|r| r.in_controlled_shutdown);
    let handoff = shutting_down && isr.iter().any(|b| *b != asker && eligible(image, *b));
    let live = |b: BrokerId| eligible(image, b) || (b == asker && !handoff);
    let min_isr = min_insync_replicas(image, req.topic_id, req.partition, 1).expect("exists");
    let records = if isr == p.isr {
        Vec::new()
    } else {
        change_to(
            req.topic_id,
            req.partition,
            p,
            isr.clone(),
            None,
            min_isr,
            live,
            false,
        )
    };
    let mut after = image.clone();
    after.stage(&records);
    let new = after
        .partition(req.topic_id, req.partition)
        .expect("still there")
        .clone();
    assert_eq!(new.isr, isr, "the ISR asked for");
    let changes = records
        .iter()
        .filter(|r| matches!(r, MetadataRecord::PartitionChange(_)))
        .count();
    assert!(changes <= 1, "one PartitionChangeRecord");
    assert_eq!(new.partition_epoch, p.partition_epoch + changes as i32);
    let result = if new.leader == Some(asker) {
        assert_eq!(
            new.leader_epoch, p.leader_epoch,
            "an ISR change keeps the leader epoch"
        );
        Ok(new)
    } else {
        Err(ControllerError::NewLeaderElected(asker))
    };
    Altered { result, records }
}

/// gregor's leader handover for acks=N (docs/replication.md, "acks=N across a leader
/// change"): a leader in the first moments of its epoch, before it took a write, learned from
/// its followers' first fetches that ISR member `to` holds more of the log than it does (a
/// greater (last epoch, log end)), and asks that `to` lead instead, so `to`'s records (which
/// an acks=N produce may have been acknowledged for) are not cut. The usual AlterPartition
/// checks have passed (the asker leads in this leader and partition epoch); here the ISR must
/// be the current one (a handover changes nothing else) and `to` another member of it, live.
/// The change elects `to` in a new leader epoch, a clean election; the asker hears
/// NEW_LEADER_ELECTED.
fn hand_over(
    image: &MetadataImage,
    req: &AlterPartition,
    p: &PartitionRegistration,
    to: BrokerId,
) -> Altered {
    let refused = |e: ControllerError| Altered {
        result: Err(e),
        records: Vec::new(),
    };
    let isr: Vec<BrokerId> = req.new_isr.iter().map(|(b, _)| *b).collect();
    if isr != p.isr || to == req.broker_id || !p.isr.contains(&to) || p.isr_lost {
        return refused(ControllerError::InvalidRequest(format!(
            "a handover keeps the ISR {:?} and names another member of it, not {} with {isr:?}",
            p.isr, to.0
        )));
    }
    if !eligible(image, to) {
        return refused(ControllerError::IneligibleReplica(format!(
            "broker {} may not lead: fenced, unregistered or shutting down",
            to.0
        )));
    }
    let records = vec![MetadataRecord::PartitionChange(PartitionChange {
        topic_id: req.topic_id,
        partition: req.partition,
        isr: None,
        leader: LeaderChange::To(to),
        replicas: None,
    })];
    let mut after = image.clone();
    after
        .replay(after.offset() + 1, &records[0])
        .expect("a handover fits the image");
    let new = after.partition(req.topic_id, req.partition).expect("there");
    assert_eq!(new.leader, Some(to), "the successor leads");
    assert_eq!(
        new.leader_epoch,
        p.leader_epoch + 1,
        "in a new leader epoch"
    );
    assert_eq!(new.isr, p.isr, "with the same ISR");
    Altered {
        result: Err(ControllerError::NewLeaderElected(req.broker_id)),
        records,
    }
}

/// The replication invariants that hold between two of the controller's decisions (a decision's
/// records replay one at a time, so in the middle of its batch they may not): every leader is
/// eligible or was left leading only because no other ISR member could take over; no fenced
/// or unregistered broker in an ISR unless it is the last member of an offline partition
/// (leader ∈ ISR ⊆ replicas is the image's own invariant). An `Err` says which partition and
/// why.
pub fn check(image: &MetadataImage) -> Result<(), String> {
    for (topic, t) in image.topics() {
        for (p, r) in &t.partitions {
            let gone = |b: &BrokerId| image.broker(*b).is_none_or(|reg| reg.fenced);
            if let Some(l) = r.leader.filter(gone) {
                return Err(format!(
                    "{}-{p}: leader {} is fenced or unregistered",
                    t.name, l.0
                ));
            }
            let lone_offline = r.leader.is_none() && r.isr.len() == 1;
            if let Some(b) = r.isr.iter().find(|b| gone(b)).filter(|_| !lone_offline) {
                return Err(format!(
                    "{}-{p} (topic {topic:?}): broker {} is fenced or unregistered but in the ISR {:?} (leader {:?})",
                    t.name, b.0, r.isr, r.leader
                ));
            }
        }
    }
    Ok(())
}
