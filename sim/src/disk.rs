//! A simulated disk: what a file holds in the page cache (`written`) and what is on stable
//! storage (`synced`).
//!
//! The difference between the two is the whole point. A **process crash** keeps the page cache:
//! everything written survives. A **power loss** keeps only what was synced, plus perhaps a torn,
//! garbled piece of the last unsynced write — which recovery must detect by its CRC and cut.
//!
//! Operations are executed in the order the broker emitted them (the storage contract of
//! `gregor_core::io`): each takes effect when it completes, and completion times never go
//! backwards for writes, so an effect never overtakes an earlier one. An fsync may complete after
//! later writes; when it does it makes them durable too, as a real fsync may.
//!
//! Segment index files (`<base>.index`) follow the same model: writing one first syncs its
//! segment (an fsync, with the same injected failures and the same planted lying fsync), then
//! stores the index durably, as the real driver's atomic rename does. An index is refused for a
//! segment shorter than it covers or with a failed write since its last cut.

use bytes::Bytes;
use gregor_core::io::PartitionDir;
use gregor_core::io::{StorageFault, StorageReply, StorageRequest};
use gregor_core::log::recover::{recover_partition, DirEntry, RecoveredPartition};
use gregor_core::prng::Prng;
use gregor_core::Recovered;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct SimFile {
    /// The file as a reader sees it (page cache).
    pub written: Vec<u8>,
    /// The file as it would be found after a power loss.
    pub synced: Vec<u8>,
    /// An fsync of this file failed: what was written since the last good sync is in doubt
    /// (Linux may have dropped the dirty pages; see "fsyncgate").
    pub in_doubt: bool,
    /// A write to this segment failed since it was created or last cut: its contents past the
    /// last good write are unknown, so no index may vouch for them.
    pub write_failed: bool,
}

/// Faults the disk is currently injecting.
#[derive(Clone, Debug, Default)]
pub struct DiskFaults {
    /// Appends and segment creation fail with ENOSPC.
    pub full: bool,
    /// Probability (per mille) that an fsync fails with EIO.
    pub fsync_fail_per_mille: u64,
    /// Planted bug: fsync succeeds without syncing anything.
    pub lying_fsync: bool,
}

#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    pub files: BTreeMap<String, SimFile>,
    pub faults: DiskFaults,
    /// Statistics for the summary.
    pub bytes_written: u64,
    pub syncs: u64,
    pub failed_syncs: u64,
    pub full_rejections: u64,
}

fn seg_path(file: &gregor_core::io::SegmentFile) -> String {
    format!("{}/{}", file.dir.dir_name(), file.file_name())
}

fn index_path(file: &gregor_core::io::SegmentFile) -> String {
    format!("{}/{}", file.dir.dir_name(), file.index_file_name())
}

fn time_index_path(file: &gregor_core::io::SegmentFile) -> String {
    format!("{}/{}", file.dir.dir_name(), file.time_index_file_name())
}

fn cleaned_path(file: &gregor_core::io::SegmentFile) -> String {
    format!("{}/{}", file.dir.dir_name(), file.cleaned_file_name())
}

fn swap_path(file: &gregor_core::io::SegmentFile) -> String {
    format!("{}/{}", file.dir.dir_name(), file.swap_file_name())
}

/// A file written atomically and durably (an index, a snapshot).
fn durable(data: &[u8]) -> SimFile {
    SimFile {
        written: data.to_vec(),
        synced: data.to_vec(),
        ..SimFile::default()
    }
}

const BROKER_META: &str = "broker.meta";

/// Write `data` at byte `position` of `f`'s page-cache image, growing it as needed.
fn write_at(f: &mut SimFile, position: u64, data: &[u8]) {
    let pos = position as usize;
    if f.written.len() < pos + data.len() {
        f.written.resize(pos + data.len(), 0);
    }
    f.written[pos..pos + data.len()].copy_from_slice(data);
}

/// What a write goes to, for [`SimDisk::writable`]: a full disk marks a segment's failed write
/// (its contents past the last good write are unknown) but not its index's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Segment,
    Index,
}

