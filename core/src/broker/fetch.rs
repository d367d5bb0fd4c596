//! Fetch (with long-poll). ListOffsets is in `list_offsets.rs`.

use super::*;

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
                });
            }
        }
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
            match self.fetch_check(part) {
                Err(_) => return true,
                Ok(p) => {
                    if let Some(plan) =
                        p.log
                            .plan_read(part.fetch_offset, p.high_watermark, part.max_bytes)
                    {
                        bytes += plan.len as u64;
                    }
                }
            }
        }
        bytes >= f.min_bytes.max(1) as u64
    }

    pub(super) fn fetch_check(&self, part: &FetchPart) -> Result<&Partition, i16> {
        let p = self
            .partition(&part.topic, part.partition)
            .ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
        if p.offline.is_some() {
            return Err(KAFKA_STORAGE_ERROR);
        }
        if part.fetch_offset < p.log.log_start_offset()
            || part.fetch_offset > p.log.log_end_offset()
        {
            return Err(OFFSET_OUT_OF_RANGE);
        }
        Ok(p)
    }

    pub(super) fn wake_fetches(&mut self, touched: &BTreeSet<(String, i32)>) {
        // Only the fetches watching a partition that moved, or past their deadline.
        let ids = self.fetch_waits.candidates(touched, self.now);
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
            match self.fetch_check(part) {
                Err(code) => pd.error_code = code,
                Ok(p) => {
                    pd.high_watermark = p.high_watermark;
                    pd.last_stable_offset = p.high_watermark;
                    pd.log_start_offset = p.log.log_start_offset();
                    // KIP-74: the whole response is bounded by the request's max_bytes, and
                    // so is every partition's share of it; only the first batch of the first
                    // partition with data goes out whole even when bigger than both limits,
                    // so a consumer can always make progress (`plan_read` always includes
                    // the first batch).
                    let limit = (part.max_bytes as u64).min(budget) as u32;
                    if budget > 0 || first_data {
                        if let Some(plan) =
                            p.log.plan_read(part.fetch_offset, p.high_watermark, limit)
                        {
                            if first_data || plan.len as u64 <= budget {
                                budget = budget.saturating_sub(plan.len as u64);
                                first_data = false;
                                let pi = resp.responses[ti].partitions.len();
                                plans.push((ti, pi, plan));
                            }
                        }
                    }
                }
            }
            resp.responses[ti].partitions.push(pd);
        }
        let n = plans.len();
        let planned: u64 = plans.iter().map(|(_, _, plan)| plan.len as u64).sum();
        assert!(
            planned <= f.max_bytes as u64 || n == 1,
            "KIP-74: only a lone first batch may exceed the response's max_bytes"
        );
        for (slot, (ti, pi, plan)) in plans.into_iter().enumerate() {
            slots.push((ti, pi));
            self.storage(
                StorageRequest::Read {
                    file: plan.file,
                    position: plan.position,
                    len: plan.len,
                },
                OpPurpose::Read { fetch: id, slot },
            );
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
        let (ti, pi) = slots[slot];
        let pd = &mut resp.responses[ti].partitions[pi];
        match result {
            Ok(StorageReply::Read(bytes)) => pd.records = Some(bytes),
            Ok(StorageReply::Done) => panic!("driver answered a read with Done"),
            Err(fault) => {
                pd.error_code = KAFKA_STORAGE_ERROR;
                pd.records = Some(Bytes::new());
                failed = Some(format!("fetch read failed: {fault}"));
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
