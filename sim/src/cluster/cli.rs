//! `gregor-sim --cluster N ...`: the cluster simulator's side of the command line (one seed
//! with its full report, or a range of seeds over threads with each failure's replay command).

use super::world::{run, Options, Report};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Run a seed, turning a panic (a failed assertion in the core, the client or the simulator)
/// into an error.
pub fn run_caught(opts: &Options) -> Result<Report, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| run(opts))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

fn replay(opts: &Options) -> String {
    format!(
        "cargo run --release -p gregor-sim -- --cluster {} --seed {} --safety-ms {} --liveness-ms {}{}{}{}{}",
        opts.nodes,
        opts.seed,
        opts.safety_ms,
        opts.liveness_ms,
        if opts.replication { " --replication" } else { "" },
        match opts.durability {
            Some(gregor_core::Durability::None) => " --durability none",
            Some(_) => "",
            None => " --durability drawn",
        },
        if opts.acls { " --acls" } else { "" },
        if opts.reassign { " --reassign" } else { "" }
    )
}

/// One seed, reported in full. Whether it passed.
pub fn one(opts: &Options, history: bool) -> bool {
    println!(
        "gregor-sim cluster={} seed={} safety={}ms liveness={}ms",
        opts.nodes, opts.seed, opts.safety_ms, opts.liveness_ms
    );
    match run_caught(opts) {
        Ok(r) => {
            if history {
                for e in &r.history.events {
                    println!("history: {e:?}");
                }
            }
            println!("profile:\n  {}", r.profile.replace('\n', "\n  "));
            for s in &r.summary {
                println!("summary: {s}");
            }
            for a in r.anomalies.iter().take(20) {
                println!("  {a}");
            }
            println!(
                "seed={} result={} trace={:016x}",
                r.seed,
                if r.ok() { "ok" } else { "FAIL" },
                r.trace_hash
            );
            r.ok()
        }
        Err(p) => {
            println!(
                "failure: panicked: {p}\nseed={} result=FAIL trace=panic",
                opts.seed
            );
            false
        }
    }
}

/// Many seeds on `threads` threads; prints each failure and a seeds/s line. Whether all passed.
pub fn many(template: &Options, seeds: &[u64], threads: usize) -> bool {
    let next = AtomicU64::new(0);
    let failed = Mutex::new(Vec::new());
    let events = AtomicU64::new(0);
    let start = std::time::Instant::now();
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { break };
                let opts = Options {
                    seed,
                    ..template.clone()
                };
                let why = match run_caught(&opts) {
                    Ok(r) => {
                        events.fetch_add(r.events, Ordering::Relaxed);
                        r.anomalies.first().cloned()
                    }
                    Err(p) => Some(format!("panicked: {p}")),
                };
                if let Some(why) = why {
                    println!("seed={seed} result=FAIL {why}\n  replay: {}", replay(&opts));
                    failed.lock().expect("lock").push(seed);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let failed = failed.into_inner().expect("lock");
    let sim = (template.safety_ms + template.liveness_ms) as f64 / 1000.0 * seeds.len() as f64;
    println!(
        "cluster of {}: {} seeds, {} failed, in {secs:.1}s on {threads} threads: {:.2} seeds/s, {:.0} simulated s per real s, {:.0} events/s",
        template.nodes,
        seeds.len(),
        failed.len(),
        seeds.len() as f64 / secs,
        sim / secs,
        events.load(Ordering::Relaxed) as f64 / secs
    );
    failed.is_empty()
}
