//! Splitting a byte stream into lines, as Kafka's `FileStreamSourceTask` does, with a limit.
//!
//! A file source hands the splitter the bytes it read at a position; the splitter keeps the
//! unfinished last line and returns every complete one with the byte range it covered. The
//! end of a line's range (one past its `\n`) is the line's *source offset*: a worker that
//! restarts from it reads the next line whole. A line longer than `max` bytes is not kept in
//! memory: its first `max` bytes are returned as [`Piece::TooLong`] (an error for the
//! `errors.tolerance` policy) and the rest is skipped up to its newline.

/// One complete line, without its `\n` (nor a `\r` before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Byte position of its first byte.
    pub start: u64,
    /// Byte position one past its newline: where the next line starts.
    pub end: u64,
    pub bytes: Vec<u8>,
}

/// What the splitter finds in the bytes handed to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Line(Line),
    /// A line of `length` bytes, more than the limit: `prefix` is its first `max` bytes.
    TooLong {
        start: u64,
        end: u64,
        length: u64,
        prefix: Vec<u8>,
    },
}

impl Piece {
    /// The position one past the piece: the source offset once it is handled.
    pub fn end(&self) -> u64 {
        match self {
            Piece::Line(l) => l.end,
            Piece::TooLong { end, .. } => *end,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LineSplitter {
    max: usize,
    /// The unfinished line's bytes (at most `max`).
    buf: Vec<u8>,
    /// Where the unfinished line starts.
    line_start: u64,
    /// Bytes of the unfinished line seen, kept or not (more than `buf.len()` once too long).
    line_len: u64,
}

impl LineSplitter {
    pub fn new(max: usize, position: u64) -> LineSplitter {
        assert!(max > 0, "a line limit of 0 bytes would refuse every line");
        LineSplitter {
            max,
            buf: Vec::new(),
            line_start: position,
            line_len: 0,
        }
    }

    /// The position the next bytes must come from.
    pub fn position(&self) -> u64 {
        self.line_start + self.line_len
    }

    /// Where the line being read started: the offset to resume from if the rest never comes.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Bytes held of an unfinished line.
    pub fn pending(&self) -> u64 {
        self.line_len
    }

    /// Forget the unfinished line and expect bytes from `position` (truncation, a new file).
    pub fn reset(&mut self, position: u64) {
        self.buf.clear();
        self.line_start = position;
        self.line_len = 0;
    }

    /// Split `bytes`, read at `at` (which must be [`LineSplitter::position`]).
    pub fn feed(&mut self, at: u64, bytes: &[u8]) -> Vec<Piece> {
        assert_eq!(
            at,
            self.position(),
            "bytes must continue where the last ended"
        );
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&rest[..i]);
                    self.line_len += 1; // the newline itself
                    out.push(self.complete(true));
                    rest = &rest[i + 1..];
                }
                None => {
                    self.take(rest);
                    rest = &[];
                }
            }
        }
        assert_eq!(self.position(), at + bytes.len() as u64);
        out
    }

    /// The file will not grow any more (it was rotated away): its unfinished last line, if
    /// any, is a line of its own, as `tail -F` prints it.
    pub fn finish(&mut self) -> Option<Piece> {
        if self.line_len == 0 {
            return None;
        }
        Some(self.complete(false))
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..room]);
        self.line_len += bytes.len() as u64;
        assert!(self.buf.len() <= self.max);
    }

    fn complete(&mut self, newline: bool) -> Piece {
        let start = self.line_start;
        let end = start + self.line_len;
        let length = self.line_len - u64::from(newline);
        let mut bytes = std::mem::take(&mut self.buf);
        self.reset(end);
        if length > self.max as u64 {
            return Piece::TooLong {
                start,
                end,
                length,
                prefix: bytes,
            };
        }
        if newline && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        assert!(bytes.len() as u64 <= length);
        Piece::Line(Line { start, end, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Line(l) => String::from_utf8(l.bytes.clone()).unwrap(),
                Piece::TooLong { length, .. } => format!("<too long: {length}>"),
            })
            .collect()
    }

    #[test]
    fn lines_split_across_reads_come_out_whole_with_their_end_positions() {
        let mut s = LineSplitter::new(100, 0);
        assert!(s.feed(0, b"hel").is_empty());
        let p = s.feed(3, b"lo\r\nworld\npart");
        assert_eq!(lines(&p), ["hello", "world"]);
        assert_eq!(p[0].end(), 7);
        assert_eq!(p[1].end(), 13);
        assert_eq!(s.line_start(), 13);
        assert_eq!(s.position(), 17);
        assert_eq!(lines(&[s.finish().unwrap()]), ["part"]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn a_line_over_the_limit_is_reported_once_and_skipped_to_its_newline() {
        let mut s = LineSplitter::new(4, 10);
        let p = s.feed(10, b"ok\n0123456789");
        assert_eq!(lines(&p), ["ok"]);
        let p = s.feed(23, b"abc\nnext\n");
        assert_eq!(
            p[0],
            Piece::TooLong {
                start: 13,
                end: 27,
                length: 13,
                prefix: b"0123".to_vec()
            }
        );
        assert_eq!(lines(&p[1..]), ["next"]);
    }

    proptest! {
        /// However the input is cut into reads, the lines are the input's lines, and every
        /// line's end is where the next starts.
        #[test]
        fn any_cut_gives_the_same_lines(
            text in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'b')], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let mut s = LineSplitter::new(1000, 0);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.push(0);
            cuts.push(text.len());
            cuts.sort();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                got.extend(s.feed(w[0] as u64, &text[w[0]..w[1]]));
            }
            let mut next = 0;
            for p in &got {
                if let Piece::Line(l) = p {
                    prop_assert_eq!(l.start, next);
                    next = l.end;
                }
            }
            let whole: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            let complete = &whole[..whole.len() - 1];
            prop_assert_eq!(got.len(), complete.len());
            for (p, w) in got.iter().zip(complete) {
                match p {
                    Piece::Line(l) => prop_assert_eq!(&l.bytes[..], *w),
                    _ => prop_assert!(false),
                }
            }
        }
    }
}
