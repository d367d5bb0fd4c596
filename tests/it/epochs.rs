//! Leader epochs with real clients (KIP-320): consumers resume from committed offsets that
//! carry a leader epoch, validating them with OffsetForLeaderEpoch, and the broker answers
//! OffsetForLeaderEpoch and ListOffsets as Kafka does (tests/clients/epochs.py).

use crate::harness::{python, Broker};
use serde_json::json;

#[test]
fn consumers_resume_from_committed_epochs_and_offset_for_leader_epoch_answers_as_kafka() {
    let mut b = Broker::start(&[]);
    let r = python("epochs.py", &[&b.bootstrap(), "epochs"]);
    // kafka-python: the commit carries epoch 0 (the standalone broker's), and a new member of
    // the group resumes exactly where the first stopped.
    assert_eq!(r["kp_first"], true, "{r}");
    assert_eq!(r["kp_committed"], json!([60, 0]), "{r}");
    assert_eq!(r["kp_resumed"], true, "{r}");
    // librdkafka: every record says epoch 0, the commit too, and the resume validates.
    assert_eq!(r["ck_first"], true, "{r}");
    assert_eq!(r["ck_record_epochs"], json!([0]), "{r}");
    assert_eq!(r["ck_committed"], json!([60, 0]), "{r}");
    assert_eq!(r["ck_resumed"], true, "{r}");
    // OffsetForLeaderEpoch: epoch 0 is the latest, so it ends at the log end (100).
    assert_eq!(r["ofle_epoch0"], json!([0, 0, 100]), "{r}");
    assert_eq!(r["ofle_no_current"], json!([0, 0, 100]), "{r}");
    assert_eq!(
        r["ofle_unknown_epoch"],
        json!([0, -1, -1]),
        "an epoch above every one here: Kafka's (-1, -1) without an error"
    );
    assert_eq!(
        r["ofle_newer_current"],
        json!([76, -1, -1]),
        "UNKNOWN_LEADER_EPOCH"
    );
    assert_eq!(r["ofle_unknown_topic"], json!([3, -1, -1]), "{r}");
    // ListOffsets v4+: the offset's leader epoch, and the same fencing.
    assert_eq!(r["list_latest"], json!([0, 100, 0]), "{r}");
    assert_eq!(r["list_earliest"], json!([0, 0, 0]), "{r}");
    assert_eq!(r["list_newer_current"][0], 76, "{r}");
    // After a kill -9 the cache comes back from the newest producer snapshot plus the batches
    // recovery replays after it, and the answers are the same.
    b.restart();
    let r = python("epochs.py", &[&b.bootstrap(), "epochs", "probe-only"]);
    assert_eq!(r["ofle_epoch0"], json!([0, 0, 100]), "{r}");
    assert_eq!(r["ofle_unknown_epoch"], json!([0, -1, -1]), "{r}");
    // Latest names the cache's newest epoch (Kafka's `latestEpoch`): the restart fenced the
    // broker and elected it again, so the partition is in a newer epoch with no record yet.
    assert_eq!(r["list_latest"][0], 0, "{r}");
    assert_eq!(r["list_latest"][1], 100, "{r}");
    assert!(r["list_latest"][2].as_i64() > Some(0), "{r}");
}
