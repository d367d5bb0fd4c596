//! `gregor acls list|add|remove`: Kafka's `kafka-acls.sh` (KIP-11). One DescribeAcls,
//! CreateAcls or DeleteAcls request to a broker, which answers DescribeAcls from its metadata
//! image and forwards the others to the active controller:
//!
//! ```text
//! gregor acls add --bootstrap 127.0.0.1:9094 --sasl-username admin --sasl-password admin-secret \
//!     --principal User:alice --operation Write --topic orders
//! gregor acls list --bootstrap 127.0.0.1:9094 --sasl-username admin --sasl-password admin-secret
//! ```
//!
//! On a broker with the authorizer on, only a principal allowed Alter (Describe, to list) on the
//! cluster may do this, usually a super user; so the tool can log in with SASL PLAIN on a
//! SASL_PLAINTEXT listener (`--sasl-username`, `--sasl-password`). gregor's own client library
//! speaks no SASL yet, hence the one connection of its own here.

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use gregor_core::acl::{
    wire as acl_wire, AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission,
    ResourceType, CLUSTER_NAME, WILDCARD,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The ACL APIs' version, and SaslHandshake's and SaslAuthenticate's.
const VERSION: i16 = 3;
const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct AclArgs {
    /// The principal, e.g. User:alice (list: any, unless given).
    #[arg(long)]
    principal: Option<String>,
    /// The operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite or All (list: any, unless given).
    #[arg(long)]
    operation: Option<String>,
    #[arg(long, conflicts_with_all = ["group", "cluster", "transactional_id"])]
    topic: Option<String>,
    #[arg(long, conflicts_with_all = ["cluster", "transactional_id"])]
    group: Option<String>,
    #[arg(long, conflicts_with = "transactional_id")]
    cluster: bool,
    #[arg(long)]
    transactional_id: Option<String>,
    /// literal (the default: the name, or * for every resource) or prefixed.
    #[arg(long, default_value = "literal")]
    resource_pattern_type: String,
    /// A DENY entry (the default is ALLOW).
    #[arg(long)]
    deny: bool,
    /// The client address the entry is for [default: * (any)].
    #[arg(long)]
    host: Option<String>,
    /// Log in with SASL PLAIN as this user (a SASL_PLAINTEXT listener).
    #[arg(long, requires = "sasl_password")]
    sasl_username: Option<String>,
    #[arg(long)]
    sasl_password: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum AclsCommand {
    /// The ACLs in force (DescribeAcls), those matching what is given.
    List(AclArgs),
    /// Create one ACL (CreateAcls).
    Add(AclArgs),
    /// Delete the ACLs matching what is given (DeleteAcls).
    Remove(AclArgs),
}

impl AclArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        match (
            &self.topic,
            &self.group,
            self.cluster,
            &self.transactional_id,
        ) {
            (Some(t), ..) => Some((ResourceType::Topic, t.clone())),
            (_, Some(g), ..) => Some((ResourceType::Group, g.clone())),
            (_, _, true, _) => Some((ResourceType::Cluster, CLUSTER_NAME.into())),
            (.., Some(x)) => Some((ResourceType::TransactionalId, x.clone())),
            _ => None,
        }
    }

    fn pattern(&self) -> anyhow::Result<PatternType> {
        match self.resource_pattern_type.to_ascii_lowercase().as_str() {
            "literal" => Ok(PatternType::Literal),
            "prefixed" => Ok(PatternType::Prefixed),
            other => bail!("--resource-pattern-type {other}: literal or prefixed"),
        }
    }

    fn operation(&self) -> anyhow::Result<Option<Operation>> {
        self.operation
            .as_deref()
            .map(|o| Operation::parse(o).with_context(|| format!("unknown operation {o:?}")))
            .transpose()
    }

    fn binding(&self) -> anyhow::Result<AclBinding> {
        let (resource_type, resource_name) = self
            .resource()
            .context("name a resource: --topic, --group, --cluster or --transactional-id")?;
        Ok(AclBinding {
            resource_type,
            resource_name,
            pattern_type: self.pattern()?,
            principal: self.principal.clone().context("--principal is needed")?,
            host: self.host.clone().unwrap_or_else(|| WILDCARD.into()),
            operation: self.operation()?.context("--operation is needed")?,
            permission: if self.deny {
                Permission::Deny
            } else {
                Permission::Allow
            },
        })
    }

    /// What `list` and `remove` match: what is given, anything where nothing is.
    fn filter(&self, listing: bool) -> anyhow::Result<AclFilter> {
        let resource = self.resource();
        let pattern_given = self.resource_pattern_type != "literal" || !listing;
        Ok(AclFilter {
            resource_type: resource.as_ref().map(|r| r.0),
            resource_name: resource.map(|r| r.1),
            pattern: if pattern_given {
                PatternFilter::Exactly(self.pattern()?)
            } else {
                PatternFilter::Any
            },
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation()?,
            permission: (self.deny || !listing).then_some(if self.deny {
                Permission::Deny
            } else {
                Permission::Allow
            }),
        })
    }
}

