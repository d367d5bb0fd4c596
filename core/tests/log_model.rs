//! A model test of the partition log: random appends (some from idempotent producers), syncs,
//! cuts, reads by offset and by timestamp, crashes, power losses, damaged or lost index and
//! snapshot files, and clean shutdowns, checked against a plain vector of batches.
//!
//! The model says: the log is the list of batches appended (and not cut away). After a process
//! crash everything written survives; after a power loss the recovered log is a prefix of the
//! model that contains at least every batch synced before the loss. The idempotent producers'
//! state rebuilt at start (a snapshot plus a replay) equals the state a live broker holds for
//! the same batches.
//!
//! Index files (`.index`, `.timeindex`) and producer snapshots are part of the model's disk:
//! written by rolls and shutdown (making the segment durable first, as the requests promise),
//! deleted before a cut, and sometimes damaged or lost. Whatever they hold, recovery must find
//! exactly the log and producer state that the segments hold, and after a clean shutdown it
//! must read no segment bytes at all.

use bytes::Bytes;
use gregor_core::batch::{assign, BatchHeader};
use gregor_core::io::{PartitionDir, StorageRequest};
use gregor_core::log::recover::{recover_partition, DirEntry};
use gregor_core::log::{advance, LeaderEpochCache, PartitionLog, ReadPlan, ReadStep, RollPolicy};
use gregor_core::producer::{encode_snapshot_with_epochs, ProducerStates};
use gregor_core::Instant;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: u8,
        size: u16,
        producer: u8,
    },
    Sync,
    Read {
        at: u16,
        max: u16,
    },
    ReadTimestamp {
        ts: u16,
    },
    /// Batches below this model index become visible (the high watermark moved).
    Settle {
        upto: u16,
    },
    Truncate {
        keep: u16,
    },
    Crash,
    PowerLoss {
        tear: u16,
    },
    /// While the broker is down, flip a bit in an index or snapshot file or (bit 0 of `how`)
    /// delete it; then start again.
    DamageFile {
        which: u16,
        how: u16,
    },
    /// Clean shutdown: write the active segment's indexes and a snapshot, then start again.
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u8..5, 0u16..600, 0u8..4).prop_map(|(records, size, producer)| Op::Append { records, size, producer }),
        2 => Just(Op::Sync),
        3 => (any::<u16>(), 0u16..3000).prop_map(|(at, max)| Op::Read { at, max }),
        2 => (0u16..1100).prop_map(|ts| Op::ReadTimestamp { ts }),
        1 => any::<u16>().prop_map(|upto| Op::Settle { upto }),
        1 => any::<u16>().prop_map(|keep| Op::Truncate { keep }),
        1 => Just(Op::Crash),
        1 => any::<u16>().prop_map(|tear| Op::PowerLoss { tear }),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(which, how)| Op::DamageFile { which, how }),
        1 => Just(Op::Shutdown),
    ]
}

