//! A model test of the partition log: random appends, syncs, truncations, reads, crashes and
//! recoveries, checked against a plain vector of batches.
//!
//! The model says: the log is the list of batches appended (and not truncated away). After a
//! process crash everything written survives; after a power loss the recovered log is a prefix
//! of the model that contains at least every batch synced before the loss.
//!
//! Index files are part of the model's disk: written by roll and shutdown (making the segment
//! durable first, as the request promises), deleted before a cut, and sometimes damaged or
//! lost. Whatever they hold, recovery must find exactly what a full scan of the segments finds,
//! and after a clean shutdown it must read no segment bytes at all.

use bytes::Bytes;
use gregor_core::batch::{assign, BatchHeader};
use gregor_core::files::{recover_segment, scan_segment, SegmentScan};
use gregor_core::io::{PartitionDir, StorageRequest};
use gregor_core::log::{PartitionLog, RollPolicy};
use gregor_core::Instant;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: u8,
        size: u16,
    },
    Sync,
    Read {
        at: u16,
    },
    Truncate {
        keep: u16,
    },
    Crash,
    PowerLoss {
        tear: u16,
    },
    /// While the broker is down, flip a bit in an index file or (bit 0 of `how`) delete it;
    /// then start again.
    DamageIndex {
        which: u16,
        how: u16,
    },
    /// Clean shutdown: write the active segment's index, then start again.
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5, 0u16..600).prop_map(|(records, size)| Op::Append { records, size }),
        2 => Just(Op::Sync),
        3 => any::<u16>().prop_map(|at| Op::Read { at }),
        1 => any::<u16>().prop_map(|keep| Op::Truncate { keep }),
        1 => Just(Op::Crash),
        1 => any::<u16>().prop_map(|tear| Op::PowerLoss { tear }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(which, how)| Op::DamageIndex { which, how }),
        1 => Just(Op::Shutdown),
    ]
}

