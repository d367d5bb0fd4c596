//! Security with real clients (docs/security.md): SSL, SASL_PLAINTEXT and SASL_SSL listeners,
//! SASL PLAIN and SCRAM, client certificates, and what a broker does with clients that speak
//! the wrong protocol on a port. Certificates are made by each test with Debian's `openssl`.

use crate::harness::{free_port, python, run, Broker};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate
/// (`CN=app1,O=gregor-tests`), all signed by the CA, in `dir`.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let sh = |args: &[&str]| {
        let out = run(
            Command::new("openssl").args(args).current_dir(dir),
            "openssl",
        );
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let req = |key: &str, out: &str, subj: &str, x509: bool| {
        let mut a = vec!["req"];
        if x509 {
            a.extend(["-x509", "-days", "2"]);
        }
        a.extend(ec);
        a.extend(["-keyout", key, "-out", out, "-subj", subj]);
        sh(&a);
    };
    req("ca.key", "ca.pem", "/CN=gregor-test-ca", true);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, subj) in [
        ("server", "/CN=localhost"),
        ("client", "/O=gregor-tests/CN=app1"),
    ] {
        req(&format!("{name}.key"), &format!("{name}.csr"), subj, false);
        sh(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
}

/// A broker with PLAINTEXT (the harness's), SSL, SASL_PLAINTEXT and SASL_SSL listeners and two
/// users, alice and bob.
struct Secured {
    broker: Broker,
    dir: PathBuf,
    ssl: String,
    sasl_plaintext: String,
    sasl_ssl: String,
}

impl Secured {
    fn start(extra_toml: &str) -> Secured {
        let dir =
            std::env::temp_dir().join(format!("gregor-sec-{}-{}", std::process::id(), free_port()));
        make_certificates(&dir);
        let d = dir.display();
        std::fs::write(
            dir.join("gregor.toml"),
            format!(
                "tls_cert = \"{d}/server.pem\"\ntls_key = \"{d}/server.key\"\n{extra_toml}\n[users]\nalice = \"alice-secret\"\nbob = \"bob-secret\"\n"
            ),
        )
        .unwrap();
        let (ssl, sp, ss) = (free_port(), free_port(), free_port());
        let config = dir.join("gregor.toml");
        let listeners = [
            format!("SSL://127.0.0.1:{ssl}"),
            format!("SASL_PLAINTEXT://127.0.0.1:{sp}"),
            format!("SASL_SSL://127.0.0.1:{ss}"),
        ];
        let broker = Broker::start(&[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &listeners[0],
            "--listen",
            &listeners[1],
            "--listen",
            &listeners[2],
        ]);
        Secured {
            broker,
            ssl: format!("127.0.0.1:{ssl}"),
            sasl_plaintext: format!("127.0.0.1:{sp}"),
            sasl_ssl: format!("127.0.0.1:{ss}"),
            dir,
        }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// kcat's `-X` settings for a listener.
    fn kcat_conf(&self, proto: &str, mech: &str, user: &str, password: &str) -> Vec<String> {
        let mut x = vec![format!("security.protocol={proto}")];
        if proto.starts_with("SASL") {
            x.push(format!("sasl.mechanism={mech}"));
            x.push(format!("sasl.username={user}"));
            x.push(format!("sasl.password={password}"));
        }
        if proto.ends_with("SSL") {
            x.push(format!("ssl.ca.location={}", self.ca()));
        }
        x.into_iter().flat_map(|s| ["-X".to_string(), s]).collect()
    }
}

/// Produce `n` records with kcat, then read them back; what was read.
fn kcat_round_trip(bootstrap: &str, conf: &[String], topic: &str, n: usize) -> Vec<String> {
    let mut p = Command::new("kcat")
        .args(["-b", bootstrap, "-t", topic, "-p", "0", "-P"])
        .args(conf)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (bash tests/run.sh)");
    let input: String = (0..n).map(|i| format!("v{i}\n")).collect();
    p.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat -P: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        Command::new("timeout")
            .args([
                "60", "kcat", "-b", bootstrap, "-t", topic, "-p", "0", "-C", "-e",
            ])
            .args(conf),
        "kcat",
    );
    assert!(
        out.status.success(),
        "kcat -C: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}")).collect()
}