impl SimDisk {
    /// A full disk refuses a write that allocates (counted for the summary).
    fn refuse_if_full(&mut self) -> Result<(), StorageFault> {
        if self.faults.full {
            self.full_rejections += 1;
            return Err(StorageFault::DiskFull);
        }
        Ok(())
    }

    /// The one fault check for a write to a segment or to its index: a full disk refuses it,
    /// and the segment must exist. Returns the segment file.
    fn writable(
        &mut self,
        file: &gregor_core::io::SegmentFile,
        what: Write,
    ) -> Result<&mut SimFile, StorageFault> {
        if self.faults.full {
            self.full_rejections += 1;
            if what == Write::Segment {
                if let Some(f) = self.files.get_mut(&seg_path(file)) {
                    f.write_failed = true;
                }
            }
            return Err(StorageFault::DiskFull);
        }
        self.files
            .get_mut(&seg_path(file))
            .ok_or_else(|| StorageFault::Io(format!("{}: no such file", seg_path(file))))
    }

    /// The one fsync of a segment (a Sync, or the first step of writing its index), with the
    /// injected EIO and the planted lying fsync. A missing file syncs nothing.
    fn fsync(
        &mut self,
        file: &gregor_core::io::SegmentFile,
        prng: &mut Prng,
    ) -> Result<(), StorageFault> {
        self.syncs += 1;
        if let Some(f) = self.files.get_mut(&seg_path(file)) {
            if prng.ratio(self.faults.fsync_fail_per_mille, 1000) {
                self.failed_syncs += 1;
                f.in_doubt = true;
                return Err(StorageFault::Io("fsync: EIO (injected)".into()));
            }
            if !self.faults.lying_fsync {
                f.synced = f.written.clone();
            }
        }
        Ok(())
    }

