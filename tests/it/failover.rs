//! Failover times with real processes (issue 10's note): a measurement, not a test of a bound,
//! so it is `#[ignore]`d and run by hand, on a quiet machine:
//!
//! ```sh
//! cargo build --release -p gregor-net
//! GREGOR_FAILOVER_ROUNDS=5 cargo test --release -p gregor-tests --test it \
//!     failover::failover_times -- --ignored --nocapture
//! ```
//!
//! Each round starts three fresh `gregor serve` nodes (combined broker and voter, the README's
//! cluster, every setting at its default) and measures:
//! 1. **A partition leader's `kill -9`** (a broker that is not the active controller): from the
//!    kill to the first record acknowledged by the new leader, for confluent-kafka producing a
//!    record every 10 ms with acks=all to a topic of replication factor 3 and
//!    `min.insync.replicas=2` (no retries: a record the new leader acknowledges was sent to it
//!    after the client learned where it is). The wall-clock time of the acknowledgement, taken
//!    in the client's delivery callback, minus the kill's.
//! 2. **The active controller's `kill -9`**: from the kill to `gregor cluster status` naming a
//!    new quorum leader, and to a CreateTopics (confluent-kafka's AdminClient through a
//!    survivor, retried while refused) answered OK. The second includes starting a Python
//!    process (about 0.3 s here).
//! 3. **The active controller's SIGTERM**: the same two times from the signal; the stopping node
//!    first hands its partition leaderships over (controlled shutdown, KIP-631), then resigns
//!    the quorum's leadership (EndQuorumEpoch, KIP-595).
//!
//! The killed node is restarted and rejoins between steps. Each round prints its times and the
//! last line the median and range of each over the rounds.

use crate::cluster::Cluster;
use crate::harness::{python, python_spawn, python_wait};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Partition → (leader, ISR size) of `topic`, from broker `via`'s Metadata.
fn partitions(c: &Cluster, via: i64, topic: &str) -> Vec<(i64, i64, usize)> {
    let v = python("replication.py", &["describe", &c.bs(via), topic]);
    let Some(parts) = v["partitions"].as_object() else {
        return Vec::new();
    };
    parts
        .iter()
        .map(|(p, d)| {
            (
                p.parse().unwrap(),
                d["leader"].as_i64().unwrap_or(-1),
                d["isr"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

/// Poll (every 250 ms, at most 60 s) until every partition of `topic` has three in sync.
fn wait_in_sync(c: &Cluster, via: i64, topic: &str, count: usize) -> Vec<(i64, i64, usize)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..240 {
        let p = partitions(c, via, topic);
        if p.len() == count && p.iter().all(|(_, l, isr)| *l >= 1 && *isr == 3) {
            return p;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{topic}: not every partition in sync within 60 s");
}

/// From `t` (a stopped active controller `old`) to a new one in `gregor cluster status`, and
/// to a topic created through `via`: both in ms.
fn new_controller(c: &Cluster, old: i64, via: i64, topic: &str, t: Instant) -> (u128, u128) {
    let deadline = t + Duration::from_secs(30);
    let elected = loop {
        let s = crate::quorum::status(&c.q.controllers);
        if s.is_some_and(|s| s.leader >= 1 && i64::from(s.leader) != old) {
            break t.elapsed().as_millis();
        }
        assert!(Instant::now() < deadline, "no new controller within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    python("cluster.py", &["create", &c.bs(via), topic, "1"]);
    (elected, t.elapsed().as_millis())
}

/// One round: [leader kill → first ack, controller kill → elected, → created,
/// controller SIGTERM → elected, → created], in ms.
fn round(k: usize) -> [u128; 5] {
    let mut c = Cluster::start_with(&|_| Vec::new());
    for via in 1..=3 {
        c.wait_brokers(via, &[1, 2, 3], Duration::from_secs(40), "cluster formed");
    }
    python("cluster.py", &["create", &c.bs(1), "timed", "3", "3", "2"]);
    let parts = wait_in_sync(&c, 1, "timed", 3);
    let controller = c.active_controller(Duration::from_secs(10));
    let &(partition, leader, _) = parts
        .iter()
        .find(|(_, l, _)| *l != controller)
        .expect("leaders are spread over the three brokers");
    let all = (1..=3).map(|i| c.bs(i)).collect::<Vec<_>>().join(",");
    let producer = python_spawn(
        "replication.py",
        &[
            "produce-stream",
            &all,
            "timed",
            "all",
            "t",
            "1500",
            "10",
            &partition.to_string(),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = unix_ms();
    c.q.nodes[(leader - 1) as usize].kill9();
    let v = python_wait(producer, "replication.py");
    let first_ack = v["acked"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a[2].as_i64())
        .filter(|t| *t > killed_at)
        .min()
        .unwrap_or_else(|| panic!("no record acknowledged after the kill: {v}"));
    let leader_ms = (first_ack - killed_at) as u128;
    c.q.nodes[(leader - 1) as usize].restart();
    let survivor = if leader == 1 { 2 } else { 1 };
    c.wait_brokers(survivor, &[1, 2, 3], Duration::from_secs(60), "rejoined");

    let controller = c.active_controller(Duration::from_secs(10));
    let survivor = if controller == 1 { 2 } else { 1 };
    c.q.nodes[(controller - 1) as usize].kill9();
    let (kill_elected, kill_created) =
        new_controller(&c, controller, survivor, "after-kill", Instant::now());
    c.q.nodes[(controller - 1) as usize].restart();
    c.wait_brokers(survivor, &[1, 2, 3], Duration::from_secs(60), "rejoined");

    let controller = c.active_controller(Duration::from_secs(10));
    let survivor = if controller == 1 { 2 } else { 1 };
    let t = Instant::now();
    assert!(c.q.nodes[(controller - 1) as usize].terminate());
    let (term_elected, term_created) = new_controller(&c, controller, survivor, "after-term", t);
    println!(
        "round {k}: partition leader {leader} killed -> first acks=all ack after {leader_ms} ms; \
         controller kill -9 -> new controller {kill_elected} ms, topic created {kill_created} \
         ms; controller SIGTERM -> new controller {term_elected} ms, topic created \
         {term_created} ms"
    );
    [
        leader_ms,
        kill_elected,
        kill_created,
        term_elected,
        term_created,
    ]
}

#[test]
#[ignore = "a measurement for docs/benchmarks.md; run by hand (see the module docs)"]
fn failover_times() {
    let rounds: usize = std::env::var("GREGOR_FAILOVER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let results: Vec<[u128; 5]> = (1..=rounds).map(round).collect();
    let names = [
        "leader kill -9 -> first ack",
        "controller kill -9 -> elected",
        "controller kill -9 -> topic created",
        "controller SIGTERM -> elected",
        "controller SIGTERM -> topic created",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut v: Vec<u128> = results.iter().map(|r| r[i]).collect();
        v.sort();
        println!(
            "{name}: median {} ms, range {}-{} ms over {rounds} rounds",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
}
