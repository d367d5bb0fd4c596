//! Syslog messages (RFC 5424 and RFC 3164) and their framing on TCP (RFC 6587).
//!
//! Every syslog message starts with `<PRI>`, PRI = facility × 8 + severity (RFC 5424 §6.2.1).
//! Then the two formats part:
//!
//! * **RFC 5424**: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`,
//!   fields separated by one space, `-` for a field with no value, structured data as
//!   `[id key="value" ...]` elements, and MSG optionally starting with a UTF-8 BOM.
//! * **RFC 3164** (BSD syslog, what most daemons still send): `<PRI>Mmm dd hh:mm:ss HOSTNAME
//!   TAG: MSG`, the TAG usually `app` or `app[pid]`. RFC 3164 §4.3.2 asks a receiver to accept
//!   a message without a valid timestamp too, taking everything after PRI as the message.
//!
//! A frame without a valid PRI, or an RFC 5424 frame whose header is broken, is an error for
//! the connector's `errors.tolerance`.
//!
//! On UDP a datagram is one message. On TCP, RFC 6587 has two framings: *octet counting*
//! (`LEN SP MSG`, what RFC 5425 mandates and rsyslog's `TCP_Frame="octet-counted"` sends) and
//! *non-transparent* framing (each message ends with LF, the traditional one). A receiver tells
//! them apart by the frame's first byte: a digit starts a length, `<` starts a message.

/// One syslog message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub facility: u8,
    pub severity: u8,
    /// 5424 or 3164.
    pub rfc: u16,
    pub timestamp: Option<String>,
    pub host: Option<String>,
    pub app: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// RFC 5424's structured data, as it was written.
    pub structured_data: Option<String>,
    pub message: String,
}

/// Severity names as syslog.conf spells them (RFC 5424 table 2).
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Facility names (RFC 5424 table 1, syslog.conf spellings).
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl Message {
    pub fn severity_name(&self) -> &'static str {
        SEVERITIES[usize::from(self.severity)]
    }
    pub fn facility_name(&self) -> &'static str {
        FACILITIES[usize::from(self.facility)]
    }

    /// The message as fields, for headers and for an object converter.
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut f = Vec::new();
        let mut add = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                f.push((k.to_string(), v.to_string()));
            }
        };
        add("host", self.host.as_deref());
        add("app", self.app.as_deref());
        add("severity", Some(self.severity_name()));
        add("facility", Some(self.facility_name()));
        add("timestamp", self.timestamp.as_deref());
        add("procid", self.procid.as_deref());
        add("msgid", self.msgid.as_deref());
        add("structured_data", self.structured_data.as_deref());
        add("message", Some(&self.message));
        f
    }
}

/// Parse one message (a UDP datagram, or a TCP frame without its framing).
pub fn parse(frame: &[u8]) -> Result<Message, String> {
    let frame = trim_end(frame);
    let text = std::str::from_utf8(frame).map_err(|e| format!("not UTF-8: {e}"))?;
    let (pri, rest) = parse_pri(text)?;
    assert!(pri <= 191);
    let mut m = Message {
        facility: (pri / 8) as u8,
        severity: (pri % 8) as u8,
        ..Message::default()
    };
    match rest.strip_prefix("1 ") {
        Some(rest) => parse_5424(&mut m, rest)?,
        None => parse_3164(&mut m, rest),
    }
    assert!(m.rfc == 5424 || m.rfc == 3164);
    Ok(m)
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let Some((last, rest)) = b.split_last() {
        if !matches!(last, b'\n' | b'\r' | b'\0') {
            break;
        }
        b = rest;
    }
    b
}

fn parse_pri(text: &str) -> Result<(u16, &str), String> {
    let rest = text
        .strip_prefix('<')
        .ok_or_else(|| "no <PRI> at the start: not a syslog message".to_string())?;
    let close = rest
        .find('>')
        .filter(|&i| (1..=3).contains(&i))
        .ok_or_else(|| "<PRI> is not 1 to 3 digits followed by '>'".to_string())?;
    let digits = &rest[..close];
    let pri: u16 = digits
        .parse()
        .ok()
        .filter(|p| *p <= 191 && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("PRI {digits:?} is not a number from 0 to 191"))?;
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(format!(
            "PRI {digits:?} has a leading zero (RFC 5424 §6.2.1)"
        ));
    }
    Ok((pri, &rest[close + 1..]))
}