#[test]
fn kcat_produces_and_consumes_over_ssl_sasl_plaintext_and_sasl_ssl() {
    let s = Secured::start("");
    for (i, (addr, proto, mech)) in [
        (&s.ssl, "SSL", ""),
        (&s.sasl_plaintext, "SASL_PLAINTEXT", "PLAIN"),
        (&s.sasl_ssl, "SASL_SSL", "SCRAM-SHA-512"),
        (&s.sasl_ssl, "SASL_SSL", "PLAIN"),
    ]
    .into_iter()
    .enumerate()
    {
        let conf = s.kcat_conf(proto, mech, "alice", "alice-secret");
        let got = kcat_round_trip(addr, &conf, &format!("kcat-{i}"), 20);
        assert_eq!(got, expected(20), "{proto} {mech}");
    }
    let log = s.broker.log();
    assert!(log.contains("SASL authentication succeeded"), "{log}");
    assert!(log.contains("User:alice"), "{log}");
}

fn secure_py(
    family: &str,
    addr: &str,
    proto: &str,
    mech: &str,
    password: &str,
    ca: &str,
    topic: &str,
) -> serde_json::Value {
    python(
        "secure.py",
        &[
            family, addr, proto, mech, "alice", password, ca, topic, "10",
        ],
    )
}

#[test]
fn confluent_kafka_and_kafka_python_work_over_every_secured_listener() {
    let s = Secured::start("");
    let ca = s.ca();
    let cases = [
        ("confluent", &s.ssl, "SSL", "PLAIN"),
        (
            "confluent",
            &s.sasl_plaintext,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
        ),
        ("confluent", &s.sasl_ssl, "SASL_SSL", "PLAIN"),
        ("confluent", &s.sasl_ssl, "SASL_SSL", "SCRAM-SHA-256"),
        ("confluent", &s.sasl_ssl, "SASL_SSL", "SCRAM-SHA-512"),
        ("kafka-python", &s.ssl, "SSL", "PLAIN"),
        ("kafka-python", &s.sasl_plaintext, "SASL_PLAINTEXT", "PLAIN"),
        ("kafka-python", &s.sasl_ssl, "SASL_SSL", "SCRAM-SHA-512"),
        ("kafka-python", &s.sasl_ssl, "SASL_SSL", "SCRAM-SHA-256"),
    ];
    for (i, (family, addr, proto, mech)) in cases.into_iter().enumerate() {
        let topic = format!("py-{i}");
        let r = secure_py(family, addr, proto, mech, "alice-secret", &ca, &topic);
        assert_eq!(r["produced"], 10, "{family} {proto} {mech}: {r}");
        assert_eq!(
            r["consumed"],
            serde_json::json!(expected(10)),
            "{family} {proto} {mech}: {r}"
        );
    }
}

#[test]
fn a_wrong_password_is_refused_with_sasl_authentication_failed() {
    let s = Secured::start("");
    let ca = s.ca();
    for (family, mech) in [
        ("confluent", "SCRAM-SHA-512"),
        ("confluent", "PLAIN"),
        ("kafka-python", "SCRAM-SHA-512"),
    ] {
        let r = secure_py(
            family,
            &s.sasl_ssl,
            "SASL_SSL",
            mech,
            "guess",
            &ca,
            "denied",
        );
        assert_eq!(r["produced"], 0, "{family} {mech}: {r}");
        let errors = r["errors"].to_string();
        assert!(
            errors.contains("Authentication failed") || errors.contains("SaslAuthenticationFailed"),
            "{family} {mech}: {errors}"
        );
    }
    let log = s.broker.log();
    assert!(log.contains("SASL authentication failed"), "{log}");
    assert!(
        !log.contains("guess"),
        "the log never carries a password: {log}"
    );
}

/// Read from a raw socket until the broker closes it (or 15 s pass): whether it was closed.
fn closed_by_broker(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        }
    }
}

