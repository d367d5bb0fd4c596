//! The quorum simulator's CI seed range: 3- and 5-controller clusters (combined nodes) with three
//! broker-only nodes, 70 simulated seconds each (45 with faults, 25 healed), every checker
//! passing. The longer range is documented in
//! docs/simulation.md.

use gregor_sim::quorum::cli::run_caught;
use gregor_sim::quorum::{run, Options};

fn range(nodes: usize, seeds: std::ops::Range<u64>) {
    let mut failed = Vec::new();
    for seed in seeds {
        match run_caught(&Options::new(seed, nodes)) {
            Ok(r) if r.ok() => {}
            Ok(r) => failed.push(format!("seed {seed}: {}", r.anomalies[0])),
            Err(p) => failed.push(format!("seed {seed}: panicked: {p}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} failing seeds (replay: gregor-sim --quorum {nodes} --seed N --safety-ms 45000 --liveness-ms 25000):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn three_controllers_ci_range() {
    range(3, 0..200);
}

#[test]
fn five_controllers_ci_range() {
    range(5, 0..120);
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    for nodes in [3, 5] {
        let a = run(&Options::new(42, nodes));
        let b = run(&Options::new(42, nodes));
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.events, b.events);
        assert_eq!(a.summary, b.summary);
        assert_ne!(a.trace_hash, run(&Options::new(43, nodes)).trace_hash);
    }
}

#[test]
fn a_run_elects_commits_snapshots_and_acknowledges_topics() {
    // Not a checker: a guard that the workload and the faults do something, so a passing range
    // means something. Across a few seeds, leaders change, snapshots are installed, topics and
    // brokers come and go.
    let reports: Vec<_> = (0..8).map(|s| run(&Options::new(s, 3))).collect();
    let text: Vec<String> = reports.iter().flat_map(|r| r.summary.clone()).collect();
    let number_before = |word: &str| -> u64 {
        text.iter()
            .flat_map(|l| {
                let words: Vec<&str> = l.split([' ', ';', ',']).filter(|w| !w.is_empty()).collect();
                (1..words.len())
                    .filter(|i| words[*i] == word)
                    .filter_map(|i| words[i - 1].parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    assert!(number_before("epochs") > 16, "{text:#?}");
    assert!(number_before("installed") > 0, "{text:#?}");
    assert!(number_before("creates") > 40, "{text:#?}");
    assert!(number_before("unfencings") > 8, "{text:#?}");
    // The replication workload: leaders' AlterPartitions accepted, ISRs and leaders changing.
    assert!(number_before("alters-accepted") > 20, "{text:#?}");
    assert!(number_before("isr-changes") > 20, "{text:#?}");
    assert!(number_before("elections") > 8, "{text:#?}");
    assert!(number_before("isr-checks") > 100, "{text:#?}");
}