/// `-` is RFC 5424's NILVALUE.
fn nil(s: &str) -> Option<String> {
    (s != "-").then(|| s.to_string())
}

fn parse_5424(m: &mut Message, rest: &str) -> Result<(), String> {
    m.rfc = 5424;
    let mut parts = rest.splitn(6, ' ');
    let mut field = |name: &str| {
        parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("RFC 5424 header ends before {name}"))
    };
    m.timestamp = nil(field("TIMESTAMP")?);
    m.host = nil(field("HOSTNAME")?);
    m.app = nil(field("APP-NAME")?);
    m.procid = nil(field("PROCID")?);
    m.msgid = nil(field("MSGID")?);
    let rest = field("STRUCTURED-DATA")?;
    let (sd, msg) = split_structured_data(rest)?;
    m.structured_data = nil(sd);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    m.message = msg.to_string();
    Ok(())
}

/// Split `STRUCTURED-DATA [SP MSG]`: `-`, or `[...]` elements where `\]`, `\"` and `\\` are
/// escapes inside quoted values.
fn split_structured_data(s: &str) -> Result<(&str, &str), String> {
    if let Some(msg) = s.strip_prefix('-') {
        return match msg.strip_prefix(' ') {
            Some(m) => Ok(("-", m)),
            None if msg.is_empty() => Ok(("-", "")),
            None => Err("STRUCTURED-DATA '-' is followed by more than a space".into()),
        };
    }
    if !s.starts_with('[') {
        return Err("STRUCTURED-DATA is neither '-' nor '[...]'".into());
    }
    let b = s.as_bytes();
    let (mut i, mut in_element, mut in_quote) = (0, false, false);
    while i < b.len() {
        match (b[i], in_element, in_quote) {
            (b'[', false, _) => in_element = true,
            (b'\\', true, true) => i += 1, // the escaped byte is skipped
            (b'"', true, q) => in_quote = !q,
            (b']', true, false) => in_element = false,
            (b' ', false, _) => return Ok((&s[..i], &s[i + 1..])),
            (_, false, _) => return Err("bytes after a structured-data element".into()),
            _ => {}
        }
        i += 1;
    }
    if in_element {
        return Err("a structured-data element is not closed".into());
    }
    Ok((s, ""))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss` (day padded with a space).
fn is_3164_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15
        && MONTHS.contains(&&s[..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && [7, 8, 10, 11, 13, 14]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
        && b[9] == b':'
        && b[12] == b':'
}

/// `YYYY-MM-DDThh:` (an RFC 3339 date and time).
fn is_rfc3339_start(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 14
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

fn parse_3164(m: &mut Message, rest: &str) {
    m.rfc = 3164;
    // rsyslog's forwarding formats (`RSYSLOG_ForwardFormat`) write an RFC 3339 timestamp in
    // the BSD layout; take it as well.
    let ts_len = match rest.get(..15) {
        Some(t) if is_3164_timestamp(t) => 15,
        _ if is_rfc3339_start(rest) => rest.find(' ').unwrap_or(rest.len()),
        _ => {
            // RFC 3164 §4.3.2: no valid timestamp, the whole rest is the message.
            m.message = rest.to_string();
            return;
        }
    };
    m.timestamp = Some(rest[..ts_len].to_string());
    let rest = rest[ts_len..].trim_start_matches(' ');
    let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    m.host = (!host.is_empty()).then(|| host.to_string());
    // TAG: up to 32 alphanumerics (in practice also '-', '_', '.', '/'), ended by '[' or ':'.
    let tag_len = rest.find(['[', ':', ' ']).unwrap_or(rest.len());
    let tag = &rest[..tag_len];
    if tag.is_empty() || tag_len > 48 {
        m.message = rest.to_string();
        return;
    }
    m.app = Some(tag.to_string());
    let mut rest = &rest[tag_len..];
    if let Some(r) = rest.strip_prefix('[') {
        if let Some((pid, r)) = r.split_once(']') {
            m.procid = Some(pid.to_string());
            rest = r;
        }
    }
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    m.message = rest.strip_prefix(' ').unwrap_or(rest).to_string();
}

/// What the TCP framer finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Message(Vec<u8>),
    /// Bytes that are not a frame (a bad length, a frame over the limit): their first bytes,
    /// for the error policy.
    Bad {
        error: String,
        raw: Vec<u8>,
    },
}

/// Splits a TCP stream into frames, octet-counted or newline-ended (RFC 6587 §3.4).
#[derive(Clone, Debug)]
pub struct Framer {
    max: usize,
    buf: Vec<u8>,
    /// Skipping an oversized newline-ended frame up to its LF.
    skipping: bool,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        assert!(
            max >= 16,
            "a syslog frame limit below 16 bytes refuses every message"
        );
        Framer {
            max,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// Bytes held of an unfinished frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feed bytes read from the connection; returns the frames completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(f) = self.next_frame() {
            out.extend(f);
        }
        // An octet-counted frame waits whole: its count (≤ 9 digits), a space, ≤ max bytes.
        assert!(self.buf.len() <= self.max + 10);
        out
    }

    /// One frame off the front of the buffer, `Some(None)` for bytes consumed silently, `None`
    /// when more bytes are needed.
    fn next_frame(&mut self) -> Option<Option<Frame>> {
        if self.skipping {
            let lf = self.buf.iter().position(|&b| b == b'\n');
            let n = lf.map_or(self.buf.len(), |i| i + 1);
            self.buf.drain(..n);
            self.skipping = lf.is_none();
            return lf.map(|_| None);
        }
        let first = *self.buf.first()?;
        if matches!(first, b'\n' | b'\r' | b'\0' | b' ') {
            self.buf.remove(0);
            return Some(None);
        }
        if first.is_ascii_digit() {
            return self.octet_counted();
        }
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) if i <= self.max => {
                let f: Vec<u8> = self.buf.drain(..=i).collect();
                Some(Some(Frame::Message(f[..i].to_vec())))
            }
            None if self.buf.len() <= self.max => None,
            _ => {
                let raw = self.buf[..self.max].to_vec();
                self.skipping = true;
                Some(Some(Frame::Bad {
                    error: format!("a newline-ended frame longer than {} bytes", self.max),
                    raw,
                }))
            }
        }
    }

    fn octet_counted(&mut self) -> Option<Option<Frame>> {
        let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == self.buf.len() && digits <= 9 {
            return None; // the length is still arriving
        }
        let bad = |framer: &mut Framer, error: String| {
            // Recover at the next LF, as a newline-framing sender would resynchronize.
            let raw = framer.buf[..framer.buf.len().min(64)].to_vec();
            framer.skipping = true;
            Some(Some(Frame::Bad { error, raw }))
        };
        if digits > 9 || self.buf[digits] != b' ' {
            return bad(self, "an octet count is not followed by a space".into());
        }
        let len: usize = std::str::from_utf8(&self.buf[..digits])
            .expect("ASCII digits")
            .parse()
            .expect("at most 9 digits");
        if len == 0 || len > self.max {
            return bad(
                self,
                format!("an octet count of {len}, not 1 to {}", self.max),
            );
        }
        if self.buf.len() < digits + 1 + len {
            return None;
        }
        let f: Vec<u8> = self.buf.drain(..digits + 1 + len).collect();
        Some(Some(Frame::Message(f[digits + 1..].to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc5424_examples_parse() {
        // RFC 5424 §6.5, example 1 (without the BOM) and example 3.
        let m = parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8").unwrap();
        assert_eq!((m.facility, m.severity, m.rfc), (4, 2, 5424));
        assert_eq!(m.severity_name(), "crit");
        assert_eq!(m.host.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app.as_deref(), Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        let m = parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...".as_bytes()).unwrap();
        assert_eq!((m.facility_name(), m.severity_name()), ("local4", "notice"));
        assert_eq!(
            m.structured_data.as_deref(),
            Some("[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]")
        );
        assert_eq!(m.message, "An application event log entry...");
        // Example 4: structured data with an escaped ']' and no message.
        let m = parse(br#"<165>1 2003-10-11T22:14:15.003Z host app 1 - [a@1 x="y\]z"][b@2 k="v"]"#)
            .unwrap();
        assert_eq!(
            m.structured_data.as_deref(),
            Some(r#"[a@1 x="y\]z"][b@2 k="v"]"#)
        );
        assert_eq!(m.message, "");
    }

    #[test]
    fn rfc3164_examples_parse() {
        // RFC 3164 §5.4's first example, and what `logger --rfc3164` sends.
        let m =
            parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
                .unwrap();
        assert_eq!((m.facility, m.severity, m.rfc), (4, 2, 3164));
        assert_eq!(m.host.as_deref(), Some("mymachine"));
        assert_eq!(m.app.as_deref(), Some("su"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        let m = parse(b"<13>Dec  7 17:23:12 box alice[4242]: hello world\n").unwrap();
        assert_eq!(m.timestamp.as_deref(), Some("Dec  7 17:23:12"));
        assert_eq!(m.app.as_deref(), Some("alice"));
        assert_eq!(m.procid.as_deref(), Some("4242"));
        assert_eq!(m.message, "hello world");
        // rsyslog's RSYSLOG_ForwardFormat: the BSD layout with an RFC 3339 timestamp.
        let m = parse(b"<30>2026-12-07T17:55:51.543483+00:00 vm app: fwd").unwrap();
        assert_eq!(
            m.timestamp.as_deref(),
            Some("2026-12-07T17:55:51.543483+00:00")
        );
        assert_eq!(
            (m.host.as_deref(), m.app.as_deref()),
            (Some("vm"), Some("app"))
        );
        assert_eq!(m.message, "fwd");
        // No timestamp: accepted, all of it is the message (RFC 3164 §4.3.2).
        let m = parse(b"<0>just text").unwrap();
        assert_eq!((m.host, m.message.as_str()), (None, "just text"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"hello",
            b"<>x",
            b"<192>1 - - - - - -",
            b"<0013>x",
            b"<01>x",
            b"<13>1 2003-10-11T22:14:15Z host",
            b"<13>1 - - - - - [unclosed x=\"]\"",
            b"<13>1 - - - - - -x",
            b"<13>\xff\xfe",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tcp_frames_octet_counted_and_newline_ended_mix_and_bad_ones_are_reported() {
        let mut f = Framer::new(100);
        let mut got = f.feed(b"11 <13>1 - - -<13>Oct 11 22:14:15 h a: x\n2");
        got.extend(f.feed(b"0 <13>1 - h a - - - hi\n"));
        assert_eq!(
            got,
            [
                Frame::Message(b"<13>1 - - -".to_vec()),
                Frame::Message(b"<13>Oct 11 22:14:15 h a: x".to_vec()),
                Frame::Message(b"<13>1 - h a - - - hi".to_vec()),
            ]
        );
        let got = f.feed(b"12x junk\n<1>ok\n");
        assert!(matches!(got[0], Frame::Bad { .. }));
        assert_eq!(got[1], Frame::Message(b"<1>ok".to_vec()));
        let mut f = Framer::new(16);
        let got = f.feed(&[b'<'; 40]);
        assert!(matches!(got[..], [Frame::Bad { .. }]));
        assert_eq!(f.feed(b"more\n<1>x\n"), [Frame::Message(b"<1>x".to_vec())]);
    }

    proptest! {
        #[test]
        fn no_input_panics_the_parser_or_the_framer(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..300,
        ) {
            let _ = parse(&bytes);
            let mut f = Framer::new(64);
            let cut = cut.min(bytes.len());
            let mut frames = f.feed(&bytes[..cut]);
            frames.extend(f.feed(&bytes[cut..]));
            for fr in frames {
                if let Frame::Message(m) = fr {
                    prop_assert!(m.len() <= 64);
                    let _ = parse(&m);
                }
            }
        }
    }
}
