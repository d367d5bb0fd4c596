//! The source tasks: the file source (Kafka's `FileStreamSourceTask`, following the file as
//! `tail -F`) and the syslog source, as state machines.
//!
//! The driver asks [`FileSource::next_io`] what to do with the file, carries it out, and hands
//! back what happened ([`FileSource::opened`], [`FileSource::read`]); it produces the records
//! of every [`SourceOutput::Produce`] and reports each acknowledgement
//! ([`FileSource::delivered`]); it writes every [`SourceOutput::StoreOffset`] to the offsets
//! topic and reports when it is written ([`FileSource::offset_stored`]). Time comes in with
//! [`FileSource::tick`].
//!
//! Delivery is at least once: an offset is stored only after every record before it is
//! acknowledged ([`crate::offsets::Pending`]), so a worker killed at any moment restarts at or
//! before the first record not yet acknowledged. A clean stop ([`FileSource::flush`]) waits for
//! the acknowledgements and stores the last offset, so the next start repeats nothing.

use crate::config::{ConnectorConfig, KeyField};
use crate::convert::{Converter, Data};
use crate::errors::{ErrorPolicy, Handling};
use crate::lines::{LineSplitter, Piece};
use crate::offsets::{file_offset, file_partition, offset_key, Pending, Seq};
use crate::syslog;
use crate::tail::{FileId, Observed, Resume, Step, Tail};
use std::collections::VecDeque;

/// A record for the producer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What a source task asks of its driver, or tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceOutput {
    /// Produce this record; report its acknowledgement with `seq`.
    Produce {
        seq: Seq,
        record: Record,
    },
    /// Write this offset record to the offsets topic; report with `offset_stored`.
    StoreOffset {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Log {
        warn: bool,
        message: String,
    },
    /// The task stopped for good (`errors.tolerance=none`, or a record could not be delivered).
    Failed(String),
}

/// The file source's offset: which file (inode), and the byte position after the last line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOffset {
    pub inode: Option<u64>,
    pub position: u64,
}

/// What the driver does with the file next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileIo {
    /// Open the path and report with [`FileSource::opened`].
    Open,
    /// Read up to `len` bytes from `from` and report with [`FileSource::read`].
    Read { from: u64, len: u64 },
    /// Close the open file (it was rotated away and is read to its end).
    Close,
    /// Nothing to do until the next poll.
    Wait,
}

/// Records produced but not acknowledged before the source stops reading (backpressure). Kept
/// small: the client's producer walks its queue on every send, so a deep queue costs per record
/// (50,000 here made the source 4x slower than `gregor produce`; docs/connect.md).
const UNACKNOWLEDGED_MAX: usize = 2_000;
/// The largest read asked for at once.
const READ_BYTES_MAX: u64 = 64 << 10;

pub struct FileSource {
    name: String,
    topic: String,
    path: String,
    converter: Converter,
    errors: ErrorPolicy,
    tail: Tail,
    lines: LineSplitter,
    pending: Pending<FileOffset>,
    /// The acknowledged offset not stored yet.
    ready: Option<FileOffset>,
    storing: bool,
    flush_interval_ms: u64,
    last_store_ms: u64,
    failed: bool,
    out: VecDeque<SourceOutput>,
}

impl FileSource {
    /// A task for `cfg` (a file source), resuming at `resume` (from the offsets topic).
    pub fn new(
        cfg: &ConnectorConfig,
        flush_interval_ms: u64,
        resume: Option<FileOffset>,
        now_ms: u64,
    ) -> FileSource {
        let path = cfg
            .file
            .clone()
            .expect("a file source's config names its file");
        let resume = resume.map(|o| Resume {
            file: o.inode.map(FileId),
            position: o.position,
        });
        FileSource {
            name: cfg.name.clone(),
            topic: cfg
                .topic
                .clone()
                .expect("a file source's config names its topic"),
            path,
            converter: cfg.value_converter,
            errors: cfg.errors.clone(),
            tail: Tail::new(READ_BYTES_MAX, resume),
            lines: LineSplitter::new(cfg.line_bytes_max, 0),
            pending: Pending::default(),
            ready: None,
            storing: false,
            flush_interval_ms,
            last_store_ms: now_ms,
            failed: false,
            out: VecDeque::new(),
        }
    }

