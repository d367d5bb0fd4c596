//! `gregor streams`: a runner for `gregor-streams` topologies, in the shape of Kafka Streams'
//! `KafkaStreams` (one stream thread), and two example applications (`examples.rs`).
//!
//! The topology decides (sans-IO, `core/streams`); this module does the IO with
//! `gregor-client` through the tokio [`Driver`]:
//! * **Internal topics.** At start the source topics are described (their partition counts),
//!   and the repartition and changelog topics created if absent, sized like the sub-topology
//!   they belong to; changelogs with `cleanup.policy=compact`.
//! * **Tasks.** The consumer joins group `application.id` reading every source topic; the
//!   range assignor gives partition *p* of co-partitioned topics to one member, which runs
//!   the task `<sub-topology>_<p>`. When a task appears (at start, after a rebalance, when a
//!   killed instance's partitions move here) its stores are first restored from their
//!   changelog partitions, read to the end with a second client (the *restore consumer*).
//! * **At least once.** Each record's results are sent at once; every `commit.interval.ms`
//!   the runner notes the input offsets processed so far, and commits them only when every
//!   record sent before has been acknowledged (outputs, repartition and changelog records).
//!   The group does not commit on its own, not even when a rebalance takes partitions away.
//!   Exactly-once would replace that commit with `sendOffsetsToTransaction` and
//!   `commitTransaction` at the same point (docs/streams.md).

mod examples;

use crate::client::cli::{bootstrap, runtime};
use crate::client::Driver;
use bytes::Bytes;
use gregor_client::{
    AdminOp, AdminResult, Config, ConsumerRecord, GroupConfig, NewTopic, OffsetReset, Output,
    ProducerRecord,
};
use gregor_streams::{Emit, Record, Task, TaskId, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

#[derive(clap::Args)]
pub struct StreamsArgs {
    #[command(subcommand)]
    app: App,
}

#[derive(clap::Subcommand)]
enum App {
    /// Count words of the lines in --input; the latest count per word goes to --output
    /// (key: the word, value: the count as text).
    Wordcount {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Count log lines per severity (header `severity`, as the syslog source writes it) per
    /// window; `<severity>@<window start ms>` → count goes to --output.
    Severity {
        #[command(flatten)]
        run: RunArgs,
        /// The window's size, ms (tumbling windows).
        #[arg(long, default_value_t = 60_000)]
        window_ms: i64,
        /// How long after its end a window still accepts late lines, ms.
        #[arg(long, default_value_t = 0)]
        grace_ms: i64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The topic to read.
    #[arg(long)]
    input: String,
    /// The topic to write the results to.
    #[arg(long)]
    output: String,
    /// `application.id`: the consumer group, and the prefix of the internal topics. Instances
    /// with the same id share the work. Defaults to the example's name.
    #[arg(long)]
    application_id: Option<String>,
    /// How often processed input offsets are committed (once their results are acknowledged).
    #[arg(long, default_value_t = 1_000)]
    commit_interval_ms: u64,
    /// How long a silent instance keeps its tasks before the group moves them.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: i32,
    /// The broker(s) to start from, host:port[,host:port...].
    #[arg(long, default_value = "127.0.0.1:9092", env = "GREGOR_BOOTSTRAP")]
    bootstrap: String,
}

/// How long start-up, restoration and a clean stop may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// TOPIC_ALREADY_EXISTS: an internal topic from an earlier run.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// How often the runner logs its progress.
const REPORT_EVERY: Duration = Duration::from_secs(5);

pub fn streams(args: StreamsArgs) -> anyhow::Result<()> {
    let (topology, run) = match args.app {
        App::Wordcount { run } => {
            let app = run.application_id.as_deref().unwrap_or("wordcount");
            (examples::wordcount(app, &run.input, &run.output), run)
        }
        App::Severity {
            run,
            window_ms,
            grace_ms,
        } => {
            let app = run.application_id.as_deref().unwrap_or("severity-counts");
            let t = examples::severity(app, &run.input, &run.output, window_ms, grace_ms);
            (t, run)
        }
    };
    let topology = Arc::new(topology.map_err(|e| anyhow::anyhow!("bad topology: {e}"))?);
    let config = Config {
        bootstrap: bootstrap(&run.bootstrap)?,
        client_id: format!("{}-streams", topology.application_id()),
        auto_offset_reset: OffsetReset::Earliest,
        allow_auto_topic_creation: false,
        ..Config::default()
    };
    runtime()?.block_on(Runner::start(topology, config, &run)?.run())
}

fn record_of(r: ConsumerRecord) -> Record {
    Record {
        key: r.key.map(|k| k.to_vec()),
        value: r.value.map(|v| v.to_vec()),
        timestamp_ms: r.timestamp_ms,
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| v.to_vec())))
            .collect(),
    }
}

