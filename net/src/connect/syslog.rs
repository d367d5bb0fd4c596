//! The syslog source's IO: a UDP socket (one datagram, one message) and a TCP listener (each
//! connection split into frames by RFC 6587's octet counting or newline framing), every
//! message turned into a record by `gregor_connect::source::SyslogSource`.
//!
//! Syslog over UDP and TCP has no acknowledgements and no offsets: a message that arrives while
//! the worker is down is lost (as with any syslog receiver); there is nothing to resume.

use super::{producer_record, Context, STOP_TIMEOUT};
use crate::client::Driver;
use gregor_client::Output;
use gregor_connect::config::ConnectorConfig;
use gregor_connect::errors::{Handling, Tolerance};
use gregor_connect::source::{Record, SyslogSource};
use gregor_connect::syslog::{Frame, Framer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Messages received and not yet handed to the producer (the TCP readers wait beyond it).
const QUEUE_MAX: usize = 10_000;

/// A frame from a TCP connection: its bytes, or what made them no frame.
type Received = (Vec<u8>, Option<String>);

pub(super) async fn run(ctx: Context, c: ConnectorConfig) -> anyhow::Result<()> {
    let source = SyslogSource::new(&c);
    let udp = match &c.listen_udp {
        Some(a) => {
            let s = UdpSocket::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on udp {a}: {e}"))?;
            info!(connector = %c.name, addr = %s.local_addr()?, "syslog listening on UDP");
            Some(s)
        }
        None => None,
    };
    let (tx, mut rx) = mpsc::channel::<Received>(QUEUE_MAX);
    if let Some(a) = &c.listen_tcp {
        let l = TcpListener::bind(a)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on tcp {a}: {e}"))?;
        info!(connector = %c.name, addr = %l.local_addr()?, "syslog listening on TCP");
        tokio::spawn(accept(l, tx.clone(), c.syslog_bytes_max));
    }
    drop(tx);
    let mut driver = Driver::new(ctx.client_config(&c.name))?;
    let mut stop = ctx.stop.clone();
    let mut buf = vec![0u8; 65_536];
    let mut failure = None;
    while failure.is_none() {
        let got: Received = tokio::select! {
            r = recv_udp(udp.as_ref(), &mut buf) => (r?, None),
            Some(r) = rx.recv() => r,
            outs = driver.next() => {
                failure = delivered(&c, outs);
                continue;
            }
            _ = stop.changed() => break,
        };
        match source.frame(&got.0, got.1.as_deref()) {
            Ok(record) => send(&mut driver, record),
            Err(Handling::Fail(why)) => failure = Some(why),
            Err(Handling::Skip { log, dead_letter }) => {
                warn!(connector = %c.name, "{log}");
                if let Some(d) = dead_letter {
                    let (topic, value, headers) = (d.topic, d.value, d.headers);
                    send(
                        &mut driver,
                        Record {
                            topic,
                            key: None,
                            value,
                            headers,
                        },
                    );
                }
            }
        }
    }
    let now = driver.now();
    driver.client().flush(now);
    let outs = driver
        .run_until(|cl| cl.unreported() == 0, STOP_TIMEOUT)
        .await;
    failure = failure.or(delivered(&c, outs));
    match failure {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

fn send(driver: &mut Driver, r: Record) {
    let now = driver.now();
    driver.client().send(now, producer_record(r));
}

/// A message that could not be delivered is lost (syslog has no resend): the task fails under
/// `errors.tolerance=none`, and the loss is logged under `all`.
fn delivered(c: &ConnectorConfig, outs: Vec<Output>) -> Option<String> {
    for o in outs {
        if let Output::Delivered(d) = o {
            if let Err(e) = d.result {
                let why = format!("a syslog message to {} was not delivered: {e}", d.topic);
                if c.errors.tolerance == Tolerance::None {
                    return Some(why);
                }
                warn!(connector = %c.name, "{why}");
            }
        }
    }
    None
}

async fn recv_udp(s: Option<&UdpSocket>, buf: &mut [u8]) -> anyhow::Result<Vec<u8>> {
    match s {
        Some(s) => {
            let (n, _) = s.recv_from(buf).await?;
            Ok(buf[..n].to_vec())
        }
        None => std::future::pending().await,
    }
}

async fn accept(l: TcpListener, tx: mpsc::Sender<Received>, max: usize) {
    loop {
        let Ok((mut conn, peer)) = l.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut framer = Framer::new(max);
            let mut buf = vec![0u8; 65_536];
            loop {
                let n = match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for f in framer.feed(&buf[..n]) {
                    let r = match f {
                        Frame::Message(m) => (m, None),
                        Frame::Bad { error, raw } => (raw, Some(format!("from {peer}: {error}"))),
                    };
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
            }
            if framer.pending() > 0 {
                // A sender that closes after its last message without a newline: that is a
                // message too.
                let rest = framer.feed(b"\n");
                for f in rest {
                    if let Frame::Message(m) = f {
                        let _ = tx.send((m, None)).await;
                    }
                }
            }
        });
    }
}