/// An ApiVersions v0 request frame in the clear.
fn api_versions_frame() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(18i16.to_be_bytes()); // ApiVersions
    body.extend(0i16.to_be_bytes());
    body.extend(1i32.to_be_bytes());
    body.extend((-1i16).to_be_bytes()); // no client id
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend(body);
    f
}

/// A Metadata v0 request for all topics, in the clear.
fn metadata_frame() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(3i16.to_be_bytes());
    body.extend(0i16.to_be_bytes());
    body.extend(2i32.to_be_bytes());
    body.extend((-1i16).to_be_bytes());
    body.extend(0i32.to_be_bytes()); // no topics
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend(body);
    f
}

#[test]
fn wrong_protocols_and_garbage_are_closed_while_others_keep_working() {
    let s = Secured::start("");
    // A plaintext Kafka client on the TLS port: not a TLS ClientHello, closed.
    let mut c = TcpStream::connect(&s.ssl).unwrap();
    c.write_all(&api_versions_frame()).unwrap();
    assert!(closed_by_broker(c), "plaintext on the SSL port is closed");
    // Garbage on the SASL_SSL port.
    let mut c = TcpStream::connect(&s.sasl_ssl).unwrap();
    c.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    c.write_all(&[0xAB; 512]).unwrap();
    assert!(
        closed_by_broker(c),
        "garbage on the SASL_SSL port is closed"
    );
    // A Metadata request before SASL authentication on the SASL_PLAINTEXT port.
    let mut c = TcpStream::connect(&s.sasl_plaintext).unwrap();
    c.write_all(&metadata_frame()).unwrap();
    assert!(
        closed_by_broker(c),
        "a request before authentication is closed"
    );
    // A TLS client on the PLAINTEXT port: its ClientHello is no Kafka frame.
    let out = run(
        Command::new("timeout")
            .args([
                "20",
                "openssl",
                "s_client",
                "-connect",
                &s.broker.bootstrap(),
            ])
            .stdin(Stdio::null()),
        "openssl",
    );
    assert!(
        !out.status.success(),
        "no TLS session on the PLAINTEXT port"
    );
    // The broker still serves everyone else, on every listener.
    let conf = s.kcat_conf("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret");
    assert_eq!(kcat_round_trip(&s.sasl_ssl, &conf, "after", 5), expected(5));
    let plain = crate::harness::kcat_read(&s.broker.bootstrap(), "after", 0, "%s\n");
    assert_eq!(plain, expected(5));
    let log = s.broker.log();
    for line in [
        "TLS handshake failed",
        "before SASL authentication",
        "request frame length out of bounds",
    ] {
        assert!(log.contains(line), "{line:?} not logged:\n{log}");
    }
}

