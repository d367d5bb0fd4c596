//! The file source's IO: stat and read the file, produce the lines, store the offsets.
//! Every decision is `gregor_connect::source::FileSource`'s.

use super::{producer_record, Context, STOP_TIMEOUT};
use crate::client::Driver;
use bytes::Bytes;
use gregor_client::{Output, ProducerRecord, RecordId};
use gregor_connect::config::ConnectorConfig;
use gregor_connect::offsets::{file_partition, offset_key, parse_file_offset};
use gregor_connect::source::{FileIo, FileOffset, FileSource, SourceOutput};
use gregor_connect::tail::{FileId, Observed};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::Duration;
use tracing::{info, warn};

/// What a produced record was, for its delivery report.
enum Sent {
    Line(u64),
    Offset,
}

/// File reads per turn before the client gets its turn (the file may be long).
const READS_PER_TURN: usize = 8;

struct Io {
    path: String,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Io {
    fn observe(&self) -> Observed {
        Observed {
            open: self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| (FileId(m.ino()), m.len())),
            at_path: std::fs::metadata(&self.path).ok().map(|m| FileId(m.ino())),
        }
    }

    /// Carry out the task's file steps; returns whether there may be more to read at once.
    fn turn(&mut self, task: &mut FileSource) -> anyhow::Result<bool> {
        for _ in 0..READS_PER_TURN {
            match task.next_io(self.observe()) {
                FileIo::Wait => return Ok(false),
                FileIo::Open => match File::open(&self.path) {
                    Ok(f) => {
                        let m = f.metadata()?;
                        let from = task.opened(FileId(m.ino()), m.len());
                        info!(path = %self.path, inode = m.ino(), from, "following the file");
                        self.file = Some(f);
                    }
                    // Gone again between the stat and the open (a rotation): next poll.
                    Err(_) => return Ok(false),
                },
                FileIo::Close => self.file = None,
                FileIo::Read { from, len } => {
                    let f = self.file.as_ref().expect("the task reads the open file");
                    self.buf.resize(len as usize, 0);
                    let n = f.read_at(&mut self.buf, from)?;
                    if n == 0 {
                        return Ok(false);
                    }
                    task.read(from, &self.buf[..n]);
                }
            }
        }
        Ok(true)
    }
}

fn now_ms(d: &Driver) -> u64 {
    d.now().unix_ms().max(0) as u64
}

pub(super) async fn run(
    ctx: Context,
    c: ConnectorConfig,
    offsets: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> anyhow::Result<()> {
    let path = c.file.clone().expect("checked by the config");
    let key = offset_key(&c.name, &file_partition(&path));
    let resume = offsets.get(&key).and_then(|v| parse_file_offset(v));
    let resume = resume.map(|(position, inode)| FileOffset { inode, position });
    if let Some(r) = resume {
        info!(connector = %c.name, position = r.position, inode = ?r.inode, "resuming at the stored offset");
    }
    let mut driver = Driver::new(ctx.client_config(&c.name))?;
    let mut task = FileSource::new(&c, ctx.offset_flush_interval_ms, resume, now_ms(&driver));
    let mut io = Io {
        path,
        file: None,
        buf: Vec::new(),
    };
    let mut sent: HashMap<RecordId, Sent> = HashMap::new();
    let mut stop = ctx.stop.clone();
    let poll = Duration::from_millis(c.poll_interval_ms);
    let mut failure = None;
    let mut stopping = false;
    let mut deadline = None;
    loop {
        let more = if stopping || failure.is_some() {
            false
        } else {
            io.turn(&mut task)?
        };
        let now = now_ms(&driver);
        task.tick(now);
        if stopping || failure.is_some() {
            task.flush(now);
        }
        failure = failure.or(carry_out(
            &mut task,
            &mut driver,
            &mut sent,
            &ctx.offset_topic,
        ));
        // A clean stop ends when everything is acknowledged and stored; a failed task when
        // every report is back (a record that failed is never acknowledged).
        if (stopping && task.settled()) || (failure.is_some() && sent.is_empty()) {
            break;
        }
        let wait = if more { Duration::ZERO } else { poll };
        tokio::select! {
            outs = driver.next() => deliveries(&mut task, outs, &mut sent),
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed(), if !stopping => stopping = true,
        }
        if stopping || failure.is_some() {
            // Finish what is in flight, bounded: a clean stop stores every acknowledged
            // offset, a failed task the offsets of what it delivered.
            let now = driver.now();
            driver.client().flush(now);
            let end = *deadline.get_or_insert(tokio::time::Instant::now() + STOP_TIMEOUT);
            if tokio::time::Instant::now() > end {
                warn!(connector = %c.name, "stopping before every record was acknowledged");
                break;
            }
        }
    }
    match failure {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

/// Send what the task asks for; returns its failure, if it failed.
fn carry_out(
    task: &mut FileSource,
    driver: &mut Driver,
    sent: &mut HashMap<RecordId, Sent>,
    offset_topic: &str,
) -> Option<String> {
    let mut failure = None;
    while let Some(o) = task.poll_output() {
        let now = driver.now();
        match o {
            SourceOutput::Produce { seq, record } => {
                let id = driver.client().send(now, producer_record(record));
                sent.insert(id, Sent::Line(seq));
            }
            SourceOutput::StoreOffset { key, value } => {
                let record = ProducerRecord {
                    topic: offset_topic.to_string(),
                    key: Some(Bytes::from(key)),
                    value: Some(Bytes::from(value)),
                    ..ProducerRecord::default()
                };
                let id = driver.client().send(now, record);
                driver.client().flush(now);
                sent.insert(id, Sent::Offset);
            }
            SourceOutput::Log {
                warn: true,
                message,
            } => warn!("{message}"),
            SourceOutput::Log {
                warn: false,
                message,
            } => info!("{message}"),
            SourceOutput::Failed(why) => failure = Some(why),
        }
    }
    failure
}

fn deliveries(task: &mut FileSource, outs: Vec<Output>, sent: &mut HashMap<RecordId, Sent>) {
    for o in outs {
        let Output::Delivered(d) = o else { continue };
        let result = d.result.map(|_| ()).map_err(|e| e.to_string());
        match sent.remove(&d.id) {
            Some(Sent::Line(seq)) => task.delivered(seq, result),
            Some(Sent::Offset) => task.offset_stored(result),
            None => {}
        }
    }
}
