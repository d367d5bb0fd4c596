//! Operating a three-node cluster through any broker, as an operator with only a broker's
//! address would: `gregor cluster status --bootstrap HOST:PORT` shows the quorum (the broker
//! forwards DescribeQuorum to the active controller), the active controller, every broker with
//! the partitions it leads, the topics and the offline partitions, as a table and as JSON; a
//! broker killed with `kill -9` shows as fenced and its partitions as offline. Each node's
//! `/metrics` carries the cluster's figures (issue 13): one active controller, the metadata
//! log's progress per replica, registered and fenced brokers, offline partitions.

use crate::harness::{create_topic, free_port, gregor_bin, run};
use crate::quorum::{status, Quorum};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// `gregor cluster status --bootstrap ADDR [--output json]`: stdout, if it succeeded.
fn cluster_status(addr: &str, json: bool) -> Option<String> {
    let mut cmd = Command::new(gregor_bin());
    cmd.args(["cluster", "status", "--bootstrap", addr]);
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = run(&mut cmd, "gregor");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Poll the JSON status through `addr` (every 200 ms, at most `limit`) until `ok` holds.
fn wait_json(addr: &str, limit: Duration, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(text) = cluster_status(addr, true) {
            last = serde_json::from_str(&text).expect("--output json prints JSON");
            if ok(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: the status through {addr} never got there; last:\n{last:#}");
}

/// The samples of a Prometheus text exposition at `http://addr/metrics` whose name starts
/// with `prefix`: "name{labels}" to value.
fn scrape(addr: &str, prefix: &str) -> BTreeMap<String, f64> {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn broker(s: &Value, id: i64) -> &Value {
    s["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("broker {id} in {s:#}"))
}

#[test]
fn cluster_status_through_any_broker_shows_the_quorum_brokers_and_offline_partitions() {
    let metrics: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut q = Quorum::start_with("10000", &|i| {
        vec!["--metrics-listen".into(), metrics[i - 1].clone()]
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(s) = status(&q.controllers).filter(|s| s.leader >= 1) {
            break s.leader as i64;
        }
        assert!(Instant::now() < deadline, "no quorum leader");
        std::thread::sleep(Duration::from_millis(100));
    };
    let others: Vec<i64> = (1..=3).filter(|i| *i != leader).collect();
    let addrs: Vec<String> = q.nodes.iter().map(|n| n.bootstrap()).collect();
    let addr = |id: i64| addrs[(id - 1) as usize].clone();
    // Through a broker that is not the active controller: DescribeQuorum is forwarded.
    let via = addr(others[0]);
    wait_json(&via, Duration::from_secs(30), "all registered", |s| {
        s["brokers"]
            .as_array()
            .is_some_and(|b| b.len() == 3 && b.iter().all(|b| b["fenced"] == false))
    });
    create_topic(&q.nodes[0], "ops", 6);
    let s = wait_json(&via, Duration::from_secs(30), "the topic seen", |s| {
        s["topics"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "ops"))
            && s["quorum"]["voters"]
                .as_array()
                .is_some_and(|v| v.iter().all(|v| v["lag"] == 0))
    });
    assert_eq!(s["active_controller"], leader, "{s:#}");
    assert_eq!(s["quorum"]["leader_id"], leader);
    assert!(s["quorum"]["leader_epoch"].as_i64().unwrap() >= 1);
    let hw = s["quorum"]["high_watermark"].as_i64().unwrap();
    assert!(hw > 0, "{s:#}");
    let voters: Vec<i64> = s["quorum"]["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(voters, vec![1, 2, 3]);
    for v in s["quorum"]["voters"].as_array().unwrap() {
        assert!(v["log_end_offset"].as_i64().unwrap() >= hw, "{v}");
        assert!(
            v["last_fetch_timestamp"].as_i64().unwrap() > 0,
            "v1+ fetch times: {v}"
        );
    }
    // Six partitions over three brokers: two leaders each, every broker unfenced.
    for id in 1..=3 {
        let b = broker(&s, id);
        assert_eq!(b["fenced"], false, "{b}");
        assert_eq!(b["port"], q.nodes[(id - 1) as usize].port, "{b}");
        assert_eq!(b["leaders"], 2, "{s:#}");
    }
    let ops = s["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ops")
        .unwrap();
    for p in ops["partitions"].as_array().unwrap() {
        assert!(p["leader"].as_i64().unwrap() >= 1, "{p}");
        assert_eq!(p["replicas"], Value::from(vec![p["leader"].clone()]), "{p}");
        assert_eq!(p["isr"], p["replicas"], "{p}");
    }
    assert_eq!(s["offline_partitions"], Value::Array(vec![]));

    // The table says the same.
    let text = cluster_status(&via, false).expect("table");
    assert!(
        text.contains(&format!("LeaderId:          {leader}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("ActiveController:  {leader}")),
        "{text}"
    );
    assert!(text.contains("OfflinePartitions: 0"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("ops ") && l.split_whitespace().nth(1) == Some("6")),
        "{text}"
    );

    // The metrics say the same: one active controller, its view of each replica's progress,
    // three brokers registered, none fenced, nothing offline.
    let m = |id: i64| scrape(&metrics[(id - 1) as usize], "gregor_");
    let at_leader = m(leader);
    assert_eq!(at_leader["gregor_controller_active"], 1.0, "{at_leader:?}");
    for id in &others {
        assert_eq!(m(*id)["gregor_controller_active"], 0.0);
    }
    for node in 1..=3 {
        let lag = at_leader[&format!("gregor_metadata_replica_lag{{node=\"{node}\"}}")];
        assert!(lag >= 0.0, "{at_leader:?}");
    }
    assert!(at_leader["gregor_metadata_high_watermark"] >= hw as f64);
    assert_eq!(at_leader["gregor_cluster_brokers_registered"], 3.0);
    assert_eq!(at_leader["gregor_cluster_brokers_fenced"], 0.0);
    assert_eq!(at_leader["gregor_cluster_offline_partitions"], 0.0);

    // A broker dies: through the others it shows fenced once its session lapses, and the
    // partitions it alone held are offline.
    let dead = others[1];
    q.nodes[(dead - 1) as usize].kill9();
    let s = wait_json(&addr(leader), Duration::from_secs(30), "fenced", |s| {
        s["brokers"]
            .as_array()
            .is_some_and(|bs| bs.iter().any(|b| b["id"] == dead && b["fenced"] == true))
    });
    assert_eq!(broker(&s, dead)["leaders"], 0, "{s:#}");
    let offline = s["offline_partitions"].as_array().unwrap();
    assert_eq!(offline.len(), 2, "{s:#}");
    assert!(offline
        .iter()
        .all(|o| o["topic"] == "ops" && o["replicas"] == Value::from(vec![dead])));
    let text = cluster_status(&addr(others[0]), false).expect("table");
    assert!(text.contains("OfflinePartitions: 2"), "{text}");
    // That broker's image may be a NoOp behind the leader's: give it a moment.
    let mut after = m(others[0]);
    for _ in 0..25 {
        if after.get("gregor_cluster_brokers_fenced") == Some(&1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        after = m(others[0]);
    }
    assert_eq!(after["gregor_cluster_brokers_fenced"], 1.0, "{after:?}");
    assert_eq!(after["gregor_cluster_offline_partitions"], 2.0, "{after:?}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{dead} ")) && l.contains(':'))
        .unwrap_or_else(|| panic!("broker {dead} row in {text}"));
    assert_eq!(row.split_whitespace().nth(2), Some("true"), "fenced: {row}");
}
