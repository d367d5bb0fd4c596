//! Storage completions: appends, syncs, reads and truncations coming back from the driver.

use super::*;

impl Broker {
    pub(super) fn on_storage_done(&mut self, op: OpId, result: Result<StorageReply, StorageFault>) {
        let Some(purpose) = self.ops.remove(&op) else {
            panic!("storage completion for unknown op {op:?}: driver bug");
        };
        match purpose {
            OpPurpose::Append {
                topic,
                topic_id,
                partition,
                end,
                cut_epoch,
            } => {
                let Some(p) = self.partition_mut(&topic, topic_id, partition) else {
                    return;
                };
                if p.cut_epoch != cut_epoch {
                    return; // issued before a failure cut the log; already accounted for
                }
                match result {
                    Ok(_) => {
                        // Nothing cut the log since this append was issued (same cut epoch),
                        // so the log still holds it.
                        assert!(
                            end <= p.log.log_end_offset(),
                            "a completed append past the log end"
                        );
                        let before = p.written_end;
                        p.written_end = p.written_end.max(end);
                        assert!(p.written_end >= before, "the written end never moves back");
                        self.touched.insert((topic, partition));
                    }
                    Err(fault) => {
                        self.write_failed(&topic, partition, format!("append failed: {fault}"))
                    }
                }
            }
            OpPurpose::Sync {
                topic,
                topic_id,
                partition,
                id,
            } => {
                let Some(p) = self.partition_mut(&topic, topic_id, partition) else {
                    return;
                };
                match result {
                    Ok(_) => {
                        // A sync abandoned after a failed write: it proves nothing about the
                        // sync in flight now.
                        let Some(mut s) = p.sync.filter(|s| s.id == id) else {
                            return;
                        };
                        s.remaining -= 1;
                        p.sync = if s.remaining == 0 { None } else { Some(s) };
                        if s.remaining == 0 {
                            // An fsync counts for what was written before it was issued, no more.
                            assert!(s.covers_end <= p.sync_requested_end);
                            assert!(s.covers_end <= p.log.log_end_offset());
                            p.durable_end = p.durable_end.max(s.covers_end);
                            self.touched.insert((topic, partition));
                        }
                    }
                    Err(fault) => {
                        // After a failed fsync the kernel may have dropped the dirty pages: what
                        // is on disk is unknown (PostgreSQL's "fsyncgate"). Take the partition
                        // offline; a restart recovers it from what is really there.
                        p.sync = None;
                        let why = format!("fsync failed: {fault}");
                        p.offline = Some(why.clone());
                        self.log(
                            LogLevel::Error,
                            format!("{topic}-{partition}: {why}; partition offline until restart"),
                        );
                        self.touched.insert((topic, partition));
                    }
                }
            }
            OpPurpose::Read { fetch, slot } => self.read_done(fetch, slot, result),
            OpPurpose::TimestampRead { list, slot } => self.timestamp_read_done(list, slot, result),
            OpPurpose::GroupLoad { slot } => {
                self.with_groups(|c, host| crate::group::load_done(c, host, slot, result))
            }
            OpPurpose::Create {
                topic,
                topic_id,
                waiter,
            } => {
                if let Err(fault) = &result {
                    self.log(
                        LogLevel::Error,
                        format!("creating topic {topic} failed: {fault}"),
                    );
                    if self.topics.get(&topic).is_some_and(|t| t.id == topic_id) {
                        let t = self.topics.get_mut(&topic).unwrap();
                        for (i, p) in t.partitions.iter_mut().enumerate() {
                            p.offline = Some(format!("creation failed: {fault}"));
                            // Writes waiting on it are lost now, though no step touches it.
                            self.internal_waits.recheck(&topic, i as i32);
                            self.produce_waits.touch(&(topic.clone(), i as i32));
                        }
                    }
                }
                if let Some(w) = waiter {
                    self.create_op_done(w, &topic, result.is_err());
                }
            }
            OpPurpose::BrokerMeta => {
                self.meta_write_in_flight = false;
                match result {
                    Ok(_) => {
                        let waiters = std::mem::take(&mut self.meta_waiters);
                        for to in waiters {
                            self.hand_out_producer_id(to);
                        }
                    }
                    Err(fault) => {
                        self.log(
                            LogLevel::Error,
                            format!("writing broker.meta failed: {fault}"),
                        );
                        let waiters = std::mem::take(&mut self.meta_waiters);
                        for to in waiters {
                            let resp = InitProducerIdResponse::default()
                                .with_error_code(KAFKA_STORAGE_ERROR)
                                .with_producer_id(ProducerId(-1));
                            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
                        }
                    }
                }
            }
            OpPurpose::Clean { job, op: clean_op } => self.clean_done(job, clean_op, result),
            OpPurpose::TruncationScan {
                topic,
                partition,
                job,
            } => self.truncation_scan_done(topic, partition, job, result),
            OpPurpose::Other { what } => {
                if let Err(fault) = result {
                    self.log(
                        LogLevel::Error,
                        format!("storage operation failed ({what}): {fault}"),
                    );
                }
            }
        }
    }

