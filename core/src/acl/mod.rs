//! Access control lists: who may do what to which resource (KIP-11), decided as Kafka's KRaft
//! `StandardAuthorizer` decides, sans-IO.
//!
//! An ACL (an [`AclBinding`]) says: *principal P, from host H, is allowed (or denied)
//! operation O on the resources that pattern R matches*. For example
//! `User:alice` from `*` is allowed `Write` on the topics whose names start with `orders-`
//! (a *prefixed* pattern, KIP-290), or `User:*` is denied `Read` on the literal topic `secret`.
//!
//! A request is authorized by [`Authorizer::authorize`], and the rules are Kafka's:
//!
//! 1. A *super user* (Kafka's `super.users`, e.g. `User:admin`) may do everything.
//! 2. The ACLs that apply are those whose pattern matches the resource: a literal pattern of
//!    the same name, the literal wildcard `*` (every resource of the type), or a prefixed
//!    pattern the name starts with; and whose principal is the caller's or `User:*`, and whose
//!    host is the caller's address or `*`.
//! 3. **Deny wins**: one applying DENY of the operation (or of `All`) refuses it, whatever
//!    ALLOWs there are.
//! 4. An applying ALLOW of the operation grants it, and so does an ALLOW of an operation that
//!    *implies* it: `Describe` is implied by `Read`, `Write`, `Delete` and `Alter`;
//!    `DescribeConfigs` by `AlterConfigs`; `All` implies everything. (A DENY implies nothing:
//!    denying `Read` still leaves `Describe` to an ALLOW.)
//! 5. No ACL at all on the resource (for any principal): allowed only when
//!    `allow.everyone.if.no.acl.found` is set (off by default, as in Kafka).
//! 6. Otherwise: denied.
//!
//! The ACLs themselves are cluster metadata: the controller writes an AccessControlEntry record
//! for each one created and a RemoveAccessControlEntry record for each one deleted, and every
//! broker replays them into its metadata image ([`Acls`] is the image's part), so each broker
//! authorizes against the ACLs as of the metadata offset it has applied.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;
pub mod wire;

/// The principal of a connection nobody authenticated (PLAINTEXT, or SSL without a client
/// certificate): Kafka's `KafkaPrincipal.ANONYMOUS`.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The wildcard principal of an ACL: every user.
pub const ANY_USER: &str = "User:*";
/// The wildcard host of an ACL, and the literal name that matches every resource of a type.
pub const WILDCARD: &str = "*";
/// The one cluster resource's name (Kafka's `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// What kind of thing an ACL protects (Kafka's `ResourceType`; the number is its wire code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

/// How an ACL's resource name matches (Kafka's `PatternType`): the exact name (or `*`), or
/// every name starting with it (KIP-290).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

/// What a request does to a resource (Kafka's `AclOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// Allow or deny (Kafka's `AclPermissionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
    ];
    /// The type of wire code `code`; `None` for UNKNOWN (0), ANY (1) and codes gregor does not
    /// protect (delegation tokens, users).
    pub fn from_code(code: i8) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| *t as i8 == code)
    }
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<PatternType> {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .find(|t| *t as i8 == code)
    }
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Permission> {
        [Permission::Deny, Permission::Allow]
            .into_iter()
            .find(|t| *t as i8 == code)
    }
}

impl Operation {
    pub const ALL: [Operation; 11] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
    ];
    pub fn from_code(code: i8) -> Option<Operation> {
        Self::ALL.into_iter().find(|o| *o as i8 == code)
    }
    /// An operation by its Kafka name, as `kafka-acls.sh --operation` takes it: `Write`,
    /// `IdempotentWrite`, `describe-configs`, `ALTER_CONFIGS` (case, `-` and `_` ignored).
    pub fn parse(name: &str) -> Option<Operation> {
        let key = |s: &str| {
            s.chars()
                .filter(|c| *c != '-' && *c != '_')
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let want = key(name);
        Self::ALL
            .into_iter()
            .find(|o| key(&format!("{o:?}")) == want)
    }

    /// Whether an ALLOW of `self` grants `asked` (Kafka's implied operations).
    pub fn implies(self, asked: Operation) -> bool {
        use Operation::*;
        self == asked
            || self == All
            || (asked == Describe && matches!(self, Read | Write | Delete | Alter))
            || (asked == DescribeConfigs && self == AlterConfigs)
    }
}

