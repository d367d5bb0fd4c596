//! The file sink (Kafka's `FileStreamSinkTask`): consume the topics in group
//! `connect-<name>`, append each record's value as a line, fsync, and only then commit the
//! group's offsets. A worker killed between the write and the commit writes those lines again
//! after its restart (at least once); a clean stop commits what it wrote, so nothing repeats.
//!
//! The consumer's position is committed, and the worker writes every fetched record before it
//! lets the client run again, so the position never passes a line not yet written; it commits
//! after the fsync (and after any dead-letter record is acknowledged).

use super::{producer_record, Context, STOP_TIMEOUT};
use crate::client::Driver;
use gregor_client::{GroupConfig, Output};
use gregor_connect::config::ConnectorConfig;
use gregor_connect::errors::Handling;
use gregor_connect::source::Record;
use std::io::Write;
use tracing::{info, warn};

pub(super) async fn run(ctx: Context, c: ConnectorConfig) -> anyhow::Result<()> {
    let path = c.file.clone().expect("checked by the config");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {path}: {e}"))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut driver = Driver::new(ctx.client_config(&c.name))?;
    let group = format!("connect-{}", c.name);
    let mut cfg = GroupConfig::new(&group);
    cfg.auto_commit_interval_ms = None;
    let now = driver.now();
    driver.client().subscribe(now, cfg, &c.topics);
    info!(connector = %c.name, %group, topics = ?c.topics, %path, "sink started");
    let mut stop = ctx.stop.clone();
    // Dead-letter records in flight: the commit waits for them.
    let mut dead_letters = 0usize;
    let mut commit_due = false;
    let mut written = 0u64;
    let result: anyhow::Result<()> = async {
        loop {
            let outs = tokio::select! {
                outs = driver.next() => outs,
                _ = stop.changed() => return Ok(()),
            };
            let mut wrote = false;
            for o in outs {
                match o {
                    Output::Records(f) => {
                        for r in f.records {
                            let value = r.value.as_deref().unwrap_or_default();
                            match c.value_converter.to_line(value) {
                                Ok(line) => {
                                    out.write_all(&line)?;
                                    out.write_all(b"\n")?;
                                    written += 1;
                                    wrote = true;
                                }
                                Err(e) => {
                                    let error = format!(
                                        "{}-{} offset {}: {e}",
                                        f.topic, f.partition, r.offset
                                    );
                                    match c.errors.handle(&c.name, "VALUE_CONVERTER", &error, value)
                                    {
                                        Handling::Fail(why) => anyhow::bail!(why),
                                        Handling::Skip { log, dead_letter } => {
                                            warn!(connector = %c.name, "{log}");
                                            if let Some(d) = dead_letter {
                                                let now = driver.now();
                                                let rec = Record {
                                                    topic: d.topic,
                                                    key: r.key.as_ref().map(|k| k.to_vec()),
                                                    value: d.value,
                                                    headers: d.headers,
                                                };
                                                driver.client().send(now, producer_record(rec));
                                                dead_letters += 1;
                                            }
                                            wrote = true;
                                        }
                                    }
                                }
                            }
                        }
                    }
                    Output::Delivered(d) => {
                        dead_letters = dead_letters.saturating_sub(1);
                        if let Err(e) = d.result {
                            anyhow::bail!("a dead-letter record could not be delivered: {e}");
                        }
                    }
                    o => {
                        if let Some(e) = crate::client::consumer_failure(&o) {
                            return Err(e);
                        }
                    }
                }
            }
            if wrote {
                // The data is on disk before the offsets that cover it are committed.
                out.flush()?;
                out.get_ref().sync_data()?;
                commit_due = true;
            }
            if commit_due && dead_letters == 0 {
                let now = driver.now();
                driver.client().commit(now);
                commit_due = false;
            }
        }
    }
    .await;
    // Stop (cleanly, or after a failure): write and fsync what was read, wait for the
    // dead-letter records, commit, leave the group.
    out.flush()?;
    out.get_ref().sync_data()?;
    let now = driver.now();
    driver.client().flush(now);
    driver
        .run_until(|cl| cl.unreported() == 0, STOP_TIMEOUT)
        .await;
    if result.is_ok() {
        // After a failure the positions may be past records never written: no commit, the
        // next run reads them again.
        let now = driver.now();
        driver.client().commit(now);
        driver
            .run_until(|cl| cl.commits_in_flight() == 0, STOP_TIMEOUT)
            .await;
    }
    let now = driver.now();
    driver.client().leave(now);
    driver
        .run_until(|cl| !cl.requests_in_flight(), STOP_TIMEOUT)
        .await;
    info!(connector = %c.name, lines = written, "sink stopped");
    result
}
