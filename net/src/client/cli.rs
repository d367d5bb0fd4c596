//! `gregor produce` and `gregor consume`: Kafka's console producer and consumer on
//! `gregor-client`. They speak plain Kafka, so they work against any Kafka broker.

use super::Driver;
use bytes::Bytes;
use gregor_client::config::{parse_compression, parse_host_port};
use gregor_client::{Acks, Config, GroupConfig, OffsetReset, Output, ProducerRecord, SeekTo};
use std::io::{BufRead, Write};

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to (created on first use if the broker auto-creates topics).
    #[command(flatten)]
    topic: TopicArg,
    /// Split each line at the first SEP into key and value (`key:value` with `:`); a line
    /// without SEP fails. Without it, lines are values with no key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// 0, 1, all, or a replica count N from 2 (gregor's acks=N: the leader and N−1 followers):
    /// how many replicas must have a record before it counts as delivered.
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Send every record to this partition instead of choosing by key.
    #[arg(long)]
    partition: Option<i32>,
    /// A header for every record, key=value (repeatable).
    #[arg(long = "header", value_name = "K=V")]
    headers: Vec<String>,
    /// How long a batch waits for more records, in ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// The broker(s) to start from, host:port[,host:port...].
    #[arg(long, default_value = "127.0.0.1:9092", env = "GREGOR_BOOTSTRAP")]
    bootstrap: String,
}

#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read (every partition, unless --partition).
    #[command(flatten)]
    topic: TopicArg,
    /// Start at the earliest record instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Start at this offset (with --partition).
    #[arg(long, requires = "partition")]
    offset: Option<i64>,
    /// Start at the first record at or after this time, Unix ms.
    #[arg(long, conflicts_with = "offset")]
    from_time: Option<i64>,
    /// Join this consumer group: share the partitions with its other members, start from its
    /// committed offsets, and commit as records are printed.
    #[arg(long, conflicts_with_all = ["partition", "offset", "from_time"])]
    group: Option<String>,
    /// The group's assignor: range or cooperative-sticky.
    #[arg(long, default_value = "range", requires = "group")]
    assignor: String,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this long, in ms.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print each record with this format: %k key, %v value, %p partition, %o offset,
    /// %t timestamp, %h headers, \t and \n. [default: "%v\n"]
    #[arg(long)]
    format: Option<String>,
    /// The broker(s) to start from, host:port[,host:port...].
    #[arg(long, default_value = "127.0.0.1:9092", env = "GREGOR_BOOTSTRAP")]
    bootstrap: String,
}

/// The topic, positional as Kafka's tools spell it (`gregor produce TOPIC`) or as `--topic`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct TopicArg {
    /// The topic.
    #[arg(value_name = "TOPIC")]
    positional: Option<String>,
    /// The topic (the same as the positional TOPIC).
    #[arg(long = "topic", short = 't', value_name = "TOPIC")]
    flag: Option<String>,
}

impl TopicArg {
    fn name(&self) -> String {
        let t = self.positional.as_ref().or(self.flag.as_ref());
        t.expect("clap requires one of them").clone()
    }
}

/// Split `host:port[,host:port...]` into the client's bootstrap list.
pub(crate) fn bootstrap(s: &str) -> anyhow::Result<Vec<(String, u16)>> {
    s.split(',')
        .map(|hp| parse_host_port(hp.trim()).map_err(|e| anyhow::anyhow!(e)))
        .collect()
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Records read from stdin before the producer applies backpressure.
const UNREPORTED_RECORDS_MAX: usize = 100_000;

pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let topic = args.topic.name();
    let config = Config {
        bootstrap: bootstrap(&args.bootstrap)?,
        client_id: "gregor-produce".into(),
        acks: Acks::parse(&args.acks).map_err(|e| anyhow::anyhow!(e))?,
        compression: parse_compression(&args.compression).map_err(|e| anyhow::anyhow!(e))?,
        linger_ms: args.linger_ms,
        ..Config::default()
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--header wants key=value, not {h:?}"))?;
        headers.push((k.to_string(), Some(Bytes::from(v.to_string()))));
    }
    runtime()?.block_on(async move {
        let mut driver = Driver::new(config)?;
        // stdin is read on its own thread; lines come over a bounded channel.
        let (tx, mut lines) = tokio::sync::mpsc::channel::<std::io::Result<String>>(1024);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
        let (mut eof, mut delivered, mut failed, mut line_no) = (false, 0u64, 0u64, 0u64);
        loop {
            if eof && driver.client().unreported() == 0 {
                break;
            }
            let room = driver.client().unreported() < UNREPORTED_RECORDS_MAX;
            tokio::select! {
                line = lines.recv(), if !eof && room => match line {
                    Some(line) => {
                        line_no += 1;
                        let line = line?;
                        let (key, value) = match &args.key_separator {
                            None => (None, line),
                            Some(sep) => match line.split_once(sep.as_str()) {
                                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                                None => {
                                    eprintln!("error: line {line_no}: no key separator {sep:?}");
                                    failed += 1;
                                    continue;
                                }
                            },
                        };
                        let now = driver.now();
                        driver.client().send(now, ProducerRecord {
                            topic: topic.clone(),
                            partition: args.partition,
                            key,
                            value: Some(Bytes::from(value)),
                            headers: headers.clone(),
                            timestamp_ms: None,
                        });
                    }
                    None => {
                        eof = true;
                        let now = driver.now();
                        driver.client().flush(now);
                    }
                },
                outs = driver.next() => {
                    for o in outs {
                        if let Output::Delivered(d) = o {
                            match d.result {
                                Ok(_) => delivered += 1,
                                Err(e) => {
                                    failed += 1;
                                    eprintln!("error: record {} to {}: {e}", d.id.0 + 1, d.topic);
                                }
                            }
                        }
                    }
                }
            }
        }
        eprintln!("{delivered} record(s) delivered to {topic}, {failed} failed",);
        anyhow::ensure!(failed == 0, "{failed} record(s) not delivered");
        Ok(())
    })
}

