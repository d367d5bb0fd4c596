//! Following a file as `tail -F` does: the decisions, with the file system left to the caller.
//!
//! The caller observes the file it has open (its identity and length, `fstat`) and the file now
//! at the path (`stat`), and the tail says what to do next:
//!
//! * **append**: the open file is longer than what was read → read on;
//! * **truncation**: the open file is shorter than what was read (`> file`, `truncate -s 0`) →
//!   start again at 0, and say so in the log (the lines before are not read again, they are
//!   gone);
//! * **rotation by rename** (logrotate's default: `mv app.log app.log.1`, a new `app.log`): the
//!   path names another file → finish the old one (read it to its end, its unfinished last line
//!   is a line too), then open the new one and read it from 0;
//! * the path is gone (between the rename and the new file) → keep reading the old file.
//!
//! A file's identity is its inode number ([`FileId`]); the source offset stores it beside the
//! position, so a worker restarted after a rotation knows the position is not the new file's.

/// Which file: its inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u64);

/// What the caller saw of the files, just now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The open file's identity and length, if one is open.
    pub open: Option<(FileId, u64)>,
    /// The identity of the file at the path, if there is one.
    pub at_path: Option<FileId>,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Open the file at the path, then call [`Tail::opened`].
    Open,
    /// Read up to `len` bytes of the open file from `from`, then hand them to the splitter.
    Read { from: u64, len: u64 },
    /// The open file shrank below the position: the splitter starts again at 0.
    Truncated { was: u64, now: u64 },
    /// The path names another file and the old one is read to its end: finish the old file's
    /// last line, close it, and open the path ([`Step::Open`] follows).
    Rotated,
    /// Nothing new: wait for the next poll.
    Wait,
}

/// Where a restart resumes: the position in the file with this identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    pub file: Option<FileId>,
    pub position: u64,
}

#[derive(Clone, Debug)]
pub struct Tail {
    /// The largest read asked for at once.
    chunk: u64,
    /// The file open now.
    open: Option<FileId>,
    /// Where to start in the next file opened: the restart's offset, used once.
    resume: Option<Resume>,
}

impl Tail {
    pub fn new(chunk: u64, resume: Option<Resume>) -> Tail {
        assert!(chunk > 0);
        Tail {
            chunk,
            open: None,
            resume,
        }
    }

    pub fn open_file(&self) -> Option<FileId> {
        self.open
    }

    /// The next step, given what was observed and the position read up to.
    pub fn step(&mut self, seen: Observed, position: u64) -> Step {
        let Some((id, len)) = seen.open else {
            assert!(self.open.is_none() || seen.open.is_none());
            self.open = None;
            return if seen.at_path.is_some() {
                Step::Open
            } else {
                Step::Wait
            };
        };
        assert_eq!(
            Some(id),
            self.open,
            "the observed open file is the one opened"
        );
        if len < position {
            return Step::Truncated {
                was: position,
                now: len,
            };
        }
        if len > position {
            return Step::Read {
                from: position,
                len: (len - position).min(self.chunk),
            };
        }
        match seen.at_path {
            Some(other) if other != id => {
                self.open = None;
                Step::Rotated
            }
            _ => Step::Wait,
        }
    }

    /// The file at the path was opened: it is `id` and `len` bytes long. Returns the position
    /// to read from, and a line for the log when a restart's offset could not be used.
    pub fn opened(&mut self, id: FileId, len: u64) -> (u64, Option<String>) {
        assert!(self.open.is_none(), "one file open at a time");
        self.open = Some(id);
        let Some(r) = self.resume.take() else {
            return (0, None);
        };
        match r.file {
            Some(f) if f != id => (
                0,
                Some(format!(
                    "the stored offset is for inode {} but the file is inode {}: it was rotated \
                     while the worker was stopped; reading the new file from 0",
                    f.0, id.0
                )),
            ),
            _ if r.position > len => (
                0,
                Some(format!(
                    "the stored position {} is past the file's end {len}: it was truncated \
                     while the worker was stopped; reading from 0",
                    r.position
                )),
            ),
            _ => (r.position, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(open: Option<(u64, u64)>, at_path: Option<u64>) -> Observed {
        Observed {
            open: open.map(|(i, l)| (FileId(i), l)),
            at_path: at_path.map(FileId),
        }
    }

    #[test]
    fn appends_are_read_in_chunks_then_the_tail_waits() {
        let mut t = Tail::new(10, None);
        assert_eq!(t.step(seen(None, None), 0), Step::Wait);
        assert_eq!(t.step(seen(None, Some(7)), 0), Step::Open);
        assert_eq!(t.opened(FileId(7), 25), (0, None));
        assert_eq!(
            t.step(seen(Some((7, 25)), Some(7)), 0),
            Step::Read { from: 0, len: 10 }
        );
        assert_eq!(
            t.step(seen(Some((7, 25)), Some(7)), 20),
            Step::Read { from: 20, len: 5 }
        );
        assert_eq!(t.step(seen(Some((7, 25)), Some(7)), 25), Step::Wait);
    }

    #[test]
    fn a_shorter_file_is_a_truncation() {
        let mut t = Tail::new(10, None);
        t.opened(FileId(7), 25);
        let s = t.step(seen(Some((7, 3)), Some(7)), 25);
        assert_eq!(s, Step::Truncated { was: 25, now: 3 });
    }

    #[test]
    fn rotation_finishes_the_old_file_first_and_a_missing_path_is_waited_for() {
        let mut t = Tail::new(100, None);
        t.opened(FileId(7), 10);
        // Renamed away, nothing at the path yet: keep reading the old file.
        assert_eq!(
            t.step(seen(Some((7, 12)), None), 10),
            Step::Read { from: 10, len: 2 }
        );
        assert_eq!(t.step(seen(Some((7, 12)), None), 12), Step::Wait);
        // A new file at the path, but the old one grew meanwhile: read that first.
        assert_eq!(
            t.step(seen(Some((7, 15)), Some(8)), 12),
            Step::Read { from: 12, len: 3 }
        );
        assert_eq!(t.step(seen(Some((7, 15)), Some(8)), 15), Step::Rotated);
        assert_eq!(t.open_file(), None);
        assert_eq!(t.step(seen(None, Some(8)), 15), Step::Open);
        assert_eq!(t.opened(FileId(8), 4), (0, None));
    }

    #[test]
    fn a_restart_resumes_only_in_the_same_file_and_within_its_length() {
        let r = |file, position| Some(Resume { file, position });
        assert_eq!(
            Tail::new(1, r(Some(FileId(7)), 5)).opened(FileId(7), 9).0,
            5
        );
        assert_eq!(Tail::new(1, r(None, 5)).opened(FileId(7), 9).0, 5);
        let (p, log) = Tail::new(1, r(Some(FileId(6)), 5)).opened(FileId(7), 9);
        assert_eq!(p, 0);
        assert!(log.unwrap().contains("rotated"));
        let (p, log) = Tail::new(1, r(Some(FileId(7)), 50)).opened(FileId(7), 9);
        assert_eq!(p, 0);
        assert!(log.unwrap().contains("truncated"));
    }
}
