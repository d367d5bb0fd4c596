//! Work after every input: time-driven checks, retention, releasing what became ready.

use super::*;

impl Broker {
    pub(super) fn on_time(&mut self) {
        if self.now >= self.next_retention_check {
            self.next_retention_check =
                self.now + Duration::from_ms(self.config.retention_check_interval_ms);
            let now_ms = self.now.unix_ms();
            let mut deletions = Vec::new();
            for (name, t) in self.topics.iter_mut() {
                for (i, p) in t.partitions.iter_mut().enumerate() {
                    if p.offline.is_some() {
                        continue;
                    }
                    // `cleanup.policy=compact` alone keeps old segments (the cleaner trims
                    // them by key instead).
                    let deletes = t.settings.compaction.policy.deletes();
                    let reqs = p.log.apply_retention(
                        now_ms,
                        if deletes { t.settings.retention_ms } else { -1 },
                        if deletes {
                            t.settings.retention_bytes
                        } else {
                            -1
                        },
                        p.high_watermark,
                    );
                    if !reqs.is_empty() {
                        deletions.push((format!("{name}-{i}"), reqs, p.log.log_start_offset()));
                    }
                }
            }
            for (what, reqs, start) in deletions {
                self.log(
                    LogLevel::Info,
                    format!("retention: {what} now starts at offset {start}"),
                );
                for r in reqs {
                    self.storage(
                        r,
                        OpPurpose::Other {
                            what: format!("retention {what}"),
                        },
                    );
                }
            }
        }
        if let Durability::Interval { interval_ms, .. } = self.config.durability {
            let now = self.now;
            let mut due = Vec::new();
            for (n, t) in &self.topics {
                for (i, p) in t.partitions.iter().enumerate() {
                    if p.unsynced_since
                        .is_some_and(|s| s + Duration::from_ms(interval_ms) <= now)
                    {
                        due.push((n.clone(), i as i32));
                    }
                }
            }
            // Every due partition is looked at after this step, where its fsync is issued.
            assert!(due
                .iter()
                .all(|(n, i)| self.topics[n].partitions[*i as usize]
                    .unsynced_since
                    .is_some()));
            self.touched.extend(due);
        }
        self.cleaner_tick();
        self.coordinator_tick();
    }

    pub(super) fn coordinator_tick(&mut self) {
        self.with_groups(crate::group::tick);
    }

    pub(super) fn after_step(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        let durability = self.config.durability;
        for (name, index) in &touched {
            let key = (name.clone(), *index);
            let next_hw = self
                .partition(name, *index)
                .map(|p| self.next_high_watermark(&key, p));
            let following = self.replica.following.contains_key(&key);
            let Some(t) = self.topics.get_mut(name) else {
                continue;
            };
            let topic_id = t.id;
            let Some(p) = t.partitions.get_mut(*index as usize) else {
                continue;
            };
            if p.offline.is_some() {
                continue;
            }
            // Issue a sync if the policy wants one and none is in flight (group commit: one
            // fsync covers everything appended while the previous one ran).
            let unsynced = p.log.log_end_offset() - p.sync_requested_end;
            let want_sync = unsynced > 0
                && p.sync.is_none()
                && match durability {
                    Durability::None => false,
                    Durability::GroupCommit => true,
                    Durability::Interval {
                        records,
                        interval_ms,
                    } => {
                        unsynced as u64 >= records
                            || p.unsynced_since
                                .is_some_and(|s| s + Duration::from_ms(interval_ms) <= self.now)
                    }
                };
            let mut syncs = Vec::new();
            if want_sync {
                let files = p.log.files_since(p.sync_requested_end);
                // Unsynced records live in some file; one fsync at a time per partition.
                assert!(!files.is_empty(), "unsynced records but no file to sync");
                assert!(p.sync.is_none());
                p.syncs_issued += 1;
                p.sync = Some(SyncInFlight {
                    id: p.syncs_issued,
                    remaining: files.len(),
                    covers_end: p.log.log_end_offset(),
                });
                p.sync_requested_end = p.log.log_end_offset();
                p.unsynced_since = None;
                // A fsync covers no more than was written when it was issued.
                assert!(p.sync.is_some_and(|s| s.covers_end == p.sync_requested_end));
                syncs = files;
            }
            if durability == Durability::None {
                p.unsynced_since = None;
            }
            let before = p.high_watermark;
            p.high_watermark = next_hw.expect("the partition is held");
            // The high watermark never moves back (but a follower's may, after a truncation
            // or under a new leader), and never past what was written.
            assert!(following || p.high_watermark >= before);
            assert!(p.high_watermark <= p.ack_end(durability).max(before));
            assert!(p.high_watermark <= p.written_end.max(p.log.log_start_offset()));
            let id = p.syncs_issued;
            let checkpoint = p.checkpoint_requests();
            for file in syncs {
                self.storage(
                    StorageRequest::Sync { file },
                    OpPurpose::Sync {
                        topic: name.clone(),
                        topic_id,
                        partition: *index,
                        id,
                    },
                );
            }
            if let Some(r) = checkpoint {
                let what = format!("producer snapshot of {name}-{index}");
                self.storage(r, OpPurpose::Other { what });
            }
        }
        self.complete_produces(&touched);
        self.complete_internal_waits(&touched);
        self.wake_fetches(&touched);
        self.with_groups(crate::group::after_step);
        self.stepped = touched;
    }
}