fn escape_format(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn show(b: &Option<Bytes>) -> String {
    b.as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

pub fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let topic = args.topic.name();
    let config = Config {
        bootstrap: bootstrap(&args.bootstrap)?,
        client_id: "gregor-consume".into(),
        auto_offset_reset: if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        ..Config::default()
    };
    let format = escape_format(args.format.as_deref().unwrap_or("%v\n"));
    runtime()?.block_on(async move {
        let mut driver = Driver::new(config)?;
        let now = driver.now();
        if let Some(group) = &args.group {
            let mut cfg = GroupConfig::new(group);
            cfg.strategy = match args.assignor.as_str() {
                "range" => gregor_core::assignor::Strategy::Range,
                "cooperative-sticky" => gregor_core::assignor::Strategy::Sticky,
                other => anyhow::bail!("--assignor is range or cooperative-sticky, not {other:?}"),
            };
            driver
                .client()
                .subscribe(now, cfg, std::slice::from_ref(&topic));
        } else {
            match (args.partition, args.offset, args.from_time) {
                (Some(p), Some(o), _) => driver.client().seek(now, (topic.clone(), p), o),
                (Some(p), None, Some(t)) => {
                    driver
                        .client()
                        .seek_to(now, (topic.clone(), p), SeekTo::Time(t))
                }
                (Some(p), None, None) => driver.client().assign(now, &[(topic.clone(), p)]),
                (None, _, time) => {
                    driver
                        .client()
                        .assign_topic(now, &topic, time.map(SeekTo::Time))
                }
            }
        }
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut count = 0u64;
        let limit = args.max_messages.unwrap_or(u64::MAX);
        let idle = args.timeout_ms.map(std::time::Duration::from_millis);
        while count < limit {
            let next = driver.next();
            let outs = match idle {
                Some(d) => match tokio::time::timeout(d, next).await {
                    Ok(o) => o,
                    Err(_) => break,
                },
                None => next.await,
            };
            for o in outs {
                match o {
                    Output::Records(f) => {
                        for r in f.records {
                            if count >= limit {
                                if args.group.is_some() {
                                    // Commit only what was printed: the rest is read next time.
                                    let now = driver.now();
                                    driver.client().seek(
                                        now,
                                        (f.topic.clone(), f.partition),
                                        r.offset,
                                    );
                                }
                                break;
                            }
                            count += 1;
                            write_record(&mut out, &format, f.partition, &r)?;
                        }
                    }
                    o => {
                        if let Some(e) = super::consumer_failure(&o) {
                            out.flush()?;
                            return Err(e);
                        }
                    }
                }
            }
            out.flush()?;
        }
        if args.group.is_some() {
            // Commit what was printed, then leave so the others take the partitions at once.
            let now = driver.now();
            driver.client().commit(now);
            let limit = std::time::Duration::from_secs(10);
            driver
                .run_until(|c| c.commits_in_flight() == 0, limit)
                .await;
            let now = driver.now();
            driver.client().leave(now);
            driver.run_until(|c| !c.requests_in_flight(), limit).await;
        }
        eprintln!("processed a total of {count} messages");
        Ok(())
    })
}

fn write_record(
    out: &mut impl Write,
    format: &str,
    partition: i32,
    r: &gregor_client::ConsumerRecord,
) -> std::io::Result<()> {
    let mut chars = format.chars();
    let mut s = String::new();
    while let Some(c) = chars.next() {
        if c != '%' {
            s.push(c);
            continue;
        }
        match chars.next() {
            Some('k') => s.push_str(&show(&r.key)),
            Some('v') => s.push_str(&show(&r.value)),
            Some('p') => s.push_str(&partition.to_string()),
            Some('o') => s.push_str(&r.offset.to_string()),
            Some('t') => s.push_str(&r.timestamp_ms.to_string()),
            Some('h') => {
                let hs: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={}", show(v)))
                    .collect();
                s.push_str(&hs.join(","));
            }
            Some('%') => s.push('%'),
            Some(other) => {
                s.push('%');
                s.push(other);
            }
            None => s.push('%'),
        }
    }
    out.write_all(s.as_bytes())
}
