//! The broker's side: loading `__consumer_offsets` at start, and writing records.

use super::*;

/// At start: make sure `__consumer_offsets` exists and read it back.
pub(crate) fn start(b: &mut Broker) {
    let n = b.coordinator.offsets_partitions;
    if !b.topics.contains_key(OFFSETS_TOPIC) {
        let mut s = b.default_settings_pub();
        // Offsets are kept by key, not by time: never delete the log by retention (Kafka
        // compacts this topic instead; see `compact`).
        s.retention_ms = -1;
        s.retention_bytes = -1;
        // A snapshot (see `compact`) is one batch holding every live key of a partition.
        s.max_message_bytes = (s.segment_bytes - 64).min(64 * 1024 * 1024) as u32;
        b.create_topic(OFFSETS_TOPIC, n, s, None);
        return;
    }
    // The partition count is the topic's, whatever the configuration says now: groups hash
    // onto the partitions that exist.
    b.coordinator.offsets_partitions = b.topics[OFFSETS_TOPIC].partitions.len() as i32;
    let reads = b.offsets_log_reads();
    if reads.is_empty() {
        return;
    }
    b.coordinator.loading = Some(Loading {
        chunks: vec![None; reads.len()],
        outstanding: reads.len(),
    });
    for (slot, req) in reads.into_iter().enumerate() {
        b.storage_for_group(req, slot);
    }
}

/// A chunk of `__consumer_offsets` was read at start.
pub(crate) fn load_done(b: &mut Broker, slot: usize, result: Result<StorageReply, StorageFault>) {
    let now = b.now();
    let Some(loading) = b.coordinator.loading.as_mut() else {
        return;
    };
    match result {
        Ok(StorageReply::Read(bytes)) => loading.chunks[slot] = Some(bytes),
        Ok(StorageReply::Done) => panic!("a read completed without data"),
        Err(fault) => {
            // Without its log the coordinator cannot know the committed offsets; answering
            // "none committed" would make consumers reprocess or skip. Stay unavailable.
            b.log_line(
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
    let chunks = b.coordinator.loading.take().unwrap().chunks;
    let mut count = 0;
    for chunk in chunks.into_iter().flatten() {
        match decode_batches(chunk) {
            Ok(records) => {
                for r in records {
                    count += 1;
                    b.coordinator.replay(r, now);
                }
            }
            Err(e) => b.log_line(
                LogLevel::Error,
                format!("{OFFSETS_TOPIC}: undecodable records skipped: {e}"),
            ),
        }
    }
    // What was loaded may not be durable yet (see `Broker::new`): answers wait for it.
    let n = b.coordinator.offsets_partitions;
    let ids: Vec<String> = b.coordinator.groups.keys().cloned().collect();
    for id in ids {
        let mark = b.end_mark(OFFSETS_TOPIC, partition_for(&id, n));
        b.coordinator.groups.get_mut(&id).unwrap().last_write = mark;
    }
    // Loaded groups with members restart their rebalance so members resynchronise.
    for g in b.coordinator.groups.values_mut() {
        for m in g.members.values_mut() {
            m.session_deadline = now + Duration::from_ms(m.session_timeout_ms.max(0) as u64);
        }
    }
    let groups = b.coordinator.groups.len();
    b.log_line(
        LogLevel::Info,
        format!("group coordinator loaded {count} records: {groups} groups"),
    );
}

/// Write records: replay them now, append them to the group's offsets partition, and send
/// `response` once they are durable (or `on_error` if the write fails).
pub(super) fn commit_records(
    b: &mut Broker,
    group: &str,
    records: Vec<GroupRecord>,
    reply: Option<(ReplyTo, ResponseKind, ResponseKind)>,
) {
    let now = b.now();
    // Membership changes take effect at once (the rebalance protocol runs on them; a failed
    // write fails the SyncGroup that depends on it). Committed offsets take effect only once
    // durable, as in Kafka: a commit that fails to write must never be read back (found by the
    // broker_ops fuzz target: a commit refused on a full disk was returned by OffsetFetch).
    let mut deferred = Vec::new();
    for r in &records {
        assert_eq!(r.group(), group);
        if matches!(r, GroupRecord::Offset { .. }) {
            deferred.push(r.clone());
        } else {
            b.coordinator.replay(r.clone(), now);
        }
    }
    let partition = partition_for(group, b.coordinator.offsets_partitions);
    let batch = encode_batch(&records, now.unix_ms());
    let membership = records
        .iter()
        .find_map(|r| match r {
            GroupRecord::Group { value: Some(v), .. } => Some(v.generation),
            _ => None,
        })
        .map(|generation| (group.to_string(), generation));
    let writes_membership = records
        .iter()
        .any(|r| matches!(r, GroupRecord::Group { .. }));
    let before = b.last_internal_write();
    b.append_internal(OFFSETS_TOPIC, partition, batch, reply, deferred, membership);
    let after = b.last_internal_write();
    // Only membership records: a committed offset takes effect when durable anyway, and a
    // failed commit must not hold up the group's SyncGroup answers forever (seed 610: a commit
    // failed on a full disk, and every rejoin's SyncGroup waited on it and failed).
    if after != before && writes_membership {
        if let Some(g) = b.coordinator.groups.get_mut(group) {
            g.last_write = after;
        }
    }
}
