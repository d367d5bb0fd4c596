//! Partition reassignment (KIP-455), the controller's decisions on an image: a move starts with
//! the target and the leaving replicas together, completes only once every added replica is in
//! the ISR, moves the leader off a removed replica, cancels back to the original replicas, and
//! refuses what Kafka refuses with its error codes. Each decision's records are replayed, so the
//! image's own invariants (and a snapshot's round trip) check them too.

use gregor_core::cluster::reassign::{self, alter, complete_all, ongoing};
use gregor_core::cluster::records::{PartitionRecord, RegisterBroker};
use gregor_core::cluster::{replication, BrokerEpoch, BrokerId, MetadataImage, MetadataRecord};

const TOPIC: &str = "orders";

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|i| BrokerId(*i)).collect()
}

/// Brokers 1..=5 registered and unfenced; topic `orders` with one partition on `replicas`,
/// ISR `isr`, led by the first ISR member.
fn cluster(replicas: &[i32], isr: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::new();
    let mut records = Vec::new();
    for id in 1..=5 {
        records.push(MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: BrokerId(id),
            incarnation_id: [id as u8; 16],
            broker_epoch: BrokerEpoch(id as i64 - 1),
            endpoints: vec![],
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
        }));
    }
    let topic_id = gregor_core::cluster::TopicId([7; 16]);
    records.push(MetadataRecord::Topic {
        name: TOPIC.into(),
        topic_id,
    });
    records.push(MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition: 0,
        replicas: b(replicas),
        isr: b(isr),
        leader: Some(BrokerId(isr[0])),
        leader_epoch: 0,
        partition_epoch: 0,
    }));
    apply(&mut image, &records);
    image
}

/// Decide a reassignment of `orders`-0 to `target` (a cancel for `None`) and replay it.
fn go(image: &mut MetadataImage, target: Option<&[i32]>) {
    let target = target.map(b);
    let records = alter(image, TOPIC, 0, target.as_deref()).unwrap();
    apply(image, &records);
}

fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        let at = image.offset() + 1;
        image.replay(at, r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
}

fn p0(image: &MetadataImage) -> gregor_core::cluster::PartitionRegistration {
    let id = image.topic_id(TOPIC).unwrap();
    image.partition(id, 0).unwrap().clone()
}

/// The ISR as the leader's AlterPartition would set it (the controller's own check runs too).
fn set_isr(image: &mut MetadataImage, isr: &[i32]) {
    let p = p0(image);
    let leader = p.leader.unwrap();
    let req = replication::AlterPartition {
        broker_id: leader,
        broker_epoch: image.broker(leader).unwrap().broker_epoch,
        topic_id: image.topic_id(TOPIC).unwrap(),
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: b(isr).into_iter().map(|x| (x, BrokerEpoch(-1))).collect(),
        successor: None,
    };
    let altered = replication::alter_partition(image, &req);
    assert!(altered.result.is_ok(), "{altered:?}");
    let records = reassign::then_complete(image, altered.records);
    apply(image, &records);
}

fn snapshot_round_trips(image: &MetadataImage) {
    let back = MetadataImage::load_snapshot(image.offset() + 1, &image.to_records()).unwrap();
    assert_eq!(p0(&back), p0(image), "a snapshot keeps the reassignment");
}

#[test]
fn a_move_completes_only_once_every_added_replica_is_in_sync_and_the_leader_leaves_a_removed_one() {
    let mut image = cluster(&[1], &[1]);
    let records = alter(&image, TOPIC, 0, Some(&b(&[2, 3]))).unwrap();
    apply(&mut image, &records);
    let p = p0(&image);
    assert_eq!(
        p.replicas,
        b(&[2, 3, 1]),
        "the target, then the leaving replica"
    );
    assert_eq!(
        (p.adding.clone(), p.removing.clone()),
        (b(&[2, 3]), b(&[1]))
    );
    assert_eq!(
        (p.leader, p.isr.clone()),
        (Some(BrokerId(1)), b(&[1])),
        "nothing moves yet"
    );
    let listed = ongoing(&image);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].adding, b(&[2, 3]));
    snapshot_round_trips(&image);
    // One of two added replicas in sync: not complete (and the periodic check agrees).
    set_isr(&mut image, &[1, 2]);
    assert_eq!(p0(&image).adding, b(&[2, 3]), "still moving");
    assert!(complete_all(&image).is_empty());
    // Both in sync: replicas = target, ISR ∩ target, and broker 1 (removed) no longer leads.
    let epoch = p0(&image).leader_epoch;
    set_isr(&mut image, &[1, 2, 3]);
    let p = p0(&image);
    assert_eq!(p.replicas, b(&[2, 3]));
    assert_eq!(p.isr, b(&[2, 3]));
    assert_eq!(
        p.leader,
        Some(BrokerId(2)),
        "the first in-sync replica of the target leads"
    );
    assert!(p.leader_epoch > epoch, "a new leader, a new epoch");
    assert!(p.adding.is_empty() && p.removing.is_empty());
    assert!(ongoing(&image).is_empty());
}