    pub fn poll_output(&mut self) -> Option<SourceOutput> {
        self.out.pop_front()
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The key of this source's offset record.
    pub fn offset_key(&self) -> Vec<u8> {
        offset_key(&self.name, &file_partition(&self.path))
    }

    /// What to do next, given what the driver sees of the files.
    pub fn next_io(&mut self, seen: Observed) -> FileIo {
        if self.failed || self.pending.unacknowledged() >= UNACKNOWLEDGED_MAX {
            return FileIo::Wait;
        }
        match self.tail.step(seen, self.lines.position()) {
            Step::Open => FileIo::Open,
            Step::Read { from, len } => FileIo::Read { from, len },
            Step::Wait => FileIo::Wait,
            Step::Truncated { was, now } => {
                self.log(
                    true,
                    format!(
                        "{} was truncated (now {now} bytes, {was} read): reading it again from 0",
                        self.path
                    ),
                );
                self.lines.reset(0);
                self.next_io(seen)
            }
            Step::Rotated => {
                let inode = seen.open.map(|(id, _)| id.0);
                if let Some(p) = self.lines.finish() {
                    self.piece(p, inode);
                }
                self.log(
                    false,
                    format!("{} was rotated: following the new file", self.path),
                );
                FileIo::Close
            }
        }
    }

    /// The driver opened the path: file `id`, `len` bytes. Returns where to read from.
    pub fn opened(&mut self, id: FileId, len: u64) -> u64 {
        let (position, log) = self.tail.opened(id, len);
        if let Some(l) = log {
            self.log(true, format!("{}: {l}", self.path));
        }
        self.lines.reset(position);
        assert!(position <= len);
        position
    }

    /// Bytes read at `from` of the open file.
    pub fn read(&mut self, from: u64, bytes: &[u8]) {
        let inode = self.tail.open_file().map(|f| f.0);
        assert!(inode.is_some(), "bytes come from an open file");
        for p in self.lines.feed(from, bytes) {
            self.piece(p, inode);
        }
    }

    fn piece(&mut self, p: Piece, inode: Option<u64>) {
        if self.failed {
            return;
        }
        let after = FileOffset {
            inode,
            position: p.end(),
        };
        let (error, raw) = match p {
            Piece::Line(l) => match self.converter.from_connect(Data::Line(&l.bytes)) {
                Ok(value) => {
                    let seq = self.pending.track(after);
                    let record = Record {
                        topic: self.topic.clone(),
                        key: None,
                        value,
                        headers: Vec::new(),
                    };
                    self.out.push_back(SourceOutput::Produce { seq, record });
                    return;
                }
                Err(e) => (format!("line at byte {}: {e}", l.start), l.bytes),
            },
            Piece::TooLong {
                start,
                length,
                prefix,
                ..
            } => (
                format!("the line at byte {start} is {length} bytes, more than max.line.length"),
                prefix,
            ),
        };
        self.bad(after, &error, &raw);
    }

    fn bad(&mut self, after: FileOffset, error: &str, raw: &[u8]) {
        match self.errors.handle(&self.name, "TASK_POLL", error, raw) {
            Handling::Fail(why) => self.fail(why),
            Handling::Skip { log, dead_letter } => {
                self.log(true, log);
                let seq = self.pending.track(after);
                match dead_letter {
                    Some(d) => {
                        let record = Record {
                            topic: d.topic,
                            key: None,
                            value: d.value,
                            headers: d.headers,
                        };
                        self.out.push_back(SourceOutput::Produce { seq, record });
                    }
                    None => self.delivered(seq, Ok(())),
                }
            }
        }
    }

    fn fail(&mut self, why: String) {
        self.failed = true;
        self.out.push_back(SourceOutput::Failed(why));
    }

    fn log(&mut self, warn: bool, message: String) {
        self.out.push_back(SourceOutput::Log { warn, message });
    }

    /// Record `seq` was acknowledged, or failed for good.
    pub fn delivered(&mut self, seq: Seq, result: Result<(), String>) {
        if let Err(e) = result {
            return self.fail(format!("a record could not be delivered: {e}"));
        }
        self.pending.done(seq);
        if let Some(o) = self.pending.take_ready() {
            assert!(self
                .ready
                .is_none_or(|r| r.inode != o.inode || r.position <= o.position));
            self.ready = Some(o);
        }
    }

    /// Time passed: store the acknowledged offset every `offset.flush.interval.ms`.
    pub fn tick(&mut self, now_ms: u64) {
        if now_ms >= self.last_store_ms + self.flush_interval_ms {
            self.store(now_ms);
        }
    }

    /// Store the acknowledged offset now (a clean stop).
    pub fn flush(&mut self, now_ms: u64) {
        self.store(now_ms);
    }

    fn store(&mut self, now_ms: u64) {
        if self.storing {
            return;
        }
        self.last_store_ms = now_ms;
        if let Some(o) = self.ready.take() {
            self.storing = true;
            let value = file_offset(o.position, o.inode);
            let key = self.offset_key();
            self.out.push_back(SourceOutput::StoreOffset { key, value });
        }
    }

    /// The last offset record was written (or failed: it is tried again with the next).
    pub fn offset_stored(&mut self, result: Result<(), String>) {
        assert!(self.storing, "an offset record was in flight");
        self.storing = false;
        if let Err(e) = result {
            self.log(true, format!("could not store the source offset: {e}"));
        }
    }

    /// Everything read is acknowledged and its offset stored: a clean stop may exit.
    pub fn settled(&self) -> bool {
        self.pending.unacknowledged() == 0 && self.ready.is_none() && !self.storing
    }
}

/// The syslog source: a frame in, a record (or an error's handling) out.
pub struct SyslogSource {
    name: String,
    topic: String,
    key_field: KeyField,
    key_converter: Converter,
    value_converter: Converter,
    errors: ErrorPolicy,
}

impl SyslogSource {
    pub fn new(cfg: &ConnectorConfig) -> SyslogSource {
        SyslogSource {
            name: cfg.name.clone(),
            topic: cfg
                .topic
                .clone()
                .expect("a syslog source's config names its topic"),
            key_field: cfg.key_field,
            key_converter: cfg.key_converter,
            value_converter: cfg.value_converter,
            errors: cfg.errors.clone(),
        }
    }

