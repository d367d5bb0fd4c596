//! The metadata log on disk: what a quorum member must never forget.
//!
//! Layout, as Kafka lays out `__cluster_metadata` in its `metadata.log.dir`:
//! ```text
//! __cluster_metadata-0/quorum-state                          epoch, vote, leader
//! __cluster_metadata-0/<log start, 20 digits>.log            the log: v2 record batches
//! __cluster_metadata-0/<end offset, 20 digits>-<epoch, 10 digits>.checkpoint   snapshots
//! ```
//! The log file holds Kafka's own frames, one record batch per entry, encoded as on the wire
//! ([`gregor_core::raft::wire`]): each batch carries its length and a CRC-32C. `quorum-state`
//! and the checkpoints are gregor's own frames: a version byte, a CRC-32C of the body and the
//! body (Kafka writes JSON and record batches there; gregor keeps them small and checked).
//!
//! Safety properties, and how they are kept:
//! * **Every write is durable before the next output is performed** (the calling contract of
//!   [`gregor_core::raft`]): each method returns only after `fsync` (of the file, and of the
//!   directory when a file was created, renamed or removed). A vote is on disk before the
//!   VoteResponse that reports it leaves; an entry is on disk before the fetch that counts it.
//! * **Small files are replaced atomically** (write a temp file, fsync, rename, fsync the
//!   directory), so `quorum-state` and a checkpoint are either the old or the new one.
//! * **A torn tail is cut at start**: a crash mid-append leaves a batch cut short or failing
//!   its CRC at the end of the log; recovery keeps the batches before it and truncates the
//!   file there, saying so in the log. Those entries were never acknowledged (their fsync never
//!   returned), so dropping them is what Raft expects of an uncommitted suffix.
//! * **The log starts where the latest snapshot ends**: a snapshot is durable before the log
//!   behind it is dropped, so a crash in between leaves entries the snapshot already covers,
//!   which recovery skips.

use crate::disk::{sync_dir, write_atomic};
use bytes::Bytes;
use gregor_core::raft::wire::{encode_entries, read_batch};
use gregor_core::raft::{Entry, Epoch, NodeId, QuorumState, Snapshot, SnapshotId};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// The directory of the metadata log's one partition.
pub const PARTITION_DIR: &str = "__cluster_metadata-0";
const QUORUM_STATE: &str = "quorum-state";
/// The version byte of gregor's own frames here (`quorum-state`, checkpoints).
const FRAME_VERSION: u8 = 1;
/// A checkpoint larger than this is refused as corrupt (the metadata image is kilobytes).
const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

/// What a restarted node hands to `RaftNode::restore`.
pub struct Recovered {
    pub state: QuorumState,
    pub snapshot: Option<Snapshot>,
    /// The entries from the snapshot's end (or 0) on.
    pub entries: Vec<Entry>,
}

pub struct Storage {
    dir: PathBuf,
    /// The offset of the log's first entry, the base offset in its file name.
    start: i64,
    file: File,
    /// `positions[i]`: where entry `start + i` begins in the file; `len` is the file's end.
    positions: Vec<u64>,
    len: u64,
}

/// gregor's frame: version, CRC-32C (little-endian) of the body, the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(FRAME_VERSION);
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn unframe<'a>(what: &str, bytes: &'a [u8]) -> anyhow::Result<&'a [u8]> {
    anyhow::ensure!(bytes.len() >= 5, "{what}: {} bytes, too short", bytes.len());
    anyhow::ensure!(
        bytes[0] == FRAME_VERSION,
        "{what}: version {} unknown",
        bytes[0]
    );
    let stored = u32::from_le_bytes(bytes[1..5].try_into().expect("four bytes"));
    let computed = crc32c::crc32c(&bytes[5..]);
    anyhow::ensure!(
        stored == computed,
        "{what}: checksum {stored:#010x}, computed {computed:#010x}"
    );
    Ok(&bytes[5..])
}

fn encode_state(s: &QuorumState) -> Vec<u8> {
    let mut body = Vec::with_capacity(12);
    body.extend_from_slice(&s.epoch.0.to_be_bytes());
    body.extend_from_slice(&s.voted_for.map_or(-1, |n| n.0).to_be_bytes());
    body.extend_from_slice(&s.leader.map_or(-1, |n| n.0).to_be_bytes());
    frame(&body)
}

