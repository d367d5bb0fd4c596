//! `gregor connect`: a standalone Kafka Connect worker.
//!
//! The connectors' decisions live in `gregor-connect` (sans-IO); this module does their IO:
//! files, sockets, timers, and the Kafka clients (`gregor-client` through the tokio
//! [`Driver`]). One worker process runs every connector of its config file, each on a thread of
//! its own with its own client, as a Kafka standalone worker runs each task on a thread.
//!
//! Start-up: the offsets topic (`offset.storage.topic`, `connect-offsets`) is created if absent,
//! compacted (`cleanup.policy=compact`, as Kafka creates it), and read from the start: the
//! latest value of every key is where a source resumes. SIGTERM or SIGINT stops the worker
//! cleanly: sources stop reading, wait for their records' acknowledgements and store their
//! offsets; sinks write, fsync and commit what they have, then leave their groups.

mod file_sink;
mod file_source;
mod syslog;

use crate::client::cli::{bootstrap, runtime};
use crate::client::Driver;
use bytes::Bytes;
use gregor_client::{AdminOp, AdminResult, Config, NewTopic, OffsetReset, Output, ProducerRecord};
use gregor_connect::config::{Class, ConnectorConfig, WorkerConfig};
use gregor_connect::source::Record;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info};

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// The worker's config: a TOML file with [worker] settings and [[connector]] tables
    /// (docs/connect.md).
    #[arg(long)]
    config: PathBuf,
    /// The broker(s) to start from, host:port[,host:port...] (`bootstrap.servers`).
    #[arg(long, default_value = "127.0.0.1:9092", env = "GREGOR_BOOTSTRAP")]
    bootstrap: String,
}

/// How long a clean stop may take to flush and commit before the worker gives up.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long start-up may take to create and read the offsets topic.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// TOPIC_ALREADY_EXISTS: the offsets topic is there from an earlier run.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// What every connector's thread gets.
#[derive(Clone)]
pub(crate) struct Context {
    pub bootstrap: Vec<(String, u16)>,
    pub offset_topic: String,
    pub offset_flush_interval_ms: u64,
    /// Becomes true when the worker is asked to stop.
    pub stop: watch::Receiver<bool>,
}

impl Context {
    /// A client config for connector `name`.
    pub fn client_config(&self, name: &str) -> Config {
        Config {
            bootstrap: self.bootstrap.clone(),
            client_id: format!("connect-{name}"),
            auto_offset_reset: OffsetReset::Earliest,
            ..Config::default()
        }
    }
}

pub(crate) fn producer_record(r: Record) -> ProducerRecord {
    ProducerRecord {
        topic: r.topic,
        partition: None,
        key: r.key.map(Bytes::from),
        value: Some(Bytes::from(r.value)),
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k, Some(Bytes::from(v))))
            .collect(),
        timestamp_ms: None,
    }
}