    /// Carry out one operation now.
    pub fn exec(
        &mut self,
        req: &StorageRequest,
        prng: &mut Prng,
    ) -> Result<StorageReply, StorageFault> {
        match req {
            StorageRequest::CreatePartition { dir, meta } => {
                let f = SimFile {
                    written: meta.to_vec(),
                    synced: meta.to_vec(),
                    ..SimFile::default()
                };
                self.files
                    .insert(format!("{}/partition.meta", dir.dir_name()), f);
            }
            StorageRequest::DeletePartition { dir } => {
                let prefix = format!("{}/", dir.dir_name());
                self.files.retain(|k, _| !k.starts_with(&prefix));
            }
            StorageRequest::CreateSegment { file, header } => {
                self.refuse_if_full()?;
                let f = SimFile {
                    written: header.to_vec(),
                    synced: header.to_vec(),
                    ..SimFile::default()
                };
                self.files.insert(seg_path(file), f);
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                let f = self.writable(file, Write::Segment)?;
                write_at(f, *position, data);
                self.bytes_written += data.len() as u64;
            }
            StorageRequest::Sync { file } => {
                self.fsync(file, prng)?;
            }
            StorageRequest::Read {
                file,
                position,
                len,
            } => {
                let Some(f) = self.files.get(&seg_path(file)) else {
                    return Err(StorageFault::Io(format!(
                        "{}: no such file",
                        seg_path(file)
                    )));
                };
                let start = (*position as usize).min(f.written.len());
                let end = (start + *len as usize).min(f.written.len());
                return Ok(StorageReply::Read(Bytes::copy_from_slice(
                    &f.written[start..end],
                )));
            }
            StorageRequest::Truncate { file, len } => {
                if let Some(f) = self.files.get_mut(&seg_path(file)) {
                    f.written.truncate(*len as usize);
                    f.synced.truncate(*len as usize);
                    f.write_failed = false;
                }
            }
            StorageRequest::DeleteSegment { file } => {
                self.files.remove(&seg_path(file));
                self.files.remove(&index_path(file));
                self.files.remove(&time_index_path(file));
                self.files.remove(&cleaned_path(file));
                self.files.remove(&swap_path(file));
            }
            StorageRequest::WriteSegmentIndex {
                file,
                covers,
                index,
                time_index,
            } => {
                let f = self.writable(file, Write::Index)?;
                if f.write_failed || (f.written.len() as u64) < *covers {
                    return Err(StorageFault::Io(format!(
                        "{}: segment does not hold what the index covers",
                        seg_path(file)
                    )));
                }
                self.fsync(file, prng)?;
                self.files.insert(index_path(file), durable(index));
                self.files
                    .insert(time_index_path(file), durable(time_index));
            }
            StorageRequest::DeleteSegmentIndex { file } => {
                self.files.remove(&index_path(file));
                self.files.remove(&time_index_path(file));
            }
            StorageRequest::WriteProducerSnapshot {
                dir,
                segment,
                offset,
                data,
                delete_below,
            } => {
                let f = self.writable(segment, Write::Index)?;
                if f.write_failed {
                    return Err(StorageFault::Io(format!(
                        "{}: a write failed; no snapshot written",
                        seg_path(segment)
                    )));
                }
                self.fsync(segment, prng)?;
                let name = PartitionDir::snapshot_file_name(*offset);
                self.files
                    .insert(format!("{}/{name}", dir.dir_name()), durable(data));
                self.remove_snapshots(dir, |o| o < *delete_below);
            }
            StorageRequest::DeleteProducerSnapshots { dir, above } => {
                self.remove_snapshots(dir, |o| o > *above);
            }
            StorageRequest::WriteBrokerMeta { data } => {
                let f = SimFile {
                    written: data.to_vec(),
                    synced: data.to_vec(),
                    ..SimFile::default()
                };
                self.files.insert(BROKER_META.into(), f);
            }
            // Log compaction: the `.cleaned` file is an ordinary file (page cache, then synced
            // by the swap); a rename is durable at once here (directory entries are not
            // modelled apart from contents), so a crash between two requests leaves the
            // `.cleaned` or the `.swap` file for recovery to discard or finish.
            StorageRequest::CreateCleanedSegment { file, header } => {
                self.refuse_if_full()?;
                let mut f = SimFile::default();
                write_at(&mut f, 0, header);
                self.files.insert(cleaned_path(file), f);
            }
            StorageRequest::AppendCleanedSegment {
                file,
                position,
                data,
            } => {
                self.refuse_if_full()?;
                let f = self.files.get_mut(&cleaned_path(file)).ok_or_else(|| {
                    StorageFault::Io(format!("{}: no such file", cleaned_path(file)))
                })?;
                write_at(f, *position, data);
                self.bytes_written += data.len() as u64;
            }
            StorageRequest::SwapCleanedSegment { file } => {
                let path = cleaned_path(file);
                if !self.files.contains_key(&path) {
                    return Err(StorageFault::Io(format!("{path}: no such file")));
                }
                self.syncs += 1;
                if prng.ratio(self.faults.fsync_fail_per_mille, 1000) {
                    self.failed_syncs += 1;
                    return Err(StorageFault::Io("fsync: EIO (injected)".into()));
                }
                let mut f = self.files.remove(&path).unwrap();
                if !self.faults.lying_fsync {
                    f.synced = f.written.clone();
                }
                self.files.remove(&index_path(file));
                self.files.remove(&time_index_path(file));
                self.files.insert(swap_path(file), f);
            }
            StorageRequest::CompleteSegmentSwap { file } => {
                let f = self.files.remove(&swap_path(file)).ok_or_else(|| {
                    StorageFault::Io(format!("{}: no such file", swap_path(file)))
                })?;
                self.files.insert(seg_path(file), f);
            }
            StorageRequest::DiscardCleanedSegment { file } => {
                self.files.remove(&cleaned_path(file));
            }
        }
        Ok(StorageReply::Done)
    }