fn decode_state(bytes: &[u8]) -> anyhow::Result<QuorumState> {
    let body = unframe(QUORUM_STATE, bytes)?;
    anyhow::ensure!(
        body.len() == 12,
        "{QUORUM_STATE}: body of {} bytes",
        body.len()
    );
    let at = |i: usize| i32::from_be_bytes(body[i..i + 4].try_into().expect("four bytes"));
    let node = |v: i32| (v >= 0).then_some(NodeId(v));
    anyhow::ensure!(at(0) >= 0, "{QUORUM_STATE}: epoch {}", at(0));
    Ok(QuorumState {
        epoch: Epoch(at(0)),
        voted_for: node(at(4)),
        leader: node(at(8)),
    })
}

fn log_name(start: i64) -> String {
    format!("{start:020}.log")
}

/// Kafka's snapshot file name: `<endOffset>-<epoch>.checkpoint`, zero-padded.
pub fn checkpoint_name(id: SnapshotId) -> String {
    format!("{:020}-{:010}.checkpoint", id.end_offset, id.epoch.0)
}

fn parse_checkpoint_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(".checkpoint")?;
    let (end, epoch) = stem.split_once('-')?;
    Some(SnapshotId {
        end_offset: end.parse().ok().filter(|o: &i64| *o >= 0)?,
        epoch: Epoch(epoch.parse().ok().filter(|e: &i32| *e >= 0)?),
    })
}

