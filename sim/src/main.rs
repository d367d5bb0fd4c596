//! `gregor-sim`: run seeds of the deterministic simulator.
//!
//! ```text
//! gregor-sim --seed 42            # one seed: profile, summary, checkers, last line with trace hash
//! gregor-sim --seed 42 --trace    # ... and every event as it happens
//! gregor-sim --seeds 0..2000      # a range, on all cores; prints each failing seed's replay command
//! gregor-sim --random 200         # 200 fresh random seeds (printed, so a failure can be replayed)
//! gregor-sim --bench 200          # seeds/s and simulated seconds per real second
//! gregor-sim --quorum 3 --seeds 0..100   # the KRaft quorum simulator (3 or 5 controllers)
//! gregor-sim --cluster 3 --seeds 0..20   # a KRaft cluster of real brokers, gregor-client workload
//! ```

use clap::Parser;
use gregor_sim::world::{run, Options, Report};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "gregor-sim",
    about = "gregor's deterministic simulator",
    version
)]
struct Cli {
    /// Run one seed and print its full report.
    #[arg(long)]
    seed: Option<u64>,
    /// Run a range of seeds, A..B (B excluded), on all cores.
    #[arg(long, value_name = "A..B")]
    seeds: Option<String>,
    /// Run this many fresh random seeds.
    #[arg(long, value_name = "N")]
    random: Option<u64>,
    /// Print every event of the one seed.
    #[arg(long)]
    trace: bool,
    /// Print the recorded history of the one seed (every invoke and outcome).
    #[arg(long)]
    history: bool,
    /// Measure: run N seeds one after another and print seeds/s.
    #[arg(long, value_name = "N")]
    bench: Option<u64>,
    /// Length of the safety phase (faults on), simulated ms.
    #[arg(long, default_value_t = 60_000)]
    safety_ms: u64,
    /// Length of the liveness phase (faults healed), simulated ms.
    #[arg(long, default_value_t = 40_000)]
    liveness_ms: u64,
    /// Worker threads for ranges (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Run the metadata-quorum simulator with this many controllers instead of the broker
    /// world (same --seed/--seeds/--random/--bench/--trace and phase lengths).
    #[arg(long, value_name = "N")]
    quorum: Option<usize>,
    /// Run the cluster simulator with this many combined nodes (1, 3 or 5), each a quorum
    /// member and a real broker in KRaft mode, with gregor-client as the workload (same
    /// --seed/--seeds/--random/--bench/--trace/--history; phases default to 35 s + 25 s).
    #[arg(long, value_name = "N")]
    cluster: Option<usize>,
    /// With --cluster: replicated topics (replication factor 1..=min(N, 5), min.insync.replicas
    /// up to it, producers with acks 0, 1, N and all) and the replication checkers.
    #[arg(long)]
    replication: bool,
    /// With --cluster: the brokers' durability policy, `group-commit` (the default), `none`, or
    /// `drawn` per seed (with --replication, `none` in about one seed of three).
    #[arg(long, value_name = "POLICY", value_parser = ["group-commit", "none", "drawn"])]
    durability: Option<String>,
    /// With --cluster: the ACL workload (brokers with the StandardAuthorizer, SASL logins,
    /// ACLs created and deleted during the run) and the acl-* checkers.
    #[arg(long)]
    acls: bool,
    /// With --cluster --replication: an operator moves partitions (KIP-455) while faults are
    /// active, and the reassign-* checkers judge it.
    #[arg(long)]
    reassign: bool,
}

/// Run a seed, turning a panic inside the core (a failed assertion) into a failed report.
fn run_caught(opts: &Options) -> Result<Report, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| run(opts))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

fn options(cli: &Cli, seed: u64) -> Options {
    Options {
        seed,
        safety_ms: cli.safety_ms,
        liveness_ms: cli.liveness_ms,
        trace: cli.trace,
        plant: None,
    }
}