    /// The machine lost power: page-cache contents not yet synced are gone. With `torn`, a file
    /// with unsynced bytes may keep a random prefix of them, and with `flip` that prefix may have
    /// a flipped bit — garbage recovery must recognise by its CRC. Returns what was done, for
    /// the trace.
    pub fn power_loss(&mut self, prng: &mut Prng, torn: bool, flip: bool) -> Vec<String> {
        let mut notes = Vec::new();
        for (path, f) in self.files.iter_mut() {
            let mut kept = f.synced.clone();
            if torn && f.written.len() > f.synced.len() && f.written.starts_with(&f.synced) {
                let extra = f.written.len() - f.synced.len();
                let keep = prng.below(extra as u64 + 1) as usize;
                kept.extend_from_slice(&f.written[f.synced.len()..f.synced.len() + keep]);
                if flip && keep > 0 {
                    let at = f.synced.len() + prng.below(keep as u64) as usize;
                    kept[at] ^= 1 << prng.below(8);
                    notes.push(format!(
                        "{path}: torn write kept {keep} of {extra} bytes, bit flipped at {at}"
                    ));
                } else if keep > 0 {
                    notes.push(format!("{path}: torn write kept {keep} of {extra} bytes"));
                }
            }
            f.written = kept.clone();
            f.synced = kept;
            f.in_doubt = false;
        }
        notes
    }

    /// The process died but the machine did not: the page cache survives, except the pages of a
    /// file whose fsync failed, which the kernel may have dropped.
    pub fn process_crash(&mut self, prng: &mut Prng) {
        for f in self.files.values_mut() {
            if f.in_doubt && prng.ratio(1, 2) {
                f.written = f.synced.clone();
            }
            f.in_doubt = false;
        }
    }

    /// One partition directory (`topic-index`) as recovery would find it now, from the page
    /// cache, or None when there is no such directory: its segments and the idempotent
    /// producers' state rebuilt from them (the snapshot and the batches after it). The cluster
    /// world compares that state with a broker's after a truncation
    /// ([`crate::cluster::producer_state`]).
    pub fn recovered_dir(&self, dir: &str) -> Option<RecoveredPartition> {
        let prefix = format!("{dir}/");
        let entries: Vec<DirEntry> = (self.files.range(prefix.clone()..))
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, f)| DirEntry {
                name: path[prefix.len()..].to_string(),
                len: f.written.len() as u64,
            })
            .collect();
        (!entries.is_empty()).then(|| self.recover_dir(dir.to_string(), &entries))
    }

    fn recover_dir(&self, dir: String, entries: &[DirEntry]) -> RecoveredPartition {
        let meta = self
            .files
            .get(&format!("{dir}/partition.meta"))
            .map(|f| Bytes::copy_from_slice(&f.written));
        let read = |name: &str, from: u64, to: u64| {
            let f = &self.files[&format!("{dir}/{name}")];
            Ok::<_, ()>(f.written[from as usize..to as usize].to_vec())
        };
        recover_partition(dir.clone(), meta, entries, read).expect("reading memory does not fail")
    }

    /// Delete the snapshots of a partition directory whose offsets `doomed` picks.
    fn remove_snapshots(&mut self, dir: &PartitionDir, doomed: impl Fn(i64) -> bool) {
        let prefix = format!("{}/", dir.dir_name());
        self.files.retain(|path, _| {
            let Some(name) = path.strip_prefix(&prefix) else {
                return true;
            };
            let offset = name
                .strip_suffix(".snapshot")
                .and_then(|s| s.parse::<i64>().ok());
            !offset.is_some_and(&doomed)
        });
    }

    /// What a starting broker finds, read through the same recovery code the real binary runs.
    pub fn recovered(&self) -> Recovered {
        let mut dirs: BTreeMap<String, Vec<DirEntry>> = BTreeMap::new();
        let mut broker_meta = None;
        for (path, f) in &self.files {
            if path == BROKER_META {
                broker_meta = Some(Bytes::copy_from_slice(&f.written));
                continue;
            }
            let Some((dir, name)) = path.split_once('/') else {
                continue;
            };
            dirs.entry(dir.to_string()).or_default().push(DirEntry {
                name: name.to_string(),
                len: f.written.len() as u64,
            });
        }
        let partitions = dirs
            .into_iter()
            .map(|(dir, entries)| self.recover_dir(dir, &entries));
        Recovered {
            // The simulated broker never shuts down cleanly: it crashes or loses power.
            clean_shutdown: false,
            broker_meta,
            partitions: partitions.collect(),
        }
    }
}
