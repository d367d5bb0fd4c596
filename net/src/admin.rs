//! `gregor topics …` and `gregor groups …`: a small Kafka admin client.
//!
//! It speaks the same wire protocol as any Kafka client — one TCP connection, request frames
//! encoded with `gregor_core::wire`, response bodies decoded by the `kafka-protocol` crate — so
//! it works against gregor or Apache Kafka alike.

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use gregor_core::kafka_protocol::error::ResponseError;
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::{Decodable, StrBytes};
use gregor_core::wire;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

/// A Kafka error code as its name, for people.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(e) => format!("{e:?} ({code})"),
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    pub fn connect(bootstrap: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(bootstrap)
            .with_context(|| format!("cannot connect to {bootstrap}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            stream,
            correlation_id: 0,
        })
    }

    pub fn call(
        &mut self,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(sb("gregor-cli")));
        let frame = wire::encode_request(&header, &body)?;
        self.stream.write_all(&frame)?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .context("reading response")?;
        let len = i32::from_be_bytes(len);
        if !(0..=256 * 1024 * 1024).contains(&len) {
            bail!("response length {len} out of bounds");
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "response correlation id {} != request {}",
                header.correlation_id,
                self.correlation_id
            );
        }
        let body = ResponseKind::decode(key, &mut buf, version)?;
        Ok(body)
    }

    fn metadata(&mut self, topics: Option<Vec<String>>) -> anyhow::Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(sb(t))))
                    })
                    .collect()
            }));
        match self.call(ApiKey::Metadata, 9, RequestKind::Metadata(req))? {
            ResponseKind::Metadata(m) => Ok(m),
            other => Err(anyhow!("unexpected response {other:?}")),
        }
    }

    /// How many partitions `topic` has (an error if the broker does not know it).
    pub(crate) fn partition_count(&mut self, topic: &str) -> anyhow::Result<i32> {
        let m = self.metadata(Some(vec![topic.to_string()]))?;
        match m.topics.first() {
            Some(t) if t.error_code == 0 => Ok(t.partitions.len() as i32),
            Some(t) => bail!("topic {topic}: {}", error_name(t.error_code)),
            None => bail!("topic {topic}: not in the metadata answer"),
        }
    }

    /// (partition → offset) for `timestamp` (−1 latest, −2 earliest).
    pub(crate) fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        match self.call(ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req))? {
            ResponseKind::ListOffsets(r) => Ok(r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.offset)))
                .collect()),
            other => Err(anyhow!("unexpected response {other:?}")),
        }
    }
}

pub fn topics_create(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[String],
) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let mut cfgs = Vec::new();
    for kv in configs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--config wants key=value, not {kv:?}"))?;
        cfgs.push(
            create_topics_request::CreatableTopicConfig::default()
                .with_name(sb(k))
                .with_value(Some(sb(v))),
        );
    }
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(cfgs);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let ResponseKind::CreateTopics(r) =
        c.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(req))?
    else {
        bail!("unexpected response")
    };
    let t = &r.topics[0];
    if t.error_code != 0 {
        bail!(
            "cannot create topic {name}: {} {}",
            error_name(t.error_code),
            t.error_message.as_deref().unwrap_or("")
        );
    }
    println!(
        "created topic {name} with {} partition(s)",
        t.num_partitions
    );
    Ok(())
}

pub fn topics_list(bootstrap: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let m = c.metadata(None)?;
    for t in &m.topics {
        println!(
            "{}\t{} partition(s)",
            t.name.as_ref().map(|n| n.as_str()).unwrap_or("?"),
            t.partitions.len()
        );
    }
    Ok(())
}