fn replay(cli: &Cli, seed: u64) -> String {
    let mut cmd = format!("cargo run --release -p gregor-sim -- --seed {seed}");
    if cli.safety_ms != 60_000 {
        cmd += &format!(" --safety-ms {}", cli.safety_ms);
    }
    if cli.liveness_ms != 40_000 {
        cmd += &format!(" --liveness-ms {}", cli.liveness_ms);
    }
    cmd
}

fn one(cli: &Cli, seed: u64) -> bool {
    let opts = options(cli, seed);
    println!(
        "gregor-sim seed={seed} safety={}ms liveness={}ms",
        opts.safety_ms, opts.liveness_ms
    );
    match run_caught(&opts) {
        Ok(r) => {
            if cli.history {
                for e in &r.history.events {
                    println!("history: {e:?}");
                }
            }
            println!("profile:\n  {}", r.profile.replace('\n', "\n  "));
            for s in &r.summary {
                println!("summary: {s}");
            }
            for k in gregor_sim::check::Kind::ALL {
                let n = r.anomalies.iter().filter(|a| a.kind == k).count();
                println!(
                    "check {:<22} {}",
                    k.name(),
                    if n == 0 {
                        "ok".into()
                    } else {
                        format!("FAIL ({n})")
                    }
                );
            }
            for a in r.anomalies.iter().take(20) {
                println!("  {}: {}", a.kind.name(), a.detail);
            }
            for f in &r.failures {
                println!("failure: {f}");
            }
            println!(
                "seed={seed} result={} trace={:016x}",
                if r.ok() { "ok" } else { "FAIL" },
                r.trace_hash
            );
            r.ok()
        }
        Err(panic) => {
            println!("failure: the core panicked: {panic}");
            println!("seed={seed} result=FAIL trace=panic");
            false
        }
    }
}

