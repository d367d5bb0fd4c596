//! gregor's benchmark: librdkafka (the C client behind kcat and confluent-kafka, through the
//! `rdkafka` crate) drives gregor and, in the same run, librdkafka's in-process mock broker
//! (`test.mock.num.brokers=1`), the reference. Rounds alternate A B A B so drift on the machine
//! hits both alike.
//!
//! For each target it prints: produce throughput (rec/s, MB/s, acks=1, one partition),
//! consume throughput, produce latency percentiles at a fixed rate, and for gregor the broker
//! process's CPU seconds per GB moved (read from /proc). Then gregor's ratio to the mock.
//!
//! ```sh
//! cargo build --release -p gregor-net
//! cd tests/bench && cargo run --release -- --records 200000 --size 1024
//! ```

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "librdkafka against gregor and against librdkafka's mock broker")]
struct Args {
    /// Records per throughput test.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Fixed rate for the latency test, records/s.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seconds of the latency test.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Rounds (each runs every target once, alternating).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// gregor's durability policies to measure (group-commit is the default); a policy
    /// followed by `+metrics` also serves metrics, scraped every second.
    #[arg(long, default_value = "group-commit,none")]
    durability: String,
    /// The gregor binary.
    #[arg(long)]
    gregor: Option<PathBuf>,
}

struct Ctx {
    latencies_us: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        match r {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.latencies_us
                    .lock()
                    .unwrap()
                    .push(sent.elapsed().as_micros() as u64);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Default, Clone, Debug)]
struct Figures {
    produce_rps: f64,
    produce_mbps: f64,
    consume_rps: f64,
    consume_mbps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    cpu_s_per_gb: Option<f64>,
}

fn producer(bootstrap: &str, linger_ms: u32) -> Result<BaseProducer<Ctx>> {
    let ctx = Ctx {
        latencies_us: Mutex::new(Vec::new()),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2000000")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .create_with_context(ctx)?)
}

fn send(p: &BaseProducer<Ctx>, topic: &str, value: &[u8], key: &[u8]) -> Result<()> {
    let mut rec = BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
        .payload(value)
        .key(key)
        .partition(0);
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("produce: {e}"),
        }
    }
}

