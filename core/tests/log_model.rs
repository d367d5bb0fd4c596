//! A model test of the partition log: random appends, syncs, truncations, reads, crashes and
//! recoveries, checked against a plain vector of batches.
//!
//! The model says: the log is the list of batches appended (and not truncated away). After a
//! process crash everything written survives; after a power loss the recovered log is a prefix
//! of the model that contains at least every batch synced before the loss.

use bytes::Bytes;
use gregor_core::batch::{assign, BatchHeader};
use gregor_core::files::{scan_segment, SegmentScan};
use gregor_core::io::{PartitionDir, StorageRequest};
use gregor_core::log::{PartitionLog, RollPolicy};
use gregor_core::Instant;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Append { records: u8, size: u16 },
    Sync,
    Read { at: u16 },
    Truncate { keep: u16 },
    Crash,
    PowerLoss { tear: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5, 0u16..600).prop_map(|(records, size)| Op::Append { records, size }),
        2 => Just(Op::Sync),
        3 => any::<u16>().prop_map(|at| Op::Read { at }),
        1 => any::<u16>().prop_map(|keep| Op::Truncate { keep }),
        1 => Just(Op::Crash),
        1 => any::<u16>().prop_map(|tear| Op::PowerLoss { tear }),
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

/// Files with a written image and a synced image.
#[derive(Default)]
struct Disk {
    files: BTreeMap<i64, (Vec<u8>, Vec<u8>)>,
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
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    fn scans(&self) -> Vec<SegmentScan> {
        self.files
            .iter()
            .map(|(base, (w, _))| scan_segment(*base, w))
            .collect()
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
                    let (l, repairs, _) = PartitionLog::recover(dir(), disk.scans(), now);
                    prop_assert!(repairs.is_empty(), "a process crash leaves nothing to repair");
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
                    let (l, repairs, _) = PartitionLog::recover(dir(), disk.scans(), now);
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
        let (l, _, _) = PartitionLog::recover(dir(), disk.scans(), now);
        for (base, bytes) in &model {
            let plan = l.plan_read(*base, l.log_end_offset(), 1).unwrap();
            let f = &disk.files[&plan.file.base_offset].0;
            prop_assert_eq!(&f[plan.position as usize..(plan.position + plan.len as u64) as usize], &bytes[..]);
        }
    }
}
