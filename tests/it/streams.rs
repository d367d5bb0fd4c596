//! `gregor streams wordcount` with real processes: two instances share a 4-partition input
//! through their consumer group; one is `kill -9`ed while lines are still arriving; the other
//! takes its tasks over, restoring their counts from the changelog topic, and the final counts
//! read back with kcat (the latest value of each word) equal the counts of the input.

use crate::harness::{create_topic, gregor_bin, kcat_read, python, Broker};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORDS: [&str; 8] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
];

fn line(i: usize) -> String {
    format!(
        "{} {} {}",
        WORDS[i % 8],
        WORDS[(i * 3 + 1) % 8],
        WORDS[(i / 8) % 8]
    )
}

fn expected(lines: usize) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..lines {
        for w in line(i).split(' ') {
            *m.entry(w.to_string()).or_default() += 1;
        }
    }
    m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

fn produce(b: &Broker, range: std::ops::Range<usize>) {
    let mut child = Command::new(gregor_bin())
        .args(["produce", "--topic", "lines", "--bootstrap", &b.bootstrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in range {
        writeln!(stdin, "{}", line(i)).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The latest count of each word in the output topic (2 partitions), as kcat reads it.
fn counts(b: &Broker) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for p in 0..2 {
        for l in kcat_read(&b.bootstrap(), "counts", p, "%k=%s\n") {
            if let Some((k, v)) = l.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

struct Instance {
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    /// A word-count instance of application `wc-e2e`.
    fn start(dir: &Path, name: &str, b: &Broker) -> Instance {
        let app = ["wordcount", "--input", "lines", "--output", "counts"];
        Instance::spawn(dir, name, b, &app, "wc-e2e")
    }

    fn spawn(dir: &Path, name: &str, b: &Broker, app: &[&str], app_id: &str) -> Instance {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(gregor_bin())
            .arg("streams")
            .args(app)
            .args(["--application-id", app_id, "--bootstrap", &b.bootstrap()])
            .args(["--session-timeout-ms", "6000"])
            .args(["--commit-interval-ms", "300"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start gregor streams");
        Instance {
            log,
            child: Some(child),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The tasks of the last progress line.
    fn tasks(&self) -> Option<String> {
        let log = self.log();
        let l = log.lines().rev().find(|l| l.contains("progress"))?;
        let start = l.find("tasks=")?;
        Some(l[start..].split(']').next()?.to_string())
    }

    fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool, diag: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: timed out\n{}", diag());
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn wordcount_survives_a_kill_9_of_one_of_two_instances() {
    let b = Broker::start(&[]);
    create_topic(&b, "lines", 4);
    create_topic(&b, "counts", 2);
    let dir = b.data_dir.with_extension("streams");
    std::fs::create_dir_all(&dir).unwrap();
    let mut a = Instance::start(&dir, "a", &b);
    let c = Instance::start(&dir, "b", &b);
    let diag = |a: &Instance, c: &Instance| format!("--- a:\n{}\n--- b:\n{}", a.log(), c.log());
    // Both hold tasks: the group shared the partitions (each of 8 tasks on one instance).
    wait_for(
        "both instances with tasks",
        Duration::from_secs(60),
        || {
            let (ta, tb) = (a.tasks(), c.tasks());
            ta.is_some_and(|t| t.contains('_')) && tb.is_some_and(|t| t.contains('_'))
        },
        || diag(&a, &c),
    );
    let first = 3_000;
    produce(&b, 0..first);
    wait_for(
        "the counts of the first lines",
        Duration::from_secs(90),
        || counts(&b) == expected(first),
        || format!("{:?}\n{}", counts(&b), diag(&a, &c)),
    );
    // More lines, and instance a dies while they are processed: its results in flight and
    // its uncommitted offsets are lost; b gets its tasks after the session timeout.
    let total = 9_000;
    produce(&b, first..6_000);
    a.kill9();
    produce(&b, 6_000..total);
    wait_for(
        "b runs all 8 tasks",
        Duration::from_secs(60),
        || c.tasks().is_some_and(|t| t.matches('_').count() == 8),
        || diag(&a, &c),
    );
    // b restored a's stores from the changelog: a restoration that read records.
    assert!(
        c.log()
            .lines()
            .any(|l| l.contains("restoration done") && !l.contains("records=0")),
        "{}",
        c.log()
    );
    wait_for(
        "the final counts",
        Duration::from_secs(120),
        || counts(&b) == expected(total),
        || {
            format!(
                "{:?}\nwanted {:?}\n{}",
                counts(&b),
                expected(total),
                diag(&a, &c)
            )
        },
    );
}

/// The severity example on lines with chosen timestamps (one partition, so one order): counts
/// per severity per minute, a late line inside the grace period counted, one past it dropped.
#[test]
fn severity_counts_per_minute_with_grace() {
    let b = Broker::start(&[]);
    create_topic(&b, "logs", 1);
    create_topic(&b, "sev", 1);
    let base: i64 = 28_333_333 * 60_000; // a minute boundary
    let recs: Vec<String> = [
        ("err", 1_000),
        ("err", 2_000),
        ("info", 3_000),
        ("err", 61_000),
        ("warning", 62_000),
        ("info", 30_000), // late, within the 10 s grace of window 0 (closes at 70 s)
        ("-", 63_000),    // no header: "unknown"
        ("err", 75_000),  // stream time 75 s: window 0 is closed
        ("err", 5_000),   // too late: dropped
    ]
    .iter()
    .map(|(s, t)| format!("{s}:{}", base + t))
    .collect();
    let bootstrap = b.bootstrap();
    let args: Vec<&str> = [bootstrap.as_str(), "logs"]
        .into_iter()
        .chain(recs.iter().map(String::as_str))
        .collect();
    assert_eq!(python("streams_logs.py", &args)["produced"], 9);
    let dir = b.data_dir.with_extension("streams");
    std::fs::create_dir_all(&dir).unwrap();
    let app = [
        "severity",
        "--input",
        "logs",
        "--output",
        "sev",
        "--grace-ms",
        "10000",
    ];
    let s = Instance::spawn(&dir, "sev", &b, &app, "sev-e2e");
    let w1 = base + 60_000;
    let want: BTreeMap<String, String> = [
        (format!("err@{base}"), "2"),
        (format!("info@{base}"), "2"),
        (format!("err@{w1}"), "2"),
        (format!("warning@{w1}"), "1"),
        (format!("unknown@{w1}"), "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let read = || -> BTreeMap<String, String> {
        kcat_read(&b.bootstrap(), "sev", 0, "%k=%s\n")
            .into_iter()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    };
    wait_for(
        "the windowed counts",
        Duration::from_secs(60),
        || read() == want,
        || format!("{:?}\nwanted {want:?}\n{}", read(), s.log()),
    );
}
