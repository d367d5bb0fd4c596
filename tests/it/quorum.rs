//! Three `gregor serve` processes form a metadata quorum over TCP (KRaft's RPCs): a leader is
//! elected, `kill -9` of the leader elects another in a higher epoch, and the killed node
//! rejoins with lag 0. The committed high watermark never goes back. Failover times are
//! printed (run with `--nocapture` to see them).

use crate::harness::{free_port, gregor_bin, run, Broker};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What `gregor cluster status` printed.
#[derive(Debug)]
struct Status {
    leader: i32,
    epoch: i32,
    high_watermark: i64,
    /// (node id, log end offset, lag)
    voters: Vec<(i32, i64, i64)>,
}

fn field(out: &str, name: &str) -> Option<i64> {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

fn status(controllers: &str) -> Option<Status> {
    let out = run(
        Command::new(gregor_bin())
            .args(["cluster", "status", "--bootstrap-controller"])
            .arg(controllers),
        "gregor",
    );
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
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

#[test]
fn a_killed_leader_is_replaced_and_rejoins() {
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
    let mut nodes: Vec<Broker> = (1..=3)
        .map(|i| {
            let _ = std::fs::remove_dir_all(&meta_dirs[i - 1]);
            Broker::start(&[
                "--node-id",
                &i.to_string(),
                "--controller-listen",
                &format!("127.0.0.1:{}", ports[i - 1]),
                "--controller-quorum-voters",
                &voters,
                "--metadata-log-dir",
                meta_dirs[i - 1].to_str().unwrap(),
                // A snapshot after every committed entry: a node that comes back behind the
                // leader's snapshot must fetch it (FetchSnapshot) and install it.
                "--metadata-snapshot-interval-entries",
                "1",
            ])
        })
        .collect();

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
    drop(nodes);
    for d in &meta_dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
