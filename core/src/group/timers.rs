//! Timers: sessions, rebalance deadlines, offset expiry, and compaction of the offsets log.

use super::*;

/// Timers: expired sessions, rebalance deadlines, the initial delay, offset expiry.
/// Only groups of loaded partitions are in memory, so only they have timers.
pub fn tick(c: &mut Coordinator, b: &mut Rt) {
    let now = b.now();
    let ids: Vec<GroupId> = c.groups.keys().cloned().collect();
    for id in ids {
        let g = c.groups.get_mut(&id).unwrap();
        g.pending.retain(|_, d| *d > now);
        let expired: Vec<MemberId> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.session_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        let mut parked = Vec::new();
        for m in &expired {
            let m = g.members.remove(m).unwrap();
            parked.extend(m.awaiting_sync);
        }
        // Postcondition: no live member's session is past (those parked in a join wait for the
        // rebalance's own deadline instead).
        assert!(g
            .members
            .values()
            .all(|m| m.awaiting_join.is_some() || m.session_deadline > now));
        let state = g.state;
        for p in parked {
            b.respond(p, Some(sync_error(ErrorCode::REBALANCE_IN_PROGRESS)));
        }
        if !expired.is_empty() {
            b.log(
                LogLevel::Info,
                format!(
                    "group {id}: session expired for {}",
                    expired
                        .iter()
                        .map(MemberId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            member_gone(c, b, &id);
        } else if state == GroupState::PreparingRebalance {
            try_complete_join(c, b, &id);
        }
    }
    // Offset expiry (Kafka offsets.retention.minutes): offsets of a group that has been Empty
    // longer than the retention are deleted.
    let due = c.next_expiry_check.is_none_or(|t| t <= now);
    if due {
        c.next_expiry_check = Some(now + EXPIRY_CHECK_INTERVAL);
        compact(c, b);
        let retention = c.offsets_retention_ms;
        if retention >= 0 {
            let now_ms = now.unix_ms();
            let expired: Vec<GroupId> = c
                .offsets
                .keys()
                .filter(|g| match c.groups.get(*g) {
                    Some(grp) => {
                        grp.state == GroupState::Empty && now_ms - grp.state_ms > retention
                    }
                    None => true,
                })
                .filter(|g| {
                    c.offsets[*g]
                        .values()
                        .map(|v| v.commit_ms)
                        .max()
                        .unwrap_or(0)
                        + retention
                        < now_ms
                })
                .cloned()
                .collect();
            for g in expired {
                let records: Vec<GroupRecord> = c.offsets[&g]
                    .keys()
                    .map(|tp| GroupRecord::Offset {
                        group: g.0.clone(),
                        topic: tp.topic.clone(),
                        partition: tp.partition.0,
                        value: None,
                    })
                    .collect();
                assert!(!records.is_empty(), "an offsets entry is never empty");
                b.log(
                    LogLevel::Info,
                    format!("group {g}: committed offsets expired"),
                );
                commit_records(c, b, &g, records, None);
            }
        }
    }
}

/// Keep `__consumer_offsets` small. Kafka compacts the topic (keeping the last record per key);
/// gregor does the same job more simply: when a partition's log outgrows
/// `Config::offsets_log_bytes_max`, it writes a *snapshot* — a `Reset` record followed by the current
/// value of every key in that partition, in one batch at the start of a new segment — and once
/// that batch is durable it deletes every older segment. A crash in between is harmless:
/// replaying the old segments and then the snapshot ends in the same state, because `Reset`
/// wipes what came before. The snapshot is not replayed live: live state already equals it.
pub(super) fn compact(c: &mut Coordinator, b: &mut Rt) {
    let n = c.offsets_partitions;
    // Only a loaded partition's state is in memory: a snapshot of any other would restate
    // nothing after its Reset, and wipe the partition.
    let loaded: Vec<PartitionIndex> = (0..n)
        .map(PartitionIndex)
        .filter(|p| c.is_loaded(*p))
        .collect();
    for p in loaded {
        // Finish a snapshot whose batch is now durable.
        if let Some(base) = c.snapshots.get(&p).copied() {
            if b.high_watermark(OFFSETS_TOPIC, p)
                .is_some_and(|hw| hw > base)
            {
                c.snapshots.remove(&p);
                b.delete_before(OFFSETS_TOPIC, p, base);
            }
            continue;
        }
        if b.size_bytes(OFFSETS_TOPIC, p) < b.config().offsets_log_bytes_max {
            continue;
        }
        let mut records = vec![GroupRecord::Reset { partition: p.0 }];
        for (g, grp) in &c.groups {
            if partition_for(g.as_str(), n) == p {
                records.push(GroupRecord::Group {
                    group: g.0.clone(),
                    value: Some(group_value(grp)),
                });
            }
        }
        for (g, offs) in &c.offsets {
            if partition_for(g.as_str(), n) != p {
                continue;
            }
            for (tp, v) in offs {
                records.push(GroupRecord::Offset {
                    group: g.0.clone(),
                    topic: tp.topic.clone(),
                    partition: tp.partition.0,
                    value: Some(v.clone()),
                });
            }
        }
        // A snapshot wipes the partition's earlier state first, then restates every live key.
        assert!(matches!(records[0], GroupRecord::Reset { partition } if partition == p.0));
        // Only the Reset is first; every other record belongs to a group of this partition.
        assert!(records[1..]
            .iter()
            .all(|r| partition_for(r.group(), n) == p));
        let count = records.len();
        let batch = encode_batch(&records, b.now().unix_ms());
        if let Some(base) = b.append_in_new_segment(OFFSETS_TOPIC, p, batch) {
            b.log(
                LogLevel::Info,
                format!("{OFFSETS_TOPIC}-{p}: snapshot of {count} records at offset {base}"),
            );
            assert!(
                c.snapshots.insert(p, base).is_none(),
                "one snapshot at a time"
            );
        }
    }
}

/// After every step: complete joins whose last member just arrived.
pub fn after_step(c: &mut Coordinator, b: &mut Rt) {
    let ready: Vec<GroupId> = c
        .groups
        .iter()
        .filter(|(_, g)| g.state == GroupState::PreparingRebalance)
        .map(|(id, _)| id.clone())
        .collect();
    for id in ready {
        try_complete_join(c, b, &id);
    }
}
