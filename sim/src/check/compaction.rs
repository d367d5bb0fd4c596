//! Log compaction (`cleanup.policy=compact`): what a reader from the start must see.
//!
//! Kafka's guarantee: a consumer that reads a compacted partition from its start sees at least
//! the final state of every key. Checked here over one complete read (offset, key, value or
//! `None` for a tombstone) against the latest acknowledged record of each key:
//! * `compaction-offsets`: offsets only increase (gaps are normal);
//! * `compaction-latest`: for every key, the last record read is its latest acknowledged one,
//!   at the offset it was acknowledged at: a value, or a tombstone, or nothing at all once the
//!   tombstone may have expired (`tombstones_may_expire`);
//! * `compaction-unknown`: no record is read that was never written.
//!
//! The test below drives a broker through a clean on the simulator's disk and takes a process
//! crash and a power loss after every storage operation of it, recovering each time with the
//! real recovery code: the `.cleaned` / `.swap` protocol must leave the old segment or the new
//! one, never a mix, and never lose a key's latest record.

use std::collections::BTreeMap;

/// One record as a reader saw it: (offset, key, value; `None` is a tombstone).
pub type Read = (i64, Vec<u8>, Option<Vec<u8>>);

/// The violations of the compaction guarantee in `read` (everything read from the start),
/// given every acknowledged write as (offset, key, value), in offset order, and whether
/// tombstones may have expired (older than `delete.retention.ms`).
pub fn check_compacted(
    read: &[Read],
    acked: &[Read],
    tombstones_may_expire: bool,
) -> Vec<(&'static str, String)> {
    let mut bad = Vec::new();
    for w in read.windows(2) {
        if w[1].0 <= w[0].0 {
            bad.push((
                "compaction-offsets",
                format!("offset {} read after {}", w[1].0, w[0].0),
            ));
        }
    }
    let written: BTreeMap<i64, &Read> = acked.iter().map(|r| (r.0, r)).collect();
    for r in read {
        if written.get(&r.0).is_some_and(|w| *w != r) {
            bad.push((
                "compaction-unknown",
                format!("offset {} holds a record never written there: {r:?}", r.0),
            ));
        }
    }
    let mut latest: BTreeMap<&[u8], &Read> = BTreeMap::new();
    for r in acked {
        latest.insert(&r.1, r);
    }
    let mut last: BTreeMap<&[u8], &Read> = BTreeMap::new();
    for r in read {
        last.insert(&r.1, r);
    }
    for (key, want) in &latest {
        let got = last.get(key);
        let ok = match got {
            Some(g) => g == want,
            None => want.2.is_none() && tombstones_may_expire,
        };
        if !ok {
            bad.push((
                "compaction-latest",
                format!(
                    "key {:?}: latest acknowledged {want:?}, a reader from the start ends with \
                     {got:?}",
                    String::from_utf8_lossy(key)
                ),
            ));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::SimDisk;
    use bytes::Bytes;
    use gregor_core::io::{StorageFault, StorageReply, StorageRequest};
    use gregor_core::kafka_protocol::messages::*;
    use gregor_core::kafka_protocol::protocol::StrBytes;
    use gregor_core::kafka_protocol::records::{Compression, RecordBatchDecoder};
    use gregor_core::prng::Prng;
    use gregor_core::testkit::{self, Pair, Rec, Storage};
    use gregor_core::Config;

    fn rec(o: i64, k: &str, v: Option<&str>) -> Read {
        (o, k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn a_planted_lost_latest_value_is_caught() {
        let acked = vec![
            rec(0, "a", Some("1")),
            rec(1, "b", Some("1")),
            rec(2, "a", Some("2")),
        ];
        let good = vec![rec(1, "b", Some("1")), rec(2, "a", Some("2"))];
        assert!(check_compacted(&good, &acked, false).is_empty());
        // The cleaner kept a's older value and lost its latest.
        let lost = vec![rec(0, "a", Some("1")), rec(1, "b", Some("1"))];
        let kinds: Vec<_> = check_compacted(&lost, &acked, false)
            .into_iter()
            .map(|b| b.0)
            .collect();
        assert_eq!(kinds, vec!["compaction-latest"]);
        // Offsets out of order, and a record that was never written.
        let bad = vec![rec(2, "a", Some("2")), rec(1, "b", Some("9"))];
        let kinds: Vec<_> = check_compacted(&bad, &acked, false)
            .into_iter()
            .map(|b| b.0)
            .collect();
        assert!(kinds.contains(&"compaction-offsets") && kinds.contains(&"compaction-unknown"));
        // A tombstone may vanish only once it may have expired.
        let acked = vec![rec(0, "a", Some("1")), rec(1, "a", None)];
        assert!(!check_compacted(&[], &acked, false).is_empty());
        assert!(check_compacted(&[], &acked, true).is_empty());
    }

    /// The simulator's disk, remembering a copy of itself after every operation while
    /// `recording`.
    #[derive(Clone, Default)]
    struct Recorder {
        disk: SimDisk,
        recording: bool,
        after: Vec<(String, SimDisk)>,
    }

    impl Storage for Recorder {
        fn exec(
            &mut self,
            request: &StorageRequest,
            prng: &mut Prng,
        ) -> Result<StorageReply, StorageFault> {
            let r = self.disk.exec(request, prng);
            if self.recording {
                let what = format!("{request:?}").chars().take(60).collect();
                self.after.push((what, self.disk.clone()));
            }
            r
        }
    }

    const TOPIC: &str = "compacted";

    fn config() -> Config {
        Config {
            log_cleaner_backoff_ms: 5_000,
            ..Config::default()
        }
    }

    fn create<S: Storage>(p: &mut Pair<S>) {
        let configs = [
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ]
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(k))
                .with_value(Some(StrBytes::from_static_str(v)))
        })
        .collect();
        let t = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs);
        let c = p.send(
            1,
            ApiKey::CreateTopics,
            5,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![t])),
        );
        let Some(ResponseKind::CreateTopics(r)) = p.take(c) else {
            panic!("no CreateTopics answer")
        };
        assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    }

    /// Produce one batch of (key, value) records; returns its base offset.
    fn produce<S: Storage>(p: &mut Pair<S>, recs: &[(String, Option<String>)]) -> i64 {
        let recs: Vec<Rec> = recs
            .iter()
            .map(|(k, v)| Rec {
                key: Some(Bytes::from(k.clone())),
                value: v.clone().map(Bytes::from),
                timestamp_ms: testkit::START_UNIX_MS,
                headers: vec![],
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(testkit::batch(&recs, None, Compression::None))),
                ])]);
        let c = p.send(2, ApiKey::Produce, 9, RequestKind::Produce(req));
        let Some(ResponseKind::Produce(r)) = p.take(c) else {
            panic!("no Produce answer")
        };
        let part = &r.responses[0].partition_responses[0];
        assert_eq!(part.error_code, 0, "{:?}", part.error_message);
        part.base_offset
    }

    /// Every record from the start, through Fetch.
    fn read_all<S: Storage>(p: &mut Pair<S>) -> Vec<Read> {
        let mut out = Vec::new();
        let mut offset = 0;
        for _ in 0..1000 {
            let part = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20);
            let req = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partitions(vec![part])]);
            let c = p.send(3, ApiKey::Fetch, 4, RequestKind::Fetch(req));
            let Some(ResponseKind::Fetch(r)) = p.take(c) else {
                panic!("no Fetch answer")
            };
            let d = &r.responses[0].partitions[0];
            assert_eq!(d.error_code, 0, "fetch at {offset}");
            let mut bytes = d.records.clone().unwrap_or_default();
            if bytes.is_empty() {
                assert_eq!(offset, d.high_watermark, "an empty answer only at the end");
                return out;
            }
            while !bytes.is_empty() {
                let set = RecordBatchDecoder::decode(&mut bytes).expect("batches decode");
                for r in set.records {
                    if r.offset >= offset {
                        out.push((
                            r.offset,
                            r.key.unwrap().to_vec(),
                            r.value.map(|v| v.to_vec()),
                        ));
                    }
                }
            }
            // The next fetch starts past the last batch returned (its last offset may hold no
            // record after a clean): the batches' own ranges tell.
            let mut raw = d.records.clone().unwrap_or_default();
            while raw.len() >= 61 {
                let h = gregor_core::batch::BatchHeader::parse(&raw).unwrap();
                offset = h.next_offset();
                let _ = raw.split_to(h.size);
            }
        }
        panic!("the read did not reach the end");
    }

    /// A clean on the simulator's disk, with a process crash or a power loss after each of its
    /// storage operations: every restart recovers a log whose reader from the start sees the
    /// latest record of every key (the crash-at-every-step proof of the `.cleaned`/`.swap`
    /// protocol), and the clean did remove records.
    #[test]
    fn a_crash_at_any_step_of_a_clean_keeps_every_latest_record() {
        let mut p = Pair::new(
            config(),
            SimDisk::default().recovered(),
            Recorder::default(),
        );
        create(&mut p);
        let mut acked: Vec<Read> = Vec::new();
        for round in 0..6 {
            // Two batches a round over 8 keys; round 4 deletes k1 and k2.
            for half in 0..2 {
                let recs: Vec<(String, Option<String>)> = (half * 4..half * 4 + 4)
                    .map(|k| {
                        let v =
                            (round != 4 || !(1..=2).contains(&k)).then(|| format!("r{round}k{k}"));
                        (format!("k{k}"), v)
                    })
                    .collect();
                let base = produce(&mut p, &recs);
                for (i, (k, v)) in recs.iter().enumerate() {
                    acked.push((
                        base + i as i64,
                        k.as_bytes().to_vec(),
                        v.as_ref().map(|v| v.as_bytes().to_vec()),
                    ));
                }
            }
            p.advance_ms(150); // past segment.ms: the next append rolls
        }
        let before = read_all(&mut p);
        assert_eq!(before, acked, "nothing cleaned yet");
        p.storage.recording = true;
        p.advance_ms(6_000);
        p.storage.recording = false;
        let after = read_all(&mut p);
        assert!(check_compacted(&after, &acked, false).is_empty());
        assert!(
            after.len() < acked.len(),
            "the clean removed records ({} of {})",
            after.len(),
            acked.len()
        );
        let steps = std::mem::take(&mut p.storage.after);
        assert!(
            steps
                .iter()
                .any(|(what, _)| what.starts_with("SwapCleanedSegment")),
            "the clean swapped segments: {:?}",
            steps.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        let has = |d: &SimDisk, suffix: &str| d.files.keys().any(|f| f.ends_with(suffix));
        assert!(
            steps.iter().any(|(_, d)| has(d, ".log.cleaned"))
                && steps.iter().any(|(_, d)| has(d, ".log.swap")),
            "crashes land while a `.cleaned` and while a `.swap` file exists"
        );
        let mut prng = Prng::new(7);
        for (i, (what, disk)) in steps.iter().enumerate() {
            for power_loss in [false, true] {
                let mut d = disk.clone();
                if power_loss {
                    d.power_loss(&mut prng, true, false);
                } else {
                    d.process_crash(&mut prng);
                }
                let rec = Recorder {
                    disk: d.clone(),
                    ..Recorder::default()
                };
                let mut q = Pair::new(config(), d.recovered(), rec);
                let read = read_all(&mut q);
                let bad = check_compacted(&read, &acked, false);
                assert!(
                    bad.is_empty(),
                    "after step {i} ({what}), power loss {power_loss}: {bad:?}"
                );
                // And the restarted broker's own clean gets the log to the same state.
                q.advance_ms(6_000);
                let again = read_all(&mut q);
                assert!(check_compacted(&again, &acked, false).is_empty());
            }
        }
    }
}
