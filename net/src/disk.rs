//! File-backed storage: carries out the core's [`StorageRequest`]s on real files.
//!
//! Layout under the data directory, as in Kafka:
//! ```text
//! broker.meta
//! <topic>-<partition>/partition.meta
//! <topic>-<partition>/<base offset, 20 digits>.log
//! <topic>-<partition>/<base offset, 20 digits>.index       (sparse offset index)
//! <topic>-<partition>/<base offset, 20 digits>.timeindex   (sparse time index)
//! <topic>-<partition>/<offset, 20 digits>.snapshot         (producer state)
//! .kafka_cleanshutdown              (between a clean shutdown and the next start)
//! ```
//! Requests are executed in the order the core emits them (the storage contract in
//! `gregor_core::io`). Everything is done inline on the broker task — writes land in the page
//! cache in microseconds — except `Sync`: an fsync can take milliseconds, so it runs on a
//! blocking thread while later appends go on. That is what makes group commit work: while one
//! fsync runs, new batches accumulate and the next fsync covers them all.

use bytes::Bytes;
use gregor_core::files::CLEAN_SHUTDOWN_FILE;
use gregor_core::io::{PartitionDir, SegmentFile, StorageFault, StorageReply, StorageRequest};
use gregor_core::log::recover::{recover_partition, DirEntry};
use gregor_core::Recovered;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub type StorageResult = Result<StorageReply, StorageFault>;

/// What executing a request produced: a result now, or an fsync to run on a blocking thread.
pub enum Executed {
    Done(StorageResult),
    Sync(File),
}

pub struct Disk {
    root: PathBuf,
    open: HashMap<(String, i64), File>,
    /// Segments with a failed write since they were created or last cut: no index may vouch
    /// for their contents (a partial write may have left a torn batch inside what it covers).
    failed: HashSet<(String, i64)>,
}

/// Turn an I/O error into the core's fault type; a full disk is its own kind
/// (it becomes KAFKA_STORAGE_ERROR for the producer, and the log is cut back cleanly).
pub fn fault(e: std::io::Error) -> StorageFault {
    if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull {
        StorageFault::DiskFull
    } else {
        StorageFault::Io(e.to_string())
    }
}

pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Write a small file atomically: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

impl Disk {
    pub fn open(root: &Path) -> std::io::Result<Disk> {
        fs::create_dir_all(root)?;
        Ok(Disk {
            root: root.to_path_buf(),
            open: HashMap::new(),
            failed: HashSet::new(),
        })
    }

    fn dir_path(&self, dir: &PartitionDir) -> PathBuf {
        self.root.join(dir.dir_name())
    }

    fn segment_path(&self, file: &SegmentFile) -> PathBuf {
        self.dir_path(&file.dir).join(file.file_name())
    }

    fn key(file: &SegmentFile) -> (String, i64) {
        (file.dir.dir_name(), file.base_offset)
    }

