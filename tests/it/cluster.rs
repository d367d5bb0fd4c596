//! Three `gregor serve` processes, each a broker and a voter of the metadata quorum (KRaft's
//! combined mode), started with the README's commands: real clients spread over them, a
//! consumer group whose coordinator is not the broker it bootstraps from, `kill -9` of the
//! active controller, and a restart that rejoins. No acknowledged record is lost.
//!
//! The times it takes (a new active controller, a topic created after the kill, the restarted
//! broker back in the cluster) are printed: run with `--nocapture` to see them.

use crate::harness::{gregor_bin, kcat_read, python, run};
use crate::quorum::{status, Quorum};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// The three nodes: each a broker and a voter (`quorum::Quorum` starts them).
pub(crate) struct Cluster {
    pub(crate) q: Quorum,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(&|_| Vec::new())
    }

    /// [`Cluster::start`] with `extra(i)` added to node `i`'s (1-based) command line.
    pub(crate) fn start_with(extra: &dyn Fn(usize) -> Vec<String>) -> Cluster {
        // Snapshots at the default interval: these tests are about the brokers.
        Cluster {
            q: Quorum::start_with("10000", extra),
        }
    }

    /// Node `id`'s (1-based) broker address.
    pub(crate) fn bs(&self, id: i64) -> String {
        self.q.nodes[(id - 1) as usize].bootstrap()
    }

    /// The brokers Metadata lists, asked of node `via`, as (id, port).
    fn brokers(&self, via: i64) -> BTreeSet<(i64, u16)> {
        python("cluster.py", &["brokers", &self.bs(via)])
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b[0].as_i64().unwrap(), b[2].as_u64().unwrap() as u16))
            .collect()
    }

    /// Poll (every 200 ms, at most `limit`) until node `via` lists exactly `ids` as brokers.
    pub(crate) fn wait_brokers(
        &self,
        via: i64,
        ids: &[i64],
        limit: Duration,
        what: &str,
    ) -> Instant {
        let want: BTreeSet<(i64, u16)> = ids
            .iter()
            .map(|&i| (i, self.q.nodes[(i - 1) as usize].port))
            .collect();
        let deadline = Instant::now() + limit;
        let mut last = BTreeSet::new();
        for _ in 0..(limit.as_millis() / 200 + 1) {
            last = self.brokers(via);
            if last == want {
                return Instant::now();
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{what}: node {via} lists brokers {last:?}, not {want:?}");
    }

    /// The active controller, from `gregor cluster status` (the quorum's leader).
    pub(crate) fn active_controller(&self, limit: Duration) -> i64 {
        let deadline = Instant::now() + limit;
        for _ in 0..(limit.as_millis() / 100 + 1) {
            if let Some(s) = status(&self.q.controllers).filter(|s| s.leader >= 1) {
                return s.leader.into();
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no active controller within {limit:?}");
    }
}

/// Every acknowledged value of `produce`'s answer, by partition.
pub(crate) fn acked(v: &Value) -> BTreeMap<i64, Vec<String>> {
    v["acked"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, vs)| {
            (
                p.parse().unwrap(),
                vs.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Every record `read` returned, by partition, in offset order (offsets checked dense from 0).
pub(crate) fn read_all(
    c: &Cluster,
    via: i64,
    topic: &str,
    partitions: i64,
) -> BTreeMap<i64, Vec<String>> {
    let v = python(
        "cluster.py",
        &["read", &c.bs(via), topic, &partitions.to_string()],
    );
    assert_eq!(
        v["eof"].as_array().unwrap().len() as i64,
        partitions,
        "every partition of {topic} read to its end: {v}"
    );
    let mut by_partition: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in v["records"].as_array().unwrap() {
        let (p, offset, value) = (
            r[0].as_i64().unwrap(),
            r[1].as_i64().unwrap(),
            r[2].as_str(),
        );
        let values = by_partition.entry(p).or_default();
        assert_eq!(
            offset,
            values.len() as i64,
            "{topic}-{p}: offsets dense from 0"
        );
        values.push(value.unwrap().to_string());
    }
    by_partition
}

#[test]
fn three_brokers_share_partitions_and_survive_the_controller() {
    let mut c = Cluster::start();
    // Each node registers with the active controller and is unfenced once it has replayed its
    // own registration: then every broker's Metadata lists all three.
    let t0 = Instant::now();
    for via in 1..=3 {
        c.wait_brokers(via, &[1, 2, 3], Duration::from_secs(40), "cluster formed");
    }
    println!(
        "three brokers registered and unfenced after {} ms",
        t0.elapsed().as_millis()
    );

    // A topic created through broker 1 (forwarded to the active controller) gets its six
    // partitions' leaders spread evenly: two per broker.
    let created = python("cluster.py", &["create", &c.bs(1), "spread", "6"]);
    let leaders: BTreeMap<i64, i64> = created["leaders"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, l)| (p.parse().unwrap(), l.as_i64().unwrap()))
        .collect();
    let mut per_broker: BTreeMap<i64, usize> = BTreeMap::new();
    for l in leaders.values() {
        *per_broker.entry(*l).or_default() += 1;
    }
    assert_eq!(
        per_broker,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders spread evenly: {leaders:?}"
    );

    // confluent-kafka produces through broker 2: every partition's leader takes its share.
    let first = python("cluster.py", &["produce", &c.bs(2), "spread", "600", "a"]);
    assert_eq!(first["failed"], serde_json::json!([]), "no produce failed");
    let first = acked(&first);
    assert_eq!(first.values().map(Vec::len).sum::<usize>(), 600);
    assert_eq!(first.len(), 6, "keys spread over every partition");

    // kcat reads a partition led by broker 3 while bootstrapping from broker 1.
    let (&p3, _) = leaders.iter().find(|(_, l)| **l == 3).unwrap();
    let values = kcat_read(&c.bs(1), "spread", p3 as i32, "%s\\n");
    assert_eq!(
        values, first[&p3],
        "kcat read partition {p3} from its leader"
    );

    // A consumer group whose coordinator is not the broker the consumer bootstraps from.
    let group = "spread-readers";
    let coordinator = python("cluster.py", &["coordinator", &c.bs(1), group])["coordinator"]
        .as_i64()
        .unwrap();
    let via = if coordinator == 1 { 2 } else { 1 };
    let g = python("cluster.py", &["group", &c.bs(via), "spread", group, "600"]);
    assert_eq!(g["coordinator"].as_i64(), Some(coordinator));
    let read: BTreeSet<String> = g["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = first.values().flatten().cloned().collect();
    assert_eq!(
        read, all,
        "the group (coordinator {coordinator}, via {via}) read every record"
    );

    // Kill the active controller. Another voter is elected; once the dead node's broker
    // session lapses it is fenced and leaves Metadata, and topics can be created again.
    let killed = c.active_controller(Duration::from_secs(10));
    c.q.nodes[(killed - 1) as usize].kill9();
    let t_kill = Instant::now();
    let survivor = if killed == 1 { 2 } else { 1 };
    let new_controller = c.active_controller(Duration::from_secs(30));
    let elected = t_kill.elapsed();
    assert_ne!(new_controller, killed, "a new active controller");
    let live: Vec<i64> = (1..=3).filter(|i| *i != killed).collect();
    c.wait_brokers(
        survivor,
        &live,
        Duration::from_secs(30),
        "dead broker fenced",
    );
    let fenced = t_kill.elapsed();
    let after = python("cluster.py", &["create", &c.bs(survivor), "after", "4"]);
    let created_after = t_kill.elapsed();
    for l in after["leaders"].as_object().unwrap().values() {
        assert_ne!(
            l.as_i64(),
            Some(killed),
            "no partition placed on the dead broker"
        );
    }
    println!(
        "killed controller {killed}: node {new_controller} active after {} ms, broker {killed} \
         fenced after {} ms, topic created after {} ms (errors on the way: {})",
        elected.as_millis(),
        fenced.as_millis(),
        created_after.as_millis(),
        after["errors"]
    );
    let second = python(
        "cluster.py",
        &["produce", &c.bs(survivor), "after", "100", "b"],
    );
    assert_eq!(second["failed"], serde_json::json!([]));
    // CreatePartitions through a broker is forwarded to the active controller too: the topic
    // grows to five partitions, the new one placed on a live broker.
    let grown = run(
        Command::new(gregor_bin())
            .args([
                "topics",
                "alter",
                "after",
                "--partitions",
                "5",
                "--bootstrap",
            ])
            .arg(c.bs(survivor)),
        "gregor",
    );
    assert!(
        grown.status.success(),
        "topics alter: {}",
        String::from_utf8_lossy(&grown.stderr)
    );

    // The killed node restarts, registers again and rejoins; every acknowledged record of both
    // topics is there, each partition's offsets dense.
    c.q.nodes[(killed - 1) as usize].restart();
    let t_restart = Instant::now();
    c.wait_brokers(survivor, &[1, 2, 3], Duration::from_secs(40), "rejoined");
    println!(
        "broker {killed} back in Metadata {} ms after its restart",
        t_restart.elapsed().as_millis()
    );
    assert_eq!(
        read_all(&c, killed, "spread", 6),
        first,
        "spread: every acked record, in order"
    );
    let second = acked(&second);
    let got = read_all(&c, killed, "after", 5);
    assert_eq!(got.get(&4), None, "the added partition is empty");
    for (p, values) in &second {
        assert_eq!(got.get(p), Some(values), "after-{p}: every acked record");
    }
}
