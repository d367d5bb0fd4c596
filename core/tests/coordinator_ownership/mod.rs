//! A group coordinator that owns only some `__consumer_offsets` partitions, as each broker of a
//! cluster does: a group is served only while its partition is owned and loaded, losing the
//! partition answers NOT_COORDINATOR to everything about its groups (waiting operations too),
//! and gaining it back reads the log afresh. Driven through `Broker::offsets_partition_gained`
//! and `Broker::offsets_partition_lost`, the calls the cluster's broker makes as the metadata
//! image moves, with the load's reads held back where a test needs to see the loading state.

use super::*;
use gregor_core::group::partition_for;
use gregor_core::ids::PartitionIndex;
use gregor_core::OpId;

/// `count` group names of offsets partition `p` (of the default four), and one of another.
fn names_in(h: &Harness, p: PartitionIndex, count: usize) -> (Vec<String>, String) {
    let n = h.broker.config().offsets_topic_partitions;
    let names = (0..100).map(|i| format!("group-{i}"));
    let ours: Vec<String> = names
        .clone()
        .filter(|g| partition_for(g, n) == p)
        .take(count)
        .collect();
    assert_eq!(ours.len(), count);
    let other = names
        .into_iter()
        .find(|g| partition_for(g, n) != p)
        .unwrap();
    (ours, other)
}

/// Gain partition `p` but hold back the reads of its load; returns them.
fn gain_holding_reads(h: &mut Harness, p: PartitionIndex) -> Vec<(OpId, StorageRequest)> {
    let now = h.now;
    h.broker.offsets_partition_gained(now, p);
    let mut held = Vec::new();
    let mut other = Vec::new();
    while let Some(out) = h.broker.poll_output() {
        match out {
            Output::Storage { op, request } if matches!(request, StorageRequest::Read { .. }) => {
                held.push((op, request))
            }
            Output::Storage { op, request } => other.push((op, request)),
            Output::Log { .. } => {}
            unexpected => panic!("gaining a partition answers no client: {unexpected:?}"),
        }
    }
    release(h, other);
    held
}

/// Carry out storage requests held back, feed their completions, and drain.
fn release(h: &mut Harness, held: Vec<(OpId, StorageRequest)>) {
    for (op, request) in held {
        let result = h.storage.exec(&request);
        let now = h.now;
        h.broker.handle(Input::StorageDone { now, op, result });
    }
    h.drain();
}

fn lose(h: &mut Harness, p: PartitionIndex) {
    let now = h.now;
    h.broker.offsets_partition_lost(now, p);
    h.drain();
}

/// A group-less consumer's commit of `offset` for partition `partition` of `t`.
fn simple_commit(h: &mut Harness, group: &str, partition: i32, offset: i64) -> i16 {
    commit(h, 1, group, "", -1, partition, offset)
}

