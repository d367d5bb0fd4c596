//! SCRAM users in the metadata log (KIP-554, docs/security.md): created, described and deleted
//! with confluent-kafka's AdminClient as with Kafka, then used by real clients (a confluent-kafka
//! producer, kcat) on a SASL_PLAINTEXT listener; a deleted user can no longer log in; and on a
//! three-node cluster a user added through one broker logs into another.

use crate::cluster::Cluster;
use crate::harness::{free_port, gregor_bin, python, run, Broker};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// A broker with the harness's PLAINTEXT listener, a SASL_PLAINTEXT one, and one TOML user
/// (`admin`), which the first controller writes into the metadata log as a SCRAM user.
fn start() -> (Broker, String) {
    let dir = std::env::temp_dir().join(format!(
        "gregor-scram-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gregor.toml");
    std::fs::write(&config, "[users]\nadmin = \"admin-secret\"\n").unwrap();
    let sasl = format!("127.0.0.1:{}", free_port());
    let listen = format!("SASL_PLAINTEXT://{sasl}");
    let b = Broker::start(&["--config", config.to_str().unwrap(), "--listen", &listen]);
    (b, sasl)
}

fn users(bs: &str, proto: &str, action: &str, user: &str, password: &str) -> Value {
    python(
        "scram_users.py",
        &[bs, proto, "admin", "admin-secret", action, user, password],
    )
}

/// Whether `user` gets the cluster's metadata from kcat over SCRAM-SHA-512 on `sasl`.
fn kcat_logs_in(sasl: &str, user: &str, password: &str) -> bool {
    let out = run(
        Command::new("timeout").args([
            "20",
            "kcat",
            "-b",
            sasl,
            "-L",
            "-m",
            "5",
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanism=SCRAM-SHA-512",
            "-X",
            &format!("sasl.username={user}"),
            "-X",
            &format!("sasl.password={password}"),
        ]),
        "kcat",
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("broker")
}

/// Poll (every 250 ms, at most `limit`) until `f` holds.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    for _ in 0..(limit.as_millis() / 250 + 1) {
        if f() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what} within {limit:?}");
}

#[test]
fn admin_client_creates_a_user_clients_log_in_and_a_deleted_user_cannot() {
    let (b, sasl) = start();
    // The bootstrapped TOML user administers over SCRAM; the new user does not exist yet.
    let r = users(&sasl, "SASL_PLAINTEXT", "describe", "carol", "");
    assert_eq!(r["carol"]["error"], "RESOURCE_NOT_FOUND", "{r}");
    let r = users(&sasl, "SASL_PLAINTEXT", "add", "carol", "carol-pw");
    assert_eq!(r, json!({"carol": null}));
    let r = users(&b.bootstrap(), "PLAINTEXT", "describe", "-", "");
    assert_eq!(
        r["carol"]["credentials"],
        json!([["SCRAM_SHA_512", 8192]]),
        "{r}"
    );
    assert_eq!(
        r["admin"]["credentials"].as_array().map(Vec::len),
        Some(2),
        "{r}"
    );
    // A confluent-kafka producer and consumer, and kcat, log in as the new user.
    let p = python(
        "secure.py",
        &[
            "confluent",
            &sasl,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
            "carol",
            "carol-pw",
            "-",
            "scram-t",
            "5",
        ],
    );
    assert_eq!(p["produced"], 5, "{p}");
    assert_eq!(p["consumed"].as_array().map(Vec::len), Some(5), "{p}");
    assert!(kcat_logs_in(&sasl, "carol", "carol-pw"));
    assert!(!kcat_logs_in(&sasl, "carol", "not-carols"));
    // Deleted: the next login fails; deleting again is RESOURCE_NOT_FOUND.
    let r = users(&b.bootstrap(), "PLAINTEXT", "delete", "carol", "");
    assert_eq!(r, json!({"carol": null}));
    let p = python(
        "secure.py",
        &[
            "confluent",
            &sasl,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
            "carol",
            "carol-pw",
            "-",
            "scram-t",
            "1",
        ],
    );
    assert_eq!(p["produced"], 0, "{p}");
    assert!(
        p["errors"].to_string().contains("Authentication failed"),
        "{p}"
    );
    let r = users(&b.bootstrap(), "PLAINTEXT", "delete", "carol", "");
    assert_eq!(r, json!({"carol": "RESOURCE_NOT_FOUND"}));
    let log = b.log();
    assert!(!log.contains("carol-pw"), "no password in the log");
}

