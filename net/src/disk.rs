//! File-backed storage: carries out the core's [`StorageRequest`]s on real files.
//!
//! Layout under the data directory, as in Kafka:
//! ```text
//! broker.meta
//! <topic>-<partition>/partition.meta
//! <topic>-<partition>/<base offset, 20 digits>.log
//! ```
//! Requests are executed in the order the core emits them (the storage contract in
//! `gregor_core::io`). Everything is done inline on the broker task — writes land in the page
//! cache in microseconds — except `Sync`: an fsync can take milliseconds, so it runs on a
//! blocking thread while later appends go on. That is what makes group commit work: while one
//! fsync runs, new batches accumulate and the next fsync covers them all.

use bytes::Bytes;
use gregor_core::files::{parse_segment_file_name, scan_segment, RecoveredPartition};
use gregor_core::io::{PartitionDir, SegmentFile, StorageFault, StorageReply, StorageRequest};
use gregor_core::Recovered;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
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

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Write a small file atomically: temp file, fsync, rename, fsync the directory.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
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
            } => done(
                self.file(&file)
                    .and_then(|f| f.write_all_at(&data, position))
                    .map(|_| StorageReply::Done),
            ),
            StorageRequest::Sync { file } => match self.file(&file).and_then(|f| f.try_clone()) {
                Ok(f) => Executed::Sync(f),
                Err(e) => Executed::Done(Err(fault(e))),
            },
            StorageRequest::Read {
                file,
                position,
                len,
            } => done(self.file(&file).and_then(|f| {
                let mut buf = vec![0u8; len as usize];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = f.read_at(&mut buf[filled..], position + filled as u64)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(StorageReply::Read(Bytes::from(buf)))
            })),
            StorageRequest::Truncate { file, len } => done(self.file(&file).and_then(|f| {
                f.set_len(len)?;
                f.sync_all()?;
                Ok(StorageReply::Done)
            })),
            StorageRequest::DeleteSegment { file } => {
                self.open.remove(&Self::key(&file));
                let path = self.segment_path(&file);
                let dir = self.dir_path(&file.dir);
                done((|| {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                    sync_dir(&dir)?;
                    Ok(StorageReply::Done)
                })())
            }
            StorageRequest::WriteBrokerMeta { data } => {
                let root = self.root.clone();
                done(write_atomic(&root, "broker.meta", &data).map(|_| StorageReply::Done))
            }
        }
    }

    /// fsync every open segment (clean shutdown).
    pub fn sync_all(&self) {
        for f in self.open.values() {
            let _ = f.sync_data();
        }
    }
}

/// Read what is on disk at start: `broker.meta`, each partition's `partition.meta`, and every
/// segment, scanned by the core's own recovery code ([`scan_segment`]).
pub fn recover(root: &Path) -> std::io::Result<Recovered> {
    fs::create_dir_all(root)?;
    let mut recovered = Recovered::default();
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
        let mut segments = Vec::new();
        let mut names: Vec<String> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        for name in names {
            let Some(base) = parse_segment_file_name(&name) else {
                continue;
            };
            let bytes = fs::read(dir.join(&name))?;
            segments.push(scan_segment(base, &bytes));
        }
        recovered.partitions.push(RecoveredPartition {
            dir_name,
            meta,
            segments,
        });
    }
    Ok(recovered)
}
