//! Fetch (with long-poll). ListOffsets is in `list_offsets.rs`.
//!
//! Each partition is checked as Kafka's `Partition.readRecords` does: this broker leads it, the
//! fetcher's `current_leader_epoch` matches (KIP-320, v9+), a follower's `last_fetched_epoch`
//! agrees with this log (v12+; otherwise the answer is `DivergingEpoch` and no records: see
//! `epochs.rs`), and the fetch offset lies in the log.

use super::epochs;
use super::*;
use crate::log::{advance, Goal, ReadStep};

impl Broker {
    pub(super) fn fetch(&mut self, to: ReplyTo, r: FetchRequest) {
        let mut parts = Vec::new();
        for t in &r.topics {
            for p in &t.partitions {
                parts.push(FetchPart {
                    topic: name_of(&t.topic.0),
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as u32,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                    replica: (r.replica_id.0 >= 0).then_some(r.replica_id.0),
                });
            }
        }
        self.note_follower_fetches(&parts);
        let wait = Duration::from_ms(r.max_wait_ms.max(0) as u64).min(self.config.fetch_wait_max());
        let max_bytes = (r.max_bytes.max(0) as u32).min(self.config.fetch_response_bytes_max);
        let id = self.next_pending;
        self.next_pending += 1;
        let f = PendingFetch {
            reply: to,
            parts,
            min_bytes: r.min_bytes.max(0) as u32,
            max_bytes,
            deadline: self.now + wait,
            reading: None,
        };
        let ready = self.fetch_ready(&f) || self.fetches.len() >= self.config.fetches_parked_max;
        let (keys, deadline) = (f.keys(), f.deadline);
        self.fetches.insert(id, f);
        if ready {
            self.start_reads(id);
        } else {
            self.fetch_waits.watch(id, keys, deadline);
        }
    }

    /// Is there enough to answer now: an error to report, or at least min_bytes of data?
    pub(super) fn fetch_ready(&self, f: &PendingFetch) -> bool {
        // min_bytes = 0 means "answer at once", as in Kafka.
        if f.deadline <= self.now || f.min_bytes == 0 {
            return true;
        }
        let mut bytes = 0u64;
        for part in &f.parts {
            if self.probe_holds(part) {
                continue; // a probing leader serves its followers nothing yet
            }
            match self.fetch_check(part) {
                Err(_) | Ok((_, Some(_))) => return true,
                Ok((p, None)) => {
                    let upper = read_upper(part, p);
                    let plan = p
                        .log
                        .plan_read(part.fetch_offset, upper, part.max_bytes, true);
                    if let Some(plan) = plan {
                        // An upper bound, known without reading (the sparse index).
                        bytes += plan.bytes_bound.max(1);
                    }
                }
            }
        }
        bytes >= f.min_bytes.max(1) as u64
    }

    /// May `part` be read: the partition, and the diverging epoch to answer instead of
    /// records if the fetcher's log diverged from this one; or the error code for it.
    #[allow(clippy::type_complexity)]
    pub(super) fn fetch_check(
        &self,
        part: &FetchPart,
    ) -> Result<(&Partition, Option<(i32, i64)>), i16> {
        (self.serve_check(&part.topic, part.partition, Serve::Read))
            .map_err(|e| i16::from(e.code))?;
        let p = self
            .partition(&part.topic, part.partition)
            .ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
        if p.offline.is_some() {
            return Err(KAFKA_STORAGE_ERROR);
        }
        (self.fence_leader_epoch(&part.topic, part.partition, part.current_leader_epoch))
            .map_err(|e| i16::from(e.code))?;
        if part
            .replica
            .is_some_and(|r| !self.is_replica(&part.topic, part.partition, r))
        {
            return Err(NOT_LEADER_OR_FOLLOWER);
        }
        let diverging = epochs::diverging_epoch(p, part.last_fetched_epoch, part.fetch_offset)?;
        if diverging.is_some() {
            return Ok((p, diverging));
        }
        if part.fetch_offset < p.log.log_start_offset()
            || part.fetch_offset > p.log.log_end_offset()
        {
            return Err(OFFSET_OUT_OF_RANGE);
        }
        Ok((p, None))
    }

