//! **`producer-state`** — after a truncation, a broker's idempotent-producer state is the state
//! rebuilt from the log it kept (issue 10, item 9).
//!
//! A follower whose log diverged from its leader's cuts it back (KIP-101, KIP-279,
//! `broker/replica/truncation.rs`). The idempotent producers' state (KIP-98: per producer id, the
//! epoch and the last five batches appended) must then describe the log below the cut: Kafka
//! rebuilds it after every truncation (`UnifiedLog.truncateTo` → `rebuildProducerState`).
//! Merely forgetting the batches at or past the cut is not the same: a producer whose five
//! remembered batches were all cut would be forgotten although older batches of it are still in
//! the log, and a retry of one of those would be appended twice (a duplicate the history
//! checkers see only if the retry happens to come).
//!
//! The check compares the broker's state right after each truncation the world sees (the
//! partition's written end going down) with the state recovery rebuilds from the same log: the
//! broker's own recovery code ([`gregor_core::log::recover::recover_partition`], the newest
//! usable producer snapshot plus the batches after it) run over the simulated disk's page cache
//! ([`crate::disk::SimDisk::recovered_dir`]). The disk lags the broker: a storage operation takes
//! effect when it completes, in the order issued (writes never overtake each other). So the
//! comparison waits until the last write the broker had issued when it truncated has completed;
//! the disk then holds exactly the log the broker had in memory at the truncation. A process
//! that stops first takes its pending checks with it, and a rebuilt log that ends elsewhere
//! than the broker's (a write failed in between) is not compared (counted as skipped).

use crate::disk::SimDisk;
use crate::history::{Ms, Part};
use gregor_core::producer::{ProducerStates, RememberedBatch};
use gregor_core::OpId;
use std::collections::BTreeMap;

/// One producer's state as compared: id, epoch, remembered batches (oldest first).
pub type Producer = (i64, i16, Vec<RememberedBatch>);

/// The comparable form of a partition's producer state.
pub fn state(s: &ProducerStates) -> Vec<Producer> {
    s.iter()
        .map(|(id, e)| (id, e.epoch, e.batches.iter().copied().collect()))
        .collect()
}

/// The anomaly, if the state broker `node` kept after truncating `part` to `end` at `t` is not
/// the one rebuilt from the log.
pub fn compare(
    node: i32,
    part: Part,
    end: i64,
    t: Ms,
    kept: &[Producer],
    rebuilt: &[Producer],
) -> Option<(&'static str, String)> {
    if kept == rebuilt {
        return None;
    }
    let ids = |s: &[Producer]| -> BTreeMap<i64, Producer> {
        s.iter().map(|p| (p.0, p.clone())).collect()
    };
    let (k, r) = (ids(kept), ids(rebuilt));
    let first = (k.keys().chain(r.keys()))
        .find(|id| k.get(id) != r.get(id))
        .expect("the states differ");
    Some((
        "producer-state",
        format!(
            "t={t}ms: broker {node} truncated partition {part} to {end}; its producer state has {:?} for producer {first}, rebuilt from the log {:?} ({} producers kept, {} rebuilt)",
            k.get(first),
            r.get(first),
            kept.len(),
            rebuilt.len()
        ),
    ))
}

/// A truncation waiting for the disk to catch up with it.
#[derive(Debug)]
struct Pending {
    node: usize,
    incarnation: u64,
    /// The last write the broker had issued when it truncated.
    op: OpId,
    part: Part,
    end: i64,
    kept: Vec<Producer>,
    t: Ms,
}

/// The world's side of the check: what each node last issued, and truncations waiting.
#[derive(Debug, Default)]
pub struct Checks {
    /// Per node: (process incarnation, last write issued).
    last_write: BTreeMap<usize, (u64, OpId)>,
    pending: Vec<Pending>,
    pub anomalies: Vec<(&'static str, String)>,
    /// Truncations compared, and not comparable (the rebuilt log ended elsewhere).
    pub checked: u64,
    pub skipped: u64,
}

impl Checks {
    /// Node `node`'s process `incarnation` issued storage operation `op`, a write (anything but
    /// an fsync, which may complete out of order and changes nothing a reader sees).
    pub fn issued(&mut self, node: usize, incarnation: u64, op: OpId) {
        self.last_write.insert(node, (incarnation, op));
    }

    /// Node `node`'s process `incarnation` cut `part` back to `end` at `t`, keeping `kept`.
    pub fn truncated(
        &mut self,
        node: usize,
        incarnation: u64,
        part: Part,
        end: i64,
        kept: &ProducerStates,
        t: Ms,
    ) {
        let Some((_, op)) = (self.last_write.get(&node)).filter(|(inc, _)| *inc == incarnation)
        else {
            // Nothing written by this process: a cut always writes, so this cannot be one
            // whose disk state is known.
            self.skipped += 1;
            return;
        };
        self.pending.push(Pending {
            node,
            incarnation,
            op: *op,
            part,
            end,
            kept: state(kept),
            t,
        });
    }

