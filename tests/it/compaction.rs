//! Log compaction with real clients: a topic created with `cleanup.policy=compact` by
//! confluent-kafka's AdminClient, keyed values and tombstones produced over several segments,
//! the cleaner left to run, then the topic read from the start by confluent-kafka and kcat:
//! the latest value of every key (a deleted key's tombstone), offsets increasing with gaps;
//! the same after a `kill -9` restart, and after a `kill -9` while the cleaner works.

use crate::harness::{python, run, Broker};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const TOPIC: &str = "compacted";
const KEYS: usize = 40;

/// A broker whose cleaner looks for work every 200 ms (Kafka's `log.cleaner.backoff.ms`).
fn start() -> Broker {
    let cfg = std::env::temp_dir().join(format!("gregor-compact-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[broker]\nlog_cleaner_backoff_ms = 200\n").unwrap();
    Broker::start(&["--config", cfg.to_str().unwrap()])
}

/// The records a consumer reads from the start: (offset, key, value or None for a tombstone).
fn read_all(b: &Broker) -> Vec<(i64, String, Option<String>)> {
    let got = python("compaction.py", &[&b.bootstrap(), "consume", TOPIC]);
    serde_json::from_value(got["records"].clone()).unwrap()
}

/// Produce round `round`: a value for keys `first..KEYS`, tombstones for `tombstones`; each
/// acknowledged record goes into `latest` (the latest record of each key). Returns how many,
/// and the first offset.
fn produce(
    b: &Broker,
    round: usize,
    first: usize,
    tombstones: &str,
    latest: &mut BTreeMap<String, (i64, Option<String>)>,
) -> (usize, i64) {
    let (r, f, n) = (
        round.to_string(),
        first.to_string(),
        (KEYS - first).to_string(),
    );
    let got = python(
        "compaction.py",
        &[&b.bootstrap(), "produce", TOPIC, &r, &f, &n, tombstones],
    );
    let acked: Vec<(i64, String, Option<String>)> =
        serde_json::from_value(got["acked"].clone()).unwrap();
    assert_eq!(acked.len(), KEYS - first, "every record acknowledged");
    for (o, k, v) in &acked {
        latest.insert(k.clone(), (*o, v.clone()));
    }
    (acked.len(), acked[0].0)
}

/// What a reader from the start must see: offsets only increase, and for every key the last
/// record read is the latest acknowledged one (value or tombstone).
fn check(read: &[(i64, String, Option<String>)], latest: &BTreeMap<String, (i64, Option<String>)>) {
    for w in read.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "offsets increase: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let mut last: BTreeMap<&str, (i64, &Option<String>)> = BTreeMap::new();
    for (o, k, v) in read {
        last.insert(k, (*o, v));
    }
    for (k, (o, v)) in latest {
        assert_eq!(
            last.get(k.as_str()).map(|(o, v)| (*o, (*v).clone())),
            Some((*o, v.clone())),
            "key {k}: a reader from the start sees its latest record"
        );
    }
}

/// Wait until the broker logged a finished clean up to `offset` at least.
fn wait_for_clean(b: &Broker, offset: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let reached = |log: &str| {
        log.lines().any(|l| {
            l.split(&format!("cleaned {TOPIC}-0 below offset "))
                .nth(1)
                .and_then(|r| r.split(' ').next()?.parse::<i64>().ok())
                .is_some_and(|end| end >= offset)
        })
    };
    while !reached(&b.log()) {
        assert!(
            Instant::now() < deadline,
            "the cleaner did not run:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_every_key_through_restarts() {
    let mut b = start();
    let created = python("compaction.py", &[&b.bootstrap(), "create", TOPIC]);
    assert_eq!(created["bad_policy"][0], "INVALID_CONFIG", "{created}");
    assert!(
        created["bad_policy"][1]
            .as_str()
            .unwrap()
            .contains("compact,shred"),
        "the error names the value: {created}"
    );
    assert_eq!(created["configs"]["cleanup.policy"], "compact");
    assert_eq!(created["configs"]["min.cleanable.dirty.ratio"], "0.01");
    assert_eq!(created["keyless"][0], "INVALID_RECORD", "{created}");

    // Five rounds over the same keys, each in its own segment (segment.ms is 300 ms); keys
    // k0..k4 are deleted in the last. Then more records, not touching the deleted keys, so
    // round 4's segment closes: the active segment is never cleaned.
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    let mut produced = 0;
    for round in 0..5 {
        let tomb = if round == 4 { "0,1,2,3,4" } else { "" };
        produced += produce(&b, round, 0, tomb, &mut latest).0;
        std::thread::sleep(Duration::from_millis(400));
    }
    let (n, round_9) = produce(&b, 9, 5, "", &mut latest);
    produced += n;
    wait_for_clean(&b, round_9);
    let read = read_all(&b);
    check(&read, &latest);
    assert!(
        read.len() < produced,
        "cleaning removed superseded records ({} of {produced} left)",
        read.len()
    );
    assert!(
        read.windows(2).any(|w| w[1].0 > w[0].0 + 1),
        "offsets have gaps after cleaning"
    );

    // kcat (librdkafka's own consumer) reads the same records.
    let out = run(
        Command::new("kcat").args([
            "-C",
            "-b",
            &b.bootstrap(),
            "-t",
            TOPIC,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-Z",
            "-f",
            "%o %k %s\n",
        ]),
        "kcat",
    );
    let kcat: Vec<i64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let ours: Vec<i64> = read.iter().map(|r| r.0).collect();
    assert_eq!(kcat, ours, "kcat reads the same offsets");

    // A restart (kill -9) keeps the cleaned log as it was.
    b.restart();
    let after = read_all(&b);
    assert_eq!(after, read, "the cleaned log survives a kill -9");

    // More rounds, and a kill -9 while the cleaner works on them; whatever the moment, the
    // log recovers whole and a reader still sees every key's latest record.
    let began = b.log().matches("log cleaner: cleaning").count();
    for round in 10..16 {
        let tomb = if round == 12 { "5,6" } else { "" };
        produce(&b, round, 0, tomb, &mut latest);
        std::thread::sleep(Duration::from_millis(350));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.log().matches("log cleaner: cleaning").count() <= began {
        assert!(Instant::now() < deadline, "no clean began:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    b.kill9();
    b.restart();
    let read = read_all(&b);
    check(&read, &latest);
    // And the cleaner goes on after the restart.
    produce(&b, 20, 0, "", &mut latest);
    std::thread::sleep(Duration::from_millis(400));
    let (_, round_21) = produce(&b, 21, 0, "", &mut latest);
    wait_for_clean(&b, round_21);
    let read = read_all(&b);
    check(&read, &latest);
    assert!(!b.log().contains("panicked"), "{}", b.log());
}
