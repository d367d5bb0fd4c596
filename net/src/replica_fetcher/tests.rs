//! The replica fetcher against a real broker (the production runtime, in this process) and
//! against fake leaders that misbehave: every fetch gets exactly one answer, the right one.

use super::*;
use crate::config::ServeConfig;
use bytes::Buf;
use gregor_core::batch::{encode, Rec};
use gregor_core::kafka_protocol::messages::{
    fetch_request, produce_request, BrokerId as WireBrokerId, ProduceRequest, ResponseKind,
    TopicName,
};
use gregor_core::kafka_protocol::records::{Compression, RecordBatchDecoder};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

const LEADER: BrokerId = BrokerId(1);
const FOLLOWER: BrokerId = BrokerId(2);

fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn endpoint(port: u16) -> BTreeMap<BrokerId, (String, u16)> {
    BTreeMap::from([(LEADER, ("127.0.0.1".to_string(), port))])
}

fn fetcher(config: FetcherConfig) -> (ReplicaFetcher, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let metrics = ReplicaFetchMetrics::default();
    (ReplicaFetcher::new(FOLLOWER, config, tx, Some(metrics)), rx)
}

/// A follower's Fetch v12 of `topic` partition 0 from `offset`, as the core builds one.
fn follower_fetch(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(WireBrokerId(FOLLOWER.0))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

/// The next answer, or a panic naming the wait.
async fn answer(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    within: Duration,
) -> (BrokerId, ReplicaFetchId, Result<FetchResponse, String>) {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(Event::ReplicaFetched { from, id, result })) => (from, id, result),
        Ok(Some(_)) => panic!("only replica-fetch answers go on this channel"),
        Ok(None) => panic!("the answer channel closed"),
        Err(_) => panic!("no answer within {within:?}"),
    }
}

/// No further answer arrives within `wait` (exactly-once).
async fn no_more_answers(rx: &mut mpsc::UnboundedReceiver<Event>, wait: Duration) {
    if let Ok(Some(Event::ReplicaFetched { id, result, .. })) =
        tokio::time::timeout(wait, rx.recv()).await
    {
        panic!("a second answer: {id:?} {result:?}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Produce `values` to partition 0 of `topic` with acks=all in one batch (gregor's own
/// encoder, `gregor_core::batch::encode`), over a plain connection, retrying (bounded) while
/// the topic is auto-created.
async fn produce(port: u16, topic: &str, values: &[&str]) {
    let records: Vec<Rec> = values
        .iter()
        .map(|v| Rec {
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            timestamp_ms: 1_700_000_000_000,
            headers: Vec::new(),
        })
        .collect();
    let batch = encode(&records, None, Compression::None).expect("encode batch");
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch)),
            ])]);
    let mut s = connect(port).await;
    // A Metadata request naming the topic creates it (auto.create.topics.enable), as a
    // producer's first request does in Kafka; a Produce alone does not.
    let metadata = gregor_core::kafka_protocol::messages::MetadataRequest::default()
        .with_topics(Some(vec![
            gregor_core::kafka_protocol::messages::metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string())))),
        ]))
        .with_allow_auto_topic_creation(true);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(9)
        .with_correlation_id(0);
    let frame = wire::encode_request(&header, &RequestKind::Metadata(metadata)).unwrap();
    s.write_all(&frame).await.unwrap();
    let len = s.read_i32().await.unwrap();
    read_frame(&mut s, len as usize).await.unwrap();
    let mut code = 0;
    for attempt in 1..=50 {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_correlation_id(attempt);
        let frame = wire::encode_request(&header, &RequestKind::Produce(request.clone())).unwrap();
        s.write_all(&frame).await.unwrap();
        let len = s.read_i32().await.unwrap();
        let mut buf = read_frame(&mut s, len as usize).await.unwrap().freeze();
        let h =
            ResponseHeader::decode(&mut buf, ApiKey::Produce.response_header_version(9)).unwrap();
        assert_eq!(h.correlation_id, attempt);
        let r =
            gregor_core::kafka_protocol::messages::ProduceResponse::decode(&mut buf, 9).unwrap();
        code = r.responses[0].partition_responses[0].error_code;
        if code == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("produce to {topic} kept failing: error code {code}");
}

/// Connect to a broker that is starting, retrying for up to 10 s.
async fn connect(port: u16) -> TcpStream {
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the broker on port {port} did not start within 10 s");
}

