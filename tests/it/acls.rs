//! ACLs with real clients (docs/security.md, "ACLs"): a SASL_PLAINTEXT broker with the
//! authorizer on and `User:admin` a super user. The admin grants alice Write and Read on
//! `orders` and Read on group `g1` with confluent-kafka's AdminClient; bob has nothing.

use crate::harness::{free_port, gregor_bin, python, run, Broker};
use std::process::Command;

fn start() -> (Broker, String) {
    let dir =
        std::env::temp_dir().join(format!("gregor-acl-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gregor.toml");
    std::fs::write(
        &config,
        "authorizer = \"standard\"\nsuper_users = [\"User:admin\"]\n\
         [users]\nadmin = \"admin-secret\"\nalice = \"alice-secret\"\nbob = \"bob-secret\"\n",
    )
    .unwrap();
    let port = free_port();
    let listen = format!("SASL_PLAINTEXT://127.0.0.1:{port}");
    let broker = Broker::start(&["--config", config.to_str().unwrap(), "--listen", &listen]);
    (broker, format!("127.0.0.1:{port}"))
}

fn kcat_as(user: &str, bootstrap: &str, args: &[&str]) -> std::process::Output {
    let password = format!("sasl.password={user}-secret");
    let username = format!("sasl.username={user}");
    run(
        Command::new("timeout")
            .args(["30", "kcat", "-b", bootstrap])
            .args([
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=PLAIN",
                "-X",
                &username,
                "-X",
                &password,
            ])
            .args(args),
        "kcat",
    )
}

#[test]
fn alice_may_use_orders_and_g1_bob_may_not_and_acls_are_listed_and_deleted() {
    let (broker, bootstrap) = start();
    let out = python("acls.py", &[&bootstrap]);
    let log = broker.log();
    assert_eq!(out["described"], 3, "{out} {log}");
    assert_eq!(
        out["bob_produce"],
        serde_json::json!(["TOPIC_AUTHORIZATION_FAILED"]),
        "{out}"
    );
    assert_eq!(
        out["alice_produce"],
        serde_json::json!([null, null, null, null, null]),
        "{out}"
    );
    let consumed: Vec<String> = (0..5).map(|i| format!("alice-{i}")).collect();
    assert_eq!(out["alice_consumed"], serde_json::json!(consumed), "{out}");
    assert_eq!(out["alice_commit"], "ok", "{out}");
    // Metadata hides what alice may not describe.
    assert_eq!(out["alice_topics"], serde_json::json!(["orders"]), "{out}");
    assert_eq!(out["bob_group"][0], "GROUP_AUTHORIZATION_FAILED", "{out}");
    assert_eq!(out["deleted"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["described_after"], 2, "{out}");
    assert!(
        log.contains("authorizer: principal User:bob from host 127.0.0.1 is denied operation"),
        "the denial is logged: {log}"
    );
    // kcat as alice reads orders; as bob it is refused.
    let alice = kcat_as(
        "alice",
        &bootstrap,
        &["-t", "orders", "-p", "0", "-C", "-e"],
    );
    let read = String::from_utf8_lossy(&alice.stdout);
    assert_eq!(
        read.lines().count(),
        5,
        "{read} {}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let bob = kcat_as("bob", &bootstrap, &["-t", "orders", "-p", "0", "-C", "-e"]);
    assert!(
        bob.stdout.is_empty(),
        "bob read orders: {}",
        String::from_utf8_lossy(&bob.stdout)
    );

    // `gregor acls add` as the admin: then bob may read orders; `remove` takes it back.
    let acls = |args: &[&str]| {
        let admin = [
            "--sasl-username",
            "admin",
            "--sasl-password",
            "admin-secret",
        ];
        let out = run(
            Command::new(gregor_bin())
                .args(["acls"])
                .args(args)
                .args(["--bootstrap", &bootstrap])
                .args(admin),
            "gregor acls",
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "gregor acls {args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let bob_reads = [
        "--principal",
        "User:bob",
        "--operation",
        "Read",
        "--topic",
        "orders",
    ];
    let added = acls(&[&["add"][..], &bob_reads].concat());
    assert!(added.contains("added Allow User:bob Read"), "{added}");
    let listed = acls(&["list", "--principal", "User:bob"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let mut read = Vec::new();
    for _ in 0..50 {
        let bob = kcat_as("bob", &bootstrap, &["-t", "orders", "-p", "0", "-C", "-e"]);
        read = String::from_utf8_lossy(&bob.stdout)
            .lines()
            .map(String::from)
            .collect();
        if read.len() == 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(read.len(), 5, "bob reads orders once allowed: {read:?}");
    let removed = acls(&[&["remove"][..], &bob_reads].concat());
    assert!(removed.contains("removed Allow User:bob Read"), "{removed}");
    assert_eq!(
        acls(&["list", "--principal", "User:bob"]).lines().count(),
        0
    );
}
