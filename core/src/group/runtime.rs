//! The group coordinator's use of the coordinator runtime: which `__consumer_offsets`
//! partitions it owns, loading them (Kafka's `CoordinatorLoader`), and writing the records its
//! operations produce.
//!
//! ## Election and resignation: who coordinates a group
//! A group lives in one partition of `__consumer_offsets` ([`partition_for`]), and its
//! *coordinator* is the broker that leads that partition: the broker that can append the
//! group's records. In a cluster the partitions are spread over the brokers, so each broker
//! coordinates the groups of the partitions it leads, and the set changes as leadership moves.
//! Kafka's coordinator runtime hears of it through `onElection(partition, epoch)` (this broker
//! became the leader: `scheduleLoadOperation`) and `onResignation(partition, epoch)` (it no
//! longer is: `scheduleUnloadOperation`). Here they are [`partition_gained`] and
//! [`partition_lost`], and each offsets partition is in one of three states:
//!
//! - **not owned**: nothing of it is in memory; its groups answer NOT_COORDINATOR (16), and a
//!   client looks the coordinator up again with FindCoordinator.
//! - **loading**: gained; its log is being read back. Its groups answer
//!   COORDINATOR_LOAD_IN_PROGRESS (14), and a client retries the same broker.
//! - **loaded**: the log's records were replayed through [`Coordinator::replay`], the same
//!   function live operations use, so the groups and committed offsets in memory are exactly
//!   the log's. They are served.
//!
//! Losing a partition drops every group and offset it held, answers NOT_COORDINATOR to every
//! operation waiting on it (joins and syncs parked in a rebalance, writes waiting to become
//! durable), and so forgets its timers with its groups. Gaining it again reads the log afresh:
//! what is in memory is never trusted across an ownership change, because another broker may
//! have written the partition in between.
//!
//! A load is a handful of reads, one per segment. A partition lost before they all come back
//! has its load abandoned: each load's reads carry *slots* from a counter that never repeats,
//! so a late read of an abandoned load matches no load in progress and is dropped; it can never
//! be applied to a later ownership of the same partition (the counter plays the part of Kafka's
//! per-partition epoch). A load whose partition's log was cut or grew while its reads were out
//! is started again, so what is replayed is always the whole log as it is.
//!
//! A standalone broker owns every partition: at start it creates the topic if missing and gains
//! each partition in turn, the same code path a cluster's broker takes one election at a time.

use super::*;

/// Whether the coordinator waits to be told which partitions it owns (a broker in a KRaft
/// cluster, where the metadata image says who leads each offsets partition) instead of owning
/// every partition from the start (the standalone broker): `Config::kraft`.
pub(crate) fn waits_for_elections(config: &Config) -> bool {
    config.kraft
}

/// At start: a standalone broker makes sure `__consumer_offsets` exists and gains every
/// partition of it; a broker in a cluster does nothing and waits for its elections.
pub(crate) fn start(c: &mut Coordinator, b: &mut Rt) {
    if waits_for_elections(b.config()) {
        return;
    }
    match b.partitions_of(OFFSETS_TOPIC) {
        None => {
            let s = b.default_settings().for_offsets_topic();
            b.create_topic(OFFSETS_TOPIC, c.offsets_partitions, s);
        }
        // The partition count is the topic's, whatever the configuration says now: groups hash
        // onto the partitions that exist.
        Some(existing) => c.offsets_partitions = existing,
    }
    for p in 0..c.offsets_partitions {
        partition_gained(c, b, PartitionIndex(p));
    }
    assert_eq!(
        c.owned.len(),
        c.offsets_partitions as usize,
        "a standalone broker owns all"
    );
}

/// This broker became the coordinator of offsets partition `p` (Kafka's `onElection`): read the
/// partition back. Until its reads complete its groups answer COORDINATOR_LOAD_IN_PROGRESS. A
/// partition already loaded stays as it is; one still loading starts its load again.
pub(crate) fn partition_gained(c: &mut Coordinator, b: &mut Rt, p: PartitionIndex) {
    if c.owned.is_empty() {
        // Nothing is held under the old count: take the topic's own, as at start.
        if let Some(n) = b.partitions_of(OFFSETS_TOPIC) {
            assert!(c.groups.is_empty() && c.offsets.is_empty());
            c.offsets_partitions = n;
        }
    }
    if !p.is_within(c.offsets_partitions) {
        b.log(
            LogLevel::Error,
            format!(
                "{OFFSETS_TOPIC}-{p} gained, but the topic has {} partitions; ignored",
                c.offsets_partitions
            ),
        );
        return;
    }
    if c.is_loaded(p) {
        return;
    }
    begin_load(c, b, p);
    assert!(c.owned.contains_key(&p), "a gained partition is owned");
}

