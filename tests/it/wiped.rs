//! A data directory deleted while the metadata log beside it is kept (a lost disk, or an
//! operator's `rm -rf`): the node's partitions whose only in-sync replica it was come back
//! *offline*, not empty and serving, since serving an empty log would lose every record
//! silently (KIP-966's lost ISR; docs/ops.md, "What happens when you delete the data
//! directory"). The broker says so in a WARN naming the partition and the way out, the admin
//! tools show the partition offline, and `unclean.leader.election.enable=true` on the topic
//! brings it back, empty, with the election logged as unclean.

use crate::harness::{cli, create_topic, kcat_read, run, Broker};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Produce `value` to `topic` with kcat, waiting at most `timeout_ms` for delivery; whether it
/// was delivered.
fn kcat_produce(b: &Broker, topic: &str, value: &str, timeout_ms: u32) -> bool {
    let mut p = Command::new("kcat")
        .args(["-P", "-b", &b.bootstrap(), "-t", topic, "-p", "0"])
        .args(["-X", &format!("message.timeout.ms={timeout_ms}")])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (bash tests/run.sh)");
    writeln!(p.stdin.take().unwrap(), "{value}").unwrap();
    let out = p.wait_with_output().unwrap();
    out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("Delivery failed")
}

/// Wait (every 100 ms, at most `limit`) until `ok` holds; panic naming `what` otherwise.
fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn a_wiped_data_directory_leaves_its_partitions_offline_said_why_until_unclean_is_allowed() {
    let mut b = Broker::start(&[]);
    create_topic(&b, "t1", 1);
    assert!(
        kcat_produce(&b, "t1", "a", 10_000),
        "produced before the wipe"
    );
    assert!(b.terminate(), "a controlled shutdown");
    std::fs::remove_dir_all(&b.data_dir).unwrap();
    b.restart();
    let warning = "partition t1-0 (replicas [0]) has no leader: its only in-sync replica, \
                   broker 0, returned with an empty log";
    wait_for(Duration::from_secs(10), "the lost partition's WARN", || {
        b.log().contains(warning)
    });
    // `gregor cluster status` reads Metadata only; `gregor topics describe` asks leaders for
    // offsets, and asks none of a partition that has no leader (it once waited for one for the
    // admin client's 60 s default.api.timeout.ms).
    let described = stdout(cli(&b, &["topics", "describe", "t1"]));
    assert!(
        described.contains("Leader: none") && described.contains("HighWatermark: -1"),
        "{described}"
    );
    let status = stdout(run(
        Command::new(crate::harness::gregor_bin()).args([
            "cluster",
            "status",
            "--bootstrap",
            &b.bootstrap(),
        ]),
        "gregor",
    ));
    assert!(
        status.contains("OfflinePartitions: 1\n  t1-0 (replicas [0])"),
        "{status}"
    );
    assert!(
        !kcat_produce(&b, "t1", "lost?", 1_500),
        "no leader: nothing is taken"
    );
    // Said once, not per request.
    assert_eq!(b.log().matches(warning).count(), 1, "{}", b.log());

    // The way out: the operator accepts the loss for this topic.
    stdout(cli(
        &b,
        &[
            "configs",
            "alter",
            "--topic",
            "t1",
            "--set",
            "unclean.leader.election.enable=true",
        ],
    ));
    wait_for(Duration::from_secs(5), "t1-0 led again", || {
        stdout(cli(&b, &["topics", "describe", "t1"])).contains("Leader: 0")
    });
    assert!(
        b.log()
            .contains("partition t1-0 (replicas [0]): unclean leader election: broker 0 leads"),
        "{}",
        b.log()
    );
    assert!(kcat_produce(&b, "t1", "b", 10_000), "serving again");
    assert_eq!(
        kcat_read(&b.bootstrap(), "t1", 0, "%o:%s\n"),
        vec!["0:b".to_string()],
        "empty before b: the record the wipe took is gone, as the operator chose"
    );
}
