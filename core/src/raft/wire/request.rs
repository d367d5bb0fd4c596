//! Reading the requests that arrive on the controller listener: the quorum's RPCs and
//! DescribeQuorum, each checked against the versions in the parent module's table.

use super::*;

/// The API key, version and correlation id at the start of a request frame (no length prefix).
pub fn request_prefix(frame: &[u8]) -> Result<(ApiKey, i16, i32), WireError> {
    if frame.len() < 8 {
        return Err(WireError::Frame(format!(
            "{} bytes, shorter than a header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let corr = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| WireError::Frame(format!("api key {key}")))?;
    Ok((api, version, corr))
}

/// Decode a request frame (without its length prefix). Only the quorum's RPCs at the versions
/// in the module table (and DescribeQuorum v0–v2) are accepted.
pub fn decode_request(frame: Bytes) -> Result<InboundRequest, WireError> {
    let (api_key, version, correlation_id) = request_prefix(&frame)?;
    let expected = match api_key {
        ApiKey::Vote => version == VOTE_VERSION,
        ApiKey::BeginQuorumEpoch => version == BEGIN_QUORUM_EPOCH_VERSION,
        ApiKey::EndQuorumEpoch => version == END_QUORUM_EPOCH_VERSION,
        ApiKey::Fetch => version == FETCH_VERSION,
        ApiKey::FetchSnapshot => version == FETCH_SNAPSHOT_VERSION,
        ApiKey::DescribeQuorum => {
            (DESCRIBE_QUORUM_VERSIONS.0..=DESCRIBE_QUORUM_VERSIONS.1).contains(&version)
        }
        _ => {
            return Err(WireError::Frame(format!(
                "{api_key:?} is not served on the controller listener"
            )))
        }
    };
    if !expected {
        return Err(WireError::Frame(format!(
            "{api_key:?} v{version} is not a version gregor's quorum speaks"
        )));
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(|e| WireError::Frame(format!("request header: {e}")))?;
    debug_assert_eq!(header.correlation_id, correlation_id);
    let body = match api_key {
        ApiKey::Vote => decode_vote(&mut buf)?,
        ApiKey::BeginQuorumEpoch => {
            let r = BeginQuorumEpochRequest::decode(&mut buf, version)
                .map_err(|e| malformed("BeginQuorumEpoch", e))?;
            let p = only(
                "BeginQuorumEpoch",
                r.topics.into_iter().map(|t| (t.topic_name, t.partitions)),
            )?;
            let from = node_id("BeginQuorumEpoch", p.leader_id.0)?;
            Inbound::Raft {
                from,
                message: Message::BeginQuorumEpoch {
                    epoch: epoch("BeginQuorumEpoch", p.leader_epoch)?,
                },
            }
        }
        ApiKey::EndQuorumEpoch => {
            let r = EndQuorumEpochRequest::decode(&mut buf, version)
                .map_err(|e| malformed("EndQuorumEpoch", e))?;
            let p = only(
                "EndQuorumEpoch",
                r.topics.into_iter().map(|t| (t.topic_name, t.partitions)),
            )?;
            let from = node_id("EndQuorumEpoch", p.leader_id.0)?;
            let successors = p
                .preferred_successors
                .iter()
                .map(|s| node_id("EndQuorumEpoch", *s))
                .collect::<Result<_, _>>()?;
            Inbound::Raft {
                from,
                message: Message::EndQuorumEpoch {
                    epoch: epoch("EndQuorumEpoch", p.leader_epoch)?,
                    successors,
                },
            }
        }
        ApiKey::Fetch => decode_fetch(&mut buf)?,
        ApiKey::FetchSnapshot => decode_fetch_snapshot(&mut buf)?,
        ApiKey::DescribeQuorum => {
            let r = DescribeQuorumRequest::decode(&mut buf, version)
                .map_err(|e| malformed("DescribeQuorum", e))?;
            only(
                "DescribeQuorum",
                r.topics.into_iter().map(|t| (t.topic_name, t.partitions)),
            )?;
            Inbound::DescribeQuorum
        }
        _ => unreachable!("refused above"),
    };
    if let Inbound::Raft { from, message } = &body {
        assert!(from.0 >= 0, "a sender id is a node id");
        assert_eq!(api_of(message), api_key, "the body is the header's API");
        assert!(
            !matches!(
                message,
                Message::VoteResponse { .. }
                    | Message::FetchResponse { .. }
                    | Message::FetchSnapshotResponse { .. }
            ),
            "a request decodes to a request"
        );
    }
    Ok(InboundRequest {
        correlation_id,
        api_key,
        version,
        body,
    })
}

fn decode_vote(buf: &mut Bytes) -> Result<Inbound, WireError> {
    let r = VoteRequest::decode(buf, VOTE_VERSION).map_err(|e| malformed("Vote", e))?;
    let p = only(
        "Vote",
        r.topics.into_iter().map(|t| (t.topic_name, t.partitions)),
    )?;
    Ok(Inbound::Raft {
        from: node_id("Vote", p.replica_id.0)?,
        message: Message::Vote {
            epoch: epoch("Vote", p.replica_epoch)?,
            last_epoch: epoch("Vote", p.last_offset_epoch)?,
            end_offset: offset("Vote", p.last_offset)?,
        },
    })
}

fn decode_fetch(buf: &mut Bytes) -> Result<Inbound, WireError> {
    let r = FetchRequest::decode(buf, FETCH_VERSION).map_err(|e| malformed("Fetch", e))?;
    let mut topics = r.topics.into_iter();
    let t = topics
        .next()
        .ok_or_else(|| malformed("Fetch", "no topic named"))?;
    if topics.next().is_some() || t.topic_id != METADATA_TOPIC_ID {
        return Err(malformed(
            "Fetch",
            "only the metadata topic is fetched here",
        ));
    }
    let mut parts = t.partitions.into_iter();
    let p = parts
        .next()
        .ok_or_else(|| malformed("Fetch", "no partition named"))?;
    if parts.next().is_some() || p.partition != 0 {
        return Err(malformed(
            "Fetch",
            "only partition 0 of the metadata log exists",
        ));
    }
    Ok(Inbound::Raft {
        from: node_id("Fetch", r.replica_state.replica_id.0)?,
        message: Message::Fetch {
            epoch: epoch("Fetch", p.current_leader_epoch)?,
            // Kafka's fetch has no id; the requester matches by correlation id. The id a
            // response carries back is the one in the requester's `Pending`.
            fetch_id: 0,
            // A negative fetch offset is answered (with a diverging epoch), not refused.
            fetch_offset: p.fetch_offset,
            last_fetched_epoch: epoch("Fetch", p.last_fetched_epoch)?,
        },
    })
}

fn decode_fetch_snapshot(buf: &mut Bytes) -> Result<Inbound, WireError> {
    let r = FetchSnapshotRequest::decode(buf, FETCH_SNAPSHOT_VERSION)
        .map_err(|e| malformed("FetchSnapshot", e))?;
    let from = node_id("FetchSnapshot", r.replica_id.0)?;
    let p = only(
        "FetchSnapshot",
        r.topics.into_iter().map(|t| (t.name, t.partitions)),
    )?;
    let position = u64::try_from(p.position)
        .map_err(|_| malformed("FetchSnapshot", format!("position {}", p.position)))?;
    Ok(Inbound::Raft {
        from,
        message: Message::FetchSnapshot {
            epoch: epoch("FetchSnapshot", p.current_leader_epoch)?,
            fetch_id: 0,
            snapshot_id: SnapshotId {
                end_offset: offset("FetchSnapshot", p.snapshot_id.end_offset)?,
                epoch: epoch("FetchSnapshot", p.snapshot_id.epoch)?,
            },
            position,
        },
    })
}
