//! Starting a broker from what the driver recovered from storage.

use super::epochs::STANDALONE_LEADER_EPOCH;
use super::*;
use crate::log::recover::EpochCut;

impl Broker {
    /// Start a broker from what the driver found on storage. The first outputs are the repairs
    /// recovery decided on (cutting torn tails) and log lines describing them.
    pub fn new(config: Config, recovered: Recovered, now: Instant) -> Result<Broker, ConfigError> {
        config.validate()?;
        let mut prng = Prng::new(config.seed);
        let mut broker = Broker {
            now,
            cluster_id: [0; 16],
            next_producer_id: 0,
            producer_id_block_end: 0,
            meta_write_in_flight: false,
            meta_waiters: Vec::new(),
            topics: BTreeMap::new(),
            next_op: 0,
            ops: BTreeMap::new(),
            outputs: VecDeque::new(),
            conns: BTreeMap::new(),
            next_pending: 0,
            produces: BTreeMap::new(),
            produce_waits: Purgatory::new(config.produces_parked_max),
            produces_settled: BTreeSet::new(),
            fetches: BTreeMap::new(),
            list_offsets: BTreeMap::new(),
            fetch_waits: Purgatory::new(config.fetches_parked_max),
            creates: BTreeMap::new(),
            internal_waits: crate::coordinator::PendingWrites::new(
                config.coordinator_writes_pending_max,
            ),
            touched: BTreeSet::new(),
            stepped: BTreeSet::new(),
            steps: 0,
            next_retention_check: now + Duration::from_ms(config.retention_check_interval_ms),
            cleaner: Default::default(),
            coordinator: Coordinator::new(&config),
            coordinator_lent: false,
            authz: Default::default(),
            kraft: Default::default(),
            replica: Default::default(),
            prng: Prng::new(0),
            config,
        };
        let meta = match recovered.broker_meta.as_deref().map(BrokerMeta::decode) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                broker.log(
                    LogLevel::Error,
                    format!("broker.meta unreadable ({e}); starting with a new one"),
                );
                None
            }
            None => None,
        };
        match meta {
            Some(m) => {
                broker.cluster_id = m.cluster_id;
                broker.next_producer_id = m.producer_id_block_end;
                broker.producer_id_block_end = m.producer_id_block_end;
            }
            None => {
                broker.cluster_id = prng.uuid_bytes();
                broker.write_broker_meta();
            }
        }
        broker.prng = prng;

        for rp in recovered.partitions {
            let meta = match rp.meta.as_deref().map(PartitionMeta::decode) {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    broker.log(
                        LogLevel::Error,
                        format!(
                            "{}: partition.meta unreadable ({e}); ignoring the directory",
                            rp.dir_name
                        ),
                    );
                    continue;
                }
                None => {
                    broker.log(
                        LogLevel::Warn,
                        format!(
                            "{}: no partition.meta (interrupted creation?); ignoring the directory",
                            rp.dir_name
                        ),
                    );
                    continue;
                }
            };
            // Idempotent producer state was rebuilt by recovery (a snapshot and the batches
            // after it); forget whatever recovery cuts away.
            let mut producers = rp.producers;
            for n in rp.notes {
                broker.log(LogLevel::Warn, n);
            }
            let dir = PartitionDir {
                topic: meta.topic.clone(),
                partition: meta.partition,
            };
            let (mut log, mut repairs, mut notes) =
                PartitionLog::recover(dir, rp.segments, rp.snapshot, now);
            // The leader epochs the snapshot carried plus those of the batches replayed after
            // it, clamped to the log recovery kept (a power loss may have taken a tail).
            log.set_recovered_epochs(rp.epochs);
            // KIP-107: the log start DeleteRecords left, checkpointed in partition.meta;
            // segments wholly below it that a crash kept are deleted now.
            let start = meta.log_start_offset.min(log.log_end_offset());
            if start < meta.log_start_offset {
                notes.push(format!(
                    "{}: log start {} is past the recovered log end {start}; starting there",
                    rp.dir_name, meta.log_start_offset
                ));
            }
            if start > log.log_start_offset() {
                repairs.extend(log.advance_log_start(start));
            }
            assert!(log.log_start_offset() >= start.min(log.log_end_offset()));
            assert!(log.log_start_offset() <= log.log_end_offset());
            producers.truncate_to(log.log_end_offset());
            producers.evict_beyond(broker.config.producers_per_partition_max);
            assert!(producers.len() <= broker.config.producers_per_partition_max);
            assert!(producers
                .max_last_offset()
                .is_none_or(|o| o < log.log_end_offset()));
            for n in notes {
                broker.log(LogLevel::Warn, n);
            }
            for r in repairs {
                let what = format!("recovery repair of {}", rp.dir_name);
                broker.storage(r, OpPurpose::Other { what });
            }
            let mut p = Partition::new(log, producers);
            if broker.config.kraft {
                broker.cut_epoch_regress(&mut p, rp.epoch_regress, &rp.dir_name);
                let end = p.log.log_end_offset();
                p.recovered_epoch_starts = rp.epoch_starts;
                p.recovered_epoch_starts.retain(|c| c.offset < end);
            }
            let topic = broker
                .topics
                .entry(meta.topic.clone())
                .or_insert_with(|| Topic {
                    id: meta.topic_id,
                    settings: meta.settings.clone(),
                    partitions: Vec::new(),
                    internal: meta.topic.starts_with("__"),
                });
            // What recovery found may have been in the page cache only: a process crash keeps
            // unsynced writes, and a later power loss would take them. So nothing recovered is
            // treated as durable until this broker has synced it; under group commit consumers
            // see it, and retried batches are acknowledged, only after that fsync (found by the
            // simulator: seed 2, a crash then a power loss lost a duplicate's acknowledgement).
            p.durable_end = p.log.log_start_offset();
            p.sync_requested_end = p.log.log_start_offset();
            if p.log.log_end_offset() > p.log.log_start_offset() {
                p.unsynced_since = Some(now);
                if broker.config.durability == Durability::GroupCommit {
                    p.high_watermark = p.log.log_start_offset();
                }
                broker.touched.insert((meta.topic.clone(), meta.partition));
            }
            let idx = meta.partition as usize;
            // Placeholders for partitions not (yet) found; each real one replaces its own.
            while topic.partitions.len() < (idx + 1).max(meta.partition_count.max(0) as usize) {
                let dir = PartitionDir {
                    topic: meta.topic.clone(),
                    partition: topic.partitions.len() as i32,
                };
                let mut missing =
                    Partition::new(PartitionLog::create(dir, now).0, ProducerStates::default());
                missing.offline = Some("missing".into());
                topic.partitions.push(missing);
            }
            if !broker.config.kraft {
                // Standalone: this broker leads every partition, in epoch 0, from the start.
                // (In KRaft mode the first metadata image names the epoch.) A batch claiming
                // another epoch has a damaged header: `partitionLeaderEpoch` is not covered by
                // the batch CRC (Kafka's neither), so a torn write can flip it unseen (found by
                // simulator seeds 61 and 181). Its records are intact; the cache is rebuilt.
                let bad = p
                    .log
                    .epochs()
                    .entries()
                    .iter()
                    .any(|(e, _)| *e != STANDALONE_LEADER_EPOCH);
                if bad {
                    broker.outputs.push_back(Output::Log {
                        level: LogLevel::Error,
                        message: format!(
                            "{}: batch headers name leader epochs {:?} on a standalone broker \
                             (damaged: the field is outside the batch CRC); epoch 0 throughout",
                            rp.dir_name,
                            p.log.epochs().entries()
                        ),
                    });
                    let start = p.log.log_start_offset();
                    let fixed = crate::log::LeaderEpochCache::from_entries(vec![(
                        STANDALONE_LEADER_EPOCH,
                        start,
                    )])
                    .expect("one entry");
                    p.log.set_recovered_epochs(fixed);
                }
                let refused = p.log.assign_epoch(STANDALONE_LEADER_EPOCH).err();
                assert!(refused.is_none(), "standalone logs hold epoch 0 only");
            }
            topic.partitions[idx] = p;
            if let Some(max) = topic.partitions[idx].producers.max_producer_id() {
                broker.next_producer_id = broker.next_producer_id.max(max + 1);
            }
        }
        // A topic is whole only if every partition directory was found.
        let missing: Vec<(String, usize)> = broker
            .topics
            .iter()
            .flat_map(|(n, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.offline.as_deref() == Some("missing"))
                    .map(move |(i, _)| (n.clone(), i))
            })
            .collect();
        for (name, i) in missing {
            if broker.config.kraft {
                // In a cluster a topic's other partitions live on other brokers: the first
                // image says which (a partition placed here is then created afresh).
                let p = &mut broker.topics.get_mut(&name).unwrap().partitions[i];
                p.offline = Some(cluster::NOT_HOSTED.into());
                continue;
            }
            broker.log(
                LogLevel::Error,
                format!("{name}-{i}: partition directory missing; partition offline"),
            );
            broker.topics.get_mut(&name).unwrap().partitions[i].offline =
                Some("partition directory missing at start".into());
        }
        broker.next_producer_id = broker.next_producer_id.max(broker.producer_id_block_end);
        if broker.config.kraft {
            // In a cluster `__consumer_offsets` comes from the metadata image like any topic
            // (see `cluster.rs`); the coordinator loads the partitions this broker leads.
            broker.log(
                LogLevel::Info,
                "KRaft mode: waiting for the first metadata image".into(),
            );
        } else {
            broker.with_groups(crate::group::start);
        }
        broker.after_step();
        broker.invariants();
        Ok(broker)
    }

    /// Recovery found a batch whose leader epoch is below an earlier batch's (`regress`): a
    /// header damaged where the CRC does not look (see `EpochCut`). Kafka's leader-epoch cache
    /// never goes back, and a log that did would refuse this replica's next append in its real
    /// epoch, so the log is cut before that batch. (A standalone broker rewrites its cache to
    /// epoch 0 instead: it has only one epoch.)
    fn cut_epoch_regress(&mut self, p: &mut Partition, regress: Option<EpochCut>, dir: &str) {
        let Some(cut) = regress else {
            return;
        };
        let end = p.log.log_end_offset();
        if cut.offset >= end || cut.offset < p.log.log_start_offset() {
            return; // recovery's own repairs already cut it away
        }
        let latest = p.log.epochs().epoch_for_offset(cut.offset);
        let mut producers = cut.producers;
        producers.evict_beyond(self.config.producers_per_partition_max);
        let cuts_max = self.config.partition_cuts_max;
        match p.truncate_rebuilt(cut.offset, cut.position, cut.scanned, producers, cuts_max) {
            Ok(reqs) => {
                assert_eq!(p.log.log_end_offset(), cut.offset);
                self.log(
                    LogLevel::Error,
                    format!(
                        "{dir}: the batch at offset {} names leader epoch {} after epoch {latest:?} \
                         (a damaged header: the field is outside the batch CRC); log cut there, \
                         {} record(s) dropped",
                        cut.offset,
                        cut.epoch,
                        end - cut.offset
                    ),
                );
                for r in reqs {
                    let what = format!("cut {dir} where its leader epochs go back");
                    self.storage(r, OpPurpose::Other { what });
                }
            }
            Err(why) => self.log(
                LogLevel::Error,
                format!("{dir}: cannot cut at the epoch that goes back: {why}"),
            ),
        }
    }
}