fn drain(p: &BaseProducer<Ctx>, n: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while p.context().delivered.load(Ordering::Relaxed) + p.context().failed.load(Ordering::Relaxed)
        < n
    {
        p.poll(Duration::from_millis(5));
        if Instant::now() > deadline {
            bail!("deliveries did not complete");
        }
    }
    let failed = p.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} deliveries failed");
    }
    Ok(())
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn measure(args: &Args, bootstrap: &str, topic: &str, broker_pid: Option<u32>) -> Result<Figures> {
    let value = vec![b'x'; args.size];
    let n = args.records;
    let mut fig = Figures::default();
    let cpu0 = broker_pid.and_then(cpu_secs);

    // Produce throughput.
    let p = producer(bootstrap, 5)?;
    // Warm up: metadata, topic creation, connection.
    send(&p, topic, &value, b"warm")?;
    drain(&p, 1)?;
    p.context().delivered.store(0, Ordering::Relaxed);
    let start = Instant::now();
    for i in 0..n {
        send(&p, topic, &value, &i.to_be_bytes())?;
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    drain(&p, n)?;
    let secs = start.elapsed().as_secs_f64();
    fig.produce_rps = n as f64 / secs;
    fig.produce_mbps = n as f64 * args.size as f64 / secs / 1e6;
    drop(p);

    // Consume throughput: read it all back from the start of partition 0.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1000000")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    // librdkafka's mock broker keeps only the newest few MB of a partition, so read whatever
    // the partition holds, from its low to its high watermark, pass after pass until n records
    // have been read (one pass for gregor).
    let (low, high) = c.fetch_watermarks(topic, 0, Duration::from_secs(10))?;
    let mut got = 0u64;
    let mut bytes = 0u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(120);
    while got < n {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(low))?;
        c.assign(&tpl)?;
        loop {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.context("consume")?;
                bytes += m.payload().map_or(0, |p| p.len()) as u64;
                got += 1;
                if m.offset() >= high - 1 {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("consumed only {got} of {n}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    fig.consume_rps = got as f64 / secs;
    fig.consume_mbps = bytes as f64 / secs / 1e6;
    drop(c);
    let cpu1 = broker_pid.and_then(cpu_secs);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let gb = (n as f64 * args.size as f64 + bytes as f64) / 1e9;
        fig.cpu_s_per_gb = Some((b - a) / gb);
    }

    // Latency at a fixed rate (well below saturation): enqueue to delivery report.
    let p = producer(bootstrap, 0)?;
    send(&p, topic, &value, b"warm")?;
    drain(&p, 1)?;
    p.context().delivered.store(0, Ordering::Relaxed);
    p.context().latencies_us.lock().unwrap().clear();
    let total = args.rate * args.latency_secs;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / args.rate as f64);
        while Instant::now() < due {
            p.poll(Duration::ZERO);
            std::hint::spin_loop();
        }
        send(&p, topic, &value, &i.to_be_bytes())?;
    }
    drain(&p, total)?;
    let mut l = std::mem::take(&mut *p.context().latencies_us.lock().unwrap());
    l.sort_unstable();
    fig.p50_ms = percentile(&l, 0.5);
    fig.p99_ms = percentile(&l, 0.99);
    fig.p999_ms = percentile(&l, 0.999);
    fig.max_ms = percentile(&l, 1.0);
    Ok(fig)
}

struct Gregor {
    child: Child,
    addr: String,
    _dir: PathBuf,
    /// With `+metrics`: a thread scraping `/metrics` every second until dropped.
    scraper: Option<(std::sync::Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<u64>)>,
}

impl Drop for Gregor {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.scraper.take() {
            stop.store(true, Ordering::Relaxed);
            let scrapes = thread.join().unwrap_or(0);
            eprintln!("  metrics scraped {scrapes} times");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Start gregor with a durability policy; `POLICY+metrics` also turns on the metrics listener
/// and scrapes it every second (Prometheus' default is every 15 s), to measure what metrics cost.
fn start_gregor(bin: &PathBuf, policy: &str, round: u32) -> Result<Gregor> {
    let (durability, metrics) = match policy.strip_suffix("+metrics") {
        Some(d) => (d, true),
        None => (policy, false),
    };
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let metrics_addr = format!("127.0.0.1:{}", TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
    let dir = std::env::temp_dir().join(format!("gregor-bench-{}-{round}-{policy}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", &addr, "--durability", durability, "--data-dir"])
        .arg(&dir);
    if metrics {
        cmd.args(["--metrics-listen", &metrics_addr]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            bail!("gregor did not start listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let scraper = metrics.then(|| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut scrapes = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(mut c) = TcpStream::connect(&metrics_addr) {
                    let _ = c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
                    let mut body = Vec::new();
                    if c.read_to_end(&mut body).is_ok() && body.get(9..12) == Some(&b"200"[..]) {
                        scrapes += 1;
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        });
        (stop, thread)
    });
    Ok(Gregor {
        child,
        addr,
        _dir: dir,
        scraper,
    })
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn summarize(all: &[Figures]) -> Figures {
    let m = |f: fn(&Figures) -> f64| median(&mut all.iter().map(f).collect::<Vec<_>>());
    let cpu: Vec<f64> = all.iter().filter_map(|f| f.cpu_s_per_gb).collect();
    Figures {
        produce_rps: m(|f| f.produce_rps),
        produce_mbps: m(|f| f.produce_mbps),
        consume_rps: m(|f| f.consume_rps),
        consume_mbps: m(|f| f.consume_mbps),
        p50_ms: m(|f| f.p50_ms),
        p99_ms: m(|f| f.p99_ms),
        p999_ms: m(|f| f.p999_ms),
        max_ms: m(|f| f.max_ms),
        cpu_s_per_gb: if cpu.is_empty() { None } else { Some(median(&mut cpu.clone())) },
    }
}

fn row(name: &str, f: &Figures) {
    println!(
        "{name:<22} {:>10.0} {:>8.1} {:>10.0} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10}",
        f.produce_rps,
        f.produce_mbps,
        f.consume_rps,
        f.consume_mbps,
        f.p50_ms,
        f.p99_ms,
        f.p999_ms,
        f.max_ms,
        f.cpu_s_per_gb.map_or("-".into(), |c| format!("{c:.2}"))
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bin = args.gregor.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/gregor")
    });
    if !bin.exists() {
        bail!("{} not found: run `cargo build --release -p gregor-net` first", bin.display());
    }
    let policies: Vec<String> = args.durability.split(',').map(|s| s.trim().to_string()).collect();
    println!(
        "gregor benchmark: librdkafka {} ; {} records of {} B, acks=1, 1 partition; latency at {} rec/s for {} s; {} rounds (A B A B)",
        rdkafka::util::get_rdkafka_version().1,
        args.records,
        args.size,
        args.rate,
        args.latency_secs,
        args.rounds
    );
    let mut results: Vec<(String, Vec<Figures>)> = policies
        .iter()
        .map(|p| (format!("gregor ({p})"), Vec::new()))
        .collect();
    results.push(("mock broker".into(), Vec::new()));
    for round in 0..args.rounds {
        for (i, policy) in policies.iter().enumerate() {
            let g = start_gregor(&bin, policy, round)?;
            let pid = g.child.id();
            let f = measure(&args, &g.addr, &format!("bench-{round}"), Some(pid))?;
            eprintln!("round {round} gregor ({policy}): {f:?}");
            results[i].1.push(f);
        }
        let mock = MockCluster::new(1)?;
        let topic = format!("bench-{round}");
        mock.create_topic(&topic, 1, 1)?;
        let f = measure(&args, &mock.bootstrap_servers(), &topic, None)?;
        eprintln!("round {round} mock: {f:?}");
        results.last_mut().unwrap().1.push(f);
    }
    println!(
        "\n{:<22} {:>10} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "median of rounds", "prod rec/s", "MB/s", "cons rec/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "CPU s/GB"
    );
    let sums: Vec<(String, Figures)> = results.iter().map(|(n, v)| (n.clone(), summarize(v))).collect();
    for (n, f) in &sums {
        row(n, f);
    }
    let mock = &sums.last().unwrap().1;
    for (n, f) in &sums[..sums.len() - 1] {
        println!(
            "{n} / mock: produce {:.0}%, consume {:.0}%, p99 latency {:.1}x",
            100.0 * f.produce_rps / mock.produce_rps,
            100.0 * f.consume_rps / mock.consume_rps,
            f.p99_ms / mock.p99_ms
        );
    }
    Ok(())
}