    /// Operation `op` of node `node`'s process `incarnation` took effect on `disk`: compare the
    /// truncations that waited for it with the state rebuilt from the disk (evicting beyond
    /// `producers_max` producers, as recovery does).
    pub fn written(
        &mut self,
        node: usize,
        incarnation: u64,
        op: OpId,
        disk: &SimDisk,
        topic: &str,
        producers_max: usize,
    ) {
        // A stopped process's truncations never reach the disk as they were.
        self.pending
            .retain(|p| p.node != node || p.incarnation >= incarnation);
        let (due, wait): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.node == node && p.incarnation == incarnation && p.op == op);
        self.pending = wait;
        for p in due {
            let Some(r) = disk.recovered_dir(&format!("{topic}-{}", p.part)) else {
                self.skipped += 1;
                continue;
            };
            let end = r.segments.last().map_or(0, |s| s.next_offset);
            if end != p.end {
                self.skipped += 1;
                continue;
            }
            let mut rebuilt = r.producers;
            rebuilt.truncate_to(end);
            rebuilt.evict_beyond(producers_max);
            self.checked += 1;
            let found = compare(
                node as i32 + 1,
                p.part,
                p.end,
                p.t,
                &p.kept,
                &state(&rebuilt),
            );
            self.anomalies.extend(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::SimFile;
    use gregor_core::batch::{assign, encode, BatchHeader, Rec};
    use gregor_core::files::segment_header;
    use gregor_core::kafka_protocol::records::Compression;

    /// Producer 5's batches with sequences 0.. (one record each) at offsets 0.., as its
    /// broker appended them: their headers, and a disk whose partition `t-0` holds the first
    /// `kept` of them (the log after a cut there).
    fn log(batches: i32, kept: usize) -> (Vec<BatchHeader>, SimDisk) {
        let mut file = segment_header(0).to_vec();
        let mut headers = Vec::new();
        for seq in 0..batches {
            let rec = Rec {
                value: Some(vec![seq as u8].into()),
                ..Rec::default()
            };
            let mut b = encode(&[rec], Some((5, 0, seq)), Compression::None)
                .unwrap()
                .to_vec();
            assign(&mut b, seq as i64, 0);
            headers.push(BatchHeader::parse(&b).unwrap());
            if headers.len() <= kept {
                file.extend_from_slice(&b);
            }
        }
        let mut disk = SimDisk::default();
        let f = SimFile {
            written: file,
            ..SimFile::default()
        };
        disk.files.insert("t-0/00000000000000000000.log".into(), f);
        (headers, disk)
    }

    /// A broker truncates partition 0 to `end`, keeping `kept`; the disk catches up.
    fn judge(kept: &ProducerStates, disk: &SimDisk, end: i64) -> Checks {
        let mut c = Checks::default();
        c.issued(0, 1, OpId(7));
        c.truncated(0, 1, 0, end, kept, 50);
        c.issued(0, 1, OpId(8));
        c.written(0, 1, OpId(7), disk, "t", 10_000);
        c
    }

    #[test]
    fn a_state_rebuilt_after_the_cut_passes_and_one_only_trimmed_fires() {
        // Seven batches appended, then the log is cut to the first four (offset 4).
        let (headers, disk) = log(7, 4);
        let mut rebuilt = ProducerStates::default();
        headers[..4].iter().for_each(|h| rebuilt.record(h));
        let c = judge(&rebuilt, &disk, 4);
        assert_eq!(c.anomalies, vec![]);
        assert_eq!((c.checked, c.skipped), (1, 0));
        // The planted bug: the state is not rebuilt, only the batches at or past the cut are
        // forgotten. The last five remembered were 2..=6; 2 and 3 are left, where the log
        // says 0..=3.
        let mut trimmed = ProducerStates::default();
        headers.iter().for_each(|h| trimmed.record(h));
        trimmed.truncate_to(4);
        let c = judge(&trimmed, &disk, 4);
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        assert_eq!(c.anomalies[0].0, "producer-state");
        assert!(c.anomalies[0].1.contains("producer 5"), "{:?}", c.anomalies);
    }

    #[test]
    fn a_check_waits_for_its_write_and_dies_with_its_process() {
        let (headers, disk) = log(7, 4);
        let mut trimmed = ProducerStates::default();
        headers.iter().for_each(|h| trimmed.record(h));
        trimmed.truncate_to(4);
        let mut c = Checks::default();
        c.issued(0, 1, OpId(7));
        c.truncated(0, 1, 0, 4, &trimmed, 50);
        // Another node's write, and an earlier one of this node: not yet.
        c.written(1, 1, OpId(7), &disk, "t", 10_000);
        c.written(0, 1, OpId(6), &disk, "t", 10_000);
        assert_eq!((c.checked, c.anomalies.len()), (0, 0));
        // The process restarted before its write landed: the check is dropped.
        c.written(0, 2, OpId(7), &disk, "t", 10_000);
        assert_eq!((c.checked, c.skipped, c.anomalies.len()), (0, 0, 0));
        // A rebuilt log that ends elsewhere is not compared.
        let c = judge(&trimmed, &disk, 5);
        assert_eq!((c.checked, c.skipped, c.anomalies.len()), (0, 1, 0));
    }
}