/// Issue the reads of a load of `p` (or mark it loaded at once if its log is empty).
fn begin_load(c: &mut Coordinator, b: &mut Rt, p: PartitionIndex) {
    let reads = b.load_reads(OFFSETS_TOPIC, p);
    if reads.is_empty() {
        c.owned.insert(p, Ownership::Loaded);
        loaded(c, b, p, 0);
        return;
    }
    let first_slot = c.next_load_slot;
    c.next_load_slot += reads.len();
    c.owned.insert(
        p,
        Ownership::Loading(Loading {
            first_slot,
            chunks: vec![None; reads.len()],
            outstanding: reads.len(),
            issued_at: b.end_mark(OFFSETS_TOPIC, p),
            failed: false,
        }),
    );
    for (i, req) in reads.into_iter().enumerate() {
        b.read_for_load(req, first_slot + i);
    }
}

/// A read of a load came back. Reads of abandoned loads (their partition lost, or the load
/// started again) match no load and are dropped.
pub(crate) fn load_done(
    c: &mut Coordinator,
    b: &mut Rt,
    slot: usize,
    result: Result<StorageReply, StorageFault>,
) {
    assert!(slot < c.next_load_slot, "a load slot handed out");
    let found = c.owned.iter_mut().find_map(|(p, o)| match o {
        Ownership::Loading(l) if (l.first_slot..l.first_slot + l.chunks.len()).contains(&slot) => {
            Some((*p, l))
        }
        _ => None,
    });
    let Some((p, loading)) = found else {
        return;
    };
    let index = slot - loading.first_slot;
    assert!(loading.outstanding > 0, "a load read completes once");
    assert!(
        loading.chunks[index].is_none(),
        "load slot {slot} filled once"
    );
    match result {
        Ok(StorageReply::Read(bytes)) => loading.chunks[index] = Some(bytes),
        Ok(StorageReply::Done) => panic!("a read completed without data"),
        Err(fault) => {
            // Without its log the coordinator cannot know the committed offsets; answering
            // "none committed" would make consumers reprocess or skip. Stay unavailable.
            loading.failed = true;
            b.log(
                LogLevel::Error,
                format!("loading {OFFSETS_TOPIC}-{p} failed: {fault}; its groups are unavailable"),
            );
            return;
        }
    }
    loading.outstanding -= 1;
    if loading.outstanding > 0 {
        return;
    }
    assert!(!loading.failed, "a failed read is never counted back");
    if b.end_mark(OFFSETS_TOPIC, p) != loading.issued_at {
        // The log moved under the reads (a failed write cut it): read it again as it is now.
        b.log(
            LogLevel::Warn,
            format!("{OFFSETS_TOPIC}-{p} changed while it loaded; loading it again"),
        );
        begin_load(c, b, p);
        return;
    }
    let Some(Ownership::Loading(loading)) = c.owned.insert(p, Ownership::Loaded) else {
        unreachable!("the load just found")
    };
    let now = b.now();
    let n = c.offsets_partitions;
    let mut count = 0;
    for chunk in loading.chunks.into_iter().flatten() {
        match decode_batches(chunk) {
            Ok(records) => {
                for r in records {
                    let ours = match &r {
                        GroupRecord::Reset { partition } => *partition == p.0,
                        other => partition_for(other.group(), n) == p,
                    };
                    if !ours {
                        b.log(
                            LogLevel::Error,
                            format!("{OFFSETS_TOPIC}-{p}: a record of another partition skipped"),
                        );
                        continue;
                    }
                    count += 1;
                    c.replay(r, now);
                }
            }
            Err(e) => b.log(
                LogLevel::Error,
                format!("{OFFSETS_TOPIC}-{p}: undecodable records skipped: {e}"),
            ),
        }
    }
    loaded(c, b, p, count);
}