    /// One message (a datagram or a TCP frame), or bytes that were no frame (`bad`).
    pub fn frame(&self, raw: &[u8], bad: Option<&str>) -> Result<Record, Handling> {
        let msg = match bad {
            Some(e) => Err(e.to_string()),
            None => syslog::parse(raw),
        };
        let handle = |e: &str| self.errors.handle(&self.name, "TASK_POLL", e, raw);
        let m = msg.map_err(|e| handle(&e))?;
        let key = match self.key_field {
            KeyField::Host => m.host.as_deref(),
            KeyField::App => m.app.as_deref(),
            KeyField::None => None,
        };
        let key = key
            .map(|k| self.key_converter.from_connect(Data::Line(k.as_bytes())))
            .transpose()
            .map_err(|e| handle(&e))?;
        let value = match self.value_converter {
            Converter::Json => self.value_converter.from_connect(Data::Object(&m.fields())),
            c => c.from_connect(Data::Line(m.message.as_bytes())),
        }
        .map_err(|e| handle(&e))?;
        let mut headers = Vec::new();
        for (k, v) in m.fields() {
            if matches!(
                k.as_str(),
                "host" | "app" | "severity" | "facility" | "timestamp"
            ) {
                headers.push((k, v.into_bytes()));
            }
        }
        Ok(Record {
            topic: self.topic.clone(),
            key,
            value,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::errors::Tolerance;

    fn cfg(extra: &str) -> ConnectorConfig {
        let text = format!(
            "[[connector]]\nname = \"src\"\nclass = \"file-source\"\nfile = \"/f\"\ntopic = \"t\"\n\
             max.line.length = 8\n{extra}"
        );
        parse(&text).unwrap().connectors.remove(0)
    }

    fn seen(open: Option<(u64, u64)>, at_path: Option<u64>) -> Observed {
        Observed {
            open: open.map(|(i, l)| (FileId(i), l)),
            at_path: at_path.map(FileId),
        }
    }

    fn drain(s: &mut FileSource) -> Vec<SourceOutput> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn produced(outs: &[SourceOutput]) -> Vec<(Seq, String)> {
        outs.iter()
            .filter_map(|o| match o {
                SourceOutput::Produce { seq, record } => {
                    Some((*seq, String::from_utf8(record.value.clone()).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_become_records_and_the_offset_waits_for_every_acknowledgement() {
        let mut s = FileSource::new(&cfg(""), 1000, None, 0);
        assert_eq!(s.next_io(seen(None, Some(1))), FileIo::Open);
        assert_eq!(s.opened(FileId(1), 6), 0);
        assert_eq!(
            s.next_io(seen(Some((1, 6)), Some(1))),
            FileIo::Read { from: 0, len: 6 }
        );
        s.read(0, b"a\nbb\nc");
        let p = produced(&drain(&mut s));
        assert_eq!(p, [(0, "a".into()), (1, "bb".into())]);
        s.delivered(1, Ok(()));
        s.tick(2000);
        assert!(drain(&mut s).is_empty(), "record 0 is not acknowledged");
        s.delivered(0, Ok(()));
        s.tick(3000);
        let key = br#"["src",{"filename":"/f"}]"#.to_vec();
        let value = br#"{"inode":1,"position":5}"#.to_vec();
        assert_eq!(drain(&mut s), [SourceOutput::StoreOffset { key, value }]);
        assert!(!s.settled());
        s.offset_stored(Ok(()));
        assert!(s.settled());
    }

    #[test]
    fn rotation_sends_the_old_files_last_line_then_reads_the_new_file() {
        let mut s = FileSource::new(&cfg(""), 1000, None, 0);
        s.opened(FileId(1), 3);
        s.read(0, b"x\ny");
        assert_eq!(s.next_io(seen(Some((1, 3)), Some(2))), FileIo::Close);
        assert_eq!(s.next_io(seen(None, Some(2))), FileIo::Open);
        assert_eq!(s.opened(FileId(2), 2), 0);
        s.read(0, b"z\n");
        let p = produced(&drain(&mut s));
        assert_eq!(p, [(0, "x".into()), (1, "y".into()), (2, "z".into())]);
        for seq in 0..3 {
            s.delivered(seq, Ok(()));
        }
        s.flush(10);
        let value = br#"{"inode":2,"position":2}"#.to_vec();
        assert!(drain(&mut s).contains(&SourceOutput::StoreOffset {
            key: s.offset_key(),
            value
        }));
    }

    #[test]
    fn a_long_line_fails_the_task_or_goes_to_the_dead_letter_topic() {
        let mut s = FileSource::new(&cfg(""), 1000, None, 0);
        s.opened(FileId(1), 100);
        s.read(0, b"ok\n0123456789\nafter\n");
        let outs = drain(&mut s);
        assert!(
            matches!(outs.last(), Some(SourceOutput::Failed(_))),
            "{outs:?}"
        );
        assert!(s.failed());
        assert_eq!(s.next_io(seen(Some((1, 100)), Some(1))), FileIo::Wait);

        let mut c =
            cfg("errors.tolerance = \"all\"\nerrors.deadletterqueue.topic.name = \"dlq\"\n");
        assert_eq!(c.errors.tolerance, Tolerance::All);
        let mut s = FileSource::new(&c, 1000, None, 0);
        s.opened(FileId(1), 100);
        s.read(0, b"ok\n0123456789\nafter\n");
        let outs = drain(&mut s);
        let p = produced(&outs);
        assert_eq!(
            p,
            [
                (0, "ok".into()),
                (1, "01234567".into()),
                (2, "after".into())
            ]
        );
        assert!(outs
            .iter()
            .any(|o| matches!(o, SourceOutput::Produce { record, .. } if record.topic == "dlq")));
        // Without a dead-letter topic the bad line is skipped, and counts as handled.
        c.errors.dead_letter_topic = None;
        let mut s = FileSource::new(&c, 1000, None, 0);
        s.opened(FileId(1), 100);
        s.read(0, b"0123456789\n");
        s.flush(0);
        let outs = drain(&mut s);
        assert!(
            outs.iter()
                .any(|o| matches!(o, SourceOutput::StoreOffset { .. })),
            "{outs:?}"
        );
    }

    #[test]
    fn truncation_reads_again_from_zero_and_a_restart_resumes_at_the_offset() {
        let resume = FileOffset {
            inode: Some(1),
            position: 2,
        };
        let mut s = FileSource::new(&cfg(""), 1000, Some(resume), 0);
        assert_eq!(s.opened(FileId(1), 4), 2);
        assert_eq!(
            s.next_io(seen(Some((1, 4)), Some(1))),
            FileIo::Read { from: 2, len: 2 }
        );
        s.read(2, b"b\n");
        assert_eq!(
            s.next_io(seen(Some((1, 1)), Some(1))),
            FileIo::Read { from: 0, len: 1 }
        );
        let outs = drain(&mut s);
        assert!(outs.iter().any(|o| matches!(o, SourceOutput::Log { warn: true, message } if message.contains("truncated"))));
    }

    #[test]
    fn syslog_frames_become_records_with_headers_and_a_chosen_key() {
        let text = "[[connector]]\nname = \"s\"\nclass = \"syslog-source\"\ntopic = \"logs\"\n\
                    listen.udp = \"127.0.0.1:0\"\nkey.field = \"host\"\nerrors.tolerance = \"all\"\n";
        let c = parse(text).unwrap().connectors.remove(0);
        let s = SyslogSource::new(&c);
        let r = s
            .frame(b"<11>1 2024-01-01T00:00:00Z web1 nginx 12 - - oops", None)
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"web1"[..]));
        assert_eq!(r.value, b"oops");
        assert!(r.headers.contains(&("severity".into(), b"err".to_vec())));
        assert!(r.headers.contains(&("app".into(), b"nginx".to_vec())));
        assert!(r.headers.contains(&("facility".into(), b"user".to_vec())));
        let Err(Handling::Skip { log, .. }) = s.frame(b"garbage", None) else {
            panic!("a bad frame is skipped under errors.tolerance=all")
        };
        assert!(log.contains("PRI"));
    }
}
