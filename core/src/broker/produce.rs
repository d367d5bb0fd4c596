//! Produce: checking, appending and acknowledging batches (acks 0, 1 and all).

use super::*;
use crate::files::TimestampType;

impl Broker {
    pub(super) fn produce(&mut self, to: ReplyTo, version: i16, r: ProduceRequest) {
        let acks = r.acks;
        let mut response = ProduceResponse::default();
        let mut waits = Vec::new();
        let mut any_error = false;
        let refuse_all = if version < 3 {
            Some(ClientError::new(
                ErrorCode::UNSUPPORTED_VERSION,
                "Produce v0-v2 (message format v0/v1) is not supported".to_string(),
            ))
        } else if acks < -1 {
            Some(ClientError::new(
                ErrorCode::INVALID_REQUIRED_ACKS,
                format!("acks must be -1 (all), 0, 1 or a replica count, not {acks}"),
            ))
        } else if acks != 0 && self.produce_waits.is_full() {
            Some(ClientError::new(
                ErrorCode::REQUEST_TIMED_OUT,
                format!(
                    "{} produces already wait for acknowledgement (produces_parked_max)",
                    self.produce_waits.len()
                ),
            ))
        } else if r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
            Some(ClientError::new(
                ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "transactions are not supported".to_string(),
            ))
        } else {
            None
        };
        for td in r.topic_data {
            let name = name_of(&td.name.0);
            let mut tr = TopicProduceResponse::default().with_name(td.name.clone());
            for pd in td.partition_data {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1);
                let result = match &refuse_all {
                    Some(e) => Err(e.clone()),
                    None => self
                        .serve_check(&name, pd.index, Serve::Produce)
                        .and_then(|()| self.probe_refusal(&name, pd.index))
                        .and_then(|()| self.acks_check(&name, pd.index, acks))
                        .and_then(|()| self.append_one(&name, pd.index, pd.records, false)),
                };
                match result {
                    Ok(appended) => {
                        pr.base_offset = appended.base_offset;
                        pr.log_start_offset = appended.log_start_offset;
                        pr.log_append_time_ms = appended.log_append_time_ms;
                        if let Some(w) = appended.wait {
                            waits.push(ProduceWait {
                                topic: response.responses.len(),
                                partition: tr.partition_responses.len(),
                                acks,
                                ..w
                            });
                        }
                    }
                    Err(e) => {
                        any_error = true;
                        self.log(
                            LogLevel::Warn,
                            format!(
                                "produce to {name}-{} from {:?} refused: {e}",
                                pd.index, to.conn
                            ),
                        );
                        pr.error_code = e.code.into();
                        pr.error_message = Some(sb(e.message));
                    }
                }
                tr.partition_responses.push(pr);
            }
            response.responses.push(tr);
        }
        // Each wait points at the partition answer it completes.
        assert!(waits
            .iter()
            .all(|w| w.partition < response.responses[w.topic].partition_responses.len()));
        if acks == 0 {
            // Fire and forget: no response. On an error Kafka closes the connection, the only
            // way to tell an acks=0 producer that something went wrong.
            self.respond(to, None);
            if any_error {
                self.close(to.conn, "acks=0 produce failed".into());
            }
            return;
        }
        let id = self.next_pending;
        self.next_pending += 1;
        // A zero or negative timeout would fail every acks>=1 produce before its fsync could
        // complete; treat it as Kafka's default request timeout (30 s) instead.
        let timeout_ms = if r.timeout_ms > 0 {
            r.timeout_ms as u64
        } else {
            30_000
        };
        let timeout = Duration::from_ms(timeout_ms);
        if waits.is_empty() {
            self.produces_settled.insert(id);
        } else {
            self.produce_waits
                .watch(id, produce_keys(&waits), self.now + timeout);
        }
        self.produces.insert(
            id,
            PendingProduce {
                reply: Some(to),
                response,
                waits,
                deadline: self.now + timeout,
            },
        );
        // Completion happens in after_step, once the ends have been looked at.
    }

    /// Validate and append one partition's records, in the form the topic stores them (its
    /// `compression.type` and `message.timestamp.type`, [`Broker::stored_form`]). Returns where
    /// they went and what to wait for, or an error code with a message naming what was wrong.
    pub(super) fn append_one(
        &mut self,
        name: &str,
        index: i32,
        records: Option<Bytes>,
        internal: bool,
    ) -> Result<Appended, ClientError> {
        let leader_epoch = self.leader_epoch_of(name, index);
        let Some(topic) = self.topics.get_mut(name) else {
            return Err(ClientError::new(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic {name:?}"),
            ));
        };
        if topic.internal && !internal {
            return Err(ClientError::new(
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                format!("{name} is an internal topic"),
            ));
        }
        let topic_id = topic.id;
        let settings = topic.settings.clone();
        let Some(p) = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get_mut(i))
        else {
            return Err(ClientError::new(
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} has no partition {index}"),
            ));
        };
        if let Some(why) = &p.offline {
            return Err(ClientError::new(
                ErrorCode::KAFKA_STORAGE_ERROR,
                format!("partition offline: {why}"),
            ));
        }
        let records = records.unwrap_or_default();
        if records.len() as u64 > settings.max_message_bytes as u64 {
            return Err(ClientError::new(
                ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "batch of {} bytes exceeds max.message.bytes {}",
                    records.len(),
                    settings.max_message_bytes
                ),
            ));
        }
        let header = BatchHeader::parse(&records).map_err(batch_error)?;
        if header.size != records.len() {
            if header.size < records.len() {
                return Err(ClientError::new(
                    ErrorCode::INVALID_RECORD,
                    "a produce request must carry exactly one record batch per partition",
                ));
            }
            return Err(batch_error(BatchError::Truncated {
                have: records.len(),
                need: header.size,
            }));
        }
        header.verify(&records).map_err(batch_error)?;
        if header.is_transactional() || header.is_control() {
            return Err(ClientError::new(
                ErrorCode::INVALID_RECORD,
                "transactional and control batches are not supported",
            ));
        }
        if settings.compaction.policy.compacts() {
            // Kafka's `LogValidator.validateKey`: a compacted topic keeps records by key, so a
            // record without one is refused (INVALID_RECORD since KIP-467, Kafka 2.4+).
            crate::log::cleaner::check_keys(&records).map_err(|why| {
                ClientError::new(
                    ErrorCode::INVALID_RECORD,
                    format!("compacted topic {name}: {why}"),
                )
            })?;
        }
        let mut base = p.log.log_end_offset();
        let mut wait_end = None;
        let mut log_append_time_ms = -1;
        if header.has_producer_id() {
            match p.producers.check(&header) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(orig) => {
                    // A retried batch this partition already holds: answered with its offsets.
                    assert!(orig.base_offset <= orig.last_offset);
                    base = orig.base_offset;
                    wait_end = Some(orig.last_offset + 1);
                }
                SequenceCheck::OutOfOrder { expected } => {
                    return Err(ClientError::new(
                        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
                        format!(
                            "producer {} sent sequence {} where {} was expected",
                            header.producer_id, header.base_sequence, expected
                        ),
                    ))
                }
                SequenceCheck::StaleEpoch { current } => {
                    return Err(ClientError::new(
                        ErrorCode::INVALID_PRODUCER_EPOCH,
                        format!(
                            "producer {} epoch {} is older than {current}",
                            header.producer_id, header.producer_epoch
                        ),
                    ))
                }
            }
        }
        let end = match wait_end {
            Some(end) => end,
            None => {
                let (mut owned, stamped) = self.stored_form(name, records, &header, &settings)?;
                if let Some(ms) = stamped {
                    log_append_time_ms = ms;
                }
                batch::assign(&mut owned, base, leader_epoch);
                let owned = owned.freeze();
                let assigned = BatchHeader::parse(&owned).expect("just parsed");
                let end = self.write_batch(name, index, owned, &assigned);
                // Offsets are dense: the batch took exactly the offsets from `base` on.
                assert!(end > base, "a batch holds at least one record");
                end
            }
        };
        let log_start = self.topics[name].partitions[index as usize]
            .log
            .log_start_offset();
        let wait = ProduceWait {
            topic: 0,
            partition: 0,
            name: name.to_string(),
            topic_id: TopicId(topic_id),
            index,
            end,
            acks: -1,
        };
        // Only a batch appended now was stamped: a retried duplicate answers with −1, as Kafka's
        // `LogAppendInfo` for a duplicate does.
        assert!(log_append_time_ms == -1 || wait_end.is_none());
        Ok(Appended {
            base_offset: base,
            log_start_offset: log_start,
            log_append_time_ms,
            wait: Some(wait),
        })
    }

    /// The bytes a topic with `settings` stores for the batch `records` (one whole batch that
    /// verified, `header` its header), and the time it was stamped with, if it was:
    /// * a `compression.type` other than `producer` whose codec is not the batch's: the
    ///   records section is recompressed ([`batch::recompress`]), then checked again against
    ///   `max.message.bytes` (a batch may grow), as Kafka's `LogValidator` does;
    /// * `message.timestamp.type=LogAppendTime`: the batch is stamped with the broker's clock
    ///   now ([`batch::stamp_log_append_time`]).
    ///
    /// Otherwise the batch is taken as it arrived when nothing else holds its buffer (the wire
    /// decoder arranges that for a request's lone batch), or copied once.
    fn stored_form(
        &self,
        name: &str,
        records: Bytes,
        header: &BatchHeader,
        settings: &TopicSettings,
    ) -> Result<(BytesMut, Option<i64>), ClientError> {
        let mut owned = match settings.compression.codec() {
            Some(codec) if codec != header.compression() => {
                let to = batch::codec_from_id(codec).expect("a topic's codec is a codec");
                let packed = batch::recompress(&records, to).map_err(|why| {
                    ClientError::new(
                        ErrorCode::CORRUPT_MESSAGE,
                        format!(
                            "topic {name} has compression.type={}: {why}",
                            settings.compression.name()
                        ),
                    )
                })?;
                if packed.len() as u64 > settings.max_message_bytes as u64 {
                    return Err(ClientError::new(
                        ErrorCode::MESSAGE_TOO_LARGE,
                        format!(
                            "batch recompressed for compression.type={} is {} bytes, above \
                             max.message.bytes {}",
                            settings.compression.name(),
                            packed.len(),
                            settings.max_message_bytes
                        ),
                    ));
                }
                BytesMut::from(&packed[..])
            }
            _ => records
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..])),
        };
        let stamped = match settings.timestamp_type {
            TimestampType::CreateTime => None,
            TimestampType::LogAppendTime => {
                let now_ms = self.now.unix_ms();
                batch::stamp_log_append_time(&mut owned, now_ms);
                Some(now_ms)
            }
        };
        // Postcondition: what is stored is one batch whose CRC holds, in the topic's codec.
        let stored = BatchHeader::parse(&owned).expect("a stored batch parses");
        assert!(stored.verify(&owned).is_ok(), "a stored batch verifies");
        assert!(settings
            .compression
            .codec()
            .is_none_or(|c| c == stored.compression()));
        assert_eq!(
            stored.is_log_append_time(),
            stamped.is_some() || header.is_log_append_time()
        );
        Ok((owned, stamped))
    }

    /// Append one batch that already carries its offsets and leader epoch to the end of
    /// `name`-`index`, as the leader does for a produce and a follower for what it fetched:
    /// the log takes it (rolling a segment when due), the idempotent producer's state records
    /// it, and the storage writes leave in order. Returns the new log end. Preconditions: the
    /// partition is held here and online, and the batch starts at its log end.
    pub(super) fn write_batch(
        &mut self,
        name: &str,
        index: i32,
        batch: Bytes,
        header: &BatchHeader,
    ) -> i64 {
        let now = self.now;
        let producers_max = self.config.producers_per_partition_max;
        let t = self.topics.get_mut(name).expect("a held topic");
        let (topic_id, settings) = (t.id, &t.settings);
        let roll = RollPolicy {
            segment_bytes_max: settings.segment_bytes,
            segment_age_ns_max: Duration::from_ms(settings.segment_ms).0,
            index_interval_bytes: settings.index_interval_bytes as u64,
        };
        let p = &mut t.partitions[index as usize];
        assert!(p.offline.is_none(), "a write to an online partition");
        let reqs = p.log.append(batch, header, now, roll);
        p.producers.record(header);
        p.producers.evict_beyond(producers_max);
        let end = header.next_offset();
        assert_eq!(p.log.log_end_offset(), end, "the batch ends the log");
        if p.unsynced_since.is_none() {
            p.unsynced_since = Some(now);
        }
        let cut_epoch = p.cut_epoch;
        for req in reqs {
            let purpose = match req {
                StorageRequest::Append { .. } => OpPurpose::Append {
                    topic: name.to_string(),
                    topic_id,
                    partition: index,
                    end,
                    cut_epoch,
                },
                _ => OpPurpose::Other {
                    what: format!("roll {name}-{index}"),
                },
            };
            self.storage(req, purpose);
        }
        self.touched.insert((name.to_string(), index));
        end
    }

    /// Release produce responses whose batches the policy now covers; time out the rest.
    pub(super) fn complete_produces(&mut self, touched: &BTreeSet<(String, i32)>) {
        let now = self.now;
        let mut done = Vec::new();
        // Only the produces that may be ready: on partitions whose acknowledged end reached
        // their batch (or that went away, went offline or were cut below a waiting batch),
        // past their deadline, parked this step, or settled without waiting.
        let levels: Vec<_> = touched
            .iter()
            .map(|key| (key, self.produce_level(key)))
            .collect();
        let mut ids = self.produce_waits.candidates(levels, now);
        ids.extend(std::mem::take(&mut self.produces_settled));
        for id in &ids {
            let mut pp = self.produces.remove(id).expect("a candidate is parked");
            let waiting = pp.waits.len();
            let mut waits = std::mem::take(&mut pp.waits);
            waits.retain(|w| {
                let pr = &mut pp.response.responses[w.topic].partition_responses[w.partition];
                match self.produce_wait_state(w) {
                    Ok(still) => still,
                    Err(e) => {
                        pr.error_code = e.code.into();
                        pr.error_message = Some(sb(e.message));
                        false
                    }
                }
            });
            pp.waits = waits;
            if !pp.waits.is_empty() && pp.deadline <= now {
                for w in pp.waits.drain(..) {
                    let pr = &mut pp.response.responses[w.topic].partition_responses[w.partition];
                    pr.error_code = ErrorCode::REQUEST_TIMED_OUT.into();
                    pr.error_message =
                        Some(sb("timed out waiting for the write to be acknowledged"));
                }
            }
            if pp.waits.is_empty() {
                done.push(*id);
            } else if pp.waits.len() < waiting {
                // Some partitions settled, others still wait: watch only those, so the settled
                // ones do not bring this produce back on every step.
                self.produce_waits.rewatch(*id, produce_keys(&pp.waits));
            }
            self.produces.insert(*id, pp);
        }
        for id in done {
            self.produce_waits.unwatch(id);
            let pp = self.produces.remove(&id).unwrap();
            assert!(
                pp.waits.is_empty(),
                "a produce is answered when every partition is settled"
            );
            if let Some(to) = pp.reply {
                self.respond(to, Some(ResponseKind::Produce(pp.response)));
            }
        }
    }

    /// The level a moved partition has reached for the produces waiting on it: its
    /// acknowledged end, which a produce needs to reach the end of its batch.
    fn produce_level(&self, key: &(String, i32)) -> i64 {
        let durability = self.config.durability;
        let highest = self.produce_waits.highest_need(key);
        self.waiter_level(key, highest, |p| p.ack_end(durability))
    }

    /// Release the internal writes that became durable (replaying their deferred records
    /// first, then answering) or were lost (answering with the error, and telling the group
    /// coordinator a membership record is gone). Only partitions that moved are looked at.
    pub(super) fn complete_internal_waits(&mut self, touched: &BTreeSet<(String, i32)>) {
        // Kafka's `offsets.commit.timeout.ms`: a write not durable by its deadline answers
        // with its error now (the records still take effect if it becomes durable later).
        let timed_out = self.internal_waits.take_timed_out(self.now);
        if !timed_out.is_empty() {
            self.log(
                LogLevel::Warn,
                format!(
                    "{} group coordinator write(s) not replicated within {} ms \
                     (offsets.commit.timeout.ms); answered COORDINATOR_NOT_AVAILABLE",
                    timed_out.len(),
                    self.config.offsets_commit_timeout_ms
                ),
            );
        }
        for (to, _, err_body) in timed_out {
            self.respond(to, Some(err_body));
        }
        let durability = self.config.durability;
        let topics = &self.topics;
        let moved = touched.iter().map(TopicPartition::from);
        let done = self.internal_waits.take_settled(moved, |w| {
            let p = topics
                .get(&w.partition.topic)
                .filter(|t| TopicId(t.id) == w.topic_id)
                .and_then(|t| {
                    t.partitions
                        .get(usize::try_from(w.partition.partition.0).ok()?)
                });
            let end = w.end.0;
            match p {
                Some(p)
                    if p.offline.is_none()
                        && p.write_survives(end, w.cut_epoch)
                        && p.log.log_end_offset() >= end =>
                {
                    // Internal writes wait for the high watermark: replicated to the ISR.
                    (p.high_watermark >= end).then_some(true)
                }
                _ => Some(false),
            }
        });
        let now = self.now;
        for (w, ok) in done {
            if ok {
                // Released only once durable: the high watermark covers the write.
                let at = &w.mark.partition;
                let p = &self.topics[&at.topic].partitions[at.partition.0 as usize];
                assert!(p.ack_end(durability) >= w.mark.end.0);
                assert!(
                    p.high_watermark >= w.mark.end.0,
                    "released under the high watermark"
                );
                for r in w.apply {
                    self.coordinator.replay(r, now);
                }
            }
            if let Some((to, ok_body, err_body)) = w.reply {
                self.respond(to, Some(if ok { ok_body } else { err_body }));
            }
            if let (false, Some((g, generation))) = (ok, w.membership) {
                self.with_groups(|c, host| {
                    crate::group::membership_write_failed(c, host, &g, generation)
                });
            }
        }
    }
}

/// What one partition's append came to ([`Broker::append_one`]).
pub(super) struct Appended {
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// The broker's time the batch was stamped with (`message.timestamp.type=LogAppendTime`),
    /// the produce response's `log_append_time_ms`; −1 under CreateTime, as in Kafka.
    pub log_append_time_ms: i64,
    pub wait: Option<ProduceWait>,
}

/// A produce's purgatory keys: each partition it waits on, needing the end of its batch.
fn produce_keys(waits: &[ProduceWait]) -> Vec<((String, i32), i64)> {
    waits
        .iter()
        .map(|w| ((w.name.clone(), w.index), w.end))
        .collect()
}

/// The Kafka error for a batch that failed its header checks (the client's fault: a corrupt or
/// malformed batch, or an old message format).
pub(super) fn batch_error(e: BatchError) -> ClientError {
    let code = match e {
        BatchError::Truncated { .. } | BatchError::Crc { .. } => ErrorCode::CORRUPT_MESSAGE,
        BatchError::Magic(_) => ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        BatchError::Invalid(_) => ErrorCode::INVALID_RECORD,
    };
    ClientError::new(code, e.to_string())
}
