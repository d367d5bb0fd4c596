//! Log compaction (`cleanup.policy=compact`): what a reader from the start must see.
//!
//! Kafka's guarantee: a consumer that reads a compacted partition from its start sees at least
//! the final state of every key. Checked here over one complete read (offset, key, value or
//! `None` for a tombstone) against the writes: those acknowledged, each at its offset, and those
//! whose outcome is unknown (a timeout, a lost connection), which may be anywhere in the log or
//! nowhere:
//! * `compaction-offsets`: offsets only increase (gaps are normal);
//! * `compaction-latest`: for every key, the last record read is its latest acknowledged one,
//!   at the offset it was acknowledged at, or a write of unknown outcome at a later offset (it
//!   may have landed after the acknowledged one, and then it is the latest); nothing at all is
//!   read of the key only if its latest record may be a tombstone that expired
//!   (`tombstones_may_expire`: older than `delete.retention.ms`), or it never had an
//!   acknowledged write;
//! * `compaction-unknown`: every record read was written: at an acknowledged offset, exactly
//!   the record acknowledged there; anywhere else, one of the writes of unknown outcome.
//!
//! Under a durability policy that lets a power loss take acknowledged records (`none`,
//! `interval`), once one did the acknowledged offsets name nothing for sure (a cut offset is
//! written again by a later record): [`check`] then takes every write as of unknown outcome,
//! and only `compaction-offsets` and `compaction-unknown` keep their teeth.
//!
//! The world's compacted topic (`clients::keyed`) is judged by [`check`]. The test below drives
//! a broker through a clean on the simulator's disk and takes a process crash and a power loss
//! after every storage operation of it, recovering each time with the real recovery code: the
//! `.cleaned` / `.swap` protocol must leave the old segment or the new one, never a mix, and
//! never lose a key's latest record.

use super::{Anomaly, Cuts, Kind};
use crate::history::{History, KeyedRecord, KeyedWrite};
use std::collections::{BTreeMap, BTreeSet};

/// One record as a reader saw it: (offset, key, value; `None` is a tombstone).
pub type Read = KeyedRecord;

/// A write of unknown outcome: (key, value; `None` is a tombstone).
pub type Unknown = KeyedWrite;

/// The compacted topic's final read, judged against its writes (see the module doc).
pub(super) fn check(h: &History, cuts: &Cuts, bad: &mut dyn FnMut(Kind, String)) {
    let Some(c) = &h.compacted else { return };
    let Some(read) = &c.read else { return };
    let found = if cuts.any() {
        // A permitted power loss may have cut acknowledged records: none is known for sure.
        let unknown: Vec<Unknown> = c
            .acked
            .iter()
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .chain(c.unknown.iter().cloned())
            .collect();
        check_compacted(read, &[], &unknown, c.tombstones_may_expire)
    } else {
        check_compacted(read, &c.acked, &c.unknown, c.tombstones_may_expire)
    };
    for a in found {
        bad(a.kind, a.detail);
    }
}

/// How many acknowledged records of the compacted topic the final read did not see: the
/// cleaner removed them (older values of their keys, and expired tombstones). `None` without a
/// compacted topic or its final read, or once a permitted power loss may have taken some.
pub fn removed(h: &History) -> Option<u64> {
    let c = h.compacted.as_ref()?;
    let read = c.read.as_ref()?;
    if Cuts::new(h).any() {
        return None;
    }
    let offsets: BTreeSet<i64> = read.iter().map(|r| r.0).collect();
    Some(c.acked.iter().filter(|r| !offsets.contains(&r.0)).count() as u64)
}

/// The run's summary line about its compacted topic, if it has one.
pub fn summary(h: &History) -> Option<String> {
    let c = h.compacted.as_ref()?;
    let removed = match removed(h) {
        Some(n) => format!("the cleaner removed {n} acknowledged records"),
        None => "not counted what the cleaner removed (no final read, or a power loss may have cut acknowledged records)".to_string(),
    };
    Some(format!(
        "compacted topic: {} records acknowledged, {} of unknown outcome; the final read saw {}; {removed}",
        c.acked.len(),
        c.unknown.len(),
        c.read.as_ref().map_or("nothing".to_string(), |r| format!("{} records", r.len())),
    ))
}