/// The values of the records in a fetched partition, with their offsets.
fn values(r: &FetchResponse) -> Vec<(i64, String)> {
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "the leader's answer: {p:?}");
    let mut bytes = p.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while bytes.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut bytes).expect("a record batch");
        for rec in set.records {
            let v = rec.value.expect("a value");
            out.push((rec.offset, String::from_utf8(v.to_vec()).expect("utf-8")));
        }
    }
    out
}

#[test]
fn fetches_produced_records_from_a_running_broker() {
    let dir = std::env::temp_dir().join(format!("gregor-replica-fetcher-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(async {
        let port = free_port();
        let mut config = ServeConfig {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            data_dir: dir.clone(),
            ..ServeConfig::default()
        };
        config.broker.advertised_port = port.into();
        let (stop, stopped) = watch::channel(false);
        let broker = tokio::spawn(crate::runtime::serve(config, stopped, None));
        produce(port, "rf", &["a", "b", "c"]).await;

        let (mut f, mut rx) = fetcher(FetcherConfig::default());
        let metrics = f.metrics.clone().unwrap();
        f.set_endpoints(endpoint(port));
        // A standalone broker has no followers: it answers a Fetch naming a replica with
        // NOT_LEADER_OR_FOLLOWER, so this one goes as a consumer's (replica_id -1) over the same
        // transport. tests/it/replication.rs has followers fetching between real brokers.
        let consumer_fetch =
            |offset| follower_fetch("rf", offset, 0).with_replica_id(WireBrokerId(-1));
        f.fetch(LEADER, ReplicaFetchId(1), 12, consumer_fetch(0));
        let (from, id, result) = answer(&mut rx, Duration::from_secs(10)).await;
        assert_eq!((from, id), (LEADER, ReplicaFetchId(1)));
        let got = values(&result.expect("a response"));
        assert_eq!(got, vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]);

        // The next fetch, from the log end as a caught-up follower asks, finds nothing new
        // (the fake-leader tests below count the connections a link opens).
        f.fetch(LEADER, ReplicaFetchId(2), 12, consumer_fetch(3));
        let (_, id, result) = answer(&mut rx, Duration::from_secs(10)).await;
        assert_eq!(id, ReplicaFetchId(2));
        assert!(values(&result.expect("a response")).is_empty());
        no_more_answers(&mut rx, Duration::from_millis(200)).await;
        assert_eq!(metrics.requests(LEADER).get(), 2);
        assert_eq!(metrics.errors(LEADER).get(), 0);
        assert!(
            metrics.bytes(LEADER).get() > 100,
            "the records' bytes are counted"
        );

        stop.send(true).unwrap();
        broker.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// How a fake leader treats each request it reads.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    /// An empty Fetch response with the request's correlation id.
    Answer,
    /// An empty Fetch response with another correlation id.
    WrongCorrelation,
    /// Close the connection having read the request.
    CloseAfterRequest,
    /// Read the request and say nothing.
    Silent,
    /// A length prefix of 200 MiB.
    Huge,
}

/// A fake leader on a port of its own: the port, and how many connections it accepted.
async fn fake_leader(how: Fake) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Ok(len) = s.read_i32().await {
                    let Ok(frame) = read_frame(&mut s, len as usize).await else {
                        return;
                    };
                    let request = wire::decode_request(frame.freeze()).expect("a request");
                    let corr = request.header.correlation_id;
                    let corr = if how == Fake::WrongCorrelation {
                        corr + 1
                    } else {
                        corr
                    };
                    let version = request.header.request_api_version;
                    let empty = ResponseKind::Fetch(FetchResponse::default());
                    let reply = match how {
                        Fake::Answer | Fake::WrongCorrelation => {
                            wire::encode_response(corr, version, &empty).unwrap()
                        }
                        Fake::CloseAfterRequest => return,
                        Fake::Silent => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        Fake::Huge => Bytes::from((200i32 << 20).to_be_bytes().to_vec()),
                    };
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[test]
fn a_leader_that_closes_mid_request_gets_exactly_one_error_and_a_new_connection() {
    run(async {
        let (port, accepted) = fake_leader(Fake::CloseAfterRequest).await;
        let (mut f, mut rx) = fetcher(FetcherConfig::default());
        f.set_endpoints(endpoint(port));
        for n in 1..=2u64 {
            f.fetch(LEADER, ReplicaFetchId(n), 12, follower_fetch("t", 0, 500));
            let (_, id, result) = answer(&mut rx, Duration::from_secs(5)).await;
            assert_eq!(id, ReplicaFetchId(n));
            let e = result.expect_err("the leader closed the connection");
            assert!(e.contains("connection lost"), "{e}");
            no_more_answers(&mut rx, Duration::from_millis(300)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), n as usize, "reconnected");
        }
        assert_eq!(f.metrics.as_ref().unwrap().errors(LEADER).get(), 2);
    });
}

#[test]
fn unreachable_silent_and_unknown_leaders_answer_err_within_the_timeout() {
    run(async {
        let config = FetcherConfig {
            socket_timeout: Duration::from_millis(300),
            ..FetcherConfig::default()
        };
        let (mut f, mut rx) = fetcher(config);

        // Nothing listens on the port: connection refused, at once.
        f.set_endpoints(endpoint(free_port()));
        let started = std::time::Instant::now();
        f.fetch(LEADER, ReplicaFetchId(1), 12, follower_fetch("t", 0, 100));
        let e = answer(&mut rx, Duration::from_secs(2)).await.2.unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");

        // A leader that never answers: the fetch fails after max_wait_ms + the socket timeout.
        let (port, _) = fake_leader(Fake::Silent).await;
        f.set_endpoints(endpoint(port));
        let started_silent = std::time::Instant::now();
        f.fetch(LEADER, ReplicaFetchId(2), 12, follower_fetch("t", 0, 100));
        let (_, id, result) = answer(&mut rx, Duration::from_secs(5)).await;
        assert_eq!(id, ReplicaFetchId(2));
        let e = result.unwrap_err();
        assert!(e.contains("no answer within 400ms"), "{e}");
        let took = started_silent.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // A broker the image does not register.
        f.fetch(
            BrokerId(9),
            ReplicaFetchId(3),
            12,
            follower_fetch("t", 0, 0),
        );
        let (from, id, result) = answer(&mut rx, Duration::from_secs(1)).await;
        assert_eq!((from, id), (BrokerId(9), ReplicaFetchId(3)));
        assert!(result
            .unwrap_err()
            .contains("no endpoint known for broker 9"));
        no_more_answers(&mut rx, Duration::from_millis(200)).await;
    });
}

#[test]
fn a_wrong_correlation_id_or_an_oversized_frame_is_an_error() {
    run(async {
        let (mut f, mut rx) = fetcher(FetcherConfig::default());
        let (port, _) = fake_leader(Fake::WrongCorrelation).await;
        f.set_endpoints(endpoint(port));
        f.fetch(LEADER, ReplicaFetchId(1), 12, follower_fetch("t", 0, 0));
        let e = answer(&mut rx, Duration::from_secs(5)).await.2.unwrap_err();
        assert!(
            e.contains("a response to correlation id 2, expected 1"),
            "{e}"
        );

        let (port, _) = fake_leader(Fake::Huge).await;
        f.set_endpoints(endpoint(port));
        f.fetch(LEADER, ReplicaFetchId(2), 12, follower_fetch("t", 0, 0));
        let e = answer(&mut rx, Duration::from_secs(5)).await.2.unwrap_err();
        assert!(e.contains("a response frame of 209715200 bytes"), "{e}");
        no_more_answers(&mut rx, Duration::from_millis(200)).await;
    });
}

#[test]
fn a_leader_on_a_new_endpoint_gets_a_new_connection() {
    run(async {
        let (mut f, mut rx) = fetcher(FetcherConfig::default());
        let (first, first_accepted) = fake_leader(Fake::Answer).await;
        let (second, second_accepted) = fake_leader(Fake::Answer).await;
        f.set_endpoints(endpoint(first));
        for n in 1..=3 {
            f.fetch(LEADER, ReplicaFetchId(n), 12, follower_fetch("t", 0, 0));
            let (_, id, result) = answer(&mut rx, Duration::from_secs(5)).await;
            assert_eq!(id, ReplicaFetchId(n));
            assert!(result.is_ok(), "{result:?}");
        }
        assert_eq!(
            first_accepted.load(Ordering::SeqCst),
            1,
            "one kept connection"
        );

        // The leader restarted on another port, as a new image registers it.
        f.set_endpoints(endpoint(second));
        f.fetch(LEADER, ReplicaFetchId(4), 12, follower_fetch("t", 0, 0));
        assert!(answer(&mut rx, Duration::from_secs(5)).await.2.is_ok());
        assert_eq!(second_accepted.load(Ordering::SeqCst), 1);
        assert_eq!(first_accepted.load(Ordering::SeqCst), 1);
        no_more_answers(&mut rx, Duration::from_millis(200)).await;
    });
}
