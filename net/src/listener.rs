//! Listeners, each with Kafka's security protocol: where the broker accepts clients and what a
//! connection must do before it is served.
//!
//! | protocol | transport | authentication |
//! |---|---|---|
//! | `PLAINTEXT` | TCP | none: the principal is `User:ANONYMOUS` |
//! | `SSL` | TLS (rustls) | none, or a client certificate: `User:<its subject>` |
//! | `SASL_PLAINTEXT` | TCP | SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512): `User:<name>` |
//! | `SASL_SSL` | TLS | SASL over TLS |
//!
//! A listener is written as Kafka writes it, `PROTOCOL://HOST:PORT` (`--listen` and
//! `listeners = [...]` in the TOML file); a bare `HOST:PORT` is `PLAINTEXT`. The listener's name
//! is its protocol's name, so a broker has at most one listener of each protocol. Each listener
//! has an advertised address (`advertised_listeners`, the same form): the address clients are
//! told to connect to.
//!
//! Kafka's listener rule: a client is told, in Metadata, FindCoordinator and DescribeCluster,
//! the brokers' addresses *on the listener it came in on*, so a client of the SSL port keeps
//! talking TLS. The core answers with each broker's first listener; [`Endpoints::rewrite`]
//! swaps in the addresses of the connection's listener, known from the brokers' registrations
//! in the metadata image (each broker registers every listener it has).

use crate::config::ServeConfig;
use gregor_core::kafka_protocol::messages::ResponseKind;
use gregor_core::kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Kafka's `SecurityProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener, resolved: its protocol, where it binds, what it advertises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
}

/// Split `PROTOCOL://HOST:PORT` (or a bare `HOST:PORT`, PLAINTEXT) into its protocol and address.
pub fn split_url(s: &str) -> Result<(SecurityProtocol, &str), String> {
    let Some((proto, addr)) = s.split_once("://") else {
        return Ok((SecurityProtocol::Plaintext, s));
    };
    let protocol = SecurityProtocol::ALL
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(proto))
        .ok_or_else(|| {
            format!("unknown security protocol {proto:?} in {s:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
        })?;
    Ok((protocol, addr))
}

/// The listeners of a configuration: `listeners` if given, else `listen` as PLAINTEXT. The
/// first one's advertised address is the broker's own (`broker.advertised_host` and `_port`,
/// already resolved by the caller).
pub fn resolve(c: &ServeConfig) -> anyhow::Result<Vec<Listener>> {
    let mut out: Vec<Listener> = Vec::new();
    let urls: Vec<String> = if c.listeners.is_empty() {
        vec![c.listen.to_string()]
    } else {
        c.listeners.clone()
    };
    let mut advertised = BTreeMap::new();
    for a in &c.advertised_listeners {
        let (p, addr) = split_url(a).map_err(anyhow::Error::msg)?;
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| {
                anyhow::anyhow!("advertised listener {a:?} is not PROTOCOL://HOST:PORT")
            })?;
        advertised.insert(p, (host, port));
    }
    for url in &urls {
        let (protocol, addr) = split_url(url).map_err(anyhow::Error::msg)?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("listener {url:?}: {e} (an IP address and a port)"))?;
        if out.iter().any(|l| l.protocol == protocol) {
            anyhow::bail!(
                "two {} listeners: a listener is named by its protocol",
                protocol.name()
            );
        }
        let (advertised_host, advertised_port) = match advertised.remove(&protocol) {
            Some(a) => a,
            None if out.is_empty() => (
                c.broker.advertised_host.clone(),
                u16::try_from(c.broker.advertised_port)?,
            ),
            None if addr.ip().is_unspecified() => ("127.0.0.1".into(), addr.port()),
            None => (addr.ip().to_string(), addr.port()),
        };
        out.push(Listener {
            protocol,
            addr,
            advertised_host,
            advertised_port,
        });
    }
    if let Some(p) = advertised.keys().next() {
        anyhow::bail!("advertised listener {} has no listener", p.name());
    }
    if out.iter().any(|l| l.protocol.tls()) && (c.tls_cert.is_none() || c.tls_key.is_none()) {
        anyhow::bail!("an SSL or SASL_SSL listener needs tls_cert and tls_key (PEM files)");
    }
    assert!(!out.is_empty());
    Ok(out)
}

/// Every broker's address on every listener, from the registrations in the metadata image (or,
/// before the first image, this broker's own listeners).
#[derive(Default)]
pub struct Endpoints {
    /// (broker id, listener name) → (host, port).
    by_listener: BTreeMap<(i32, String), (String, i32)>,
}