#[test]
fn a_client_certificate_becomes_the_principal() {
    let dir = std::env::temp_dir().join(format!(
        "gregor-mtls-{}-{}",
        std::process::id(),
        free_port()
    ));
    make_certificates(&dir);
    let d = dir.display();
    std::fs::write(
        dir.join("gregor.toml"),
        format!("tls_cert = \"{d}/server.pem\"\ntls_key = \"{d}/server.key\"\ntls_ca = \"{d}/ca.pem\"\ntls_client_auth = \"required\"\n"),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("SSL://127.0.0.1:{port}");
    let config = dir.join("gregor.toml");
    let b = Broker::start(&["--config", config.to_str().unwrap(), "--listen", &listen]);
    let addr = format!("127.0.0.1:{port}");
    let base = [
        "-X".to_string(),
        "security.protocol=SSL".into(),
        "-X".into(),
        format!("ssl.ca.location={d}/ca.pem"),
    ];
    let mut with_cert = base.to_vec();
    for x in [
        format!("ssl.certificate.location={d}/client.pem"),
        format!("ssl.key.location={d}/client.key"),
    ] {
        with_cert.extend(["-X".to_string(), x]);
    }
    assert_eq!(kcat_round_trip(&addr, &with_cert, "mtls", 5), expected(5));
    let log = b.log();
    assert!(log.contains("User:CN=app1,O=gregor-tests"), "{log}");
    // Without a certificate the handshake is refused.
    let out = run(
        Command::new("timeout")
            .args(["20", "kcat", "-b", &addr, "-L", "-m", "5"])
            .args(&base),
        "kcat",
    );
    assert!(
        !out.status.success(),
        "kcat without a certificate was served"
    );
}

/// A request frame: header v1 (key, version, correlation id, no client id), then `body`.
fn request_frame(key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(key.to_be_bytes());
    b.extend(version.to_be_bytes());
    b.extend(correlation_id.to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend(body);
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend(b);
    f
}

/// One response frame's bytes (after the length), read with the socket's timeout.
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("a response body");
    body
}

/// The flaky wrong-password test's cause: the broker wrote the SASL_AUTHENTICATION_FAILED answer
/// and closed at once, so a client reading until its socket would block (kafka-python 3) met
/// the answer and the end of the stream together, and dropped the answer. Now the broker
/// leaves the connection open after the answer until the client closes it (at most
/// `FAILED_AUTH_LINGER`, 2 s), so the answer always arrives on a connection still open.
#[test]
fn a_failed_sasl_answer_arrives_before_the_broker_closes() {
    let s = Secured::start("");
    let mut c = TcpStream::connect(&s.sasl_plaintext).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // SaslHandshake v1 PLAIN, then SaslAuthenticate v0 with a wrong password, pipelined.
    let mut mech = 5i16.to_be_bytes().to_vec();
    mech.extend(b"PLAIN");
    let token = b"\0alice\0guess";
    let mut auth = (token.len() as i32).to_be_bytes().to_vec();
    auth.extend(token);
    c.write_all(&request_frame(17, 1, 1, &mech)).unwrap();
    c.write_all(&request_frame(36, 0, 2, &auth)).unwrap();
    let handshake = read_response(&mut c);
    assert_eq!(&handshake[4..6], &[0, 0], "PLAIN is enabled");
    let answer = read_response(&mut c);
    assert_eq!(
        &answer[..4],
        &2i32.to_be_bytes(),
        "the SaslAuthenticate answer"
    );
    assert_eq!(
        i16::from_be_bytes([answer[4], answer[5]]),
        58,
        "SASL_AUTHENTICATION_FAILED"
    );
    // The connection is still open after the answer: a read waits rather than meeting its end.
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!("the broker closed right after its answer ({n} bytes read)"),
    }
    // A client that never closes is closed by the broker after the linger.
    let started = std::time::Instant::now();
    assert!(
        closed_by_broker(c),
        "the broker closes a lingering failed connection"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(s.broker.log().contains("SASL authentication failed"));
}

/// Log in with SASL PLAIN v1 on a raw connection (SaslHandshake v1, SaslAuthenticate v1): the
/// session lifetime the broker answered (KIP-368's `session_lifetime_ms`, 0: for ever).
fn plain_login_v1(c: &mut TcpStream, user: &str, password: &str) -> i64 {
    let mut mech = 5i16.to_be_bytes().to_vec();
    mech.extend(b"PLAIN");
    c.write_all(&request_frame(17, 1, 1, &mech)).unwrap();
    let handshake = read_response(c);
    assert_eq!(&handshake[4..6], &[0, 0], "PLAIN is enabled");
    let token = format!("\0{user}\0{password}");
    let mut auth = (token.len() as i32).to_be_bytes().to_vec();
    auth.extend(token.as_bytes());
    c.write_all(&request_frame(36, 1, 2, &auth)).unwrap();
    let answer = read_response(c);
    assert_eq!(&answer[4..6], &[0, 0], "logged in: {answer:?}");
    // correlation id, error code, a null error message, empty auth bytes, then the lifetime.
    assert_eq!(answer.len(), 4 + 2 + 2 + 4 + 8, "{answer:?}");
    i64::from_be_bytes(answer[12..20].try_into().unwrap())
}

/// KIP-368 with librdkafka: with `connections_max_reauth_ms = 2000` a login lasts 2 s, and a
/// confluent-kafka producer and consumer working for 5 s log in again on their connections
/// (librdkafka 2.2+ does so before the lifetime ends) without an error or a lost record.
#[test]
fn librdkafka_reauthenticates_on_its_connections_and_keeps_working() {
    let s = Secured::start("connections_max_reauth_ms = 2000");
    let r = python(
        "reauth.py",
        &[
            &s.sasl_plaintext,
            "SCRAM-SHA-512",
            "alice",
            "alice-secret",
            "reauth",
            "5",
        ],
    );
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert_eq!(r["produced"], r["sent"], "{r}");
    let sent = r["sent"].as_u64().unwrap() as usize;
    assert!(sent > 20, "{r}");
    assert_eq!(r["consumed"], serde_json::json!(expected(sent)), "{r}");
    // The same connection (client address and port) logged in more than once: re-authenticated.
    let log = s.broker.log();
    let mut logins: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in log
        .lines()
        .filter(|l| l.contains("SASL authentication succeeded"))
    {
        if let Some(peer) = line.split_whitespace().find(|w| w.starts_with("peer=")) {
            *logins.entry(peer).or_default() += 1;
        }
    }
    assert!(
        logins.values().any(|n| *n >= 3),
        "no connection re-authenticated twice in 5 s: {logins:?}"
    );
    assert!(!log.contains("expired without re-authentication"), "{log}");
}

/// KIP-368, the broker's side: the lifetime is in the SaslAuthenticate answer, a request inside
/// it is served, and the first request after it (other than a new login) closes the
/// connection. Without the setting a login lasts for ever (lifetime 0).
#[test]
fn a_connection_that_does_not_reauthenticate_is_closed_after_its_lifetime() {
    let s = Secured::start("connections_max_reauth_ms = 1500");
    let mut c = TcpStream::connect(&s.sasl_plaintext).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(plain_login_v1(&mut c, "alice", "alice-secret"), 1500);
    c.write_all(&metadata_frame()).unwrap();
    assert_eq!(&read_response(&mut c)[..4], &2i32.to_be_bytes(), "served");
    std::thread::sleep(Duration::from_millis(1_700));
    c.write_all(&metadata_frame()).unwrap();
    assert!(closed_by_broker(c), "an expired login is closed");
    assert!(s.broker.log().contains("expired without re-authentication"));
    let off = Secured::start("");
    let mut c = TcpStream::connect(&off.sasl_plaintext).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(plain_login_v1(&mut c, "alice", "alice-secret"), 0);
}

/// Whether kcat can list the broker's metadata over SSL trusting `ca`.
fn kcat_lists_over_ssl(addr: &str, ca: &Path) -> bool {
    let out = run(
        Command::new("timeout").args([
            "15",
            "kcat",
            "-L",
            "-m",
            "5",
            "-b",
            addr,
            "-X",
            "security.protocol=SSL",
            "-X",
            &format!("ssl.ca.location={}", ca.display()),
        ]),
        "kcat",
    );
    out.status.success()
}

/// Issue 14: a certificate replaced on disk (here: a new CA and a server certificate it signs,
/// as a renewal that changes CA does) is used for new connections within seconds, without a
/// restart; clients trusting only the old CA are then refused, the broker's other listeners
/// serve on.
#[test]
fn a_replaced_certificate_is_served_to_new_connections_without_a_restart() {
    let s = Secured::start("");
    let old_ca = s.dir.join("ca.pem");
    assert!(kcat_lists_over_ssl(&s.ssl, &old_ca));
    let next = s.dir.join("next");
    make_certificates(&next);
    // Moved into place one file at a time, as a renewal tool would: for a moment the key and
    // the certificate do not match, which the broker must ride out.
    for f in ["server.key", "server.pem"] {
        std::fs::copy(next.join(f), s.dir.join(format!("{f}.tmp"))).unwrap();
        std::fs::rename(s.dir.join(format!("{f}.tmp")), s.dir.join(f)).unwrap();
    }
    let new_ca = next.join("ca.pem");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !kcat_lists_over_ssl(&s.ssl, &new_ca) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served: {}",
            s.broker.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !kcat_lists_over_ssl(&s.ssl, &old_ca),
        "the old certificate is gone"
    );
    let conf = s.kcat_conf("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret");
    assert_eq!(
        kcat_round_trip(&s.sasl_plaintext, &conf, "after-reload", 5),
        expected(5)
    );
    assert!(s.broker.log().contains("reloaded for new connections"));
}