fn many(cli: &Cli, seeds: Vec<u64>, threads: usize) -> bool {
    let next = AtomicU64::new(0);
    let failed = Mutex::new(Vec::new());
    let total_events = AtomicU64::new(0);
    // Seeds with a compacted topic; of those judged strictly, how many saw the cleaner remove
    // records, and how many records in all (the compaction checker proves little otherwise).
    let compacted = [(); 4].map(|_| AtomicU64::new(0));
    let start = Instant::now();
    // Quiet the default panic printer: failures are reported per seed below.
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { break };
                let verdict = match run_caught(&options(cli, seed)) {
                    Ok(r) => {
                        total_events.fetch_add(r.events, Ordering::Relaxed);
                        if r.history.compacted.is_some() {
                            compacted[0].fetch_add(1, Ordering::Relaxed);
                            let removed = gregor_sim::check::compaction::removed(&r.history);
                            if let Some(n) = removed {
                                compacted[1].fetch_add(1, Ordering::Relaxed);
                                compacted[2].fetch_add((n > 0) as u64, Ordering::Relaxed);
                                compacted[3].fetch_add(n, Ordering::Relaxed);
                            }
                        }
                        if r.ok() {
                            None
                        } else {
                            let first = r
                                .anomalies
                                .first()
                                .map(|a| format!("{}: {}", a.kind.name(), a.detail))
                                .or_else(|| r.failures.first().cloned())
                                .unwrap_or_default();
                            Some(first)
                        }
                    }
                    Err(p) => Some(format!("core panicked: {p}")),
                };
                if let Some(why) = verdict {
                    println!(
                        "seed={seed} result=FAIL {why}\n  replay: {}",
                        replay(cli, seed)
                    );
                    failed.lock().expect("lock").push(seed);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let failed = failed.into_inner().expect("lock");
    let sim_secs = (cli.safety_ms + cli.liveness_ms) as f64 / 1000.0 * seeds.len() as f64;
    println!(
        "{} seeds, {} failed, in {:.1}s on {threads} threads: {:.1} seeds/s, {:.0} simulated s per real s, {:.0} events/s",
        seeds.len(),
        failed.len(),
        secs,
        seeds.len() as f64 / secs,
        sim_secs / secs,
        total_events.load(Ordering::Relaxed) as f64 / secs
    );
    let [with, counted, cleaned, removed] = compacted.map(|n| n.into_inner());
    if with > 0 {
        println!(
            "compacted topic in {with} seeds; of the {counted} counted (no permitted power loss), \
             the cleaner removed acknowledged records in {cleaned} ({removed} records in all)"
        );
    }
    failed.is_empty()
}

/// Which seeds to run, as the command line chose them: the same choice for every world.
enum Selection {
    /// `--seed N`: one seed, its full report.
    One(u64),
    /// `--seeds A..B`, `--random N` or `--bench N`: the seeds, and how many threads run them
    /// (one for `--bench`, so its seeds/s is one core's).
    Many(Vec<u64>, usize),
}

/// The seeds `cli` asks for; exits with status 2 and a message naming what was wrong if none.
fn select(cli: &Cli) -> Selection {
    if let Some(seed) = cli.seed {
        return Selection::One(seed);
    }
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(range) = &cli.seeds {
        let parsed = range
            .split_once("..")
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        let Some((a, b)) = parsed else {
            eprintln!("--seeds wants two numbers A..B, got {range:?}");
            std::process::exit(2);
        };
        Selection::Many((a..b).collect(), threads)
    } else if let Some(n) = cli.random {
        let seeds: Vec<u64> = (0..n).map(|_| rand::random::<u64>() >> 1).collect();
        println!("random seeds: {seeds:?}");
        Selection::Many(seeds, threads)
    } else if let Some(n) = cli.bench {
        println!("bench: {n} seeds on one thread");
        Selection::Many((0..n).collect(), 1)
    } else {
        eprintln!(
            "nothing to do: pass --seed N, --seeds A..B, --random N or --bench N (see --help)"
        );
        std::process::exit(2);
    }
}

/// `--quorum N`: the same seed selection, run through [`gregor_sim::quorum`].
fn quorum(cli: &Cli, nodes: usize) -> bool {
    use gregor_sim::quorum::{cli as q, Options as QOptions};
    let template = QOptions {
        seed: 0,
        nodes,
        safety_ms: cli.safety_ms,
        liveness_ms: cli.liveness_ms,
        trace: cli.trace,
    };
    match select(cli) {
        Selection::One(seed) => q::one(&QOptions { seed, ..template }),
        Selection::Many(seeds, threads) => q::many(&template, &seeds, threads),
    }
}

/// `--cluster N`: the same seed selection, run through [`gregor_sim::cluster`]. Its phases
/// default to its own lengths (35 s + 25 s) unless given.
fn cluster(cli: &Cli, nodes: usize) -> bool {
    use gregor_sim::cluster::{cli as c, Options as COptions};
    let mut template = COptions::new(0, nodes);
    template.trace = cli.trace;
    template.replication = cli.replication;
    template.durability = match cli.durability.as_deref() {
        Some("drawn") => None,
        Some("none") => Some(gregor_core::Durability::None),
        _ => Some(gregor_core::Durability::GroupCommit),
    };
    template.acls = cli.acls;
    template.reassign = cli.reassign;
    if cli.safety_ms != 60_000 {
        template.safety_ms = cli.safety_ms;
    }
    if cli.liveness_ms != 40_000 {
        template.liveness_ms = cli.liveness_ms;
    }
    match select(cli) {
        Selection::One(seed) => c::one(&COptions { seed, ..template }, cli.history),
        Selection::Many(seeds, threads) => c::many(&template, &seeds, threads),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Some(nodes) = cli.cluster {
        std::process::exit(if cluster(&cli, nodes) { 0 } else { 1 });
    }
    if let Some(nodes) = cli.quorum {
        std::process::exit(if quorum(&cli, nodes) { 0 } else { 1 });
    }
    let ok = match select(&cli) {
        Selection::One(seed) => one(&cli, seed),
        Selection::Many(seeds, threads) => many(&cli, seeds, threads),
    };
    std::process::exit(if ok { 0 } else { 1 });
}
