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
//! cluster may do this, usually a super user; so the tool logs in with SASL PLAIN or SCRAM on
//! a SASL_PLAINTEXT listener (`--sasl-username`, `--sasl-password`, `--sasl-mechanism`, or
//! `--command-config`: `secure.rs`, shared with `gregor users`).

use super::secure::{Conn, SecurityArgs};
use anyhow::{bail, Context};
use gregor_core::acl::{
    wire as acl_wire, AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission,
    ResourceType, CLUSTER_NAME, WILDCARD,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

/// The ACL APIs' version.
const VERSION: i16 = 3;

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
    #[command(flatten)]
    security: SecurityArgs,
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

pub fn acls(servers: &str, command: &AclsCommand) -> anyhow::Result<()> {
    let server = servers.split(',').next().unwrap_or(servers);
    match command {
        AclsCommand::List(args) => {
            let mut c = Conn::open(server, &args.security, "gregor-acls")?;
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
            let mut c = Conn::open(server, &args.security, "gregor-acls")?;
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
            let mut c = Conn::open(server, &args.security, "gregor-acls")?;
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