pub fn topics_describe(bootstrap: &str, name: Option<&str>) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let m = c.metadata(name.map(|n| vec![n.to_string()]))?;
    for t in &m.topics {
        let tname = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            bail!("topic {tname}: {}", error_name(t.error_code));
        }
        // (No topic id: Metadata carries it from v10, and gregor speaks up to v9.)
        println!("topic {tname}  partitions {}", t.partitions.len());
        let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let start = c.list_offsets(&tname, &parts, -2)?;
        let end = c.list_offsets(&tname, &parts, -1)?;
        for p in &t.partitions {
            let i = p.partition_index;
            println!(
                "  partition {i}  leader {}  log-start {}  high-watermark {}  error {}",
                p.leader_id.0,
                start.get(&i).copied().unwrap_or(-1),
                end.get(&i).copied().unwrap_or(-1),
                error_name(p.error_code)
            );
        }
        let req = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb(&tname)),
        ]);
        if let ResponseKind::DescribeConfigs(r) = c.call(
            ApiKey::DescribeConfigs,
            4,
            RequestKind::DescribeConfigs(req),
        )? {
            for res in r.results {
                for cfg in res.configs {
                    println!(
                        "  config {}={}",
                        cfg.name,
                        cfg.value.as_deref().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

pub fn topics_delete(bootstrap: &str, name: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(sb(name))])
        .with_timeout_ms(30_000);
    let ResponseKind::DeleteTopics(r) =
        c.call(ApiKey::DeleteTopics, 4, RequestKind::DeleteTopics(req))?
    else {
        bail!("unexpected response")
    };
    let code = r.responses[0].error_code;
    if code != 0 {
        bail!("cannot delete topic {name}: {}", error_name(code));
    }
    println!("deleted topic {name}");
    Ok(())
}

pub fn groups_list(bootstrap: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let ResponseKind::ListGroups(r) = c.call(
        ApiKey::ListGroups,
        4,
        RequestKind::ListGroups(ListGroupsRequest::default()),
    )?
    else {
        bail!("unexpected response")
    };
    if r.error_code != 0 {
        bail!("cannot list groups: {}", error_name(r.error_code));
    }
    for g in r.groups {
        println!(
            "{}\t{}\t{}",
            g.group_id.0,
            g.group_state,
            if g.protocol_type.is_empty() {
                "-"
            } else {
                g.protocol_type.as_str()
            }
        );
    }
    Ok(())
}

/// Decode a consumer's assignment bytes (the ConsumerProtocolAssignment schema).
fn decode_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    let mut b = bytes.clone();
    if b.remaining() < 2 {
        return vec![];
    }
    let version = b.get_i16();
    match ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => vec![],
    }
}

pub fn groups_describe(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap)?;
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
    let ResponseKind::DescribeGroups(r) =
        c.call(ApiKey::DescribeGroups, 5, RequestKind::DescribeGroups(req))?
    else {
        bail!("unexpected response")
    };
    let g = &r.groups[0];
    if g.error_code != 0 {
        bail!(
            "cannot describe group {group}: {}",
            error_name(g.error_code)
        );
    }
    println!(
        "group {group}  state {}  protocol {}/{}  members {}",
        g.group_state,
        g.protocol_type,
        g.protocol_data,
        g.members.len()
    );
    for m in &g.members {
        let assigned: Vec<String> = decode_assignment(&m.member_assignment)
            .into_iter()
            .map(|(t, ps)| format!("{t}{ps:?}"))
            .collect();
        println!(
            "  member {}  client {}  host {}  assigned {}",
            m.member_id,
            m.client_id,
            m.client_host,
            assigned.join(" ")
        );
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(None);
    let ResponseKind::OffsetFetch(r) =
        c.call(ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(req))?
    else {
        bail!("unexpected response")
    };
    if r.error_code != 0 {
        bail!(
            "cannot fetch offsets of {group}: {}",
            error_name(r.error_code)
        );
    }
    println!(
        "  {:<30} {:>9} {:>12} {:>14} {:>8}",
        "TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"
    );
    for t in &r.topics {
        let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let end = c.list_offsets(t.name.as_str(), &parts, -1)?;
        for p in &t.partitions {
            let hw = end.get(&p.partition_index).copied().unwrap_or(-1);
            let lag = if p.committed_offset >= 0 && hw >= 0 {
                (hw - p.committed_offset).to_string()
            } else {
                "-".into()
            };
            println!(
                "  {:<30} {:>9} {:>12} {:>14} {:>8}",
                t.name.as_str(),
                p.partition_index,
                p.committed_offset,
                hw,
                lag
            );
        }
    }
    Ok(())
}