impl Storage {
    /// Open (creating if needed) the metadata log under `root`, recover it, and return what
    /// the node restores from.
    pub fn open(root: &Path) -> anyhow::Result<(Storage, Recovered)> {
        let dir = root.join(PARTITION_DIR);
        fs::create_dir_all(&dir)?;
        sync_dir(root)?;
        let state = match fs::read(dir.join(QUORUM_STATE)) {
            Ok(b) => decode_state(&b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => QuorumState::default(),
            Err(e) => return Err(e.into()),
        };
        let mut checkpoints = Vec::new();
        let mut logs = Vec::new();
        for e in fs::read_dir(&dir)? {
            let name = e?.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                // A replacement that never reached its rename.
                fs::remove_file(dir.join(&name))?;
            } else if let Some(id) = parse_checkpoint_name(&name) {
                checkpoints.push(id);
            } else if let Some(start) = name
                .strip_suffix(".log")
                .and_then(|s| s.parse::<i64>().ok())
            {
                logs.push(start);
            }
        }
        checkpoints.sort();
        let snapshot = match checkpoints.last() {
            Some(id) => Some(read_checkpoint(&dir, *id)?),
            None => None,
        };
        let snapshot_end = snapshot.as_ref().map_or(0, |s| s.id.end_offset);
        // After a crash between writing a new log file and removing the old one, both are
        // there: the newest is the one that counts.
        logs.sort();
        let start = logs.last().copied().unwrap_or(snapshot_end);
        for old in &logs[..logs.len().saturating_sub(1)] {
            info!(file = %log_name(*old), "removing a metadata log file replaced before a crash");
            fs::remove_file(dir.join(log_name(*old)))?;
        }
        anyhow::ensure!(
            start <= snapshot_end,
            "the metadata log starts at {start}, after the latest snapshot's end {snapshot_end}: entries are missing"
        );
        let path = dir.join(log_name(start));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let bytes = fs::read(&path)?;
        let mut positions = Vec::new();
        let mut entries = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let expected = start + positions.len() as i64;
            match read_batch(&bytes[at..]) {
                Ok((base, mut es, size)) if base == expected && es.len() == 1 => {
                    positions.push(at as u64);
                    entries.push(es.pop().expect("one entry"));
                    at += size;
                }
                other => {
                    let why = match other {
                        Err(e) => e.to_string(),
                        Ok((base, es, _)) => {
                            format!(
                                "a batch of {} at offset {base}, expected one at {expected}",
                                es.len()
                            )
                        }
                    };
                    warn!(
                        file = %path.display(),
                        position = at,
                        dropped_bytes = bytes.len() - at,
                        "truncating the metadata log's torn tail: {why}"
                    );
                    file.set_len(at as u64)?;
                    file.sync_all()?;
                    break;
                }
            }
        }
        let len = at as u64;
        let mut storage = Storage {
            dir,
            start,
            file,
            positions,
            len,
        };
        // Entries the snapshot covers (a crash came between the snapshot and the log's cut):
        // the node wants the log from the snapshot's end on.
        let skip = (snapshot_end - start) as usize;
        let entries: Vec<Entry> = entries.into_iter().skip(skip).collect();
        if skip > 0 {
            storage.restart_log(snapshot_end, &entries)?;
        }
        info!(
            log_start = storage.start,
            log_end = storage.end(),
            epoch = state.epoch.0,
            snapshot = ?snapshot.as_ref().map(|s| s.id),
            "metadata log recovered"
        );
        Ok((
            storage,
            Recovered {
                state,
                snapshot,
                entries,
            },
        ))
    }

    pub fn end(&self) -> i64 {
        self.start + self.positions.len() as i64
    }

    pub fn save_quorum_state(&mut self, s: &QuorumState) -> std::io::Result<()> {
        write_atomic(&self.dir, QUORUM_STATE, &encode_state(s))
    }

    /// Append `entries` at `base_offset`, the log's end, durably.
    pub fn append(&mut self, base_offset: i64, entries: &[Entry]) -> std::io::Result<()> {
        assert_eq!(base_offset, self.end(), "appends go at the log's end");
        let mut buf = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            self.positions.push(self.len + buf.len() as u64);
            let batch = encode_entries(base_offset + i as i64, std::slice::from_ref(e));
            buf.extend_from_slice(&batch);
        }
        self.file.write_all_at(&buf, self.len)?;
        self.len += buf.len() as u64;
        self.file.sync_data()
    }

    /// Remove every entry at or above `end_offset`, durably.
    pub fn truncate(&mut self, end_offset: i64) -> std::io::Result<()> {
        assert!(
            end_offset >= self.start,
            "truncation stays above the log start"
        );
        if end_offset >= self.end() {
            return Ok(());
        }
        let keep = (end_offset - self.start) as usize;
        self.len = self.positions[keep];
        self.positions.truncate(keep);
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }

    /// Store a snapshot durably, then drop the log below its end (keeping what follows, or
    /// nothing when `keep_rest` is false: an installed snapshot replaces the whole log).
    pub fn save_snapshot(&mut self, s: &Snapshot, keep_rest: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            s.data.len() as u64 <= SNAPSHOT_BYTES_MAX,
            "snapshot of {} bytes",
            s.data.len()
        );
        let mut body = Vec::with_capacity(20 + s.data.len());
        body.extend_from_slice(&s.id.end_offset.to_be_bytes());
        body.extend_from_slice(&s.id.epoch.0.to_be_bytes());
        body.extend_from_slice(&s.data);
        write_atomic(&self.dir, &checkpoint_name(s.id), &frame(&body))?;
        let rest = if keep_rest && s.id.end_offset < self.end() {
            self.read_entries(s.id.end_offset.max(self.start))?
        } else {
            Vec::new()
        };
        self.restart_log(s.id.end_offset, &rest)?;
        // Older checkpoints are no longer needed: the log starts after them.
        for e in fs::read_dir(&self.dir)? {
            let name = e?.file_name().to_string_lossy().to_string();
            if parse_checkpoint_name(&name).is_some_and(|id| id < s.id) {
                fs::remove_file(self.dir.join(name))?;
            }
        }
        sync_dir(&self.dir)?;
        info!(
            end_offset = s.id.end_offset,
            epoch = s.id.epoch.0,
            "metadata snapshot saved"
        );
        Ok(())
    }

    fn read_entries(&self, from: i64) -> anyhow::Result<Vec<Entry>> {
        let at = self.positions[(from - self.start) as usize];
        let mut buf = vec![0u8; (self.len - at) as usize];
        self.file.read_exact_at(&mut buf, at)?;
        Ok(gregor_core::raft::wire::decode_entries(&buf, from)?)
    }

    /// Replace the log file by one starting at `start` holding `entries`.
    fn restart_log(&mut self, start: i64, entries: &[Entry]) -> std::io::Result<()> {
        let old = self.dir.join(log_name(self.start));
        let name = log_name(start);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut positions = Vec::with_capacity(entries.len());
        let mut buf = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            positions.push(buf.len() as u64);
            buf.extend_from_slice(&encode_entries(start + i as i64, std::slice::from_ref(e)));
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(&name))?;
        sync_dir(&self.dir)?;
        if old != self.dir.join(&name) {
            fs::remove_file(&old)?;
            sync_dir(&self.dir)?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(&name))?;
        self.start = start;
        self.positions = positions;
        self.len = buf.len() as u64;
        Ok(())
    }
}

