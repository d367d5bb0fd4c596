//! The group coordinator's use of the coordinator runtime: loading `__consumer_offsets` at
//! start (Kafka's `CoordinatorLoader`) and writing the records its operations produce.

use super::*;

/// At start: make sure `__consumer_offsets` exists and read it back.
pub(crate) fn start(c: &mut Coordinator, b: &mut Rt) {
    let n = c.offsets_partitions;
    let Some(existing) = b.partitions_of(OFFSETS_TOPIC) else {
        let mut s = b.default_settings();
        // Offsets are kept by key, not by time: never delete the log by retention (Kafka
        // compacts this topic instead; see `compact`).
        s.retention_ms = -1;
        s.retention_bytes = -1;
        // A snapshot (see `compact`) is one batch holding every live key of a partition.
        s.max_message_bytes = (s.segment_bytes - 64).min(64 * 1024 * 1024) as u32;
        b.create_topic(OFFSETS_TOPIC, n, s);
        return;
    };
    // The partition count is the topic's, whatever the configuration says now: groups hash
    // onto the partitions that exist.
    c.offsets_partitions = existing;
    let reads = b.load_reads(OFFSETS_TOPIC);
    if reads.is_empty() {
        return;
    }
    c.loading = Some(Loading {
        chunks: vec![None; reads.len()],
        outstanding: reads.len(),
    });
    for (slot, req) in reads.into_iter().enumerate() {
        b.read_for_load(req, slot);
    }
}

/// A chunk of `__consumer_offsets` was read at start.
pub(crate) fn load_done(
    c: &mut Coordinator,
    b: &mut Rt,
    slot: usize,
    result: Result<StorageReply, StorageFault>,
) {
    let now = b.now();
    let Some(loading) = c.loading.as_mut() else {
        return;
    };
    assert!(loading.outstanding > 0, "a load read completes once");
    assert!(
        loading.chunks.get(slot).is_some_and(|c| c.is_none()),
        "load slot {slot} filled once"
    );
    match result {
        Ok(StorageReply::Read(bytes)) => loading.chunks[slot] = Some(bytes),
        Ok(StorageReply::Done) => panic!("a read completed without data"),
        Err(fault) => {
            // Without its log the coordinator cannot know the committed offsets; answering
            // "none committed" would make consumers reprocess or skip. Stay unavailable.
            b.log(
                LogLevel::Error,
                format!("loading {OFFSETS_TOPIC} failed: {fault}; group coordinator unavailable"),
            );
            return;
        }
    }
    loading.outstanding -= 1;
    if loading.outstanding > 0 {
        return;
    }
    let chunks = c.loading.take().unwrap().chunks;
    let mut count = 0;
    for chunk in chunks.into_iter().flatten() {
        match decode_batches(chunk) {
            Ok(records) => {
                for r in records {
                    count += 1;
                    c.replay(r, now);
                }
            }
            Err(e) => b.log(
                LogLevel::Error,
                format!("{OFFSETS_TOPIC}: undecodable records skipped: {e}"),
            ),
        }
    }
    // What was loaded may not be durable yet (see `Broker::new`): answers wait for it.
    let n = c.offsets_partitions;
    let ids: Vec<GroupId> = c.groups.keys().cloned().collect();
    for id in ids {
        let mark = b.end_mark(OFFSETS_TOPIC, partition_for(id.as_str(), n));
        c.groups.get_mut(&id).unwrap().last_write = mark;
    }
    // Loaded groups with members restart their rebalance so members resynchronise.
    for g in c.groups.values_mut() {
        for m in g.members.values_mut() {
            m.session_deadline = now + Duration::from_ms(m.session_timeout_ms.max(0) as u64);
        }
    }
    let groups = c.groups.len();
    b.log(
        LogLevel::Info,
        format!("group coordinator loaded {count} records: {groups} groups"),
    );
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
