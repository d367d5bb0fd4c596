//! Three `gregor serve` processes form a metadata quorum over TCP (KRaft's RPCs): a leader is
//! elected, `kill -9` of the leader elects another in a higher epoch, and the killed node
//! rejoins with lag 0. The committed high watermark never goes back. Failover times are
//! printed (run with `--nocapture` to see them). Through the controller client (`gregor
//! cluster controller`), a broker registers and heartbeats and topics are created and grown on
//! the active controller, which the client finds again after a `kill -9`.

use crate::harness::{free_port, gregor_bin, run, Broker};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What `gregor cluster status` printed.
#[derive(Debug)]
pub(crate) struct Status {
    pub(crate) leader: i32,
    pub(crate) epoch: i32,
    high_watermark: i64,
    /// (node id, log end offset, lag)
    voters: Vec<(i32, i64, i64)>,
}

fn field(out: &str, name: &str) -> Option<i64> {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// What `gregor cluster status` printed, if it succeeded.
fn status_text(controllers: &str) -> Option<String> {
    let out = run(
        Command::new(gregor_bin())
            .args(["cluster", "status", "--bootstrap-controller"])
            .arg(controllers),
        "gregor",
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

pub(crate) fn status(controllers: &str) -> Option<Status> {
    let text = status_text(controllers)?;
    let voters = text
        .lines()
        .skip_while(|l| !l.starts_with("NodeId"))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((
                cols.first()?.parse().ok()?,
                cols.get(1)?.parse().ok()?,
                cols.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    Some(Status {
        leader: field(&text, "LeaderId:")? as i32,
        epoch: field(&text, "LeaderEpoch:")? as i32,
        high_watermark: field(&text, "HighWatermark:")?,
        voters,
    })
}

/// Poll the status (every 50 ms, at most `limit`) until `ok` holds; the high watermark seen
/// must never go down across polls. Returns the status and when it was seen.
fn wait_for(
    controllers: &str,
    limit: Duration,
    hw_floor: &mut i64,
    what: &str,
    ok: impl Fn(&Status) -> bool,
) -> (Status, Instant) {
    let deadline = Instant::now() + limit;
    for _ in 0..(limit.as_millis() / 50 + 1) {
        if let Some(s) = status(controllers) {
            assert!(
                s.high_watermark >= *hw_floor,
                "the committed high watermark went back from {} to {}: {s:?}",
                hw_floor,
                s.high_watermark
            );
            *hw_floor = s.high_watermark;
            if ok(&s) {
                return (s, Instant::now());
            }
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what}: not within {limit:?}; last status {:?}",
        status(controllers)
    );
}

fn all_caught_up(s: &Status) -> bool {
    s.leader >= 0
        && s.voters.len() == 3
        && s.voters
            .iter()
            .all(|(_, end, lag)| *lag == 0 && *end == s.high_watermark)
}

/// Three voters on free ports: the processes, `controller.quorum.voters`, the controller
/// listeners comma-separated, and the metadata log directories.
pub(crate) struct Quorum {
    pub(crate) nodes: Vec<Broker>,
    voters: String,
    pub(crate) controllers: String,
    meta_dirs: Vec<PathBuf>,
}

impl Quorum {
    /// Start the three voters, each with a snapshot every `snapshot_every` committed entries.
    pub(crate) fn start(snapshot_every: &str) -> Quorum {
        Quorum::start_with(snapshot_every, &|_| Vec::new())
    }

    /// [`Quorum::start`] with `extra(i)` added to node `i`'s (1-based) command line.
    pub(crate) fn start_with(snapshot_every: &str, extra: &dyn Fn(usize) -> Vec<String>) -> Quorum {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = (1..=3)
            .map(|i| format!("{i}@127.0.0.1:{}", ports[i - 1]))
            .collect::<Vec<_>>()
            .join(",");
        let controllers = ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let meta_dirs: Vec<PathBuf> = (1..=3)
            .map(|i| {
                std::env::temp_dir().join(format!(
                    "gregor-it-meta-{}-{}-{i}",
                    std::process::id(),
                    ports[0]
                ))
            })
            .collect();
        let nodes: Vec<Broker> = (1..=3)
            .map(|i| {
                let _ = std::fs::remove_dir_all(&meta_dirs[i - 1]);
                let extra = extra(i);
                let mut args = vec![
                    "--node-id",
                    &i.to_string(),
                    "--controller-listen",
                    &format!("127.0.0.1:{}", ports[i - 1]),
                    "--controller-quorum-voters",
                    &voters,
                    "--metadata-log-dir",
                    meta_dirs[i - 1].to_str().unwrap(),
                    "--metadata-snapshot-interval-entries",
                    snapshot_every,
                ]
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<String>>();
                args.extend(extra);
                Broker::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        Quorum {
            nodes,
            voters,
            controllers,
            meta_dirs,
        }
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        self.nodes.clear();
        for d in &self.meta_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn a_killed_leader_is_replaced_and_rejoins() {
    // A snapshot after every committed entry: a node that comes back behind the leader's
    // snapshot must fetch it (FetchSnapshot) and install it.
    let mut q = Quorum::start("1");
    let controllers = q.controllers.clone();
    let meta_dirs = q.meta_dirs.clone();
    let nodes = &mut q.nodes;

    // A fresh quorum elects a leader, which commits its LeaderChange and the metadata.version
    // record: a high watermark of at least 2, on every voter.
    let mut hw = 0i64;
    let (mut s, _) = wait_for(
        &controllers,
        Duration::from_secs(30),
        &mut hw,
        "first leader",
        |s| all_caught_up(s) && s.high_watermark >= 2,
    );
    let mut failovers = Vec::new();
    for round in 0..3 {
        let old = s.leader;
        let killed = &mut nodes[(old - 1) as usize];
        // Let the followers hear the last high watermark before the leader goes.
        std::thread::sleep(Duration::from_millis(200));
        let committed = s.high_watermark;
        killed.kill9();
        let t0 = Instant::now();
        let (after, t1) = wait_for(
            &controllers,
            Duration::from_secs(30),
            &mut hw,
            "a new leader",
            |n| {
                n.leader >= 0
                    && n.leader != old
                    && n.epoch > s.epoch
                    && n.high_watermark > committed
            },
        );
        let took = t1 - t0;
        println!(
            "round {round}: killed leader {old} (epoch {}); node {} leads epoch {} after {} ms",
            s.epoch,
            after.leader,
            after.epoch,
            took.as_millis()
        );
        failovers.push(took);
        assert!(
            nodes[(after.leader - 1) as usize]
                .log()
                .contains("elected leader of the metadata quorum"),
            "the new leader says so in its log"
        );
        // The killed node comes back, learns the new leader and catches up: lag 0.
        nodes[(old - 1) as usize].restart();
        let (back, _) = wait_for(
            &controllers,
            Duration::from_secs(30),
            &mut hw,
            "rejoin",
            |n| all_caught_up(n) && n.epoch >= after.epoch,
        );
        assert!(back
            .voters
            .iter()
            .any(|(id, _, lag)| *id == old && *lag == 0));
        assert!(
            nodes[(old - 1) as usize]
                .log()
                .contains("installed the leader's metadata snapshot"),
            "node {old} came back behind the leader's snapshot and installed it"
        );
        s = back;
    }
    let ms: Vec<u128> = failovers.iter().map(|d| d.as_millis()).collect();
    println!("failover times (kill -9 of the leader to a new leader committing): {ms:?} ms");
    for d in &failovers {
        // The fetch timeout (2 s) plus a few election rounds (1-2 s each).
        assert!(*d < Duration::from_secs(15), "failover took {d:?}");
    }
    for d in &meta_dirs {
        let dir = d.join("__cluster_metadata-0");
        let checkpoints = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".checkpoint")
            })
            .count();
        assert_eq!(checkpoints, 1, "one snapshot kept in {}", dir.display());
    }
}

/// `gregor cluster controller --controller-quorum-voters VOTERS ARGS...`: the controller
/// client, from a fresh process (so it starts at voter 1 and must find the active controller).
/// Its stdout line, or its error.
fn ctl(voters: &str, args: &[&str]) -> Result<String, String> {
    let out = run(
        Command::new(gregor_bin())
            .args(["cluster", "controller", "--timeout-secs", "30"])
            .args(["--controller-quorum-voters", voters])
            .args(args),
        "gregor",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

fn value(line: &str, key: &str) -> i64 {
    line.strip_prefix(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in {line:?}"))
}

/// What `gregor cluster status` lists after the quorum: brokers (id → endpoint, fenced,
/// epoch) and topics (name → partitions, leaders).
#[allow(clippy::type_complexity)]
fn cluster_listing(
    controllers: &str,
) -> Option<(
    BTreeMap<i32, (String, bool, i64)>,
    BTreeMap<String, (usize, String)>,
)> {
    let text = status_text(controllers)?;
    let section = |header: &str| -> Vec<Vec<String>> {
        text.lines()
            .skip_while(|l| !l.starts_with(header))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    let brokers = section("BrokerId")
        .into_iter()
        .filter_map(|c| {
            Some((
                c.first()?.parse().ok()?,
                (
                    c.get(1)?.clone(),
                    c.get(2)? == "true",
                    c.get(3)?.parse().ok()?,
                ),
            ))
        })
        .collect();
    let topics = section("Topic ")
        .into_iter()
        .filter_map(|c| {
            Some((
                c.first()?.clone(),
                (
                    c.get(1)?.parse().ok()?,
                    c.get(2).cloned().unwrap_or_default(),
                ),
            ))
        })
        .collect();
    Some((brokers, topics))
}

#[test]
fn brokers_register_and_topics_are_created_through_the_active_controller_across_a_failover() {
    let mut q = Quorum::start("10000");
    let (voters, controllers) = (q.voters.clone(), q.controllers.clone());
    let mut hw = 0i64;
    let (s, _) = wait_for(
        &controllers,
        Duration::from_secs(30),
        &mut hw,
        "first leader",
        |s| all_caught_up(s) && s.high_watermark >= 2,
    );

    // A broker registers (fenced until it has caught up to its own registration) and heartbeats.
    // Its id, 7, is not a voter's: each voter's own broker registers under the voter's id.
    let reg = ctl(
        &voters,
        &[
            "register-broker",
            "--node-id",
            "7",
            "--endpoint",
            "127.0.0.1:19092",
        ],
    )
    .unwrap();
    let epoch = value(&reg, "broker_epoch");
    assert!(
        epoch >= 2,
        "the registration's offset, after the first records: {reg}"
    );
    let heartbeat = |offset: i64| {
        ctl(
            &voters,
            &[
                "heartbeat",
                "--node-id",
                "7",
                "--broker-epoch",
                &epoch.to_string(),
                "--metadata-offset",
                &offset.to_string(),
            ],
        )
    };
    assert_eq!(
        heartbeat(epoch - 1).unwrap(),
        "fenced true should_shut_down false",
        "not caught up yet"
    );
    assert_eq!(
        heartbeat(epoch).unwrap(),
        "fenced false should_shut_down false"
    );

    // A topic with a config and 3 partitions; then 5 partitions.
    let created = ctl(
        &voters,
        &[
            "create-topic",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    )
    .unwrap();
    assert!(created.starts_with("topic_id "), "{created}");
    assert_eq!(
        ctl(&voters, &["create-partitions", "orders", "--count", "5"]).unwrap(),
        "ok"
    );
    let bad = ctl(
        &voters,
        &["create-topic", "cfg", "--config", "no.such.config=1"],
    )
    .unwrap_err();
    assert!(bad.contains("error 40"), "INVALID_CONFIG: {bad}");
    let shrink = ctl(&voters, &["create-partitions", "orders", "--count", "2"]).unwrap_err();
    assert!(shrink.contains("error 37"), "INVALID_PARTITIONS: {shrink}");
    let (brokers, topics) = cluster_listing(&controllers).expect("status");
    assert_eq!(
        brokers.get(&7),
        Some(&("127.0.0.1:19092".to_string(), false, epoch)),
        "{brokers:?}"
    );
    assert_eq!(topics["orders"].0, 5, "{topics:?}");
    // Each node is a broker too (combined mode) and registered itself: the partitions are
    // spread over the four brokers.
    assert!(
        topics["orders"]
            .1
            .split(',')
            .all(|p| [":1", ":2", ":3", ":7"].iter().any(|b| p.ends_with(b))),
        "every partition led by a registered broker: {topics:?}"
    );

    // kill -9 the active controller: the client finds the new one.
    let old = s.leader;
    q.nodes[(old - 1) as usize].kill9();
    let t0 = Instant::now();
    // The new controller starts the broker's session afresh; heartbeat it, then create.
    assert_eq!(
        heartbeat(epoch).unwrap(),
        "fenced false should_shut_down false"
    );
    let after = ctl(
        &voters,
        &["create-topic", "after-failover", "--partitions", "2"],
    )
    .unwrap();
    assert!(after.starts_with("topic_id "), "{after}");
    println!(
        "kill -9 of controller {old} to a topic created through the new one: {} ms",
        t0.elapsed().as_millis()
    );

    // The killed controller returns and catches up; every topic is there.
    q.nodes[(old - 1) as usize].restart();
    wait_for(
        &controllers,
        Duration::from_secs(30),
        &mut hw,
        "rejoin",
        all_caught_up,
    );
    let (brokers, topics) = cluster_listing(&controllers).expect("status");
    assert_eq!(
        brokers.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 7],
        "the three nodes' brokers and the one registered by hand: {brokers:?}"
    );
    assert_eq!(topics.get("orders").map(|t| t.0), Some(5), "{topics:?}");
    assert_eq!(
        topics.get("after-failover").map(|t| t.0),
        Some(2),
        "{topics:?}"
    );
    let again = ctl(&voters, &["create-topic", "orders"]).unwrap_err();
    assert!(again.contains("error 36"), "TOPIC_ALREADY_EXISTS: {again}");
}
