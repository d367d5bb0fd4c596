//! The follower's side of replication (Kafka's `ReplicaFetcherThread`, sans-IO): one fetch
//! out per leader, and what its answer does to the local logs.
//!
//! A partition joins a fetch only once everything it appended is settled: durable under
//! group commit (log end == durable end), written otherwise. So the fetch offset a follower
//! reports is always an end it has made durable, and the leader's high watermark, the lowest
//! such end over the ISR, only covers records that survive a power loss of every broker.

use super::*;
use crate::replication::truncation_offset;

/// The Fetch version followers send: v12 has `last_fetched_epoch` and `DivergingEpoch`
/// (KIP-595's validation) and still names topics by name.
const REPLICA_FETCH_VERSION: i16 = 12;

/// One partition of a fetch to send: its key, the leader epoch, the fetch offset and the
/// epoch of the last batch held (-1: none).
type FetchSlot = ((String, i32), i32, i64, i32);

/// What one partition's answer asks of its local log.
enum Apply {
    /// Append these batches (whole, checked) and take the leader's high watermark.
    Records(Bytes, i64),
    /// The logs diverged: cut back to `offset` (KIP-320).
    Truncate(i64),
    /// This log ends below the leader's log start (first): empty it and start again there,
    /// and take the leader's high watermark (second).
    StartAt(i64, i64),
    /// Nothing now: retry this partition after a backoff (why, for the log).
    Backoff(String),
}

impl Broker {
    /// Send a fetch to every leader that has none out and is not backing off, for the
    /// partitions it leads that this broker follows and whose data is settled.
    pub(in crate::broker) fn replica_fetch_more(&mut self) {
        if self.replica.following.is_empty() {
            return;
        }
        let durability = self.config.durability;
        let busy: BTreeSet<NodeId> = self.replica.out.values().map(|f| f.to).collect();
        let in_flight: BTreeSet<&(String, i32)> = self
            .replica
            .out
            .values()
            .flat_map(|f| f.parts.keys())
            .collect();
        let mut by_leader: BTreeMap<NodeId, Vec<FetchSlot>> = BTreeMap::new();
        for (key, f) in &self.replica.following {
            if busy.contains(&f.leader)
                || self.replica.backoff.contains_key(&f.leader)
                || f.retry_at.is_some()
                || in_flight.contains(key)
                || self.replica.truncating.contains_key(key)
            {
                continue;
            }
            let Some(p) = self
                .partition(&key.0, key.1)
                .filter(|p| p.offline.is_none())
            else {
                continue;
            };
            let end = p.log.log_end_offset();
            if p.ack_end(durability) < end {
                continue; // not yet settled: its syncs (or writes) are still out
            }
            let last_epoch = p.log.epochs().latest().map_or(-1, |(e, _)| e);
            by_leader
                .entry(f.leader)
                .or_default()
                .push((key.clone(), f.epoch, end, last_epoch));
        }
        for (to, parts) in by_leader {
            self.send_replica_fetch(to, parts);
        }
        self.replica.invariants();
    }