/// Offsets partition `p` was just replayed: its groups start serving.
fn loaded(c: &mut Coordinator, b: &mut Rt, p: PartitionIndex, count: usize) {
    assert!(c.is_loaded(p));
    let now = b.now();
    let n = c.offsets_partitions;
    // What was loaded may not be durable yet (see `Broker::new`): answers wait for it.
    let mark = b.end_mark(OFFSETS_TOPIC, p);
    let mut groups = 0;
    for (id, g) in c.groups.iter_mut() {
        if partition_for(id.as_str(), n) != p {
            continue;
        }
        groups += 1;
        g.last_write = mark.clone();
        // Members must heartbeat again within their session, counted from now.
        for m in g.members.values_mut() {
            m.session_deadline = now + Duration::from_ms(m.session_timeout_ms.max(0) as u64);
        }
    }
    // Look for expired offsets and an oversized log at the next tick: a partition long led
    // elsewhere may be due for both.
    c.next_expiry_check = None;
    b.log(
        LogLevel::Info,
        format!("group coordinator loaded {OFFSETS_TOPIC}-{p}: {count} records, {groups} groups"),
    );
}

/// This broker is no longer the coordinator of offsets partition `p` (Kafka's
/// `onResignation`): forget every group and committed offset it held, with their timers, and
/// answer NOT_COORDINATOR to every operation waiting on it: `waits`, the writes the broker was
/// holding until durable (taken from its purgatory), and the joins and syncs parked in a
/// rebalance. A load in progress is abandoned.
pub(crate) fn partition_lost(
    c: &mut Coordinator,
    b: &mut Rt,
    p: PartitionIndex,
    waits: Vec<PendingWrite<GroupRecord>>,
) {
    let was = c.owned.remove(&p);
    for w in waits {
        assert_eq!(w.mark.partition, TopicPartition::new(OFFSETS_TOPIC, p));
        if let Some((to, ok, _)) = w.reply {
            b.respond(to, Some(not_coordinator(ok)));
        }
    }
    let n = c.offsets_partitions;
    let gone: Vec<GroupId> = c
        .groups
        .keys()
        .filter(|g| partition_for(g.as_str(), n) == p)
        .cloned()
        .collect();
    for id in &gone {
        let g = c.groups.remove(id).expect("listed");
        for m in g.members.values() {
            if let Some(to) = m.awaiting_join {
                b.respond(
                    to,
                    Some(join_error(ErrorCode::NOT_COORDINATOR, m.member_id.as_str())),
                );
            }
            if let Some(to) = m.awaiting_sync {
                b.respond(to, Some(sync_error(ErrorCode::NOT_COORDINATOR)));
            }
        }
    }
    c.offsets.retain(|g, _| partition_for(g.as_str(), n) != p);
    c.snapshots.remove(&p);
    // Postcondition: nothing of the partition is left in memory.
    assert!(c
        .groups
        .keys()
        .chain(c.offsets.keys())
        .all(|g| partition_for(g.as_str(), n) != p));
    let what = match was {
        None => "was not owned",
        Some(Ownership::Loading(_)) => "its load abandoned",
        Some(Ownership::Loaded) => "unloaded",
    };
    b.log(
        LogLevel::Info,
        format!(
            "group coordinator resigned {OFFSETS_TOPIC}-{p} ({what}): {} groups",
            gone.len()
        ),
    );
}

/// The answer to an operation whose coordinator resigned while it waited: its own response
/// with NOT_COORDINATOR in every error field, so the client finds the new coordinator.
pub(super) fn not_coordinator(ok: ResponseKind) -> ResponseKind {
    let code: i16 = ErrorCode::NOT_COORDINATOR.into();
    match ok {
        ResponseKind::JoinGroup(r) => join_error(ErrorCode::NOT_COORDINATOR, r.member_id.as_str()),
        ResponseKind::SyncGroup(_) => sync_error(ErrorCode::NOT_COORDINATOR),
        ResponseKind::OffsetCommit(mut r) => {
            for p in r.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                p.error_code = code;
            }
            ResponseKind::OffsetCommit(r)
        }
        ResponseKind::OffsetFetch(mut r) => {
            // v0 and v1 carry errors per partition only.
            for p in r.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                p.error_code = code;
                p.committed_offset = Offset::NONE.0;
                p.committed_leader_epoch = LeaderEpoch::NONE.0;
                p.metadata = Some(sb(""));
            }
            ResponseKind::OffsetFetch(r.with_error_code(code))
        }
        ResponseKind::OffsetDelete(_) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
        }
        ResponseKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        ResponseKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        other => panic!("no resignation answer for {other:?}: only group answers wait"),
    }
}

