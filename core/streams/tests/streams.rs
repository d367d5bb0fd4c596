//! The topology, windows, stores and tasks, driven by hand: records in, emits out, no IO.

use gregor_streams::store::split_window_key;
use gregor_streams::{Emit, EmitKind, Record, StreamsBuilder, Task, TaskId, Topology, Windows};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn rec(key: Option<&str>, value: &str, ts: i64) -> Record {
    Record::new(key.map(str::as_bytes), Some(value.as_bytes()), ts)
}

fn wordcount() -> Topology {
    let b = StreamsBuilder::new("wc");
    b.stream("lines")
        .flat_map(|r: Record| {
            r.value_str()
                .split_whitespace()
                .map(|w| Record::new(Some(w.as_bytes()), Some(b"1"), r.timestamp_ms))
                .collect()
        })
        .group_by_key()
        .count("counts")
        .to_stream()
        .to("out");
    b.build().unwrap()
}

fn text(b: &Option<Vec<u8>>) -> String {
    String::from_utf8(b.clone().unwrap_or_default()).unwrap()
}

/// The latest value per key of the emits to `topic`.
fn latest(emits: &[Emit], topic: &str) -> BTreeMap<String, String> {
    emits
        .iter()
        .filter(|e| e.topic == topic)
        .map(|e| (text(&e.record.key), text(&e.record.value)))
        .collect()
}

/// A stand-in partitioner for repartition records: by the key's first byte.
fn part(key: &[u8], n: i32) -> i32 {
    key.first().map_or(0, |b| *b as i32 % n)
}

/// The tasks of sub-topology `sub` on partitions 0 and 1.
fn tasks(t: &Arc<Topology>, sub: usize) -> Vec<Task> {
    (0..2)
        .map(|p| {
            let id = TaskId {
                subtopology: sub,
                partition: p,
            };
            Task::new(t.clone(), id)
        })
        .collect()
}

/// Run word count over `lines` with 2 input partitions and 2 repartition partitions; the
/// second sub-topology's tasks are rebuilt from their changelog after `restart_after` records
/// (as after a crash or a move). Returns every emit of the second sub-topology.
fn run_wordcount(lines: &[String], restart_after: usize) -> Vec<Emit> {
    let t = Arc::new(wordcount());
    let mut split = tasks(&t, 0);
    let mut count = tasks(&t, 1);
    let mut changelog: Vec<Emit> = Vec::new();
    let mut emitted = Vec::new();
    let mut rep_offsets = [0i64; 2];
    for (i, l) in lines.iter().enumerate() {
        if i == restart_after {
            for task in count.iter_mut() {
                let id = task.id();
                let mut fresh = Task::new(t.clone(), id);
                for e in changelog
                    .iter()
                    .filter(|e| e.partition == Some(id.partition))
                {
                    assert!(fresh.restore(&e.topic, &e.record));
                }
                *task = fresh;
            }
        }
        let p = (i % 2) as i32;
        for e in split[p as usize].process("lines", (i / 2) as i64, rec(None, l, i as i64)) {
            assert_eq!(e.kind, EmitKind::Repartition);
            assert_eq!(e.topic, "wc-counts-repartition");
            let q = part(e.record.key.as_deref().unwrap(), 2);
            let offset = rep_offsets[q as usize];
            rep_offsets[q as usize] += 1;
            for out in count[q as usize].process("wc-counts-repartition", offset, e.record) {
                if out.kind == EmitKind::Changelog {
                    assert_eq!(out.topic, "wc-counts-changelog");
                    assert_eq!(
                        out.partition,
                        Some(q),
                        "a changelog record stays on its task's partition"
                    );
                    changelog.push(out.clone());
                }
                emitted.push(out);
            }
        }
    }
    emitted
}