fn producer_record(e: Emit) -> ProducerRecord {
    ProducerRecord {
        topic: e.topic,
        partition: e.partition,
        key: e.record.key.map(Bytes::from),
        value: e.record.value.map(Bytes::from),
        headers: e
            .record
            .headers
            .into_iter()
            .map(|(k, v)| (k, v.map(Bytes::from)))
            .collect(),
        // Results carry the input's event time, as Kafka Streams stamps them.
        timestamp_ms: Some(e.record.timestamp_ms),
    }
}

/// Run an admin operation to its result.
async fn admin(driver: &mut Driver, op: AdminOp) -> anyhow::Result<AdminResult> {
    let now = driver.now();
    let id = driver.client().admin(now, op);
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            for o in driver.next().await {
                if let Output::Admin { id: got, result } = o {
                    if got == id {
                        return result.map_err(|e| anyhow::anyhow!("{e}"));
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("an admin request timed out"))?
}

/// The partition count of every sub-topology, from its source topics; the internal topics
/// created to match.
async fn prepare_topics(config: &Config, t: &Topology) -> anyhow::Result<()> {
    let mut driver = Driver::new(config.clone())?;
    let external: Vec<String> = (0..t.subtopologies())
        .flat_map(|s| t.external_sources(s))
        .collect();
    let AdminResult::DescribeTopics(described) = admin(
        &mut driver,
        AdminOp::DescribeTopics {
            topics: Some(external.clone()),
        },
    )
    .await?
    else {
        anyhow::bail!("unexpected answer to DescribeTopics");
    };
    let mut count_of_sub = BTreeMap::new();
    for sub in 0..t.subtopologies() {
        let mut counts = BTreeSet::new();
        for topic in t.external_sources(sub) {
            match described.get(&topic) {
                Some(Ok(info)) => counts.insert(info.partitions.len() as i32),
                Some(Err(e)) => anyhow::bail!("source topic {topic}: {e} (create it first)"),
                None => anyhow::bail!("source topic {topic} is missing (create it first)"),
            };
        }
        anyhow::ensure!(
            counts.len() <= 1,
            "the source topics {:?} are not co-partitioned: partition counts {counts:?}",
            t.external_sources(sub)
        );
        if let Some(&n) = counts.first() {
            count_of_sub.insert(sub, n);
        }
    }
    let topics: Vec<NewTopic> = t
        .internal_topics()
        .into_iter()
        .map(|i| NewTopic {
            name: i.name,
            partitions: count_of_sub[&i.partitions_like],
            replication_factor: -1,
            configs: if i.compacted {
                vec![("cleanup.policy".into(), "compact".into())]
            } else {
                vec![]
            },
        })
        .collect();
    let AdminResult::CreateTopics(created) = admin(
        &mut driver,
        AdminOp::CreateTopics {
            topics: topics.clone(),
            validate_only: false,
        },
    )
    .await?
    else {
        anyhow::bail!("unexpected answer to CreateTopics");
    };
    for nt in topics {
        match created.get(&nt.name) {
            Some(Ok(_)) => {
                info!(topic = %nt.name, partitions = nt.partitions, "created internal topic")
            }
            Some(Err(e)) if e.code() == Some(TOPIC_ALREADY_EXISTS) => {}
            Some(Err(e)) => anyhow::bail!("cannot create {}: {e}", nt.name),
            None => anyhow::bail!("no answer creating {}", nt.name),
        }
    }
    Ok(())
}

/// What is noted for a commit: the input offsets processed, waiting for the acknowledgement
/// of every record sent up to `last_sent`.
struct PendingCommit {
    offsets: Vec<((String, i32), i64)>,
    last_sent: Option<u64>,
}

struct Runner {
    topology: Arc<Topology>,
    config: Config,
    driver: Driver,
    tasks: BTreeMap<TaskId, Task>,
    /// Per input partition, the offset after the last record processed.
    processed: BTreeMap<(String, i32), i64>,
    /// Records sent and not yet acknowledged, by id (ids only grow).
    in_flight: BTreeSet<u64>,
    last_sent: Option<u64>,
    pending: Option<PendingCommit>,
    commit_interval: Duration,
    records_in: u64,
    records_out: u64,
}

impl Runner {
    fn start(topology: Arc<Topology>, config: Config, run: &RunArgs) -> anyhow::Result<Runner> {
        runtime()?.block_on(prepare_topics(&config, &topology))?;
        // Output topics are not created by the application (as in Kafka Streams): the broker
        // creates them on first use if it auto-creates topics.
        let mut driver = Driver::new(Config {
            allow_auto_topic_creation: true,
            ..config.clone()
        })?;
        let mut group = GroupConfig::new(topology.application_id());
        group.auto_commit_interval_ms = None;
        group.commit_on_revoke = false;
        group.session_timeout_ms = run.session_timeout_ms;
        group.heartbeat_interval_ms = (run.session_timeout_ms as u64 / 3).max(100);
        let now = driver.now();
        driver
            .client()
            .subscribe(now, group, &topology.all_source_topics());
        info!(
            application_id = topology.application_id(),
            "streams started\n{topology:?}"
        );
        Ok(Runner {
            topology,
            config,
            driver,
            tasks: BTreeMap::new(),
            processed: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            last_sent: None,
            pending: None,
            commit_interval: Duration::from_millis(run.commit_interval_ms.max(1)),
            records_in: 0,
            records_out: 0,
        })
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let stop = crate::shutdown_signal();
        tokio::pin!(stop);
        let mut commit_at = tokio::time::Instant::now() + self.commit_interval;
        let mut report_at = tokio::time::Instant::now() + REPORT_EVERY;
        let started = std::time::Instant::now();
        let result: anyhow::Result<()> = async {
            loop {
                let outs = tokio::select! {
                    outs = self.driver.next() => outs,
                    _ = tokio::time::sleep_until(commit_at.min(report_at)) => vec![],
                    _ = &mut stop => return Ok(()),
                };
                self.reconcile().await?;
                for o in outs {
                    self.handle(o)?;
                }
                let now = tokio::time::Instant::now();
                if now >= commit_at {
                    commit_at = now + self.commit_interval;
                    self.note_commit();
                }
                self.try_commit();
                if now >= report_at {
                    report_at = now + REPORT_EVERY;
                    let secs = started.elapsed().as_secs_f64();
                    info!(
                        tasks = ?self.tasks.keys().map(ToString::to_string).collect::<Vec<_>>(),
                        records_in = self.records_in,
                        records_out = self.records_out,
                        in_per_s = (self.records_in as f64 / secs) as u64,
                        "progress"
                    );
                }
            }
        }
        .await;
        self.close(result.is_ok()).await;
        result
    }

    /// Create the tasks of newly assigned partitions (restoring their stores) and drop those
    /// of partitions taken away.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        let assigned: BTreeSet<(String, i32)> =
            self.driver.client().assignment().into_iter().collect();
        let wanted: BTreeSet<TaskId> = assigned
            .iter()
            .filter_map(|(t, p)| {
                Some(TaskId {
                    subtopology: self.topology.subtopology_reading(t)?,
                    partition: *p,
                })
            })
            .collect();
        let gone: Vec<TaskId> = self
            .tasks
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        for id in gone {
            let t = self.tasks.remove(&id).expect("listed");
            info!(task = %id, stats = ?t.stats(), "task closed (partition moved away)");
        }
        self.processed.retain(|tp, _| assigned.contains(tp));
        let new: Vec<TaskId> = wanted
            .into_iter()
            .filter(|id| !self.tasks.contains_key(id))
            .collect();
        if !new.is_empty() {
            let mut tasks: Vec<Task> = new
                .iter()
                .map(|id| Task::new(self.topology.clone(), *id))
                .collect();
            self.restore(&mut tasks).await?;
            for t in tasks {
                self.tasks.insert(t.id(), t);
            }
        }
        Ok(())
    }

    /// Read the tasks' changelog partitions from the start to the end into their stores.
    async fn restore(&self, tasks: &mut [Task]) -> anyhow::Result<()> {
        let parts: Vec<(String, i32, usize)> = tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.changelogs()
                    .into_iter()
                    .map(move |c| (c, t.id().partition, i))
            })
            .collect();
        if parts.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut driver = Driver::new(Config {
            client_id: format!("{}-restore-consumer", self.topology.application_id()),
            ..self.config.clone()
        })?;
        let now = driver.now();
        let tps: Vec<(String, i32)> = parts.iter().map(|(c, p, _)| (c.clone(), *p)).collect();
        for tp in &tps {
            driver.client().seek(now, tp.clone(), 0);
        }
        let mut restored = 0u64;
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let outs = driver
                .run_until(|c| c.caught_up(), left.min(Duration::from_millis(200)))
                .await;
            for o in outs {
                match o {
                    Output::Records(f) => {
                        let task = parts
                            .iter()
                            .find(|(c, p, _)| *c == f.topic && *p == f.partition)
                            .map(|(_, _, i)| *i)
                            .expect("only assigned partitions are fetched");
                        for r in f.records {
                            restored += 1;
                            if !tasks[task].restore(&f.topic, &record_of(r)) {
                                warn!(topic = %f.topic, "a changelog record without a key: skipped");
                            }
                        }
                    }
                    Output::ConsumeError {
                        topic,
                        partition,
                        error,
                    } => {
                        anyhow::bail!("cannot restore from {topic}-{partition}: {error}")
                    }
                    _ => {}
                }
            }
            if driver.client().caught_up() {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "restoring {tps:?} did not finish within {STEP_TIMEOUT:?}"
            );
        }
        for t in tasks.iter() {
            let sizes: Vec<(String, usize)> = t
                .changelogs()
                .iter()
                .zip(self.topology.stores_of(t.id().subtopology))
                .map(|(_, s)| (s.clone(), t.store(&s).map_or(0, |st| st.len())))
                .collect();
            info!(task = %t.id(), stores = ?sizes, "task restored");
        }
        info!(
            records = restored,
            ms = started.elapsed().as_millis() as u64,
            "restoration done"
        );
        Ok(())
    }

    fn handle(&mut self, o: Output) -> anyhow::Result<()> {
        match o {
            Output::Records(f) => {
                let Some(sub) = self.topology.subtopology_reading(&f.topic) else {
                    return Ok(());
                };
                let id = TaskId {
                    subtopology: sub,
                    partition: f.partition,
                };
                // Records of a partition taken away in the same step: its new owner reads them
                // from the committed offset.
                let Some(task) = self.tasks.get_mut(&id) else {
                    return Ok(());
                };
                let tp = (f.topic.clone(), f.partition);
                let mut last = None;
                for r in f.records {
                    let offset = r.offset;
                    for e in task.process(&f.topic, offset, record_of(r)) {
                        let now = self.driver.now();
                        let rid = self.driver.client().send(now, producer_record(e));
                        self.in_flight.insert(rid.0);
                        self.last_sent = Some(rid.0);
                        self.records_out += 1;
                    }
                    self.records_in += 1;
                    last = Some(offset);
                }
                if let Some(o) = last {
                    self.processed.insert(tp, o + 1);
                }
            }
            Output::Delivered(d) => {
                self.in_flight.remove(&d.id.0);
                if let Err(e) = d.result {
                    // Kafka Streams' default production exception handler: fail. The input
                    // offsets are not committed, so a restart processes them again.
                    anyhow::bail!("a record to {} could not be delivered: {e}", d.topic);
                }
            }
            o => {
                if let Some(e) = crate::client::consumer_failure(&o) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Note the offsets processed so far, for a commit once what they produced is
    /// acknowledged (the first half of Kafka Streams' commit: flush the producer).
    fn note_commit(&mut self) {
        if self.pending.is_some() || self.processed.is_empty() {
            return;
        }
        self.pending = Some(PendingCommit {
            offsets: self
                .processed
                .iter()
                .map(|(tp, o)| (tp.clone(), *o))
                .collect(),
            last_sent: self.last_sent,
        });
        let now = self.driver.now();
        self.driver.client().flush(now);
    }

    /// The second half: commit once every record sent before the note is acknowledged.
    /// (Exactly-once would send the offsets to the transaction and commit it here.)
    fn try_commit(&mut self) {
        let Some(p) = &self.pending else {
            return;
        };
        let acked = match (p.last_sent, self.in_flight.first()) {
            (Some(last), Some(&oldest)) => oldest > last,
            _ => true,
        };
        if !acked {
            return;
        }
        let p = self.pending.take().expect("checked");
        // Offsets of partitions that moved away meanwhile are not ours to commit.
        let assigned: BTreeSet<(String, i32)> =
            self.driver.client().assignment().into_iter().collect();
        let offsets: Vec<_> = p
            .offsets
            .into_iter()
            .filter(|(tp, _)| assigned.contains(tp))
            .collect();
        let now = self.driver.now();
        self.driver.client().commit_offsets(now, &offsets);
    }

    /// Clean stop: deliver what was produced, commit what was processed, leave the group.
    async fn close(&mut self, commit: bool) {
        let now = self.driver.now();
        self.driver.client().flush(now);
        // Records fetched meanwhile are not processed: their offsets are not committed.
        let _ = self
            .driver
            .run_until(|c| c.unreported() == 0, STEP_TIMEOUT)
            .await;
        if commit && self.driver.client().unreported() == 0 {
            let offsets: Vec<_> = self
                .processed
                .iter()
                .map(|(tp, o)| (tp.clone(), *o))
                .collect();
            let now = self.driver.now();
            self.driver.client().commit_offsets(now, &offsets);
            let _ = self
                .driver
                .run_until(|c| c.commits_in_flight() == 0, STEP_TIMEOUT)
                .await;
        }
        let now = self.driver.now();
        self.driver.client().leave(now);
        let _ = self
            .driver
            .run_until(|c| !c.requests_in_flight(), STEP_TIMEOUT)
            .await;
        info!(
            records_in = self.records_in,
            records_out = self.records_out,
            "streams stopped"
        );
    }
}