#[test]
fn a_user_added_through_one_broker_logs_into_another() {
    let sasl: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let c = Cluster::start_with(&|i| {
        vec![
            "--listen".into(),
            format!("SASL_PLAINTEXT://{}", sasl[i - 1]),
        ]
    });
    c.wait_brokers(1, &[1, 2, 3], Duration::from_secs(30), "three brokers");
    let r = users(&c.bs(1), "PLAINTEXT", "add", "dave", "dave-pw");
    assert_eq!(r, json!({"dave": null}));
    for node in [2, 3] {
        eventually(
            Duration::from_secs(15),
            "dave logs into another broker",
            || kcat_logs_in(&sasl[node - 1], "dave", "dave-pw"),
        );
    }
    let r = users(&c.bs(3), "PLAINTEXT", "describe", "dave", "");
    assert_eq!(
        r["dave"]["credentials"],
        json!([["SCRAM_SHA_512", 8192]]),
        "{r}"
    );
}

/// `gregor users` (kafka-configs --entity-type users in Kafka's tools), logged in as the TOML
/// admin over SCRAM-SHA-512 (or PLAIN through a `--command-config` properties file).
fn gregor_users(sasl: &str, login: &[&str], args: &[&str]) -> (bool, String) {
    let out = run(
        Command::new(gregor_bin())
            .arg("users")
            .args(args)
            .args(["--bootstrap", sasl])
            .args(login),
        "gregor users",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn gregor_users_adds_a_user_who_logs_in_and_removes_one_who_then_cannot() {
    let (b, sasl) = start();
    let scram = [
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "admin",
        "--sasl-password",
        "admin-secret",
    ];
    let (ok, text) = gregor_users(
        &sasl,
        &scram,
        &["add", "--user", "erin", "--password", "erin-pw"],
    );
    assert!(ok, "{text}");
    let (ok, text) = gregor_users(&sasl, &scram, &["describe", "--user", "erin"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("erin SCRAM-SHA-512=[iterations=8192]"),
        "{text}"
    );
    // The same admin through a Java client's properties file, with PLAIN.
    let props = std::env::temp_dir().join(format!("gregor-admin-{}.properties", free_port()));
    std::fs::write(
        &props,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\";\n",
    )
    .unwrap();
    let file = ["--command-config", props.to_str().unwrap()];
    let (ok, text) = gregor_users(&sasl, &file, &["list"]);
    assert!(ok, "{text}");
    assert!(text.contains("erin SCRAM-SHA-512"), "{text}");
    assert!(text.contains("admin SCRAM-SHA-256"), "{text}");
    // The new user logs in with kcat (librdkafka) and a confluent-kafka producer.
    eventually(Duration::from_secs(20), "erin logs in", || {
        kcat_logs_in(&sasl, "erin", "erin-pw")
    });
    let p = python(
        "secure.py",
        &[
            "confluent",
            &sasl,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
            "erin",
            "erin-pw",
            "-",
            "users-t",
            "3",
        ],
    );
    assert_eq!(p["produced"], 3, "{p}");
    // Removed: the next login is refused, and describing the user is RESOURCE_NOT_FOUND (91).
    let (ok, text) = gregor_users(&sasl, &scram, &["remove", "--user", "erin"]);
    assert!(ok, "{text}");
    eventually(Duration::from_secs(20), "erin's login refused", || {
        !kcat_logs_in(&sasl, "erin", "erin-pw")
    });
    let (ok, text) = gregor_users(&sasl, &scram, &["describe", "--user", "erin"]);
    assert!(!ok && text.contains("error code 91"), "{text}");
    // A wrong admin password: the tool reports the broker's refusal.
    let wrong = [
        "--sasl-mechanism",
        "SCRAM-SHA-256",
        "--sasl-username",
        "admin",
        "--sasl-password",
        "nope",
    ];
    let (ok, text) = gregor_users(&sasl, &wrong, &["list"]);
    assert!(!ok && text.contains("SASL authentication failed"), "{text}");
    assert!(!b.log().contains("erin-pw"), "no password in the log");
}