pub fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.config.display()))?;
    let worker = gregor_connect::config::parse(&text).map_err(|e| anyhow::anyhow!(e))?;
    let (stop_tx, stop) = watch::channel(false);
    let ctx = Context {
        bootstrap: bootstrap(&args.bootstrap)?,
        offset_topic: worker.offset_topic.clone(),
        offset_flush_interval_ms: worker.offset_flush_interval_ms,
        stop,
    };
    let offsets = runtime()?.block_on(load_offsets(&ctx, &worker))?;
    info!(
        connectors = worker.connectors.len(),
        stored_offsets = offsets.len(),
        "connect worker started"
    );
    let mut threads = Vec::new();
    for c in worker.connectors {
        let ctx = ctx.clone();
        let offsets = offsets.clone();
        let name = c.name.clone();
        let t = std::thread::Builder::new()
            .name(format!("connect-{name}"))
            .spawn(move || run_connector(ctx, c, &offsets))?;
        threads.push((name, t));
    }
    // The main thread waits for SIGTERM or SIGINT, or for a connector to end (a task that
    // failed): then the others are stopped cleanly and the worker exits non-zero.
    let rt = runtime()?;
    let any_done = || threads.iter().any(|(_, t)| t.is_finished());
    rt.block_on(async {
        // SIGTERM or Ctrl-C, as `gregor serve` waits for them (none under madsim).
        let stop = crate::shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => if any_done() { break },
            }
        }
        anyhow::Ok(())
    })?;
    info!("connect worker stopping: flushing and committing");
    let _ = stop_tx.send(true);
    let mut failed = 0;
    for (name, t) in threads {
        match t.join() {
            Ok(Ok(())) => info!(connector = %name, "stopped"),
            Ok(Err(e)) => {
                failed += 1;
                error!(connector = %name, "failed: {e:#}");
            }
            Err(_) => {
                failed += 1;
                error!(connector = %name, "panicked");
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} connector(s) failed");
    Ok(())
}

fn run_connector(
    ctx: Context,
    c: ConnectorConfig,
    offsets: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> anyhow::Result<()> {
    let rt = runtime()?;
    info!(connector = %c.name, class = ?c.class, "starting");
    match c.class {
        Class::FileSource => rt.block_on(file_source::run(ctx, c, offsets)),
        Class::FileSink => rt.block_on(file_sink::run(ctx, c)),
        Class::SyslogSource => rt.block_on(syslog::run(ctx, c)),
    }
}

/// Create the offsets topic if absent (compacted) and read it whole: the latest value of every
/// key. A tombstone (no value) removes a key, as compaction eventually does.
async fn load_offsets(
    ctx: &Context,
    worker: &WorkerConfig,
) -> anyhow::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let topic = &worker.offset_topic;
    let mut driver = Driver::new(Config {
        allow_auto_topic_creation: false,
        ..ctx.client_config("worker")
    })?;
    let now = driver.now();
    let id = driver.client().admin(
        now,
        AdminOp::CreateTopics {
            topics: vec![NewTopic {
                name: topic.clone(),
                partitions: 1,
                replication_factor: -1,
                configs: vec![("cleanup.policy".into(), "compact".into())],
            }],
            validate_only: false,
        },
    );
    let created = tokio::time::timeout(START_TIMEOUT, async {
        loop {
            for o in driver.next().await {
                if let Output::Admin { id: got, result } = o {
                    if got == id {
                        return result;
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("creating the offsets topic {topic} timed out"))?;
    match created {
        Ok(AdminResult::CreateTopics(per)) => match per.get(topic.as_str()) {
            Some(Ok(_)) => info!(%topic, "created the offsets topic (cleanup.policy=compact)"),
            Some(Err(e)) if e.code() == Some(TOPIC_ALREADY_EXISTS) => {}
            Some(Err(e)) => anyhow::bail!("cannot create the offsets topic {topic}: {e}"),
            None => anyhow::bail!("no answer for the offsets topic {topic}"),
        },
        Ok(other) => anyhow::bail!("unexpected answer creating {topic}: {other:?}"),
        Err(e) => anyhow::bail!("cannot create the offsets topic {topic}: {e}"),
    }
    let now = driver.now();
    driver.client().assign_topic(now, topic, None);
    let mut latest = BTreeMap::new();
    // An empty partition yields no records: wait for the client to be caught up, not for
    // records.
    let outs = driver.run_until(|c| c.caught_up(), START_TIMEOUT).await;
    anyhow::ensure!(
        driver.client().caught_up(),
        "reading the offsets topic {topic} timed out"
    );
    for o in outs {
        match o {
            Output::Records(f) => {
                for r in f.records {
                    let Some(k) = r.key else { continue };
                    match r.value {
                        Some(v) => latest.insert(k.to_vec(), v.to_vec()),
                        None => latest.remove(&k[..]),
                    };
                }
            }
            Output::ConsumeError { error, .. } => {
                anyhow::bail!("cannot read the offsets topic {topic}: {error}")
            }
            _ => {}
        }
    }
    Ok(latest)
}