fn describe(h: &mut Harness, groups: &[&str]) -> Vec<(String, i16, String)> {
    let req = DescribeGroupsRequest::default().with_groups(
        groups
            .iter()
            .map(|g| GroupId(StrBytes::from_string(g.to_string())))
            .collect(),
    );
    let c = h.send(
        9,
        ApiKey::DescribeGroups,
        5,
        RequestKind::DescribeGroups(req),
    );
    match h.take(c) {
        Some(ResponseKind::DescribeGroups(r)) => r
            .groups
            .iter()
            .map(|d| {
                (
                    d.group_id.to_string(),
                    d.error_code,
                    d.group_state.to_string(),
                )
            })
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// (error, listed group ids)
fn list(h: &mut Harness) -> (i16, Vec<String>) {
    let c = h.send(
        9,
        ApiKey::ListGroups,
        4,
        RequestKind::ListGroups(ListGroupsRequest::default()),
    );
    match h.take(c) {
        Some(ResponseKind::ListGroups(r)) => (
            r.error_code,
            r.groups.iter().map(|g| g.group_id.to_string()).collect(),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

fn delete(h: &mut Harness, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_string(group.into()))]);
    let c = h.send(9, ApiKey::DeleteGroups, 2, RequestKind::DeleteGroups(req));
    match h.take(c) {
        Some(ResponseKind::DeleteGroups(r)) => r.results[0].error_code,
        other => panic!("unexpected {other:?}"),
    }
}

/// Groups in two partitions commit; one partition is lost: its group hears NOT_COORDINATOR
/// from every API while the other is served as before. Gained back, the group hears
/// COORDINATOR_LOAD_IN_PROGRESS until the reads complete, then its offsets are back exactly.
#[test]
fn a_lost_partition_stops_serving_its_groups_and_a_regained_one_loads_them_back() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let pa = PartitionIndex(1);
    let (ours, b) = names_in(&h, pa, 1);
    let (a, b) = (ours[0].as_str(), b.as_str());
    assert_eq!(simple_commit(&mut h, a, 0, 42), NONE);
    assert_eq!(simple_commit(&mut h, a, 1, 7), NONE);
    assert_eq!(simple_commit(&mut h, b, 0, 5), NONE);

    lose(&mut h, pa);
    assert_eq!(simple_commit(&mut h, a, 0, 43), NOT_COORDINATOR);
    assert_eq!(fetch_offset_and_error(&mut h, a, 0).0, NOT_COORDINATOR);
    assert_eq!(heartbeat(&mut h, 1, a, "m", 1), NOT_COORDINATOR);
    let j = join(&mut h, 1, a, "", 10_000);
    assert_eq!(join_result(&mut h, j).unwrap().error_code, NOT_COORDINATOR);
    assert_eq!(delete(&mut h, a), NOT_COORDINATOR);
    let described = describe(&mut h, &[a, b]);
    assert_eq!(described[0].1, NOT_COORDINATOR, "per group: {described:?}");
    assert_eq!((described[1].1, described[1].2.as_str()), (NONE, "Empty"));
    assert_eq!(list(&mut h), (NONE, vec![b.to_string()]));
    // The other partition's group is served as before.
    assert_eq!(fetch_offset_and_error(&mut h, b, 0), (NONE, 5));
    assert_eq!(simple_commit(&mut h, b, 0, 6), NONE);
    assert_eq!(fetch_offset_and_error(&mut h, b, 0), (NONE, 6));

    let held = gain_holding_reads(&mut h, pa);
    assert!(!held.is_empty(), "the partition's log is read back");
    assert_eq!(
        fetch_offset_and_error(&mut h, a, 0).0,
        COORDINATOR_LOAD_IN_PROGRESS
    );
    assert_eq!(
        simple_commit(&mut h, a, 0, 43),
        COORDINATOR_LOAD_IN_PROGRESS
    );
    assert_eq!(describe(&mut h, &[a])[0].1, COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(
        list(&mut h),
        (COORDINATOR_LOAD_IN_PROGRESS, vec![b.to_string()]),
        "the list is incomplete while a partition loads, and says so"
    );
    release(&mut h, held);
    assert_eq!(fetch_offset_and_error(&mut h, a, 0), (NONE, 42));
    assert_eq!(fetch_offset_and_error(&mut h, a, 1), (NONE, 7));
    assert_eq!(list(&mut h).0, NONE);
    assert_eq!(simple_commit(&mut h, a, 0, 43), NONE);
    assert_eq!(fetch_offset_and_error(&mut h, a, 0), (NONE, 43));
}

/// A commit to `group` (group-less) at `offset` of `t`-0, sent without waiting for its answer.
fn send_commit(h: &mut Harness, conn: u64, group: &str, offset: i64) -> i32 {
    let req = commit_request(group, "", -1, 0, offset);
    h.send(
        conn,
        ApiKey::OffsetCommit,
        7,
        RequestKind::OffsetCommit(req),
    )
}

fn commit_code(h: &mut Harness, corr: i32) -> Option<i16> {
    match h.take(corr)? {
        ResponseKind::OffsetCommit(r) => Some(r.topics[0].partitions[0].error_code),
        other => panic!("unexpected {other:?}"),
    }
}

/// Members waiting in a rebalance (a follower's SyncGroup waiting for the leader, a JoinGroup
/// waiting for the rebalance), and a commit waiting to be durable, when their partition is
/// lost: each hears NOT_COORDINATOR at once (as Kafka's coordinator answers on resignation),
/// nothing is answered twice when the held fsync completes later, and no timer of the lost
/// groups fires. A commit to another partition is untouched.
#[test]
fn operations_waiting_on_a_lost_partition_hear_not_coordinator() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let pa = PartitionIndex(2);
    let (ours, other) = names_in(&h, pa, 3);
    let (a, c, d) = (ours[0].as_str(), ours[1].as_str(), ours[2].as_str());

    // Group `a`: two members reach generation 1; the follower's sync waits for the leader.
    let j = join(&mut h, 1, a, "", 10_000);
    let m1 = join_result(&mut h, j).unwrap().member_id.to_string();
    let j1 = join(&mut h, 1, a, &m1, 10_000);
    let j = join(&mut h, 2, a, "", 10_000);
    let m2 = join_result(&mut h, j).unwrap().member_id.to_string();
    let j2 = join(&mut h, 2, a, &m2, 10_000);
    h.advance_ms(6_500);
    let r1 = join_result(&mut h, j1).expect("joined");
    let r2 = join_result(&mut h, j2).expect("joined");
    assert_eq!(
        (r1.error_code, r2.error_code, r1.generation_id),
        (NONE, NONE, 1)
    );
    let (follower, fconn) = if r1.leader.as_str() == m1 {
        (&m2, 2)
    } else {
        (&m1, 1)
    };
    let parked_sync = sync(&mut h, fconn, a, follower, 1, &[]);
    assert!(
        h.take(parked_sync).is_none(),
        "the follower waits for the leader"
    );

    // Group `c`: a member waits in its first rebalance.
    let j = join(&mut h, 3, c, "", 10_000);
    let m3 = join_result(&mut h, j).unwrap().member_id.to_string();
    let parked_join = join(&mut h, 3, c, &m3, 10_000);
    assert!(
        h.take(parked_join).is_none(),
        "the join waits for the rebalance"
    );

    // Commits to `d` (this partition) and to `other` wait for their fsync.
    h.hold_syncs = true;
    let waiting_d = send_commit(&mut h, 4, d, 9);
    let waiting_other = send_commit(&mut h, 5, &other, 11);
    assert_eq!(commit_code(&mut h, waiting_d), None, "waits for its fsync");

    lose(&mut h, pa);
    match h.take(parked_sync) {
        Some(ResponseKind::SyncGroup(r)) => assert_eq!(r.error_code, NOT_COORDINATOR),
        other => panic!("the parked sync is answered: {other:?}"),
    }
    let j = join_result(&mut h, parked_join).expect("the parked join is answered");
    assert_eq!(j.error_code, NOT_COORDINATOR);
    assert_eq!(commit_code(&mut h, waiting_d), Some(NOT_COORDINATOR));
    assert_eq!(commit_code(&mut h, waiting_other), None, "still waits");

    h.hold_syncs = false;
    h.release_syncs();
    assert_eq!(commit_code(&mut h, waiting_other), Some(NONE));
    assert!(
        h.responses.is_empty(),
        "nothing is answered twice: {:?}",
        h.responses
    );
    // Nothing of the lost groups is left to fire: their members' sessions pass in silence.
    h.advance_ms(30_000);
    assert!(h.responses.is_empty(), "no timer of a lost group fires");
    assert_eq!(fetch_offset_and_error(&mut h, &other, 0), (NONE, 11));

    // Gained back, the partition holds what its log holds: `a`'s generation, `d`'s commit (it
    // was written, though its committer was told to look elsewhere), nothing parked.
    let reads = gain_holding_reads(&mut h, pa);
    release(&mut h, reads);
    assert_eq!(fetch_offset_and_error(&mut h, d, 0), (NONE, 9));
}

/// A partition lost while its load's reads are out, then gained again (twice): the reads of
/// the abandoned loads, arriving late, are dropped — neither completing a later load early nor
/// overwriting what a later load and newer commits put in memory.
#[test]
fn late_reads_of_an_abandoned_load_are_ignored() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let pa = PartitionIndex(0);
    let (ours, _) = names_in(&h, pa, 1);
    let a = ours[0].as_str();
    assert_eq!(simple_commit(&mut h, a, 0, 42), NONE);

    lose(&mut h, pa);
    let first = gain_holding_reads(&mut h, pa);
    lose(&mut h, pa);
    let second = gain_holding_reads(&mut h, pa);
    lose(&mut h, pa);
    let third = gain_holding_reads(&mut h, pa);
    assert!(!first.is_empty() && !second.is_empty() && !third.is_empty());

    release(&mut h, first);
    assert_eq!(
        fetch_offset_and_error(&mut h, a, 0).0,
        COORDINATOR_LOAD_IN_PROGRESS,
        "an abandoned load's reads do not complete the current one"
    );
    release(&mut h, third);
    assert_eq!(fetch_offset_and_error(&mut h, a, 0), (NONE, 42));
    assert_eq!(simple_commit(&mut h, a, 0, 99), NONE);
    release(&mut h, second);
    assert_eq!(
        fetch_offset_and_error(&mut h, a, 0),
        (NONE, 99),
        "a late read of an older ownership is never replayed"
    );
    // And the log agrees: lost and gained once more, the partition loads 99.
    lose(&mut h, pa);
    let again = gain_holding_reads(&mut h, pa);
    release(&mut h, again);
    assert_eq!(fetch_offset_and_error(&mut h, a, 0), (NONE, 99));
}