    pub(super) fn wake_fetches(&mut self, touched: &BTreeSet<(String, i32)>) {
        // Only the fetches on a partition whose high watermark passed their fetch offset (or
        // that went away, went offline or was cut below it), or past their deadline.
        let levels: Vec<_> = touched
            .iter()
            .map(|key| (key, self.fetch_level(key)))
            .collect();
        let ids = self.fetch_waits.candidates(levels, self.now);
        for id in ids {
            assert!(
                self.fetches[&id].reading.is_none(),
                "a reading fetch is not parked"
            );
            if self.fetch_ready(&self.fetches[&id]) {
                self.start_reads(id);
            }
        }
    }

    /// The level a moved partition has reached for the fetches parked on it: its high
    /// watermark, which a fetch needs past its fetch offset (Kafka's `DelayedFetch` waits for
    /// the same: new data below the high watermark). A fetch offset the log was cut below is
    /// answered at once with OFFSET_OUT_OF_RANGE.
    fn fetch_level(&self, key: &(String, i32)) -> i64 {
        // A fetch needs the high watermark past its fetch offset: its need less one.
        let highest = self.fetch_waits.highest_need(key).map(|need| need - 1);
        // Followers wait for the written end, consumers for the high watermark (never above it).
        self.waiter_level(key, highest, |p| p.written_end.max(p.high_watermark))
    }