impl Endpoints {
    pub fn own(broker_id: i32, listeners: &[Listener]) -> Endpoints {
        let mut e = Endpoints::default();
        for l in listeners {
            e.by_listener.insert(
                (broker_id, l.protocol.name().to_string()),
                (l.advertised_host.clone(), l.advertised_port as i32),
            );
        }
        e
    }

    /// Learn the endpoints registered in an image (replacing what the image knows about).
    pub fn on_image(&mut self, image: &gregor_core::cluster::MetadataImage) {
        for b in image.brokers().values() {
            let id = b.broker_id.0;
            self.by_listener.retain(|(i, _), _| *i != id);
            for e in &b.endpoints {
                self.by_listener
                    .insert((id, e.name.clone()), (e.host.clone(), e.port as i32));
            }
        }
    }

    /// Replace the broker addresses in a response with those of `listener` (see the module's
    /// doc). A broker with no such listener keeps the address the core gave.
    pub fn rewrite(&self, listener: SecurityProtocol, body: &mut ResponseKind) {
        let name = listener.name();
        let find = |id: i32| self.by_listener.get(&(id, name.to_string()));
        let set = |id: i32, host: &mut StrBytes, port: &mut i32| {
            if let Some((h, p)) = find(id) {
                *host = StrBytes::from_string(h.clone());
                *port = *p;
            }
        };
        match body {
            ResponseKind::Metadata(m) => {
                for b in &mut m.brokers {
                    set(b.node_id.0, &mut b.host, &mut b.port);
                }
            }
            ResponseKind::DescribeCluster(d) => {
                for b in &mut d.brokers {
                    set(b.broker_id.0, &mut b.host, &mut b.port);
                }
            }
            ResponseKind::FindCoordinator(f) => {
                if f.node_id.0 >= 0 {
                    set(f.node_id.0, &mut f.host, &mut f.port);
                }
                for c in &mut f.coordinators {
                    if c.node_id.0 >= 0 {
                        set(c.node_id.0, &mut c.host, &mut c.port);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use gregor_core::kafka_protocol::messages::{BrokerId, MetadataResponse};

    #[test]
    fn listeners_parse_with_kafka_names_and_a_bare_address_is_plaintext() {
        assert_eq!(
            split_url("127.0.0.1:9092"),
            Ok((SecurityProtocol::Plaintext, "127.0.0.1:9092"))
        );
        assert_eq!(
            split_url("SASL_SSL://0.0.0.0:9094"),
            Ok((SecurityProtocol::SaslSsl, "0.0.0.0:9094"))
        );
        assert!(split_url("HTTP://x:1").is_err());
        let mut c = ServeConfig {
            listeners: vec![
                "PLAINTEXT://127.0.0.1:9092".into(),
                "SSL://0.0.0.0:9093".into(),
            ],
            advertised_listeners: vec!["SSL://broker.example:19093".into()],
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..ServeConfig::default()
        };
        let l = resolve(&c).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].advertised_port, 9092);
        assert_eq!(
            (l[1].advertised_host.as_str(), l[1].advertised_port),
            ("broker.example", 19093)
        );
        c.tls_cert = None;
        assert!(resolve(&c).is_err(), "TLS without a certificate");
        c.listeners.push("PLAINTEXT://127.0.0.1:9095".into());
        assert!(resolve(&c).is_err(), "two listeners of one protocol");
    }

    #[test]
    fn metadata_names_the_connections_listener() {
        let listeners = [
            Listener {
                protocol: SecurityProtocol::Plaintext,
                addr: "127.0.0.1:9092".parse().unwrap(),
                advertised_host: "127.0.0.1".into(),
                advertised_port: 9092,
            },
            Listener {
                protocol: SecurityProtocol::SaslSsl,
                addr: "127.0.0.1:9094".parse().unwrap(),
                advertised_host: "localhost".into(),
                advertised_port: 9094,
            },
        ];
        let e = Endpoints::own(1, &listeners);
        let mut body = ResponseKind::Metadata(MetadataResponse::default().with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092),
        ]));
        e.rewrite(SecurityProtocol::SaslSsl, &mut body);
        let ResponseKind::Metadata(m) = body else {
            unreachable!()
        };
        assert_eq!(
            (m.brokers[0].host.as_str(), m.brokers[0].port),
            ("localhost", 9094)
        );
    }
}