    /// Partition `index` of `topic`, if both exist (a negative or too large index is none).
    pub(super) fn partition(&self, topic: &str, index: i32) -> Option<&Partition> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
    }

    pub(super) fn partition_mut(
        &mut self,
        topic: &str,
        topic_id: [u8; 16],
        partition: i32,
    ) -> Option<&mut Partition> {
        self.topics
            .get_mut(topic)
            .filter(|t| t.id == topic_id)
            .and_then(|t| t.partitions.get_mut(partition as usize))
    }

    /// A write failed (disk full, I/O error): cut the log back to what was written, so nothing
    /// after a hole can ever be read, and fail the produces that were waiting on the cut part.
    pub(super) fn write_failed(&mut self, topic: &str, partition: i32, why: String) {
        let p = &mut self.topics.get_mut(topic).unwrap().partitions[partition as usize];
        let keep = p.written_end.max(p.log.log_start_offset());
        p.record_cut(keep, self.config.partition_cuts_max);
        let reqs = if p.log.log_end_offset() > keep {
            p.log.truncate_to(keep)
        } else {
            Vec::new()
        };
        p.producers.truncate_to(keep);
        if p.producer_base.as_ref().is_some_and(|b| b.offset > keep) {
            p.producer_base = None;
        }
        p.sync_requested_end = p.sync_requested_end.min(keep);
        p.durable_end = p.durable_end.min(keep);
        if p.log.log_end_offset() <= p.sync_requested_end {
            // Nothing unsynced is left: the fsync-interval clock stops, or its deadline would
            // stay due with nothing to sync (a busy loop, simulator seeds 96 and 98).
            p.unsynced_since = None;
        }
        if let Some(s) = p.sync.as_mut() {
            // The fsync in flight still covers everything written before it, up to the cut; it
            // must not be abandoned, or what it alone covered (a recovered log, say) would wait
            // for a sync that is never issued (found by simulator seed 1742).
            s.covers_end = s.covers_end.min(keep);
        }
        // Postconditions of a cut: the log ends at `keep`, and nothing acknowledged, durable or
        // promised to a sync lies beyond it (an offline partition's ends are not trusted).
        if p.offline.is_none() {
            assert_eq!(
                p.log.log_end_offset(),
                keep,
                "the log is cut back to what was written"
            );
            assert!(
                p.high_watermark <= keep,
                "a cut never takes an acknowledged record"
            );
        }
        assert!(p.durable_end <= keep && p.sync_requested_end <= keep);
        assert!(p.sync.is_none_or(|s| s.covers_end <= keep));
        self.log(
            LogLevel::Error,
            format!("{topic}-{partition}: {why}; log cut back to offset {keep}"),
        );
        self.leader_epoch_goes_on(topic, partition);
        for r in reqs {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("cut {topic}-{partition} after a failed write"),
                },
            );
        }
        self.touched.insert((topic.to_string(), partition));
    }
}