/// A resource a request touches: a topic, a group, a transactional id by name, or the cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource<'a> {
    pub resource_type: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Resource<'a> {
        Resource {
            resource_type: ResourceType::Topic,
            name,
        }
    }
    pub fn group(name: &'a str) -> Resource<'a> {
        Resource {
            resource_type: ResourceType::Group,
            name,
        }
    }
    pub fn cluster() -> Resource<'static> {
        Resource {
            resource_type: ResourceType::Cluster,
            name: CLUSTER_NAME,
        }
    }
    pub fn transactional_id(name: &'a str) -> Resource<'a> {
        Resource {
            resource_type: ResourceType::TransactionalId,
            name,
        }
    }
}

/// One ACL: a resource pattern and an access control entry (Kafka's `AclBinding`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or [`ANY_USER`].
    pub principal: String,
    /// An address the client connects from, or [`WILDCARD`].
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Check a new ACL as Kafka's controller does before writing it: a principal of the form
    /// `Type:name`, a non-empty resource name, the cluster named `kafka-cluster`, a host.
    pub fn validate(&self) -> Result<(), String> {
        let principal_ok = self
            .principal
            .split_once(':')
            .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty());
        if !principal_ok {
            return Err(format!(
                "principal {:?} is not of the form Type:name (User:alice)",
                self.principal
            ));
        }
        if self.resource_name.is_empty() {
            return Err("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!(
                "the cluster resource is named {CLUSTER_NAME}, not {:?}",
                self.resource_name
            ));
        }
        if self.host.is_empty() {
            return Err("the host is empty (use * for any host)".into());
        }
        assert!(!self.principal.is_empty() && !self.resource_name.is_empty());
        Ok(())
    }

    /// Whether the binding's pattern covers `resource` (its type, and literal, wildcard or
    /// prefix match of the name).
    pub fn covers(&self, resource: &Resource<'_>) -> bool {
        self.resource_type == resource.resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == WILDCARD || self.resource_name == resource.name
                }
                PatternType::Prefixed => resource.name.starts_with(&self.resource_name),
            }
    }

    /// Whether the entry is for this caller: its principal or every user, its host or any.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == ANY_USER)
            && (self.host == WILDCARD || self.host == host)
    }
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {} {:?} from host {} on {:?}:{:?}:{}",
            self.permission,
            self.principal,
            self.operation,
            self.host,
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}

/// How a filter matches the resource pattern's type (Kafka's `PatternType` in a filter): any
/// pattern, exactly one type, or MATCH: the patterns that would apply to the named resource
/// (a literal of that name, the wildcard, and the prefixes of the name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    Any,
    Match,
    Exactly(PatternType),
}

/// Which ACLs a DescribeAcls or DeleteAcls means (Kafka's `AclBindingFilter`): `None` is ANY
/// (or a null string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

/// ANY (1), as every filter field's wire code for "whatever it is".
const ANY: i8 = 1;
/// MATCH (2), the pattern-type filter of [`PatternFilter::Match`].
const MATCH: i8 = 2;