    fn send_replica_fetch(&mut self, to: NodeId, parts: Vec<FetchSlot>) {
        assert!(!parts.is_empty(), "a fetch carries a partition");
        assert!(
            to.0 != self.config.broker_id.0,
            "a broker never follows itself"
        );
        assert!(
            self.replica.out.values().all(|f| f.to != to),
            "one fetch out per leader"
        );
        assert!(parts
            .iter()
            .all(|(_, epoch, offset, _)| *epoch >= 0 && *offset >= 0));
        let id = ReplicaFetchId(self.replica.next_fetch_id);
        self.replica.next_fetch_id += 1;
        let mut topics: Vec<fetch_request::FetchTopic> = Vec::new();
        let mut sent = BTreeMap::new();
        for ((name, index), epoch, offset, last_epoch) in parts {
            let part = fetch_request::FetchPartition::default()
                .with_partition(index)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(self.config.replica_fetch_max_bytes as i32);
            match topics.iter_mut().find(|t| t.topic.0.as_str() == name) {
                Some(t) => t.partitions.push(part),
                None => topics.push(
                    fetch_request::FetchTopic::default()
                        .with_topic(TopicName(sb(name.clone())))
                        .with_partitions(vec![part]),
                ),
            }
            sent.insert((name, index), (epoch, offset));
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(self.config.broker_id.0))
            .with_max_wait_ms(self.config.replica_fetch_wait_max_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(self.config.replica_fetch_response_max_bytes as i32)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        let out = FetchOut { to, parts: sent };
        assert!(
            self.replica.out.insert(id, out).is_none(),
            "fetch ids are unique"
        );
        self.outputs.push_back(Output::ReplicaFetch {
            to,
            id,
            api_version: REPLICA_FETCH_VERSION,
            request,
        });
    }

    /// The answer to replica fetch `id` from leader `from` (or why there is none).
    pub(in crate::broker) fn on_replica_fetched(
        &mut self,
        from: NodeId,
        id: ReplicaFetchId,
        result: Result<FetchResponse, String>,
    ) {
        let Some(out) = self.replica.out.remove(&id) else {
            let what = format!("replica fetch {id:?} from broker {} answered twice", from.0);
            self.log(LogLevel::Warn, what);
            return;
        };
        assert_eq!(out.to, from, "the driver answers from the broker asked");
        let backoff = Duration::from_ms(self.config.replica_fetch_backoff_ms);
        let response = match result {
            Ok(r) if r.error_code == 0 => r,
            Ok(r) => {
                let why = format!("error code {}", r.error_code);
                return self.leader_backoff(from, why, backoff);
            }
            Err(why) => return self.leader_backoff(from, why, backoff),
        };
        for t in response.responses {
            let name = name_of(&t.topic.0);
            for pd in t.partitions {
                let key = (name.clone(), pd.partition_index);
                let Some((epoch, offset)) = out.parts.get(&key).copied() else {
                    continue; // not asked, or left the fetch when its leader changed
                };
                let current = self.replica.following.get(&key);
                let end = self
                    .partition(&name, pd.partition_index)
                    .map(|p| p.log.log_end_offset());
                if current.is_none_or(|f| f.leader != from || f.epoch != epoch)
                    || end != Some(offset)
                {
                    continue; // stale: the partition moved on since the fetch was sent
                }
                let apply = self.decide(&key, offset, &pd);
                self.apply(&key, apply, backoff);
            }
        }
    }

    fn leader_backoff(&mut self, from: NodeId, why: String, backoff: Duration) {
        self.log(
            LogLevel::Warn,
            format!(
                "replica fetch from broker {} failed ({why}); backing off",
                from.0
            ),
        );
        self.replica.backoff.insert(from, self.now + backoff);
    }

    /// What the answer `pd` for `key` (fetched from `offset`) asks of the local log.
    fn decide(
        &self,
        key: &(String, i32),
        offset: i64,
        pd: &fetch_response::PartitionData,
    ) -> Apply {
        let p = self
            .partition(&key.0, key.1)
            .expect("checked by the caller");
        match pd.error_code {
            0 if pd.diverging_epoch.epoch >= 0 => {
                let (epoch, leader_end) = (pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset);
                let local = p.log.epochs().end_offset_for(epoch, offset);
                let (at, _) =
                    truncation_offset(epoch, leader_end.max(0), local, p.log.log_start_offset());
                let at = at.min(offset);
                // Never past what this log holds, never below its start.
                assert!(p.log.log_start_offset() <= at && at <= offset);
                Apply::Truncate(at)
            }
            0 => Apply::Records(pd.records.clone().unwrap_or_default(), pd.high_watermark),
            OFFSET_OUT_OF_RANGE if offset < pd.log_start_offset => {
                // Below the leader's log start (its retention or DeleteRecords moved it): what
                // this log holds is of no use, as nothing after it can be fetched (Kafka's
                // `ReplicaFetcherThread` truncates fully and starts at the leader's start).
                assert!(offset <= p.log.log_end_offset());
                Apply::StartAt(pd.log_start_offset, pd.high_watermark)
            }
            OFFSET_OUT_OF_RANGE if offset > pd.high_watermark && pd.high_watermark >= 0 => {
                // Past the leader's end: cut back to what it has acknowledged, then fetch on
                // (the leader's check of `last_fetched_epoch` finds any divergence below).
                Apply::Truncate(pd.high_watermark.max(p.log.log_start_offset()))
            }
            code => Apply::Backoff(format!("the leader answered error code {code}")),
        }
    }

    fn apply(&mut self, key: &(String, i32), apply: Apply, backoff: Duration) {
        let (name, index) = (key.0.as_str(), key.1);
        match apply {
            Apply::Records(bytes, leader_hw) => {
                if let Err(why) = self.append_fetched(name, index, bytes) {
                    self.log(
                        LogLevel::Error,
                        format!("{name}-{index}: replica fetch: {why}"),
                    );
                    self.retry_later(key, backoff);
                }
                // An answer with no high watermark (a probing leader's, which has not checked
                // this log against its own) leaves the last one known in place.
                if let Some(f) = (self.replica.following.get_mut(key)).filter(|_| leader_hw >= 0) {
                    f.leader_hw = leader_hw;
                }
                self.touched.insert(key.clone());
            }
            Apply::Truncate(offset) => {
                let p = self.partition_by_key_mut(key);
                if offset < p.log.log_end_offset() {
                    // Cut once a read found where, and what producer state remains.
                    return self.start_truncation(key, offset);
                }
                if !p.log.forget_epochs_from(offset) {
                    // Nothing to cut and no epoch to forget: the leader's answer would not
                    // change on a refetch, so do not spin on it.
                    let what = format!("{name}-{index}: diverged at {offset}, nothing to cut");
                    self.log(LogLevel::Warn, what);
                    self.retry_later(key, backoff);
                }
                self.touched.insert(key.clone());
            }
            Apply::StartAt(start, leader_hw) => {
                self.restart_followed(key, start, backoff);
                if let Some(f) = self.replica.following.get_mut(key) {
                    // The leader's high watermark is at or above its log start.
                    f.leader_hw = leader_hw.max(start);
                }
            }
            Apply::Backoff(why) => {
                self.log(
                    LogLevel::Warn,
                    format!("{name}-{index}: replica fetch: {why}"),
                );
                self.retry_later(key, backoff);
            }
        }
    }

    /// Empty `key`'s log and start it at the leader's log start `start`
    /// ([`Partition::restart_at`]); the new start is written to `partition.meta` after the
    /// files are replaced, so a restart finds the two agreeing (recovery takes the start of
    /// the segments it finds in any case).
    fn restart_followed(&mut self, key: &(String, i32), start: i64, backoff: Duration) {
        let (name, index) = (key.0.as_str(), key.1);
        let (now, cuts_max) = (self.now, self.config.partition_cuts_max);
        let p = self.partition_by_key_mut(key);
        let old_end = p.log.log_end_offset();
        match p.restart_at(start, now, cuts_max) {
            Ok(reqs) => {
                let what = format!(
                    "{name}-{index}: log ended at {old_end}, below the leader's log start \
                     {start}; emptied and restarted at {start}"
                );
                self.log(LogLevel::Warn, what);
                for r in reqs {
                    let what = format!("restart {name}-{index} at {start}");
                    self.storage(r, OpPurpose::Other { what });
                }
                let meta = self.partition_meta_now(name, index as usize);
                assert_eq!(meta.log_start_offset, start);
                self.write_partition_meta(&meta, None);
                self.touched.insert(key.clone());
                self.produce_waits.touch(key);
            }
            Err(why) => {
                let what = format!("{name}-{index}: cannot restart at {start}: {why}");
                self.log(LogLevel::Error, what);
                self.retry_later(key, backoff);
            }
        }
    }

    pub(super) fn retry_later(&mut self, key: &(String, i32), backoff: Duration) {
        let at = self.now + backoff;
        if let Some(f) = self.replica.following.get_mut(key) {
            f.retry_at = Some(at);
        }
    }

    /// Append the whole batches of `bytes` (a trailing partial one is dropped, as the leader
    /// may cut a read at its byte limit) as the leader wrote them: each one's CRC checked, each
    /// starting at the local log end, none from an epoch older than the log's latest.
    fn append_fetched(&mut self, name: &str, index: i32, mut bytes: Bytes) -> Result<(), String> {
        while !bytes.is_empty() {
            let header = match BatchHeader::parse(&bytes) {
                Ok(h) if h.size <= bytes.len() => h,
                Ok(_) | Err(BatchError::Truncated { .. }) => return Ok(()),
                Err(e) => return Err(format!("a batch from the leader does not parse: {e}")),
            };
            let batch = bytes.split_to(header.size);
            header
                .verify(&batch)
                .map_err(|e| format!("a batch from the leader: {e}"))?;
            let p = self.partition(name, index).expect("a followed partition");
            let end = p.log.log_end_offset();
            if header.base_offset != end {
                return Err(format!(
                    "batch at {} where the log ends at {end}",
                    header.base_offset
                ));
            }
            let latest = p.log.epochs().latest_epoch();
            if header.partition_leader_epoch < latest {
                return Err(format!(
                    "batch of leader epoch {} below this log's latest {latest}",
                    header.partition_leader_epoch
                ));
            }
            let new_end = self.write_batch(name, index, batch, &header);
            // Appended in order, each batch exactly where the last one ended, its epoch now
            // the latest the log knows (KIP-101: the cache follows the batches).
            assert!(new_end > end, "no follower append out of order");
            assert_eq!(new_end, header.next_offset());
            let p = self.partition(name, index).expect("a followed partition");
            assert_eq!(p.log.epochs().latest_epoch(), header.partition_leader_epoch);
        }
        Ok(())
    }
}