fn read_checkpoint(dir: &Path, id: SnapshotId) -> anyhow::Result<Snapshot> {
    let name = checkpoint_name(id);
    let bytes = fs::read(dir.join(&name))?;
    let body = unframe(&name, &bytes)?;
    anyhow::ensure!(body.len() >= 12, "{name}: body cut short");
    let end = i64::from_be_bytes(body[0..8].try_into().expect("eight bytes"));
    let epoch = i32::from_be_bytes(body[8..12].try_into().expect("four bytes"));
    anyhow::ensure!(
        end == id.end_offset && epoch == id.epoch.0,
        "{name}: holds snapshot {end}-{epoch}"
    );
    Ok(Snapshot {
        id,
        data: Bytes::copy_from_slice(&body[12..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::raft::Record;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gregor-quorum-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn data(epoch: i32, s: &str) -> Entry {
        Entry {
            epoch: Epoch(epoch),
            record: Record::Data(Bytes::copy_from_slice(s.as_bytes())),
        }
    }

    #[test]
    fn state_log_and_snapshot_survive_a_restart_and_a_torn_tail_is_cut() {
        let root = dir("restart");
        let (mut s, r) = Storage::open(&root).unwrap();
        assert_eq!(r.state, QuorumState::default());
        assert!(r.entries.is_empty() && r.snapshot.is_none());
        let state = QuorumState {
            epoch: Epoch(2),
            voted_for: Some(NodeId(1)),
            leader: Some(NodeId(1)),
        };
        s.save_quorum_state(&state).unwrap();
        let leader_change = Entry {
            epoch: Epoch(2),
            record: Record::LeaderChange { leader: NodeId(1) },
        };
        let es = vec![leader_change, data(2, "a"), data(2, "b"), data(2, "c")];
        s.append(0, &es).unwrap();
        s.truncate(3).unwrap();
        s.append(3, &[data(2, "d")]).unwrap();
        drop(s);

        // A torn write: half a batch at the end.
        let log = root.join(PARTITION_DIR).join(log_name(0));
        let whole = fs::metadata(&log).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&encode_entries(4, &[data(2, "e")])[..30])
            .unwrap();
        drop(f);

        let (mut s, r) = Storage::open(&root).unwrap();
        assert_eq!(r.state, state);
        let want = vec![es[0].clone(), data(2, "a"), data(2, "b"), data(2, "d")];
        assert_eq!(r.entries, want);
        assert_eq!(
            fs::metadata(&log).unwrap().len(),
            whole,
            "the torn tail is cut"
        );

        // A snapshot at 2 keeps entries 2 and 3 in a log that now starts at 2.
        let snap = Snapshot {
            id: SnapshotId {
                end_offset: 2,
                epoch: Epoch(2),
            },
            data: Bytes::from_static(b"image"),
        };
        s.save_snapshot(&snap, true).unwrap();
        assert_eq!(s.end(), 4);
        drop(s);
        let (s, r) = Storage::open(&root).unwrap();
        assert_eq!(r.snapshot, Some(snap));
        assert_eq!(r.entries, want[2..].to_vec());
        assert!(root
            .join(PARTITION_DIR)
            .join("00000000000000000002-0000000002.checkpoint")
            .exists());
        assert_eq!(s.end(), 4);

        // A damaged quorum-state is refused, not guessed at.
        let qs = root.join(PARTITION_DIR).join(QUORUM_STATE);
        let mut b = fs::read(&qs).unwrap();
        b[6] ^= 1;
        fs::write(&qs, b).unwrap();
        assert!(Storage::open(&root).is_err());
        let _ = fs::remove_dir_all(&root);
    }
}