impl AclFilter {
    /// A filter from its wire fields (DescribeAcls, DeleteAcls); an UNKNOWN or undefined code
    /// is an error naming the field (Kafka answers INVALID_REQUEST).
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        let field = |what: &str, code: i8| format!("{what} {code} is not a filter value");
        let any_or = |code: i8| (code != ANY).then_some(code);
        let filter = AclFilter {
            resource_type: match any_or(resource_type) {
                None => None,
                Some(c) => Some(ResourceType::from_code(c).ok_or(field("resource type", c))?),
            },
            resource_name: resource_name.map(str::to_string),
            pattern: match pattern {
                ANY => PatternFilter::Any,
                MATCH => PatternFilter::Match,
                c => PatternFilter::Exactly(
                    PatternType::from_code(c).ok_or(field("pattern type", c))?,
                ),
            },
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: match any_or(operation) {
                None => None,
                Some(c) => Some(Operation::from_code(c).ok_or(field("operation", c))?),
            },
            permission: match any_or(permission) {
                None => None,
                Some(c) => Some(Permission::from_code(c).ok_or(field("permission", c))?),
            },
        };
        Ok(filter)
    }

    /// The filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_ok = match (self.pattern, &self.resource_name) {
            (PatternFilter::Match, Some(name)) => match self.resource_type {
                Some(t) => b.covers(&Resource {
                    resource_type: t,
                    name,
                }),
                None => ResourceType::ALL.into_iter().any(|t| {
                    b.covers(&Resource {
                        resource_type: t,
                        name,
                    })
                }),
            },
            (PatternFilter::Exactly(p), name) => {
                b.pattern_type == p && name.as_ref().is_none_or(|n| *n == b.resource_name)
            }
            (_, name) => name.as_ref().is_none_or(|n| *n == b.resource_name),
        };
        name_ok
            && self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// An ACL's id in the metadata log (KRaft's AccessControlEntryRecord `Id`, a UUID).
pub type AclId = [u8; 16];

/// The ACLs in force: the metadata image's part, by id (one entry per AccessControlEntry
/// record not yet removed). No two entries are the same binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acls {
    by_id: BTreeMap<AclId, AclBinding>,
}

/// Why an ACL record does not fit the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclReplayError {
    /// An AccessControlEntry whose id is taken, or whose binding already exists.
    Duplicate(AclId),
    /// A RemoveAccessControlEntry of an id not in force.
    Unknown(AclId),
}

impl Acls {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&AclId, &AclBinding)> {
        self.by_id.iter()
    }
    /// The id of an ACL equal to `binding`, if one is in force.
    pub fn find(&self, binding: &AclBinding) -> Option<AclId> {
        self.by_id
            .iter()
            .find(|(_, b)| *b == binding)
            .map(|(id, _)| *id)
    }
    /// The ACLs a filter matches, by id.
    pub fn matching<'a>(
        &'a self,
        filter: &'a AclFilter,
    ) -> impl Iterator<Item = (&'a AclId, &'a AclBinding)> + 'a {
        self.by_id.iter().filter(|(_, b)| filter.matches(b))
    }

    /// Check that an AccessControlEntry record fits (before anything changes).
    pub fn check_add(&self, id: AclId, binding: &AclBinding) -> Result<(), AclReplayError> {
        if self.by_id.contains_key(&id) || self.find(binding).is_some() {
            return Err(AclReplayError::Duplicate(id));
        }
        Ok(())
    }
    pub fn check_remove(&self, id: AclId) -> Result<(), AclReplayError> {
        if !self.by_id.contains_key(&id) {
            return Err(AclReplayError::Unknown(id));
        }
        Ok(())
    }
    /// Apply an AccessControlEntry record that [`Acls::check_add`] accepted.
    pub fn add(&mut self, id: AclId, binding: AclBinding) {
        let before = self.by_id.len();
        assert!(self.check_add(id, &binding).is_ok(), "checked first");
        self.by_id.insert(id, binding);
        assert_eq!(self.by_id.len(), before + 1);
    }
    /// Apply a RemoveAccessControlEntry record that [`Acls::check_remove`] accepted.
    pub fn remove(&mut self, id: AclId) -> AclBinding {
        let gone = self.by_id.remove(&id).expect("checked first");
        assert!(!self.by_id.contains_key(&id));
        gone
    }

    /// Whether any ACL's pattern covers `resource` (for anybody): with none,
    /// `allow.everyone.if.no.acl.found` decides.
    fn any_on(&self, resource: &Resource<'_>) -> bool {
        self.by_id.values().any(|b| b.covers(resource))
    }
}

