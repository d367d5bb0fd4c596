//! `gregor connect` with real processes: a file source following a file through appends,
//! rotation by rename and a `kill -9` of the worker, a file sink writing what it reads, and
//! the syslog source fed by util-linux `logger` and by rsyslog, read back by kcat with headers.

use crate::harness::{free_port, gregor_bin, kcat_read, run, Broker};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `gregor connect` worker process with its config and log in `dir`.
struct Worker {
    dir: PathBuf,
    bootstrap: String,
    child: Option<Child>,
}

impl Worker {
    fn start(dir: &Path, bootstrap: &str, config: &str) -> Worker {
        std::fs::write(dir.join("connect.toml"), config).unwrap();
        let mut w = Worker {
            dir: dir.to_path_buf(),
            bootstrap: bootstrap.to_string(),
            child: None,
        };
        w.spawn();
        w
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("connect.log"))
            .unwrap();
        let child = Command::new(gregor_bin())
            .args(["connect", "--config"])
            .arg(self.dir.join("connect.toml"))
            .args(["--bootstrap", &self.bootstrap])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gregor connect");
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("connect.log")).unwrap_or_default()
    }

    /// Wait until the log says `what` (at least `count` times).
    fn wait_log(&self, what: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log().matches(what).count() < count {
            assert!(Instant::now() < deadline, "no {what:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM; the worker must exit 0 within 30 s.
    fn terminate(&mut self) {
        let mut c = self.child.take().expect("running");
        let pid = c.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                assert!(s.success(), "worker exited with {s}:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- connect log ----\n{}", self.log());
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gregor-connect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn append(path: &Path, lines: impl Iterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// How many times each line occurs in `path`.
fn counts(path: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut m = BTreeMap::new();
    for l in text.lines() {
        *m.entry(l.to_string()).or_default() += 1;
    }
    m
}

/// Wait until every one of `lines` is in the sink's file.
fn wait_for_lines(out: &Path, lines: &[String], w: &Worker) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = counts(out);
        let missing: Vec<&String> = lines.iter().filter(|l| !c.contains_key(*l)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} line(s) never reached the sink, first {:?}\n{}",
            missing.len(),
            missing[0],
            w.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn file_config(dir: &Path, topic: &str) -> String {
    format!(
        r#"
[worker]
offset.flush.interval.ms = 100

[[connector]]
name = "source"
class = "file-source"
file = "{input}"
topic = "{topic}"
poll.interval.ms = 20

[[connector]]
name = "sink"
class = "file-sink"
file = "{output}"
topics = "{topic}"
"#,
        input = dir.join("in.log").display(),
        output = dir.join("out.log").display(),
    )
}

fn batch(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} line {i:05}")).collect()
}

#[test]
fn a_file_source_follows_rotation_and_a_kill_9_and_the_sink_gets_every_line() {
    let b = Broker::start(&[]);
    let dir = scratch("rotate");
    let (input, output) = (dir.join("in.log"), dir.join("out.log"));
    let first = batch("first", 2000);
    append(&input, first.iter().cloned());
    let mut w = Worker::start(&dir, &b.bootstrap(), &file_config(&dir, "logs"));
    wait_for_lines(&output, &first, &w);

    // Rotation as logrotate does it: rename, then lines in the old file (a writer still holding
    // it open), then a new file at the path.
    std::fs::rename(&input, dir.join("in.log.1")).unwrap();
    let late = batch("late-in-old-file", 300);
    append(&dir.join("in.log.1"), late.iter().cloned());
    let second = batch("second", 2000);
    append(&input, second.iter().cloned());
    wait_for_lines(&output, &late, &w);
    w.wait_log("was rotated", 1);

    // kill -9 while lines arrive; the restarted worker resumes at its stored offsets.
    let third = batch("third", 3000);
    append(&input, third[..1500].iter().cloned());
    w.kill9();
    append(&input, third[1500..].iter().cloned());
    w.spawn();
    w.wait_log("resuming at the stored offset", 1);
    wait_for_lines(&output, &third, &w);
    w.terminate();

    let all: Vec<String> = [first, late, second, third].concat();
    wait_for_lines(&output, &all, &w);
    let c = counts(&output);
    assert_eq!(c.len(), all.len(), "the sink wrote only input lines");
    // The topic too holds every line at least once, as kcat reads it.
    let topic = kcat_read(&b.bootstrap(), "logs", 0, "%s\n");
    let in_topic: std::collections::BTreeSet<&str> = topic.iter().map(String::as_str).collect();
    assert!(all.iter().all(|l| in_topic.contains(l.as_str())));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn after_clean_stops_the_sinks_file_equals_the_input_without_a_duplicate() {
    let b = Broker::start(&[]);
    let dir = scratch("clean");
    let (input, output) = (dir.join("in.log"), dir.join("out.log"));
    let mut all = Vec::new();
    let mut w = Worker::start(&dir, &b.bootstrap(), &file_config(&dir, "clean"));
    for round in 0..3 {
        let lines = batch(&format!("round{round}"), 1500);
        append(&input, lines.iter().cloned());
        all.extend(lines);
        wait_for_lines(&output, &all, &w);
        w.terminate();
        // Lines written while the worker is stopped are read after its restart.
        let between = batch(&format!("stopped{round}"), 200);
        append(&input, between.iter().cloned());
        all.extend(between);
        w.spawn();
    }
    wait_for_lines(&output, &all, &w);
    w.terminate();
    let written = std::fs::read_to_string(&output).unwrap();
    let expected: String = all.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(written, expected, "exactly the input, in order, once");
    assert_eq!(kcat_read(&b.bootstrap(), "clean", 0, "%s\n"), all);
    // The offsets topic is compacted, with Kafka's JSON key for the file source.
    let offsets = kcat_read(&b.bootstrap(), "connect-offsets", 0, "%k|%s\n");
    let last = offsets.last().expect("offsets were stored");
    let key = format!(r#"["source",{{"filename":"{}"}}]"#, input.display());
    assert!(last.starts_with(&format!("{key}|")), "{last}");
    let size = std::fs::metadata(&input).unwrap().len();
    assert!(last.contains(&format!("\"position\":{size}")), "{last}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The syslog source on a free port, keyed by host, bad frames to a dead-letter topic.
fn syslog_worker(dir: &Path, b: &Broker, port: u16) -> Worker {
    let config = format!(
        r#"
[[connector]]
name = "syslog"
class = "syslog-source"
topic = "syslog"
listen.udp = "127.0.0.1:{port}"
listen.tcp = "127.0.0.1:{port}"
key.field = "host"
errors.tolerance = "all"
errors.deadletterqueue.topic.name = "syslog-dlq"
"#
    );
    let w = Worker::start(dir, &b.bootstrap(), &config);
    w.wait_log("syslog listening on TCP", 1);
    w
}

/// kcat's view of the syslog topic: `key|value|headers` lines, waiting until `n` are there
/// (kcat fails while the topic does not exist yet: that is waited for too).
fn read_syslog(b: &Broker, topic: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = run(
            Command::new("timeout")
                .args(["30", "kcat", "-C", "-b", &b.bootstrap(), "-t", topic])
                .args(["-o", "beginning", "-e", "-q", "-f", "%k|%s|%h\n"]),
            "kcat",
        );
        let got: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        if (o.status.success() && got.len() >= n) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn logger(args: &[&str]) {
    let o = run(Command::new("logger").args(args), "logger (util-linux)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn logger_over_udp_and_tcp_reaches_the_topic_with_host_app_and_severity_headers() {
    let b = Broker::start(&[]);
    let dir = scratch("syslog");
    let port = free_port();
    let p = port.to_string();
    let mut w = syslog_worker(&dir, &b, port);
    let common = ["-n", "127.0.0.1", "-P", &p, "--id=4242"];
    logger(
        &[
            &common[..],
            &[
                "-d",
                "--rfc5424",
                "-t",
                "udpapp",
                "-p",
                "local3.err",
                "over udp 5424",
            ],
        ]
        .concat(),
    );
    logger(
        &[
            &common[..],
            &[
                "-T",
                "--rfc3164",
                "-t",
                "tcpapp",
                "-p",
                "user.warning",
                "over tcp 3164",
            ],
        ]
        .concat(),
    );
    logger(
        &[
            &common[..],
            &[
                "-T",
                "--octet-count",
                "--rfc5424",
                "-t",
                "octets",
                "octet counted",
            ],
        ]
        .concat(),
    );
    // Garbage on UDP: skipped, logged and kept in the dead-letter topic.
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(b"not syslog at all", ("127.0.0.1", port))
        .unwrap();

    let got = read_syslog(&b, "syslog", 3);
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let host = host.trim();
    let find = |msg: &str| {
        got.iter()
            .find(|l| l.split('|').nth(1) == Some(msg))
            .unwrap_or_else(|| panic!("{msg:?} not in {got:?}"))
            .clone()
    };
    let udp = find("over udp 5424");
    assert!(udp.starts_with(&format!("{host}|")), "keyed by host: {udp}");
    assert!(
        udp.contains("app=udpapp") && udp.contains("severity=err"),
        "{udp}"
    );
    assert!(udp.contains("facility=local3"), "{udp}");
    let tcp = find("over tcp 3164");
    assert!(
        tcp.contains("app=tcpapp") && tcp.contains("severity=warning"),
        "{tcp}"
    );
    assert!(find("octet counted").contains("app=octets"));
    let dlq = read_syslog(&b, "syslog-dlq", 1);
    assert!(dlq[0].contains("|not syslog at all|"), "{dlq:?}");
    assert!(
        dlq[0].contains("__connect.errors.exception.message="),
        "{dlq:?}"
    );
    w.wait_log("skipping a bad record", 1);
    w.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rsyslog_forwards_to_the_syslog_source_over_tcp_and_udp() {
    let b = Broker::start(&[]);
    let dir = scratch("rsyslog");
    let (port, inport) = (free_port(), free_port());
    let mut w = syslog_worker(&dir, &b, port);
    // rsyslog (Debian's) receives on UDP and forwards every message twice: RFC 5424 over TCP
    // octet-counted (RFC 5425's framing), and its traditional RFC 3164 format over UDP.
    let conf = format!(
        r#"global(workDirectory="{dir}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{inport}")
*.* action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
*.* action(type="omfwd" target="127.0.0.1" port="{port}" protocol="udp" template="RSYSLOG_ForwardFormat")
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
    let rsyslogd = ["/usr/sbin/rsyslogd", "rsyslogd"]
        .into_iter()
        .find(|p| Command::new(p).arg("-v").output().is_ok())
        .unwrap_or_else(|| panic!("no rsyslogd; install the test tools with `bash tests/run.sh`"));
    let mut rs = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let p = inport.to_string();
    for i in 0..5 {
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &p,
            "-d",
            "-t",
            "viarsyslog",
            &format!("forwarded {i}"),
        ]);
    }
    let got = read_syslog(&b, "syslog", 10);
    let _ = rs.kill();
    let _ = rs.wait();
    for i in 0..5 {
        let msg = format!("forwarded {i}");
        let n = got
            .iter()
            .filter(|l| l.split('|').nth(1) == Some(msg.as_str()))
            .count();
        assert_eq!(n, 2, "{msg:?} once by TCP and once by UDP: {got:?}");
    }
    assert!(got.iter().all(|l| l.contains("app=viarsyslog")), "{got:?}");
    w.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