#[test]
fn raising_the_replication_factor_keeps_the_leader_and_shrinking_completes_at_once() {
    let mut image = cluster(&[1], &[1]);
    go(&mut image, Some(&[1, 2, 3]));
    assert_eq!(p0(&image).removing, b(&[]));
    set_isr(&mut image, &[1, 2, 3]);
    let p = p0(&image);
    assert_eq!(
        (p.replicas.clone(), p.leader),
        (b(&[1, 2, 3]), Some(BrokerId(1)))
    );
    assert!(!reassign::in_progress(&p));
    // Down to two replicas that are in sync already: done in the same batch.
    let records = alter(&image, TOPIC, 0, Some(&b(&[3, 2]))).unwrap();
    apply(&mut image, &records);
    let p = p0(&image);
    assert_eq!(p.replicas, b(&[3, 2]));
    assert_eq!(p.isr, b(&[2, 3]));
    assert_eq!(
        p.leader,
        Some(BrokerId(3)),
        "1 left, so the target's first leads"
    );
    assert!(!reassign::in_progress(&p));
    // The same target again writes nothing.
    assert_eq!(alter(&image, TOPIC, 0, Some(&b(&[3, 2]))), Ok(vec![]));
}

#[test]
fn a_cancel_reverts_to_the_original_replicas_and_a_new_target_replaces_the_old() {
    let mut image = cluster(&[1, 2], &[1, 2]);
    go(&mut image, Some(&[3, 4]));
    set_isr(&mut image, &[1, 2, 3]);
    // A new target replaces the old: 4 is no longer added, 3 stays.
    go(&mut image, Some(&[3, 5]));
    let p = p0(&image);
    assert_eq!(p.replicas, b(&[3, 5, 1, 2]));
    assert_eq!(
        (p.adding.clone(), p.removing.clone()),
        (b(&[3, 5]), b(&[1, 2]))
    );
    assert_eq!(p.isr, b(&[1, 2, 3]));
    snapshot_round_trips(&image);
    // Cancel: back to [1, 2]; 3 leaves the ISR it had joined.
    go(&mut image, None);
    let p = p0(&image);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (b(&[1, 2]), b(&[1, 2]))
    );
    assert_eq!(p.leader, Some(BrokerId(1)));
    assert!(!reassign::in_progress(&p));
}

#[test]
fn bad_targets_and_cancels_of_nothing_get_kafkas_errors() {
    let image = cluster(&[1, 2], &[1, 2]);
    let code = |t: Option<&[BrokerId]>, topic: &str, part: i32| {
        alter(&image, topic, part, t).unwrap_err().code()
    };
    assert_eq!(
        code(Some(&b(&[])), TOPIC, 0),
        39,
        "INVALID_REPLICA_ASSIGNMENT: empty"
    );
    assert_eq!(code(Some(&b(&[2, 2])), TOPIC, 0), 39, "a broker twice");
    assert_eq!(
        code(Some(&b(&[2, 9])), TOPIC, 0),
        39,
        "broker 9 is not registered"
    );
    assert_eq!(
        code(Some(&b(&[2, 3])), TOPIC, 1),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(code(Some(&b(&[2, 3])), "nope", 0), 3);
    assert_eq!(code(None, TOPIC, 0), 85, "NO_REASSIGNMENT_IN_PROGRESS");
}

#[test]
fn a_removed_leader_that_is_fenced_waits_for_a_live_target_replica() {
    let mut image = cluster(&[1], &[1]);
    go(&mut image, Some(&[2]));
    set_isr(&mut image, &[1, 2]);
    assert_eq!(p0(&image).replicas, b(&[2]), "complete: 2 leads");
    assert_eq!(p0(&image).leader, Some(BrokerId(2)));
    // Now move to 3 while 3 is fenced: 3 cannot join the ISR, so nothing completes.
    go(&mut image, Some(&[3]));
    let fence = MetadataRecord::BrokerRegistrationChange {
        broker_id: BrokerId(3),
        broker_epoch: BrokerEpoch(2),
        fenced: Some(true),
        in_controlled_shutdown: None,
    };
    apply(&mut image, &[fence]);
    assert!(complete_all(&image).is_empty());
    assert_eq!(p0(&image).removing, b(&[2]));
}
