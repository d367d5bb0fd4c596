//! Start and stop the real broker binary.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The gregor binary: `GREGOR_BIN`, else the workspace's release or debug build.
pub fn gregor_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GREGOR_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for profile in ["release", "debug"] {
        let p = root.join("target").join(profile).join("gregor");
        if p.exists() {
            return p;
        }
    }
    panic!("no gregor binary: run `cargo build --release -p gregor-net` (tests/run.sh does)");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running broker on its own port and data directory; killed on drop.
pub struct Broker {
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Broker {
    pub fn start(extra: &[&str]) -> Broker {
        let dir =
            std::env::temp_dir().join(format!("gregor-it-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut b = Broker {
            port: free_port(),
            data_dir: dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let _ = std::fs::remove_dir_all(b.metadata_dir());
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(gregor_bin())
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gregor");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gregor did not start listening; see {}",
                self.log_path().display()
            );
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("gregor exited at start with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker process's id (for reading its memory use from /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the metadata log is unless `--metadata-log-dir` says otherwise: beside the data
    /// directory, named after it.
    pub fn metadata_dir(&self) -> PathBuf {
        let mut name = self.data_dir.file_name().unwrap().to_os_string();
        name.push("-metadata");
        self.data_dir.with_file_name(name)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// `kill -9`: no chance to flush or sync anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGTERM and wait for a clean exit; returns whether the exit code was 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.success();
            }
            if Instant::now() > deadline {
                c.kill().unwrap();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // A failing test keeps the broker's log and prints its tail: CI shows only the
            // output, and the log is what tells a client's fault from the broker's.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "---- broker log ({}), last {} lines ----",
                self.log_path().display(),
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            return;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        // The metadata log's default place, beside the data directory.
        let _ = std::fs::remove_dir_all(self.metadata_dir());
        let _ = std::fs::remove_file(self.log_path());
    }
}

/// Run a command, failing clearly if the client is not installed.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            panic!("cannot run {what} ({e}); install the test clients with `bash tests/run.sh`")
        }
    }
}

/// Run one of the Python client scripts in tests/clients and parse its JSON output.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    python_wait(python_spawn(script, args), script)
}

/// Start one of the Python client scripts in tests/clients in the background (a producer that
/// runs while a test injects faults); [`python_wait`] collects its JSON.
pub fn python_spawn(script: &str, args: &[&str]) -> std::process::Child {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(script);
    Command::new("python3")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install the test clients with `bash tests/run.sh`")
        })
}

/// Wait for a script started by [`python_spawn`] and parse the JSON of its last line.
pub fn python_wait(child: std::process::Child, script: &str) -> serde_json::Value {
    let out = child.wait_with_output().expect("wait for python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

/// What kcat (librdkafka's consumer) reads of one partition from the beginning to its end,
/// one line per record as `format` (kcat's `-f`) prints it. kcat retries a failing request
/// without end, so it is given 60 s.
pub fn kcat_read(bootstrap: &str, topic: &str, partition: i32, format: &str) -> Vec<String> {
    let partition = partition.to_string();
    let out = run(
        Command::new("timeout").args([
            "60",
            "kcat",
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            &partition,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            format,
        ]),
        "kcat",
    );
    assert!(
        out.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Run the gregor CLI against a broker.
pub fn cli(broker: &Broker, args: &[&str]) -> Output {
    let mut cmd = Command::new(gregor_bin());
    cmd.args(args).arg("--bootstrap").arg(broker.bootstrap());
    run(&mut cmd, "gregor")
}

/// Create `topic` with `partitions` partitions through `gregor topics create`.
pub fn create_topic(b: &Broker, topic: &str, partitions: i32) {
    let o = cli(
        b,
        &[
            "topics",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