/// A v2 batch of `records` opaque records and `size` payload bytes, with a valid CRC; from
/// idempotent producer `producer` (0: none) at sequence `seq`, largest timestamp `ts`.
fn make_batch(records: u8, size: u16, ts: i64, producer: u8, seq: i32) -> Vec<u8> {
    let mut b = vec![0u8; 61 + size as usize];
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records as i32 - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    let pid = if producer == 0 {
        -1i64
    } else {
        producer as i64
    };
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[53..57].copy_from_slice(&(if producer == 0 { -1 } else { seq }).to_be_bytes());
    b[57..61].copy_from_slice(&(records as i32).to_be_bytes());
    for (i, x) in b[61..].iter_mut().enumerate() {
        *x = (ts as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One partition directory: file name -> (written image, synced image). Index and snapshot
/// files are written atomically and durably, so both images are the same.
#[derive(Default)]
struct Disk {
    files: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
}

fn durable(b: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (b.to_vec(), b.to_vec())
}

impl Disk {
    fn sync(&mut self, name: &str) {
        let (w, s) = self.files.get_mut(name).expect("segment exists");
        *s = w.clone();
    }
    fn remove_snapshots(&mut self, doomed: impl Fn(i64) -> bool) {
        self.files.retain(|name, _| {
            let o = name.strip_suffix(".snapshot").and_then(|s| s.parse().ok());
            !o.is_some_and(&doomed)
        });
    }
    fn apply(&mut self, r: StorageRequest) {
        match r {
            StorageRequest::CreateSegment { file, header } => {
                self.files.insert(file.file_name(), durable(&header));
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                let f = &mut self.files.get_mut(&file.file_name()).unwrap().0;
                assert_eq!(f.len() as u64, position, "appends land at the end");
                f.extend_from_slice(&data);
            }
            StorageRequest::Sync { file } => self.sync(&file.file_name()),
            StorageRequest::Truncate { file, len } => {
                if let Some((w, s)) = self.files.get_mut(&file.file_name()) {
                    w.truncate(len as usize);
                    s.truncate(len as usize);
                }
            }
            StorageRequest::DeleteSegment { file } => {
                for name in [
                    file.file_name(),
                    file.index_file_name(),
                    file.time_index_file_name(),
                ] {
                    self.files.remove(&name);
                }
            }
            StorageRequest::WriteSegmentIndex {
                file,
                covers,
                index,
                time_index,
            } => {
                let w = &self.files[&file.file_name()].0;
                assert!(
                    w.len() as u64 >= covers,
                    "an index never covers more than was written"
                );
                self.sync(&file.file_name());
                self.files.insert(file.index_file_name(), durable(&index));
                self.files
                    .insert(file.time_index_file_name(), durable(&time_index));
            }
            StorageRequest::DeleteSegmentIndex { file } => {
                self.files.remove(&file.index_file_name());
                self.files.remove(&file.time_index_file_name());
            }
            StorageRequest::WriteProducerSnapshot {
                segment,
                offset,
                data,
                delete_below,
                ..
            } => {
                self.sync(&segment.file_name());
                self.files
                    .insert(PartitionDir::snapshot_file_name(offset), durable(&data));
                self.remove_snapshots(|o| o < delete_below);
            }
            StorageRequest::DeleteProducerSnapshots { above, .. } => {
                self.remove_snapshots(|o| o > above);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Start again: recover the directory (counting the segment bytes read), rebuild the log,
    /// apply its repairs. Returns the log, its producer state and the bytes read.
    fn restart(&mut self, now: Instant) -> (PartitionLog, ProducerStates, u64) {
        let entries: Vec<DirEntry> = self
            .files
            .iter()
            .map(|(name, (w, _))| DirEntry {
                name: name.clone(),
                len: w.len() as u64,
            })
            .collect();
        let mut read = 0u64;
        let files = &self.files;
        let rp = recover_partition("m-0".into(), None, &entries, |name, from, to| {
            if name.ends_with(".log") {
                read += to - from;
            }
            Ok::<_, ()>(files[name].0[from as usize..to as usize].to_vec())
        })
        .unwrap();
        let (mut log, repairs, _) = PartitionLog::recover(dir(), rp.segments, rp.snapshot, now);
        log.set_recovered_epochs(rp.epochs);
        for r in repairs {
            self.apply(r);
        }
        let mut producers = rp.producers;
        producers.truncate_to(log.log_end_offset());
        (log, producers, read)
    }

    /// Carry a scan through to its answer, as the broker does with read completions.
    fn read(&self, mut plan: ReadPlan) -> ReadStep {
        for _ in 0..1000 {
            let f = &self.files[&plan.file.file_name()].0;
            let start = (plan.position as usize).min(f.len());
            let end = (start + plan.len as usize).min(f.len());
            match advance(&plan, Bytes::copy_from_slice(&f[start..end]))
                .expect("a consistent log reads")
            {
                ReadStep::More(next) => plan = next,
                done => return done,
            }
        }
        panic!("a scan that does not end");
    }
}

fn dir() -> PartitionDir {
    PartitionDir {
        topic: "m".into(),
        partition: 0,
    }
}

/// Recovered producer state agrees with the log: for every producer, the same epoch and last
/// batch as a replay of the whole model, and remembered batches that are a suffix of what that
/// replay remembers. (A cut cannot bring back batches the five-batch window had already
/// forgotten, in Kafka either, so a state that lived through a cut may remember fewer, or,
/// like the live state `live`, forget the producer.)
fn agrees(recovered: &ProducerStates, live: &ProducerStates, model: &[(i64, Vec<u8>)]) -> bool {
    let mut ideal = ProducerStates::default();
    for (_, b) in model {
        ideal.record(&BatchHeader::parse(b).unwrap());
    }
    (1..4).all(|pid| match (ideal.get(pid), recovered.get(pid)) {
        (None, None) => true,
        (Some(i), Some(r)) => {
            let skip = i.batches.len().saturating_sub(r.batches.len());
            i.epoch == r.epoch
                && !r.batches.is_empty()
                && i.batches.iter().skip(skip).eq(r.batches.iter())
        }
        (Some(_), None) => live.get(pid).is_none(),
        (None, Some(_)) => false,
    }) && recovered.len() <= ideal.len()
}

/// The leader-epoch cache the batches of `model` give, as recovery must rebuild it.
fn epochs_of(model: &[(i64, Vec<u8>)], start: i64, end: i64) -> LeaderEpochCache {
    let mut c = LeaderEpochCache::default();
    for (base, b) in model {
        c.assign(BatchHeader::parse(b).unwrap().partition_leader_epoch, *base)
            .unwrap();
    }
    c.clamp_to(start, end);
    c
}

fn restarted(op: &Op) -> bool {
    matches!(
        op,
        Op::Crash | Op::PowerLoss { .. } | Op::DamageFile { .. } | Op::Shutdown
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..160)) {
        let now = Instant::from_unix_ms(1);
        let roll = RollPolicy {
            segment_bytes_max: 12_000,
            segment_age_ns_max: u64::MAX,
            index_interval_bytes: gregor_core::log::index::INDEX_INTERVAL_BYTES,
        };
        let mut disk = Disk::default();
        let (mut log, req) = PartitionLog::create(dir(), now);
        disk.apply(req);
        // The model: (base offset, bytes) of every batch in the log; how many are synced; the
        // first one a cut may take (the broker never cuts below what was settled or recovered).
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut synced = 0usize;
        let mut cuttable = 0usize;
        let mut live = ProducerStates::default();
        let mut seqs = [0i32; 4];
        let mut salt = 0i64;
        // The leader epoch batches are written in: a new one after every restart (a broker
        // that comes back leads in a new epoch), recorded at the log end as KIP-279 says.
        let mut epoch = 0i32;
        log.assign_epoch(epoch).unwrap();
        for op in ops {
            match op.clone() {
                Op::Append { records, size, producer } => {
                    salt += 1;
                    let ts = (salt * 7919) % 1000;
                    let seq = seqs[producer as usize];
                    seqs[producer as usize] += records as i32;
                    let mut b = make_batch(records, size, ts, producer, seq);
                    let base = log.log_end_offset();
                    assign(&mut b, base, epoch);
                    let h = BatchHeader::parse(&b).unwrap();
                    for r in log.append(Bytes::from(b.clone()), &h, now, roll) {
                        disk.apply(r);
                    }
                    live.record(&h);
                    // As the broker's step does: a snapshot when a roll made one due.
                    let epochs = log.epochs().entries().to_vec();
                    if let Some(r) = log.snapshot_request(false, |o| encode_snapshot_with_epochs(&live, &epochs, o)) {
                        disk.apply(r);
                    }
                    model.push((base, b));
                }
                Op::Sync => {
                    for f in log.files_since(0) {
                        disk.apply(StorageRequest::Sync { file: f });
                    }
                    synced = model.len();
                }
                Op::Read { at, max } => {
                    let end = log.log_end_offset();
                    if end == 0 { continue; }
                    let offset = at as i64 % end;
                    let plan = log.plan_read(offset, end, max as u32, true).expect("data below the end is readable");
                    let ReadStep::Done { bytes, first_offset, .. } = disk.read(plan) else { unreachable!() };
                    let i = model.iter().position(|(b, bytes)| {
                        let h = BatchHeader::parse(bytes).unwrap();
                        *b <= offset && offset <= h.last_offset()
                    }).unwrap();
                    prop_assert_eq!(first_offset, model[i].0);
                    prop_assert_eq!(&bytes[..model[i].1.len()], &model[i].1[..], "the first batch read is the one holding the offset");
                    prop_assert!(bytes.len() <= (max as usize).max(model[i].1.len()), "KIP-74: only the first batch may exceed");
                    // Whole batches, in order.
                    let mut at = 0;
                    for (_, b) in &model[i..] {
                        if at == bytes.len() { break; }
                        prop_assert_eq!(&bytes[at..at + b.len()], &b[..]);
                        at += b.len();
                    }
                    prop_assert_eq!(at, bytes.len());
                }
                Op::ReadTimestamp { ts } => {
                    let end = log.log_end_offset();
                    let ts = ts as i64;
                    let want = model.iter().find(|(_, b)| BatchHeader::parse(b).unwrap().max_timestamp >= ts);
                    match log.offset_for_timestamp(ts, end) {
                        None => prop_assert!(want.is_none(), "a batch reaches {ts} but none was found"),
                        Some(plan) => {
                            let ReadStep::Done { bytes, first_offset, max_timestamp, .. } = disk.read(plan) else { unreachable!() };
                            let (base, b) = want.expect("found a batch where the model has none");
                            prop_assert_eq!(first_offset, *base, "the first batch reaching {}", ts);
                            prop_assert_eq!(&bytes[..], &b[..]);
                            prop_assert!(max_timestamp >= ts);
                        }
                    }
                }
                Op::Settle { upto } => {
                    let k = upto as usize % (model.len() + 1);
                    let to = model.get(k).map(|(b, _)| *b).unwrap_or(log.log_end_offset());
                    log.settle(to);
                    cuttable = cuttable.max(k);
                }
                Op::Truncate { keep } => {
                    if model.len() < cuttable { continue; }
                    let k = cuttable + keep as usize % (model.len() - cuttable + 1);
                    let to = model.get(k).map(|(b, _)| *b).unwrap_or(log.log_end_offset());
                    let cut = to < log.log_end_offset();
                    for r in log.truncate_to(to) { disk.apply(r); }
                    prop_assert!(!cut || log.epochs().entries().iter().all(|(_, s)| *s < to), "the cut's epochs go");
                    // The leader goes on in its epoch (as the broker does after a failed write).
                    log.assign_epoch(epoch).unwrap();
                    model.truncate(k);
                    live.truncate_to(to);
                    synced = synced.min(k);
                }
                Op::Crash => {
                    let (l, p, _) = disk.restart(now);
                    prop_assert!(agrees(&p, &live, &model), "producer state survives a crash");
                    log = l;
                    cuttable = model.len();
                }
                Op::DamageFile { which, how } => {
                    let names: Vec<String> = disk.files.keys().filter(|n| !n.ends_with(".log")).cloned().collect();
                    if names.is_empty() { continue; }
                    let name = &names[which as usize % names.len()];
                    if how & 1 == 0 {
                        disk.files.remove(name);
                    } else {
                        let (w, s) = disk.files.get_mut(name).unwrap();
                        let at = (how as usize >> 1) % w.len();
                        w[at] ^= 1 << (how % 8);
                        *s = w.clone();
                    }
                    let (l, p, _) = disk.restart(now);
                    prop_assert!(agrees(&p, &live, &model), "a damaged cache changes nothing");
                    log = l;
                    cuttable = model.len();
                }
                Op::Shutdown => {
                    if let Some(r) = log.shutdown_index() { disk.apply(r); }
                    let epochs = log.epochs().entries().to_vec();
                    if let Some(r) = log.snapshot_request(true, |o| encode_snapshot_with_epochs(&live, &epochs, o)) {
                        disk.apply(r);
                    }
                    let (l, p, read) = disk.restart(now);
                    prop_assert_eq!(read, 0, "a clean restart reads no segment data");
                    prop_assert!(agrees(&p, &live, &model));
                    prop_assert!(agrees(&live, &live, &model));
                    log = l;
                    cuttable = model.len();
                }
                Op::PowerLoss { tear } => {
                    for (name, (w, s)) in disk.files.iter_mut() {
                        if !name.ends_with(".log") { continue; }
                        // Unsynced bytes are lost, except a torn piece of them may remain.
                        let extra = (w.len() - s.len()).min(tear as usize % 97);
                        let mut kept = s.clone();
                        kept.extend_from_slice(&w[s.len()..s.len() + extra]);
                        *w = kept;
                        *s = w.clone();
                    }
                    let (l, p, _) = disk.restart(now);
                    log = l;
                    let n = model.iter().take_while(|(b, _)| *b < log.log_end_offset()).count();
                    prop_assert!(n >= synced, "every synced batch survives a power loss");
                    model.truncate(n);
                    live.truncate_to(log.log_end_offset());
                    prop_assert!(agrees(&p, &live, &model), "producer state matches the surviving log");
                    synced = n;
                    cuttable = n;
                }
            }
            if restarted(&op) {
                // The recovered cache is the one the surviving batches' headers give.
                // (An epoch that wrote nothing is kept only if a snapshot was taken after it.)
                let (start, end) = (log.log_start_offset(), log.log_end_offset());
                let at_end = |c: &LeaderEpochCache| -> Vec<(i32, i64)> {
                    c.entries().iter().copied().filter(|(_, s)| *s < end).collect()
                };
                prop_assert_eq!(at_end(log.epochs()), at_end(&epochs_of(&model, start, end)));
                epoch += 1;
                log.assign_epoch(epoch).unwrap();
            }
            prop_assert_eq!(log.epochs().latest_epoch(), epoch);
            log.invariants();
            let model_end = model.last().map(|(_, b)| BatchHeader::parse(b).unwrap().next_offset()).unwrap_or(0);
            prop_assert_eq!(log.log_end_offset(), model_end);
        }
        // Finally every batch reads back byte-for-byte, one at a time.
        let (l, _, _) = disk.restart(now);
        for (base, bytes) in &model {
            let plan = l.plan_read(*base, l.log_end_offset(), 1, true).unwrap();
            let ReadStep::Done { bytes: got, .. } = disk.read(plan) else { unreachable!() };
            prop_assert_eq!(&got[..], &bytes[..]);
        }
    }
}