/// Write records (a `CoordinatorResult`): replay membership records now, append all of them to
/// the group's offsets partition through the runtime, and send `reply`'s response once they are
/// durable (its error response if the write fails). Returns where the write ended, `None` if it
/// was refused (then the group rebalances away from the unwritten generation).
pub(super) fn commit_records(
    c: &mut Coordinator,
    b: &mut Rt,
    group: &GroupId,
    records: Vec<GroupRecord>,
    reply: Option<Reply>,
) -> Option<WriteMark> {
    assert!(!records.is_empty(), "a write of no records");
    let now = b.now();
    // Membership changes take effect at once (the rebalance protocol runs on them; a failed
    // write fails the SyncGroup that depends on it). Committed offsets take effect only once
    // durable, as in Kafka: a commit that fails to write must never be read back (found by the
    // broker_ops fuzz target: a commit refused on a full disk was returned by OffsetFetch).
    let mut deferred = Vec::new();
    for r in &records {
        assert_eq!(r.group(), group.as_str());
        if matches!(r, GroupRecord::Offset { .. }) {
            deferred.push(r.clone());
        } else {
            c.replay(r.clone(), now);
        }
    }
    let partition = partition_for(group.as_str(), c.offsets_partitions);
    assert!(
        c.is_loaded(partition),
        "{group}: written only by the coordinator of its loaded partition {partition}"
    );
    let batch = encode_batch(&records, now.unix_ms());
    let header = crate::batch::BatchHeader::parse(&batch).expect("a batch we built parses");
    assert_eq!(
        header.records_count as usize,
        records.len(),
        "one batch, every record"
    );
    let membership = records
        .iter()
        .find_map(|r| match r {
            GroupRecord::Group { value: Some(v), .. } => Some(GenerationId(v.generation)),
            _ => None,
        })
        .map(|generation| (group.clone(), generation));
    let writes_membership = records
        .iter()
        .any(|r| matches!(r, GroupRecord::Group { .. }));
    let written = crate::coordinator::runtime::write(
        b,
        OFFSETS_TOPIC,
        partition,
        batch,
        deferred,
        reply,
        membership.clone(),
    );
    match written {
        Ok(mark) => {
            assert!(mark.end > Offset(0), "a write ends after its first record");
            assert_eq!(
                mark.partition,
                TopicPartition::new(OFFSETS_TOPIC, partition)
            );
            // Only membership records: a committed offset takes effect when durable anyway,
            // and a failed commit must not hold up the group's SyncGroup answers forever (seed
            // 610: a commit failed on a full disk, and every rejoin's SyncGroup waited on it
            // and failed).
            if writes_membership {
                if let Some(g) = c.groups.get_mut(group) {
                    g.last_write = Some(mark.clone());
                }
            }
            Some(mark)
        }
        Err(_) => {
            if let Some((g, generation)) = membership {
                membership_write_failed(c, b, &g, generation);
            }
            None
        }
    }
}

/// Send `ok` once the write `mark` is durable (`err` if it is lost first); at once if there is
/// nothing to wait for; `err` at once if too many writes wait already.
pub(super) fn respond_after(
    b: &mut Rt,
    to: ReplyTo,
    ok: ResponseKind,
    err: ResponseKind,
    mark: Option<WriteMark>,
) {
    match mark {
        Some(mark) if b.parking_full() => {
            b.log(
                LogLevel::Warn,
                format!(
                    "{}: too many answers wait for durability; refusing one",
                    mark.partition
                ),
            );
            b.respond(to, Some(err))
        }
        Some(mark) => b.park(PendingWrite {
            mark,
            reply: Some((to, ok, err)),
            apply: Vec::new(),
            membership: None,
        }),
        None => b.respond(to, Some(ok)),
    }
}