    fn file(&mut self, file: &SegmentFile) -> std::io::Result<&File> {
        let key = Self::key(file);
        if !self.open.contains_key(&key) {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.segment_path(file))?;
            self.open.insert(key.clone(), f);
        }
        Ok(&self.open[&key])
    }

    /// Carry out one request.
    pub fn execute(&mut self, request: StorageRequest) -> Executed {
        let done = |r: std::io::Result<StorageReply>| Executed::Done(r.map_err(fault));
        match request {
            StorageRequest::CreatePartition { dir, meta } => {
                let path = self.dir_path(&dir);
                done((|| {
                    fs::create_dir_all(&path)?;
                    write_atomic(&path, "partition.meta", &meta)?;
                    sync_dir(&self.root)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::DeletePartition { dir } => {
                let name = dir.dir_name();
                self.open.retain(|(d, _), _| *d != name);
                let path = self.dir_path(&dir);
                done((|| {
                    if path.exists() {
                        fs::remove_dir_all(&path)?;
                        sync_dir(&self.root)?;
                    }
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::CreateSegment { file, header } => {
                self.open.remove(&Self::key(&file));
                self.failed.remove(&Self::key(&file));
                let path = self.segment_path(&file);
                let dir = self.dir_path(&file.dir);
                let r = (|| {
                    let mut f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)?;
                    f.write_all(&header)?;
                    f.sync_all()?;
                    sync_dir(&dir)?;
                    Ok(f)
                })();
                match r {
                    Ok(f) => {
                        self.open.insert(Self::key(&file), f);
                        Executed::Done(Ok(StorageReply::Done))
                    }
                    Err(e) => Executed::Done(Err(fault(e))),
                }
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                let r = self
                    .file(&file)
                    .and_then(|f| f.write_all_at(&data, position));
                if r.is_err() {
                    self.failed.insert(Self::key(&file));
                }
                done(r.map(|_| StorageReply::Done))
            }
            StorageRequest::Sync { file } => match self.file(&file).and_then(|f| f.try_clone()) {
                Ok(f) => Executed::Sync(f),
                Err(e) => Executed::Done(Err(fault(e))),
            },
            StorageRequest::Read {
                file,
                position,
                len,
            } => done(self.file(&file).and_then(|mut f| {
                // Into capacity that is not zeroed first: `read_to_end` reads a file straight
                // into a vector's spare room. The file's own offset is free to move: every
                // write is positional (`write_all_at`), and only reads seek.
                let mut buf = Vec::with_capacity(len as usize);
                f.seek(SeekFrom::Start(position))?;
                f.take(len as u64).read_to_end(&mut buf)?;
                assert!(buf.len() <= len as usize);
                Ok(StorageReply::Read(Bytes::from(buf)))
            })),
            StorageRequest::Truncate { file, len } => {
                let r = self.file(&file).and_then(|f| {
                    f.set_len(len)?;
                    f.sync_all()
                });
                if r.is_ok() {
                    self.failed.remove(&Self::key(&file));
                }
                done(r.map(|_| StorageReply::Done))
            }
            StorageRequest::DeleteSegment { file } => {
                self.open.remove(&Self::key(&file));
                self.failed.remove(&Self::key(&file));
                let path = self.segment_path(&file);
                let index = self.dir_path(&file.dir).join(file.index_file_name());
                let time_index = self.dir_path(&file.dir).join(file.time_index_file_name());
                let dir = self.dir_path(&file.dir);
                let cleaned = dir.join(file.cleaned_file_name());
                let swap = dir.join(file.swap_file_name());
                done((|| {
                    remove_if_present(&path)?;
                    remove_if_present(&index)?;
                    remove_if_present(&time_index)?;
                    remove_if_present(&cleaned)?;
                    remove_if_present(&swap)?;
                    sync_dir(&dir)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::WriteSegmentIndex {
                file,
                covers,
                index,
                time_index,
            } => {
                if self.failed.contains(&Self::key(&file)) {
                    return Executed::Done(Err(StorageFault::Io(format!(
                        "{}: a write failed since the segment was last cut; no index written",
                        file.file_name()
                    ))));
                }
                let dir = self.dir_path(&file.dir);
                let name = file.index_file_name();
                // The segment is made durable before the index that vouches for it. This fsync
                // runs inline, on the broker task, and that is a choice, not an oversight: an
                // index write has an effect on the file system (the renamed file) that a later
                // request may undo (a cut's DeleteSegmentIndex, a DeleteSegment), and the
                // storage contract says no effect overtakes an earlier one. Run on a blocking
                // thread, it could land after the deletion emitted behind it and resurrect a
                // stale index. (A plain Sync may run off the task because it changes no file's
                // contents.) Doing it off the task needs a per-segment queue that holds later
                // index and cut requests of that segment until the write is done; it happens
                // once per roll, per INDEX_CHECKPOINT_BYTES and at shutdown, not per request.
                done(self.file(&file).and_then(|f| {
                    let len = f.metadata()?.len();
                    if len < covers {
                        return Err(std::io::Error::other(format!(
                            "segment holds {len} bytes, the index covers {covers}"
                        )));
                    }
                    f.sync_data()?;
                    write_atomic(&dir, &name, &index)?;
                    write_atomic(&dir, &file.time_index_file_name(), &time_index)?;
                    Ok(StorageReply::Done)
                }))
            }
            StorageRequest::DeleteSegmentIndex { file } => {
                let dir = self.dir_path(&file.dir);
                let path = dir.join(file.index_file_name());
                let time_path = dir.join(file.time_index_file_name());
                done((|| {
                    remove_if_present(&path)?;
                    remove_if_present(&time_path)?;
                    sync_dir(&dir)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::WriteProducerSnapshot {
                dir,
                segment,
                offset,
                data,
                delete_below,
            } => {
                if self.failed.contains(&Self::key(&segment)) {
                    return Executed::Done(Err(StorageFault::Io(format!(
                        "{}: a write failed since the segment was last cut; no snapshot written",
                        segment.file_name()
                    ))));
                }
                let path = self.dir_path(&dir);
                // As for an index: the batches the snapshot covers are made durable first, and
                // inline, so a later deletion emitted behind it cannot be overtaken.
                done(self.file(&segment).and_then(|f| {
                    f.sync_data()?;
                    write_atomic(&path, &PartitionDir::snapshot_file_name(offset), &data)?;
                    remove_snapshots(&path, |o| o < delete_below)?;
                    Ok(StorageReply::Done)
                }))
            }
            StorageRequest::DeleteProducerSnapshots { dir, above } => {
                let path = self.dir_path(&dir);
                done(remove_snapshots(&path, |o| o > above).map(|_| StorageReply::Done))
            }
            StorageRequest::WriteBrokerMeta { data } => {
                let root = self.root.clone();
                done(write_atomic(&root, "broker.meta", &data).map(|_| StorageReply::Done))
            }
            StorageRequest::CreateCleanedSegment { file, header } => {
                let path = self.dir_path(&file.dir).join(file.cleaned_file_name());
                done((|| {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)?;
                    f.write_all(&header)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::AppendCleanedSegment {
                file,
                position,
                data,
            } => {
                let path = self.dir_path(&file.dir).join(file.cleaned_file_name());
                done((|| {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .write_all_at(&data, position)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::SwapCleanedSegment { file } => {
                let dir = self.dir_path(&file.dir);
                done((|| {
                    File::open(dir.join(file.cleaned_file_name()))?.sync_all()?;
                    remove_if_present(&dir.join(file.index_file_name()))?;
                    remove_if_present(&dir.join(file.time_index_file_name()))?;
                    sync_dir(&dir)?;
                    fs::rename(
                        dir.join(file.cleaned_file_name()),
                        dir.join(file.swap_file_name()),
                    )?;
                    sync_dir(&dir)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::CompleteSegmentSwap { file } => {
                // The open handle is the old file's: later reads must open the new one.
                self.open.remove(&Self::key(&file));
                self.failed.remove(&Self::key(&file));
                let dir = self.dir_path(&file.dir);
                done((|| {
                    fs::rename(dir.join(file.swap_file_name()), self.segment_path(&file))?;
                    sync_dir(&dir)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::DiscardCleanedSegment { file } => {
                let dir = self.dir_path(&file.dir);
                done((|| {
                    remove_if_present(&dir.join(file.cleaned_file_name()))?;
                    sync_dir(&dir)?;
                    Ok(StorageReply::Done)
                })())
            }
        }
    }

    /// Clean shutdown: carry out the core's final requests (the active segments' index files,
    /// from `Broker::clean_shutdown_requests`), fsync every open segment, and, if all of it
    /// worked, leave the clean-shutdown marker. Returns what failed, for the operator's log.
    pub fn clean_shutdown(&mut self, requests: Vec<StorageRequest>) -> Vec<String> {
        let mut failures = Vec::new();
        for request in requests {
            let what = format!("{request:?}").chars().take(120).collect::<String>();
            let result = match self.execute(request) {
                Executed::Done(r) => r.map(|_| ()),
                Executed::Sync(f) => f.sync_data().map_err(fault),
            };
            if let Err(e) = result {
                failures.push(format!("{what}: {e}"));
            }
        }
        for f in self.open.values() {
            if let Err(e) = f.sync_data() {
                failures.push(format!("fsync at shutdown: {e}"));
            }
        }
        if failures.is_empty() {
            if let Err(e) = write_atomic(&self.root, CLEAN_SHUTDOWN_FILE, b"") {
                failures.push(format!("clean-shutdown marker: {e}"));
            }
        }
        failures
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete, durably, the producer snapshots of a directory whose offsets `doomed` picks.
fn remove_snapshots(dir: &Path, doomed: impl Fn(i64) -> bool) -> std::io::Result<()> {
    let mut removed = false;
    for e in fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().to_string();
        let offset = name
            .strip_suffix(".snapshot")
            .and_then(|s| s.parse::<i64>().ok());
        if offset.is_some_and(&doomed) {
            remove_if_present(&dir.join(&name))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Read bytes `from..to` of a file.
fn read_range(path: &Path, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut buf = vec![0u8; (to - from) as usize];
    f.read_exact_at(&mut buf, from)?;
    Ok(buf)
}

/// Read what is on disk at start: the clean-shutdown marker (removed), `broker.meta`, each
/// partition's `partition.meta`, and every partition directory, recovered by the core's own
/// code ([`recover_partition`]): segments from their index files where those are valid, reading
/// only the tail past what they cover, and producer state from the newest valid snapshot.
pub fn recover(root: &Path) -> std::io::Result<Recovered> {
    fs::create_dir_all(root)?;
    let mut recovered = Recovered::default();
    let marker = root.join(CLEAN_SHUTDOWN_FILE);
    if marker.exists() {
        // Removed before anything else happens: a crash from here on is not a clean shutdown.
        fs::remove_file(&marker)?;
        sync_dir(root)?;
        recovered.clean_shutdown = true;
    }
    match fs::read(root.join("broker.meta")) {
        Ok(b) => recovered.broker_meta = Some(Bytes::from(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let dir_name = dir.file_name().unwrap().to_string_lossy().to_string();
        let meta = match fs::read(dir.join("partition.meta")) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type()?.is_file() && !name.ends_with(".tmp") {
                entries.push(DirEntry {
                    name,
                    len: e.metadata()?.len(),
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let part = recover_partition(dir_name, meta, &entries, |name, from, to| {
            read_range(&dir.join(name), from, to)
        })?;
        recovered.partitions.push(part);
    }
    let scans = recovered.partitions.iter().flat_map(|p| &p.segments);
    let from_index: u64 = scans.map(|s| s.indexed_len).sum();
    let read: u64 = recovered
        .partitions
        .iter()
        .map(|p| p.segment_bytes_read)
        .sum();
    tracing::info!(
        clean_shutdown = recovered.clean_shutdown,
        bytes_from_index = from_index,
        bytes_read = read,
        "recovery read {read} bytes of segment data; index files vouched for {from_index}"
    );
    Ok(recovered)
}