/// The violations of the compaction guarantee in `read` (everything read from the start),
/// given every acknowledged write as (offset, key, value), in offset order, every write of
/// unknown outcome, and whether tombstones may have expired (older than
/// `delete.retention.ms`).
pub fn check_compacted(
    read: &[Read],
    acked: &[Read],
    unknown: &[Unknown],
    tombstones_may_expire: bool,
) -> Vec<Anomaly> {
    let mut bad = Vec::new();
    let mut push = |kind, detail| bad.push(Anomaly { kind, detail });
    for w in read.windows(2) {
        if w[1].0 <= w[0].0 {
            push(
                Kind::CompactionOffsets,
                format!("offset {} read after {}", w[1].0, w[0].0),
            );
        }
    }
    let maybe: BTreeSet<(&[u8], Option<&[u8]>)> = unknown
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_deref()))
        .collect();
    let may_be_there = |r: &Read| maybe.contains(&(r.1.as_slice(), r.2.as_deref()));
    let written: BTreeMap<i64, &Read> = acked.iter().map(|r| (r.0, r)).collect();
    for r in read {
        let ok = match written.get(&r.0) {
            Some(w) => *w == r,
            None => may_be_there(r),
        };
        if !ok {
            push(
                Kind::CompactionUnknown,
                format!("offset {} holds a record never written there: {r:?}", r.0),
            );
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
    let keys: BTreeSet<&[u8]> = latest.keys().chain(last.keys()).copied().collect();
    for key in keys {
        let (want, got) = (latest.get(key), last.get(key));
        let ok = match (want, got) {
            (Some(w), Some(g)) => w == g || (g.0 > w.0 && may_be_there(g)),
            // Only writes of unknown outcome: whatever is read of them was judged above.
            (None, _) => true,
            (Some(w), None) => {
                let tombstone = w.2.is_none() || maybe.contains(&(key, None));
                tombstone && tombstones_may_expire
            }
        };
        if !ok {
            push(
                Kind::CompactionLatest,
                format!(
                    "key {:?}: latest acknowledged {want:?}, a reader from the start ends with \
                     {got:?}",
                    String::from_utf8_lossy(key)
                ),
            );
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::keyed::decode_keyed;
    use crate::disk::SimDisk;
    use bytes::Bytes;
    use gregor_core::io::{StorageFault, StorageReply, StorageRequest};
    use gregor_core::kafka_protocol::messages::*;
    use gregor_core::kafka_protocol::protocol::StrBytes;
    use gregor_core::kafka_protocol::records::Compression;
    use gregor_core::prng::Prng;
    use gregor_core::testkit::{self, Pair, Rec, Storage};
    use gregor_core::Config;

    fn rec(o: i64, k: &str, v: Option<&str>) -> Read {
        (o, k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    fn kinds(read: &[Read], acked: &[Read], unknown: &[Unknown], expire: bool) -> Vec<Kind> {
        check_compacted(read, acked, unknown, expire)
            .into_iter()
            .map(|a| a.kind)
            .collect()
    }

    fn unknown(k: &str, v: Option<&str>) -> Unknown {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn a_planted_lost_latest_value_is_caught() {
        let acked = vec![
            rec(0, "a", Some("1")),
            rec(1, "b", Some("1")),
            rec(2, "a", Some("2")),
        ];
        let good = vec![rec(1, "b", Some("1")), rec(2, "a", Some("2"))];
        assert_eq!(kinds(&good, &acked, &[], false), vec![]);
        // The cleaner kept a's older value and lost its latest.
        let lost = vec![rec(0, "a", Some("1")), rec(1, "b", Some("1"))];
        assert_eq!(
            kinds(&lost, &acked, &[], false),
            vec![Kind::CompactionLatest]
        );
        // Offsets out of order, and a record that was never written.
        let bad = vec![rec(2, "a", Some("2")), rec(1, "b", Some("9"))];
        let found = kinds(&bad, &acked, &[], false);
        assert!(found.contains(&Kind::CompactionOffsets));
        assert!(found.contains(&Kind::CompactionUnknown));
        // A tombstone may vanish only once it may have expired.
        let acked = vec![rec(0, "a", Some("1")), rec(1, "a", None)];
        assert_eq!(kinds(&[], &acked, &[], false), vec![Kind::CompactionLatest]);
        assert_eq!(kinds(&[], &acked, &[], true), vec![]);
    }

    /// Writes of unknown outcome excuse exactly what they could explain: a later record of
    /// theirs, or their tombstone's absence; nothing else.
    #[test]
    fn writes_of_unknown_outcome_excuse_only_what_they_explain() {
        let acked = vec![rec(0, "a", Some("1")), rec(1, "b", Some("1"))];
        let maybe = vec![unknown("a", Some("7")), unknown("b", None)];
        // Neither unknown write landed: the acknowledged ones are the latest.
        assert_eq!(kinds(&acked, &acked, &maybe, false), vec![]);
        // a=7 landed after a=1 and the cleaner removed a=1.
        let read = vec![rec(1, "b", Some("1")), rec(5, "a", Some("7"))];
        assert_eq!(kinds(&read, &acked, &maybe, false), vec![]);
        // ... but a=7 cannot replace the latest acknowledged record from an earlier offset.
        let acked2 = vec![rec(3, "a", Some("1")), rec(4, "b", Some("1"))];
        let read = vec![rec(2, "a", Some("7")), rec(4, "b", Some("1"))];
        assert_eq!(
            kinds(&read, &acked2, &maybe, false),
            vec![Kind::CompactionLatest]
        );
        // A value nobody wrote at an offset nobody was told of.
        let read = vec![
            rec(0, "a", Some("1")),
            rec(1, "b", Some("1")),
            rec(6, "a", Some("8")),
        ];
        let found = kinds(&read, &acked, &maybe, false);
        assert!(found.contains(&Kind::CompactionUnknown), "{found:?}");
        // b's tombstone may have landed and expired, once tombstones may expire.
        let read = vec![rec(0, "a", Some("1"))];
        assert_eq!(kinds(&read, &acked, &maybe, true), vec![]);
        assert_eq!(
            kinds(&read, &acked, &maybe, false),
            vec![Kind::CompactionLatest]
        );
        // An unknown value does not excuse a key's absence.
        let read = vec![rec(1, "b", Some("1"))];
        assert_eq!(
            kinds(&read, &acked, &maybe, true),
            vec![Kind::CompactionLatest]
        );
    }

    /// Through the history: once a permitted power loss happened, acknowledged offsets are not
    /// trusted (a cut offset is written again), but a record nobody wrote still is caught.
    #[test]
    fn a_permitted_power_loss_excuses_lost_acknowledged_records_only() {
        let mut h = History::new(false);
        h.events.push(crate::history::Event::Crash {
            t: 1,
            power_loss: true,
        });
        h.events.push(crate::history::Event::Restart {
            t: 2,
            log_ends: vec![(0, 0)],
        });
        h.compacted = Some(crate::history::Compacted {
            acked: vec![rec(0, "a", Some("1")), rec(0, "b", Some("2"))],
            unknown: vec![],
            read: Some(vec![rec(0, "b", Some("2"))]),
            tombstones_may_expire: false,
        });
        assert!(super::super::check(&h).is_empty());
        h.compacted.as_mut().unwrap().read = Some(vec![rec(0, "b", Some("3"))]);
        let found: Vec<Kind> = super::super::check(&h)
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(found, vec![Kind::CompactionUnknown]);
        // Under group commit the same lost record is a violation.
        h.acks_survive_power_loss = true;
        h.compacted.as_mut().unwrap().read = Some(vec![rec(1, "b", Some("2"))]);
        h.compacted.as_mut().unwrap().acked = vec![rec(0, "a", Some("1")), rec(1, "b", Some("2"))];
        let found: Vec<Kind> = super::super::check(&h)
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(found, vec![Kind::CompactionLatest]);
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
            let bytes = d.records.clone().unwrap_or_default();
            if bytes.is_empty() {
                assert_eq!(offset, d.high_watermark, "an empty answer only at the end");
                return out;
            }
            // The next fetch starts past the last batch returned (its last offset may hold no
            // record after a clean): the batches' own ranges tell.
            let (recs, next) = decode_keyed(&bytes, offset);
            out.extend(recs);
            offset = next.expect("a whole batch");
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
        assert!(check_compacted(&after, &acked, &[], false).is_empty());
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
                let bad = check_compacted(&read, &acked, &[], false);
                assert!(
                    bad.is_empty(),
                    "after step {i} ({what}), power loss {power_loss}: {bad:?}"
                );
                // And the restarted broker's own clean gets the log to the same state.
                q.advance_ms(6_000);
                let again = read_all(&mut q);
                assert!(check_compacted(&again, &acked, &[], false).is_empty());
            }
        }
    }
}