struct Conn {
    stream: TcpStream,
    corr: i32,
}

impl Conn {
    fn open(server: &str, args: &AclArgs) -> anyhow::Result<Conn> {
        let stream =
            TcpStream::connect(server).with_context(|| format!("connecting to {server}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Conn { stream, corr: 0 };
        if let (Some(user), Some(password)) = (&args.sasl_username, &args.sasl_password) {
            let h =
                SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
            let mut r = c.call(ApiKey::SaslHandshake, HANDSHAKE_VERSION, &h)?;
            let resp = SaslHandshakeResponse::decode(&mut r, HANDSHAKE_VERSION)?;
            if resp.error_code != 0 {
                bail!("SASL PLAIN refused (error code {})", resp.error_code);
            }
            let token = format!("\0{user}\0{password}");
            let a = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let mut r = c.call(ApiKey::SaslAuthenticate, AUTHENTICATE_VERSION, &a)?;
            let resp = SaslAuthenticateResponse::decode(&mut r, AUTHENTICATE_VERSION)?;
            if resp.error_code != 0 {
                bail!(
                    "SASL authentication failed (error code {})",
                    resp.error_code
                );
            }
        }
        Ok(c)
    }

    /// Send one request and read its response body (after the response header).
    fn call(&mut self, key: ApiKey, version: i16, body: &impl Encodable) -> anyhow::Result<Bytes> {
        self.corr += 1;
        let mut frame = BytesMut::new();
        frame.put_u32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str("gregor-acls")))
            .encode(&mut frame, key.request_header_version(version))?;
        body.encode(&mut frame, version)?;
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame)?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .context("reading the response")?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 16 * 1024 * 1024 {
            bail!("a response of {len} bytes");
        }
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf)?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))?;
        if header.correlation_id != self.corr {
            bail!("response correlation id {}", header.correlation_id);
        }
        Ok(buf)
    }
}

pub fn acls(servers: &str, command: &AclsCommand) -> anyhow::Result<()> {
    let server = servers.split(',').next().unwrap_or(servers);
    match command {
        AclsCommand::List(args) => {
            let mut c = Conn::open(server, args)?;
            let req = acl_wire::describe_request_of(&args.filter(true)?);
            let mut r = c.call(ApiKey::DescribeAcls, VERSION, &req)?;
            let resp = DescribeAclsResponse::decode(&mut r, VERSION)?;
            if resp.error_code != 0 {
                let why = resp.error_message.as_ref().map_or("", |m| m.as_str());
                bail!("the broker refused: error code {}: {why}", resp.error_code);
            }
            for b in acl_wire::bindings_of_describe(&resp.resources).map_err(anyhow::Error::msg)? {
                println!("{b}");
            }
        }
        AclsCommand::Add(args) => {
            let binding = args.binding()?;
            let mut c = Conn::open(server, args)?;
            let req =
                CreateAclsRequest::default().with_creations(vec![acl_wire::creation_of(&binding)]);
            let mut r = c.call(ApiKey::CreateAcls, VERSION, &req)?;
            let resp = CreateAclsResponse::decode(&mut r, VERSION)?;
            for res in &resp.results {
                if res.error_code != 0 {
                    let why = res.error_message.as_ref().map_or("", |m| m.as_str());
                    bail!("the broker refused: error code {}: {why}", res.error_code);
                }
            }
            println!("added {binding}");
        }
        AclsCommand::Remove(args) => {
            let filter = args.filter(false)?;
            let mut c = Conn::open(server, args)?;
            let req = DeleteAclsRequest::default()
                .with_filters(vec![acl_wire::delete_filter_of(&filter)]);
            let mut r = c.call(ApiKey::DeleteAcls, VERSION, &req)?;
            let resp = DeleteAclsResponse::decode(&mut r, VERSION)?;
            for res in &resp.filter_results {
                if res.error_code != 0 {
                    let why = res.error_message.as_ref().map_or("", |m| m.as_str());
                    bail!("the broker refused: error code {}: {why}", res.error_code);
                }
                for m in &res.matching_acls {
                    let b = acl_wire::binding_of_matching(m).map_err(anyhow::Error::msg)?;
                    println!("removed {b}");
                }
            }
        }
    }
    Ok(())
}
