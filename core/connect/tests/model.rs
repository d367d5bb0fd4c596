//! The file source driven over a simulated file system, Kafka and crashes, through the same
//! sans-IO code `gregor connect` runs: every line written reaches the topic at least once, and
//! exactly once, in order, when the worker never crashes.
//!
//! The model: a path whose file is appended to and rotated by rename (only while the source has
//! stored the offset of everything it read — see docs/connect.md on a crash right after a
//! rotation); a producer whose acknowledgements arrive in any order; a crash that loses the
//! records in flight (or writes them without acknowledging them: duplicates) and restarts the
//! task from the last stored offset.

use gregor_connect::config::parse;
use gregor_connect::offsets::parse_file_offset;
use gregor_connect::source::{FileIo, FileOffset, FileSource, SourceOutput};
use gregor_connect::tail::{FileId, Observed};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    Rotate,
    Step(u8),
    /// Acknowledge in-flight records: from the back if the flag is set (out of order).
    Ack(u8, bool),
    Crash(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Append),
        1 => Just(Op::Rotate),
        4 => (1u8..10).prop_map(Op::Step),
        4 => (1u8..30, any::<bool>()).prop_map(|(n, b)| Op::Ack(n, b)),
        1 => any::<bool>().prop_map(Op::Crash),
    ]
}

struct World {
    /// Files by inode; the path names `at_path`.
    files: Vec<Vec<u8>>,
    at_path: usize,
    open: Option<usize>,
    task: FileSource,
    /// Records produced, not yet acknowledged: (seq or None for an offset record, value).
    in_flight: Vec<(Option<u64>, Vec<u8>)>,
    topic: Vec<String>,
    stored: Option<Vec<u8>>,
    now: u64,
    written: u64,
}

fn task(stored: &Option<Vec<u8>>) -> FileSource {
    let cfg = parse(
        "[[connector]]\nname = \"m\"\nclass = \"file-source\"\nfile = \"/m\"\ntopic = \"t\"\n",
    )
    .unwrap()
    .connectors
    .remove(0);
    let resume = stored
        .as_ref()
        .and_then(|v| parse_file_offset(v))
        .map(|(position, inode)| FileOffset { inode, position });
    FileSource::new(&cfg, 10, resume, 0)
}

impl World {
    fn step(&mut self) {
        let seen = Observed {
            open: self
                .open
                .map(|i| (FileId(i as u64), self.files[i].len() as u64)),
            at_path: Some(FileId(self.at_path as u64)),
        };
        match self.task.next_io(seen) {
            FileIo::Open => {
                let i = self.at_path;
                self.task
                    .opened(FileId(i as u64), self.files[i].len() as u64);
                self.open = Some(i);
            }
            FileIo::Read { from, len } => {
                let f = &self.files[self.open.unwrap()];
                // Short reads, as a file read may be.
                let end = (from + len.min(7)) as usize;
                let bytes = f[from as usize..end].to_vec();
                self.task.read(from, &bytes);
            }
            FileIo::Close => self.open = None,
            FileIo::Wait => {}
        }
        self.now += 3;
        self.task.tick(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(o) = self.task.poll_output() {
            match o {
                SourceOutput::Produce { seq, record } => {
                    self.in_flight.push((Some(seq), record.value))
                }
                SourceOutput::StoreOffset { value, .. } => self.in_flight.push((None, value)),
                SourceOutput::Log { .. } => {}
                SourceOutput::Failed(why) => panic!("the task failed: {why}"),
            }
        }
    }

    fn ack(&mut self, n: usize, from_back: bool) {
        for _ in 0..n.min(self.in_flight.len()) {
            let (seq, value) = if from_back {
                self.in_flight.pop().unwrap()
            } else {
                self.in_flight.remove(0)
            };
            match seq {
                Some(seq) => {
                    self.topic.push(String::from_utf8(value).unwrap());
                    self.task.delivered(seq, Ok(()));
                }
                None => {
                    self.stored = Some(value);
                    self.task.offset_stored(Ok(()));
                }
            }
        }
        self.drain();
    }

    fn crash(&mut self, written: bool) {
        // The records in flight were written without an acknowledgement, or lost.
        for (seq, value) in self.in_flight.drain(..) {
            if written && seq.is_some() {
                self.topic.push(String::from_utf8(value).unwrap());
            }
        }
        self.task = task(&self.stored);
        self.open = None;
    }

    /// Run until every line is read, acknowledged and stored: quiet for many steps.
    fn settle(&mut self) {
        let mut quiet = 0;
        for _ in 0..100_000 {
            self.step();
            self.task.flush(self.now);
            self.drain();
            let busy = !self.in_flight.is_empty() || !self.task.settled();
            self.ack(usize::MAX, false);
            quiet = if busy || self.open != Some(self.at_path) {
                0
            } else {
                quiet + 1
            };
            if quiet > 50 {
                return;
            }
        }
        panic!("the source never caught up");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn every_line_reaches_the_topic_at_least_once_and_exactly_once_without_crashes(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let mut w = World {
            files: vec![Vec::new()],
            at_path: 0,
            open: None,
            task: task(&None),
            in_flight: Vec::new(),
            topic: Vec::new(),
            stored: None,
            now: 0,
            written: 0,
        };
        let mut lines = Vec::new();
        let mut crashed = false;
        for op in ops {
            match op {
                Op::Append(n) => {
                    for _ in 0..n {
                        let l = format!("line {}", w.written);
                        w.written += 1;
                        let f = &mut w.files[w.at_path];
                        f.extend_from_slice(l.as_bytes());
                        f.push(b'\n');
                        lines.push(l);
                    }
                }
                Op::Rotate => {
                    // Rotation while everything read is stored (see the module's comment).
                    w.settle();
                    w.files.push(Vec::new());
                    w.at_path = w.files.len() - 1;
                }
                Op::Step(n) => (0..n).for_each(|_| w.step()),
                Op::Ack(n, back) => w.ack(n as usize, back),
                Op::Crash(written) => {
                    crashed = true;
                    w.crash(written);
                }
            }
        }
        w.settle();
        let got: std::collections::BTreeSet<&String> = w.topic.iter().collect();
        for l in &lines {
            prop_assert!(got.contains(l), "{l:?} never reached the topic");
        }
        if !crashed {
            // Acknowledgements arrive out of order, as from several partitions: compare sets.
            let mut topic = w.topic.clone();
            topic.sort();
            lines.sort();
            prop_assert_eq!(topic, lines, "exactly once without crashes");
        }
    }
}