/// A v2 batch of `records` opaque records and `size` payload bytes, with a valid CRC.
fn make_batch(records: u8, size: u16, salt: u64) -> Vec<u8> {
    let mut b = vec![0u8; 61 + size as usize];
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records as i32 - 1).to_be_bytes());
    b[35..43].copy_from_slice(&(salt as i64).to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&(records as i32).to_be_bytes());
    for (i, x) in b[61..].iter_mut().enumerate() {
        *x = (salt as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Files with a written image and a synced image, and index files (always durable: the
/// request that writes one does so atomically and durably).
#[derive(Default)]
struct Disk {
    files: BTreeMap<i64, (Vec<u8>, Vec<u8>)>,
    indexes: BTreeMap<i64, Vec<u8>>,
}

impl Disk {
    fn apply(&mut self, r: StorageRequest) {
        match r {
            StorageRequest::CreateSegment { file, header } => {
                self.files
                    .insert(file.base_offset, (header.to_vec(), header.to_vec()));
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                let f = &mut self.files.get_mut(&file.base_offset).unwrap().0;
                assert_eq!(f.len() as u64, position, "appends land at the end");
                f.extend_from_slice(&data);
            }
            StorageRequest::Sync { file } => {
                let (w, s) = self.files.get_mut(&file.base_offset).unwrap();
                *s = w.clone();
            }
            StorageRequest::Truncate { file, len } => {
                if let Some((w, s)) = self.files.get_mut(&file.base_offset) {
                    w.truncate(len as usize);
                    s.truncate(len as usize);
                }
            }
            StorageRequest::DeleteSegment { file } => {
                self.files.remove(&file.base_offset);
                self.indexes.remove(&file.base_offset);
            }
            StorageRequest::WriteSegmentIndex {
                file,
                covers,
                index,
            } => {
                let (w, s) = self.files.get_mut(&file.base_offset).unwrap();
                assert!(
                    w.len() as u64 >= covers,
                    "an index never covers more than was written"
                );
                *s = w.clone();
                self.indexes.insert(file.base_offset, index.to_vec());
            }
            StorageRequest::DeleteSegmentIndex { file } => {
                self.indexes.remove(&file.base_offset);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    /// What the driver hands recovery, checked against a full scan of every segment: an index
    /// may save reading, never change what is found. Returns the scans and how many segment
    /// bytes were read.
    fn scans(&self) -> (Vec<SegmentScan>, u64) {
        let mut read = 0u64;
        let mut scans = Vec::new();
        for (base, (w, _)) in &self.files {
            let scan = recover_segment(
                *base,
                self.indexes.get(base).map(|i| i.as_slice()),
                w.len() as u64,
                |from| {
                    read += w.len() as u64 - from;
                    Ok::<_, ()>(w[from as usize..].to_vec())
                },
            )
            .unwrap();
            let full = scan_segment(*base, w);
            assert_eq!(
                &scan.batches, &full.batches,
                "an index agrees with its segment"
            );
            assert_eq!(scan.valid_len, full.valid_len);
            scans.push(scan);
        }
        (scans, read)
    }
}

fn dir() -> PartitionDir {
    PartitionDir {
        topic: "m".into(),
        partition: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let now = Instant::from_unix_ms(1);
        let roll = RollPolicy { segment_bytes_max: 2048, segment_age_ns_max: u64::MAX };
        let mut disk = Disk::default();
        let (mut log, req) = PartitionLog::create(dir(), now);
        disk.apply(req);
        // The model: (base offset, bytes) of every batch in the log; how many are synced.
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut synced = 0usize;
        let mut salt = 0u64;
        for op in ops {
            match op {
                Op::Append { records, size } => {
                    salt += 1;
                    let mut b = make_batch(records, size, salt);
                    let base = log.log_end_offset();
                    assign(&mut b, base, 0);
                    let h = BatchHeader::parse(&b).unwrap();
                    for r in log.append(Bytes::from(b.clone()), &h, now, roll) {
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
                Op::Read { at } => {
                    let end = log.log_end_offset();
                    if end == 0 { continue; }
                    let offset = at as i64 % end;
                    let plan = log.plan_read(offset, end, 1500).expect("data below the end is readable");
                    let f = &disk.files[&plan.file.base_offset].0;
                    let got = &f[plan.position as usize..(plan.position + plan.len as u64) as usize];
                    let i = model.iter().position(|(b, bytes)| {
                        let h = BatchHeader::parse(bytes).unwrap();
                        *b <= offset && offset <= h.last_offset()
                    }).unwrap();
                    prop_assert_eq!(plan.first_offset, model[i].0);
                    prop_assert_eq!(&got[..model[i].1.len()], &model[i].1[..], "the first batch read is the one holding the offset");
                }
                Op::Truncate { keep } => {
                    let k = keep as usize % (model.len() + 1);
                    let to = model.get(k).map(|(b, _)| *b).unwrap_or(log.log_end_offset());
                    for r in log.truncate_to(to) { disk.apply(r); }
                    model.truncate(k);
                    synced = synced.min(k);
                }
                Op::Crash => {
                    let (l, repairs, _) = PartitionLog::recover(dir(), disk.scans().0, now);
                    for r in repairs {
                        prop_assert!(
                            matches!(r, StorageRequest::WriteSegmentIndex { .. }),
                            "a process crash leaves nothing to repair but missing indexes"
                        );
                        disk.apply(r);
                    }
                    log = l;
                }
                Op::DamageIndex { which, how } => {
                    let bases: Vec<i64> = disk.indexes.keys().copied().collect();
                    if bases.is_empty() { continue; }
                    let base = bases[which as usize % bases.len()];
                    if how & 1 == 0 {
                        disk.indexes.remove(&base);
                    } else {
                        let idx = disk.indexes.get_mut(&base).unwrap();
                        let at = (how as usize >> 1) % idx.len();
                        idx[at] ^= 1 << (how % 8);
                    }
                    let (l, repairs, _) = PartitionLog::recover(dir(), disk.scans().0, now);
                    for r in repairs {
                        prop_assert!(matches!(r, StorageRequest::WriteSegmentIndex { .. }), "only index rewrites");
                        disk.apply(r);
                    }
                    log = l;
                }
                Op::Shutdown => {
                    if let Some(r) = log.shutdown_index() { disk.apply(r); }
                    let (scans, read) = disk.scans();
                    let (l, repairs, _) = PartitionLog::recover(dir(), scans, now);
                    // Only a segment that has no index (a closed one a cut made active again)
                    // costs a scan, and is given an index; otherwise a clean restart reads no
                    // segment data.
                    let unindexed = disk.indexes.len() < disk.files.len();
                    for r in repairs {
                        prop_assert!(matches!(r, StorageRequest::WriteSegmentIndex { .. }), "only index rewrites");
                        disk.apply(r);
                    }
                    prop_assert!(read == 0 || unindexed,
                        "a clean restart with intact indexes reads no segment data (read {read})");
                    log = l;
                }
                Op::PowerLoss { tear } => {
                    for (w, s) in disk.files.values_mut() {
                        // Unsynced bytes are lost, except a torn piece of them may remain.
                        let extra = (w.len() - s.len()).min(tear as usize % 97);
                        let mut kept = s.clone();
                        kept.extend_from_slice(&w[s.len()..s.len() + extra]);
                        *w = kept;
                        *s = w.clone();
                    }
                    let (l, repairs, _) = PartitionLog::recover(dir(), disk.scans().0, now);
                    for r in repairs { disk.apply(r); }
                    log = l;
                    let n = model.iter().take_while(|(b, _)| *b < log.log_end_offset()).count();
                    prop_assert!(n >= synced, "every synced batch survives a power loss");
                    model.truncate(n);
                    synced = n;
                }
            }
            log.invariants();
            let model_end = model.last().map(|(_, b)| BatchHeader::parse(b).unwrap().next_offset()).unwrap_or(0);
            prop_assert_eq!(log.log_end_offset(), model_end);
        }
        // Finally every batch reads back byte-for-byte.
        let (l, _, _) = PartitionLog::recover(dir(), disk.scans().0, now);
        for (base, bytes) in &model {
            let plan = l.plan_read(*base, l.log_end_offset(), 1).unwrap();
            let f = &disk.files[&plan.file.base_offset].0;
            prop_assert_eq!(&f[plan.position as usize..(plan.position + plan.len as u64) as usize], &bytes[..]);
        }
    }
}
