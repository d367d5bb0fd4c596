//! Process roles (Kafka's `process.roles`): three controller-only nodes form the metadata
//! quorum and serve no Kafka clients; a broker-only node follows their log as an observer,
//! registers with the active controller, and serves a client's topics, produce and fetch.
//! Contradictory settings are refused at start with a message saying what is wrong.

use crate::harness::{free_port, gregor_bin, python, Broker};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A controller-only process (no Kafka listener, so not a harness `Broker`); killed on drop.
struct Controller {
    child: Child,
    dirs: [PathBuf; 2],
    log: PathBuf,
}

impl Controller {
    fn start(id: usize, port: u16, voters: &str) -> Controller {
        let base =
            std::env::temp_dir().join(format!("gregor-it-ctl-{}-{port}-{id}", std::process::id()));
        let dirs = [base.with_extension("data"), base.with_extension("meta")];
        for d in &dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        let log = base.with_extension("log");
        let child = Command::new(gregor_bin())
            .args(["serve", "--process-roles", "controller", "--node-id"])
            .arg(id.to_string())
            .arg("--controller-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--controller-quorum-voters")
            .arg(voters)
            .arg("--data-dir")
            .arg(&dirs[0])
            .arg("--metadata-log-dir")
            .arg(&dirs[1])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start gregor");
        Controller { child, dirs, log }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- controller log {} ----\n{log}", self.log.display());
            return;
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `gregor serve ARGS` must exit at once with an error containing `why`.
fn refused(args: &[&str], why: &str) {
    let dir = std::env::temp_dir().join(format!("gregor-it-refused-{}", free_port()));
    let out = Command::new(gregor_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&dir)
        .args(args)
        .output()
        .expect("run gregor");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "gregor serve {args:?} should be refused"
    );
    assert!(err.contains(why), "gregor serve {args:?}: {err}");
}

#[test]
fn three_controllers_alone_and_a_broker_alone_serve_a_client() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = (1..=3)
        .map(|i| format!("{i}@127.0.0.1:{}", ports[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let controllers: Vec<Controller> = (1..=3)
        .map(|i| Controller::start(i, ports[i - 1], &voters))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    for p in &ports {
        while TcpStream::connect(("127.0.0.1", *p)).is_err() {
            assert!(Instant::now() < deadline, "controller on {p} not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // A controller alone has no Kafka listener: its default one (9092) is not what it opened,
    // and it runs no broker, so its log never says it serves Kafka clients.
    let broker = Broker::start(&[
        "--process-roles",
        "broker",
        "--node-id",
        "4",
        "--controller-quorum-voters",
        &voters,
    ]);
    let bs = broker.bootstrap();
    // The broker registers with the active controller and is unfenced: Metadata lists it,
    // and only it (controllers are not brokers). A broker of a cluster serves while the quorum
    // forms, and before its first metadata image it knows only itself: so the image must have
    // arrived too, or the controller may not know the broker yet when the topic is created.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let brokers = python("cluster.py", &["brokers", &bs]);
        let imaged = broker.log().contains("first metadata image (offset");
        if imaged && brokers == serde_json::json!([[4, "127.0.0.1", broker.port]]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker 4 not unfenced: {brokers}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let created = python("cluster.py", &["create", &bs, "roles", "3"]);
    assert_eq!(
        created["leaders"],
        serde_json::json!({"0": 4, "1": 4, "2": 4}),
        "{created}"
    );
    let p = python("cluster.py", &["produce", &bs, "roles", "90", "r"]);
    assert_eq!(p["failed"], serde_json::json!([]), "{p}");
    let r = python("cluster.py", &["read", &bs, "roles", "3"]);
    let mut values: Vec<String> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[2].as_str().unwrap().to_string())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..90).map(|i| format!("r-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected, "every acknowledged record read back");
    for c in &controllers {
        let log = std::fs::read_to_string(&c.log).unwrap();
        assert!(!log.contains("serving Kafka clients"), "{log}");
    }
    assert!(broker.log().contains("role=Broker"));
}

#[test]
fn contradictory_roles_are_refused() {
    let one = "1@127.0.0.1:19093";
    refused(
        &["--process-roles", "controller"],
        "process_roles=controller needs controller_quorum_voters",
    );
    refused(
        &["--process-roles", "broker"],
        "process_roles=broker needs controller_quorum_voters",
    );
    refused(
        &[
            "--process-roles",
            "broker",
            "--node-id",
            "1",
            "--controller-quorum-voters",
            one,
        ],
        "a voter is a controller",
    );
    refused(
        &[
            "--process-roles",
            "controller",
            "--node-id",
            "2",
            "--controller-listen",
            "127.0.0.1:19093",
            "--controller-quorum-voters",
            one,
        ],
        "not one of the controller quorum voters",
    );
    refused(&["--process-roles", "zookeeper"], "process_roles");
}