    /// Plan and issue the reads for a fetch; the response is sent when they complete.
    pub(super) fn start_reads(&mut self, id: u64) {
        self.fetch_waits.unwatch(id);
        let f = self.fetches.get(&id).unwrap();
        let mut resp = FetchResponse::default().with_session_id(0);
        let mut slots = Vec::new();
        let mut plans: Vec<(usize, usize, ReadPlan)> = Vec::new();
        let mut budget = f.max_bytes as u64;
        let mut first_data = true;
        for part in &f.parts {
            let ti = match resp
                .responses
                .iter()
                .position(|t| t.topic.0.as_str() == part.topic)
            {
                Some(i) => i,
                None => {
                    resp.responses.push(
                        FetchableTopicResponse::default()
                            .with_topic(TopicName(sb(part.topic.clone()))),
                    );
                    resp.responses.len() - 1
                }
            };
            let mut pd = PartitionData::default()
                .with_partition_index(part.partition)
                .with_records(Some(Bytes::new()))
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let held = self.partition(&part.topic, part.partition);
            if let Some(p) = held.filter(|_| self.probe_holds(part)) {
                // A probing leader (`replica/probe.rs`): no records, no divergence, so the
                // follower neither appends nor truncates yet; and no high watermark (-1): the
                // leader has not checked the follower's log against its own, and a follower
                // capping the leader's watermark at its own log end would expose a diverged
                // tail it is about to cut (simulator, replicated seed 731).
                pd.log_start_offset = p.log.log_start_offset();
                resp.responses[ti].partitions.push(pd);
                continue;
            }
            match self.fetch_check(part) {
                Err(code) => {
                    pd.error_code = code;
                    pd.current_leader = self.current_leader(&part.topic, part.partition);
                    // Out of range: say where the log starts and how far it is committed, so a
                    // follower below the start restarts there and one past the end cuts back
                    // (`replica/follower.rs`) without asking again with ListOffsets.
                    let held = self.partition(&part.topic, part.partition);
                    if let Some(p) = held.filter(|_| code == OFFSET_OUT_OF_RANGE) {
                        pd.high_watermark = p.high_watermark;
                        pd.log_start_offset = p.log.log_start_offset();
                    }
                }
                Ok((p, Some((epoch, end_offset)))) => {
                    // The fetcher's log diverged: where, and no records (it truncates first).
                    pd.high_watermark = p.high_watermark;
                    pd.last_stable_offset = p.high_watermark;
                    pd.log_start_offset = p.log.log_start_offset();
                    pd.diverging_epoch = fetch_response::EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset);
                }
                Ok((p, None)) => {
                    pd.high_watermark = p.high_watermark;
                    pd.last_stable_offset = p.high_watermark;
                    pd.log_start_offset = p.log.log_start_offset();
                    // KIP-74: the whole response is bounded by the request's max_bytes, and
                    // so is every partition's share of it; only the first batch of the first
                    // partition with data goes out whole even when bigger than both limits,
                    // so a consumer can always make progress. The share is charged with the
                    // plan's upper bound (what the read can return), since the exact length
                    // is known only once the read's batch headers are walked.
                    let limit = (part.max_bytes as u64).min(budget) as u32;
                    if budget > 0 || first_data {
                        let upper = read_upper(part, p);
                        let plan = p.log.plan_read(part.fetch_offset, upper, limit, first_data);
                        if let Some(plan) = plan {
                            assert!(plan.bytes_bound <= limit as u64);
                            budget -= plan.bytes_bound;
                            first_data = false;
                            let pi = resp.responses[ti].partitions.len();
                            plans.push((ti, pi, plan));
                        }
                    }
                }
            }
            resp.responses[ti].partitions.push(pd);
        }
        let n = plans.len();
        let planned: u64 = plans.iter().map(|(_, _, plan)| plan.bytes_bound).sum();
        assert!(
            planned <= f.max_bytes as u64,
            "KIP-74: only a lone first batch may exceed the response's max_bytes"
        );
        for (slot, (ti, pi, plan)) in plans.into_iter().enumerate() {
            self.storage(read_of(&plan), OpPurpose::Read { fetch: id, slot });
            slots.push((ti, pi, plan));
        }
        self.fetches.get_mut(&id).unwrap().reading = Some(Reading(resp, slots, n));
        if n == 0 {
            self.finish_fetch(id);
        }
    }

    pub(super) fn read_done(
        &mut self,
        id: u64,
        slot: usize,
        result: Result<StorageReply, StorageFault>,
    ) {
        let mut failed = None;
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        let Reading(resp, slots, outstanding) = f.reading.as_mut().expect("reads were issued");
        let (ti, pi, plan) = &mut slots[slot];
        let pd = &mut resp.responses[*ti].partitions[*pi];
        let step = match result {
            Ok(StorageReply::Read(bytes)) => advance(plan, bytes),
            Ok(StorageReply::Done) => panic!("driver answered a read with Done"),
            Err(fault) => Err(format!("fetch read failed: {fault}")),
        };
        match step {
            Ok(ReadStep::Done { bytes, .. }) => {
                // Whole batches only, within the partition's share unless a lone first batch.
                assert!(
                    bytes.len() as u64 <= plan.bytes_bound || bytes.len() as u64 > plan_limit(plan)
                );
                pd.records = Some(bytes);
            }
            Ok(ReadStep::More(next)) => {
                // The sparse index's scan goes on: the same slot, one more read.
                *plan = next;
                let request = read_of(plan);
                self.storage(request, OpPurpose::Read { fetch: id, slot });
                return;
            }
            Err(problem) => {
                pd.error_code = KAFKA_STORAGE_ERROR;
                pd.records = Some(Bytes::new());
                failed = Some(problem);
            }
        }
        *outstanding -= 1;
        let finished = *outstanding == 0;
        if let Some(msg) = failed {
            self.log(LogLevel::Error, msg);
        }
        if finished {
            self.finish_fetch(id);
        }
    }

    pub(super) fn finish_fetch(&mut self, id: u64) {
        let f = self.fetches.remove(&id).unwrap();
        let Reading(resp, _, _) = f.reading.unwrap();
        self.respond(f.reply, Some(ResponseKind::Fetch(resp)));
    }
}

/// The storage read a plan asks for.
pub(super) fn read_of(plan: &ReadPlan) -> StorageRequest {
    StorageRequest::Read {
        file: plan.file.clone(),
        position: plan.position,
        len: plan.len,
    }
}

/// How far a fetch may read: a follower up to the leader's written end (it replicates what
/// is not yet acknowledged), a consumer up to the high watermark.
fn read_upper(part: &FetchPart, p: &Partition) -> i64 {
    match part.replica {
        Some(_) => p.written_end.max(p.high_watermark),
        None => p.high_watermark,
    }
}

/// A fetch plan's byte limit.
fn plan_limit(plan: &ReadPlan) -> u64 {
    match plan.goal {
        Goal::Offset { max_bytes, .. } => max_bytes as u64,
        Goal::Timestamp { .. } => u64::MAX,
    }
}