/// The authorizer's settings (Kafka's `authorizer.class.name` set to the StandardAuthorizer,
/// `super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authorizer {
    /// Principals that pass every check (`User:admin`).
    pub super_users: Vec<String>,
    /// Allow a request on a resource no ACL names at all (off by default, as in Kafka).
    pub allow_if_no_acl: bool,
}

/// Who asks: the connection's principal and the address it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub host: String,
}

impl Default for Caller {
    fn default() -> Caller {
        Caller {
            principal: ANONYMOUS.to_string(),
            host: String::new(),
        }
    }
}

/// Why the authorizer decided as it did, for the authorizer log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    SuperUser,
    Allowed(AclBinding),
    Denied(AclBinding),
    NoAclAllowed,
    NoAclDenied,
    NoMatchingAllow,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(
            self,
            Decision::SuperUser | Decision::Allowed(_) | Decision::NoAclAllowed
        )
    }
}

impl Authorizer {
    pub fn is_super(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }

    /// May `caller` do `op` on `resource`, under `acls`? The rules of the module docs.
    pub fn decide(
        &self,
        acls: &Acls,
        caller: &Caller,
        op: Operation,
        resource: &Resource<'_>,
    ) -> Decision {
        assert!(op != Operation::All, "a request asks for one operation");
        if self.is_super(&caller.principal) {
            return Decision::SuperUser;
        }
        let applying = acls
            .by_id
            .values()
            .filter(|b| b.covers(resource) && b.applies_to(&caller.principal, &caller.host));
        let mut allow = None;
        for b in applying {
            match b.permission {
                // A deny names the operation itself (or All): deny wins over any allow.
                Permission::Deny if b.operation == op || b.operation == Operation::All => {
                    return Decision::Denied(b.clone());
                }
                Permission::Allow if b.operation.implies(op) && allow.is_none() => {
                    allow = Some(b.clone());
                }
                _ => {}
            }
        }
        let decision = match allow {
            Some(b) => Decision::Allowed(b),
            None if !acls.any_on(resource) && self.allow_if_no_acl => Decision::NoAclAllowed,
            None if !acls.any_on(resource) => Decision::NoAclDenied,
            None => Decision::NoMatchingAllow,
        };
        assert!(!matches!(decision, Decision::Denied(_)));
        decision
    }

    pub fn authorize(
        &self,
        acls: &Acls,
        caller: &Caller,
        op: Operation,
        resource: &Resource<'_>,
    ) -> bool {
        self.decide(acls, caller, op, resource).allowed()
    }

    /// May `caller` do `op` on *some* resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`, KIP-679: an idempotent producer needs IdempotentWrite on the
    /// cluster or Write on any topic)? True for a super user, for an ALLOW of an implying
    /// operation that no DENY of the same pattern cancels, and, with no ACL of the type at
    /// all, when `allow.everyone.if.no.acl.found` is set.
    pub fn authorize_any(
        &self,
        acls: &Acls,
        caller: &Caller,
        op: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.is_super(&caller.principal) {
            return true;
        }
        let of_type = || {
            acls.by_id
                .values()
                .filter(|b| b.resource_type == resource_type)
        };
        let applying = || of_type().filter(|b| b.applies_to(&caller.principal, &caller.host));
        let denied = |a: &AclBinding| {
            applying().any(|d| {
                d.permission == Permission::Deny
                    && (d.operation == op || d.operation == Operation::All)
                    && d.pattern_type == a.pattern_type
                    && (d.resource_name == a.resource_name
                        || (d.pattern_type == PatternType::Literal && d.resource_name == WILDCARD))
            })
        };
        let allowed = applying()
            .any(|a| a.permission == Permission::Allow && a.operation.implies(op) && !denied(a));
        allowed || (self.allow_if_no_acl && of_type().next().is_none())
    }
}