fn replay(lines: &[String]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines {
        for w in l.split_whitespace() {
            *m.entry(w.to_string()).or_default() += 1;
        }
    }
    m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

#[test]
fn word_count_splits_at_the_repartition_topic_and_names_its_internal_topics() {
    let t = wordcount();
    assert_eq!(t.subtopologies(), 2);
    assert_eq!(t.source_topics(0), ["lines".to_string()]);
    assert_eq!(t.source_topics(1), ["wc-counts-repartition".to_string()]);
    let internal = t.internal_topics();
    let names: Vec<_> = internal
        .iter()
        .map(|i| (i.name.as_str(), i.compacted, i.partitions_like))
        .collect();
    assert_eq!(
        names,
        [
            ("wc-counts-repartition", false, 0),
            ("wc-counts-changelog", true, 0)
        ]
    );
    assert_eq!(t.external_sources(1), Vec::<String>::new());
    assert_eq!(
        t.counted_by(1),
        0,
        "the repartition topic is sized like the input"
    );
}

#[test]
fn word_count_equals_a_replay_of_the_input() {
    let lines: Vec<String> = ["a b a", "b c", "a", "c c c d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let emits = run_wordcount(&lines, usize::MAX);
    assert_eq!(latest(&emits, "out"), replay(&lines));
    assert_eq!(latest(&emits, "wc-counts-changelog"), replay(&lines));
}

#[test]
fn a_store_restored_from_its_changelog_continues_the_count() {
    let lines: Vec<String> = ["x y", "x", "y y", "z x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let emits = run_wordcount(&lines, 2);
    assert_eq!(latest(&emits, "out"), replay(&lines));
}

#[test]
fn a_count_without_the_restore_would_be_wrong() {
    // The checker above can fail: a task rebuilt from nothing loses the counts before the move.
    let t = Arc::new(wordcount());
    let mut a = Task::new(
        t.clone(),
        TaskId {
            subtopology: 1,
            partition: 0,
        },
    );
    a.process("wc-counts-repartition", 0, rec(Some("x"), "1", 0));
    let mut b = Task::new(
        t,
        TaskId {
            subtopology: 1,
            partition: 0,
        },
    );
    let out = b.process("wc-counts-repartition", 1, rec(Some("x"), "1", 1));
    assert_eq!(latest(&out, "out")["x"], "1", "not 2: nothing was restored");
}

#[test]
fn map_filter_branch_and_null_keys() {
    let b = StreamsBuilder::new("app");
    let s = b
        .stream("in")
        .filter(|r| r.value.as_deref() != Some(b"skip"))
        .map_values(|r| Some(r.value_str().to_uppercase().into_bytes()));
    let parts = s.branch(vec![
        Box::new(|r: &Record| r.value_str().starts_with('E')),
        Box::new(|r: &Record| r.value_str().starts_with('W')),
    ]);
    parts[0].to("errors");
    parts[1].to("warnings");
    s.group_by_key().count("n").to_stream().to("counts");
    let t = Arc::new(b.build().unwrap());
    assert_eq!(t.subtopologies(), 1, "no key change, no repartition");
    let mut task = Task::new(
        t,
        TaskId {
            subtopology: 0,
            partition: 0,
        },
    );
    let mut out = Vec::new();
    for (o, (k, v)) in [
        (Some("h"), "error x"),
        (Some("h"), "warn y"),
        (Some("h"), "skip"),
        (None, "error z"),
        (Some("h"), "info"),
    ]
    .into_iter()
    .enumerate()
    {
        out.extend(task.process("in", o as i64, rec(k, v, 5)));
    }
    let topics: Vec<_> = out
        .iter()
        .filter(|e| e.kind == EmitKind::Output)
        .map(|e| (e.topic.as_str(), text(&e.record.value)))
        .collect();
    assert_eq!(
        topics,
        [
            ("errors", "ERROR X".to_string()),
            ("counts", "1".into()),
            ("warnings", "WARN Y".into()),
            ("counts", "2".into()),
            ("errors", "ERROR Z".into()),
            ("counts", "3".into()),
        ]
    );
    assert_eq!(
        task.stats().dropped_null_key,
        1,
        "a record without a key is not counted"
    );
    assert_eq!(task.stats().processed, 5);
}

#[test]
fn tumbling_and_hopping_windows_contain_the_right_records() {
    let t = Windows::tumbling(60_000);
    assert_eq!(t.starts_for(0), [0]);
    assert_eq!(t.starts_for(59_999), [0]);
    assert_eq!(t.starts_for(60_000), [60_000]);
    let h = Windows::hopping(10, 5);
    assert_eq!(h.starts_for(12), [5, 10]);
    assert_eq!(h.starts_for(3), [0], "no window starts before the epoch");
    assert!(!h.grace(2).closed(0, 11));
    assert!(h.grace(2).closed(0, 12));
}

fn severity_counts(grace: i64) -> Arc<Topology> {
    let b = StreamsBuilder::new("sev");
    b.stream("logs")
        .select_key(|r| r.header("severity").map(<[u8]>::to_vec))
        .group_by_key()
        .windowed_by(Windows::tumbling(60_000).grace(grace))
        .count("per-minute")
        .to_stream()
        .to("counts");
    Arc::new(b.build().unwrap())
}

fn log(sev: &str, ts: i64) -> Record {
    let mut r = rec(None, "a line", ts);
    r.headers
        .push(("severity".into(), Some(sev.as_bytes().to_vec())));
    r
}

#[test]
fn windowed_counts_per_minute_drop_records_later_than_the_grace() {
    let t = severity_counts(10_000);
    let mut split = Task::new(
        t.clone(),
        TaskId {
            subtopology: 0,
            partition: 0,
        },
    );
    let mut agg = Task::new(
        t,
        TaskId {
            subtopology: 1,
            partition: 0,
        },
    );
    let mut out = Vec::new();
    let mut rep = 0;
    for (o, (s, ts)) in [
        ("err", 1_000),
        ("err", 59_000),
        ("info", 61_000),
        ("err", 65_000),
        ("err", 30_000),
        ("err", 75_000),
        ("err", 20_000),
    ]
    .into_iter()
    .enumerate()
    {
        for e in split.process("logs", o as i64, log(s, ts)) {
            out.extend(agg.process(&e.topic, rep, e.record));
            rep += 1;
        }
    }
    // 30_000 arrives at stream time 65_000 < 60_000 + grace: counted. 20_000 arrives at stream
    // time 75_000 ≥ 70_000: window 0 is closed, the record is dropped.
    let got = latest(&out, "counts");
    assert_eq!(got["err@0"], "3");
    assert_eq!(got["err@60000"], "2");
    assert_eq!(got["info@60000"], "1");
    assert_eq!(agg.stats().dropped_late, 1);
    // The closed window left the store with a tombstone in its changelog.
    let store = agg.store("per-minute").unwrap();
    assert!(store
        .iter()
        .all(|(k, _)| split_window_key(k).unwrap().0 == 60_000));
    assert!(out
        .iter()
        .any(|e| e.kind == EmitKind::Changelog && e.record.value.is_none()));
}

#[test]
fn stream_table_join_and_left_join() {
    let b = StreamsBuilder::new("j");
    let users = b.table("users", "users-store");
    let clicks = b.stream("clicks");
    clicks
        .join(&users, |r, name| {
            format!("{}:{}", String::from_utf8_lossy(name), r.value_str()).into_bytes()
        })
        .to("joined");
    clicks
        .left_join(&users, |r, name| {
            format!(
                "{}:{}",
                name.map_or("?".into(), |n| String::from_utf8_lossy(n).into_owned()),
                r.value_str()
            )
            .into_bytes()
        })
        .to("left");
    let t = Arc::new(b.build().unwrap());
    assert_eq!(
        t.subtopologies(),
        1,
        "the table and the stream are co-partitioned in one task"
    );
    let mut task = Task::new(
        t,
        TaskId {
            subtopology: 0,
            partition: 3,
        },
    );
    let mut out = task.process("clicks", 0, rec(Some("u1"), "home", 1));
    out.extend(task.process("users", 0, rec(Some("u1"), "ann", 2)));
    out.extend(task.process("clicks", 1, rec(Some("u1"), "cart", 3)));
    let vals = |topic: &str| -> Vec<String> {
        out.iter()
            .filter(|e| e.topic == topic)
            .map(|e| text(&e.record.value))
            .collect()
    };
    assert_eq!(vals("joined"), ["ann:cart"]);
    assert_eq!(vals("left"), ["?:home", "ann:cart"]);
    assert_eq!(vals("j-users-store-changelog"), ["ann"]);
}

#[test]
fn reduce_and_aggregate() {
    let b = StreamsBuilder::new("r");
    let s = b.stream("n");
    s.group_by_key()
        .reduce("max", |a, v| if v > a { v.to_vec() } else { a.to_vec() })
        .to_stream()
        .to("max");
    s.group_by_key()
        .aggregate(
            "len",
            || b"0".to_vec(),
            |_, r, old| {
                let n: usize = String::from_utf8(old).unwrap().parse().unwrap();
                (n + r.value.as_ref().map_or(0, Vec::len))
                    .to_string()
                    .into_bytes()
            },
        )
        .to_stream()
        .to("len");
    let t = Arc::new(b.build().unwrap());
    let mut task = Task::new(
        t,
        TaskId {
            subtopology: 0,
            partition: 0,
        },
    );
    let mut out = Vec::new();
    for (o, v) in ["3", "7", "5"].into_iter().enumerate() {
        out.extend(task.process("n", o as i64, rec(Some("k"), v, 0)));
    }
    let vals = |topic: &str| -> Vec<String> {
        out.iter()
            .filter(|e| e.topic == topic)
            .map(|e| text(&e.record.value))
            .collect()
    };
    assert_eq!(vals("max"), ["3", "7", "7"]);
    assert_eq!(vals("len"), ["1", "2", "3"]);
}

#[test]
fn bad_topologies_are_refused() {
    let b = StreamsBuilder::new("x");
    b.stream("a").group_by_key().count("s");
    b.stream("b").group_by_key().count("s");
    assert!(b.build().unwrap_err().contains("two stores"));
    let b = StreamsBuilder::new("has space");
    b.stream("a").to("b");
    assert!(b.build().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the lines and wherever the tasks move, the counts equal a replay of the input.
    #[test]
    fn word_count_survives_a_move_anywhere(
        lines in prop::collection::vec(prop::collection::vec("[a-e]{1,2}", 0..5).prop_map(|w| w.join(" ")), 0..30),
        restart in 0usize..40,
    ) {
        let emits = run_wordcount(&lines, restart);
        prop_assert_eq!(latest(&emits, "out"), replay(&lines));
    }
}

#[test]
fn a_repeated_input_record_is_not_counted_twice() {
    let t = Arc::new(wordcount());
    let mut split = Task::new(
        t.clone(),
        TaskId {
            subtopology: 0,
            partition: 0,
        },
    );
    let mut count = Task::new(
        t,
        TaskId {
            subtopology: 1,
            partition: 0,
        },
    );
    let mut rep = 0;
    let mut out = Vec::new();
    // Offset 0 processed, then processed again (its commit was lost), then offset 1.
    for (o, line) in [(0, "a b"), (0, "a b"), (1, "a")] {
        for e in split.process("lines", o, rec(None, line, 0)) {
            assert!(e.record.header("gregor.streams.origin").is_some());
            out.extend(count.process(&e.topic, rep, e.record));
            rep += 1;
        }
    }
    assert_eq!(count.stats().skipped_repeats, 2);
    let got = latest(&out, "out");
    assert_eq!((got["a"].as_str(), got["b"].as_str()), ("2", "1"));
    assert!(
        out.iter()
            .filter(|e| e.kind == EmitKind::Output)
            .all(|e| e.record.headers.is_empty()),
        "the origin header stays internal"
    );
}

/// An at-least-once run of word count with crashes, as the runner makes it: two input
/// partitions, two repartition partitions. Sub-topology 0 (split) writes its repartition
/// records at once; sub-topology 1 (count) has changelog records in flight until acknowledged,
/// commits only when none is, and a crash loses its uncommitted position and any changelog
/// records in flight beyond a prefix that happened to land.
fn at_least_once(lines: &[String], ops: &[(u8, u8)]) -> (BTreeMap<String, String>, u64) {
    let t = Arc::new(wordcount());
    let input: Vec<Vec<String>> = (0..2)
        .map(|p| lines.iter().skip(p).step_by(2).cloned().collect())
        .collect();
    let mut split = tasks(&t, 0);
    let mut count = tasks(&t, 1);
    let (mut pos0, mut com0) = ([0usize; 2], [0usize; 2]);
    let (mut pos1, mut com1) = ([0usize; 2], [0usize; 2]);
    let mut rep: [Vec<Record>; 2] = [vec![], vec![]];
    let mut durable: [Vec<Record>; 2] = [vec![], vec![]];
    let mut pending: [Vec<Record>; 2] = [vec![], vec![]];
    let mut outputs = Vec::new();
    let mut repeats = 0;
    let step1 = |q: usize,
                 count: &mut Vec<Task>,
                 pos1: &mut [usize; 2],
                 rep: &[Vec<Record>; 2],
                 pending: &mut [Vec<Record>; 2],
                 outputs: &mut Vec<Emit>| {
        let r = rep[q][pos1[q]].clone();
        for e in count[q].process("wc-counts-repartition", pos1[q] as i64, r) {
            match e.kind {
                EmitKind::Changelog => pending[q].push(e.record),
                _ => outputs.push(e),
            }
        }
        pos1[q] += 1;
    };
    let step0 =
        |p: usize, split: &mut Vec<Task>, pos0: &mut [usize; 2], rep: &mut [Vec<Record>; 2]| {
            let line = &input[p][pos0[p]];
            for e in split[p].process("lines", pos0[p] as i64, rec(None, line, 0)) {
                rep[part(e.record.key.as_deref().unwrap(), 2) as usize].push(e.record);
            }
            pos0[p] += 1;
        };
    for &(op, which) in ops {
        let i = (which % 2) as usize;
        match op % 6 {
            0 if pos0[i] < input[i].len() => step0(i, &mut split, &mut pos0, &mut rep),
            1 => com0[i] = pos0[i],
            2 => pos0[i] = com0[i], // split task crashed: its outputs were acknowledged
            3 if pos1[i] < rep[i].len() => {
                step1(i, &mut count, &mut pos1, &rep, &mut pending, &mut outputs)
            }
            4 => {
                durable[i].append(&mut pending[i]);
                com1[i] = pos1[i];
            }
            5 => {
                // Crash: a prefix of the changelog records in flight landed anyway.
                let landed = (which as usize / 2).min(pending[i].len());
                durable[i].extend(pending[i].drain(..landed));
                pending[i].clear();
                repeats += count[i].stats().skipped_repeats;
                let mut fresh = Task::new(t.clone(), count[i].id());
                for r in &durable[i] {
                    assert!(fresh.restore("wc-counts-changelog", r));
                }
                count[i] = fresh;
                pos1[i] = com1[i];
            }
            _ => {}
        }
    }
    // No more faults: everything is processed.
    for p in 0..2 {
        while pos0[p] < input[p].len() {
            step0(p, &mut split, &mut pos0, &mut rep);
        }
    }
    for q in 0..2 {
        while pos1[q] < rep[q].len() {
            step1(q, &mut count, &mut pos1, &rep, &mut pending, &mut outputs);
        }
        repeats += count[q].stats().skipped_repeats;
    }
    (latest(&outputs, "out"), repeats)
}

#[test]
fn a_planted_double_count_is_caught() {
    // The model can fail: without deduplication (origins stripped), a crash of the split task
    // before its commit counts its lines twice.
    let lines: Vec<String> = vec!["a".into(), "b".into()];
    let (got, repeats) = at_least_once(&lines, &[(0, 0), (2, 0)]);
    assert_eq!(got, replay(&lines), "deduplicated");
    assert_eq!(repeats, 1);
    let t = Arc::new(wordcount());
    let mut count = Task::new(
        t,
        TaskId {
            subtopology: 1,
            partition: 0,
        },
    );
    let mut r = rec(Some("a"), "a", 0);
    count.process("wc-counts-repartition", 0, r.clone());
    r.headers.clear();
    let out = count.process("wc-counts-repartition", 1, r);
    assert_eq!(
        latest(&out, "out")["a"],
        "2",
        "a record without its origin is counted again"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Through crashes and repeats anywhere, at-least-once processing with origins counts
    /// every word exactly as a replay of the input does.
    #[test]
    fn word_count_is_exact_through_crashes(
        lines in prop::collection::vec(prop::collection::vec("[a-d]", 0..4).prop_map(|w| w.join(" ")), 0..16),
        ops in prop::collection::vec((0u8..6, 0u8..8), 0..80),
    ) {
        let (got, _) = at_least_once(&lines, &ops);
        prop_assert_eq!(got, replay(&lines));
    }
}
