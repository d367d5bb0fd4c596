//! `gregor users list|describe|add|remove`: SCRAM users (KIP-554), what Kafka does with
//! `kafka-configs.sh --alter --entity-type users --add-config 'SCRAM-SHA-512=[password=...]'`.
//!
//! ```text
//! gregor users add --bootstrap 127.0.0.1:9092 --user app1 --password app1-secret
//! gregor users list --bootstrap 127.0.0.1:9092
//! gregor users describe --bootstrap 127.0.0.1:9092 --user app1
//! gregor users remove --bootstrap 127.0.0.1:9092 --user app1
//! ```
//!
//! `add` salts the password here, as Kafka's admin client does: the AlterUserScramCredentials
//! upsertion carries a fresh random salt, the iteration count and `PBKDF2(password, salt,
//! iterations)`, never the password. The broker forwards it to the active controller, which
//! writes the credential to the metadata log; every broker then accepts the login. `list` and
//! `describe` use DescribeUserScramCredentials (mechanisms and iteration counts, never keys).
//! On a broker with the authorizer on this needs Alter (Describe, to list) on the cluster: log
//! in with the security flags of `secure.rs`.

use super::secure::{Conn, SecurityArgs};
use anyhow::{bail, Context};
use bytes::Bytes;
use gregor_core::scram::{ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Both APIs' only version (flexible).
const VERSION: i16 = 0;
/// The random salt's length in bytes.
const SALT_BYTES: usize = 32;

#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Every SCRAM user, with its mechanisms (DescribeUserScramCredentials).
    List {
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// One user's SCRAM credentials.
    Describe {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Add a user, or change its password (AlterUserScramCredentials upsertion).
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Remove a user's credential for a mechanism (AlterUserScramCredentials deletion).
    Remove {
        #[arg(long)]
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[command(flatten)]
        security: SecurityArgs,
    },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(&name.to_ascii_uppercase())
        .with_context(|| format!("mechanism {name}: SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn describe(conn: &mut Conn, users: Option<Vec<String>>) -> anyhow::Result<()> {
    let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|us| {
        us.into_iter()
            .map(|u| UserName::default().with_name(StrBytes::from_string(u)))
            .collect()
    }));
    let resp: DescribeUserScramCredentialsResponse =
        conn.ask(ApiKey::DescribeUserScramCredentials, VERSION, &req)?;
    if resp.error_code != 0 {
        let why = resp.error_message.as_ref().map_or("", |m| m.as_str());
        bail!("the broker refused: error code {}: {why}", resp.error_code);
    }
    let mut failed = None;
    for r in &resp.results {
        if r.error_code != 0 {
            let why = r.error_message.as_ref().map_or("", |m| m.as_str());
            failed = Some(format!(
                "user {}: error code {}: {why}",
                r.user.as_str(),
                r.error_code
            ));
            continue;
        }
        let infos: Vec<String> = r
            .credential_infos
            .iter()
            .map(|c| {
                let name = ScramMechanism::from_wire(c.mechanism).map_or("unknown", |m| m.name());
                format!("{name}=[iterations={}]", c.iterations)
            })
            .collect();
        println!("{} {}", r.user.as_str(), infos.join(","));
    }
    match failed {
        Some(why) => bail!(why),
        None => Ok(()),
    }
}

fn alter(conn: &mut Conn, req: &AlterUserScramCredentialsRequest) -> anyhow::Result<()> {
    let resp: AlterUserScramCredentialsResponse =
        conn.ask(ApiKey::AlterUserScramCredentials, VERSION, req)?;
    for r in &resp.results {
        if r.error_code != 0 {
            let why = r.error_message.as_ref().map_or("", |m| m.as_str());
            bail!(
                "user {}: the broker refused: error code {}: {why}",
                r.user.as_str(),
                r.error_code
            );
        }
    }
    Ok(())
}

pub fn users(servers: &str, command: &UsersCommand) -> anyhow::Result<()> {
    let server = servers.split(',').next().unwrap_or(servers);
    match command {
        UsersCommand::List { security } => {
            describe(&mut Conn::open(server, security, "gregor-users")?, None)
        }
        UsersCommand::Describe { user, security } => describe(
            &mut Conn::open(server, security, "gregor-users")?,
            Some(vec![user.clone()]),
        ),
        UsersCommand::Add {
            user,
            password,
            mechanism: m,
            iterations,
            security,
        } => {
            let m = mechanism(m)?;
            if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(iterations) {
                bail!("--iterations {iterations}: {ITERATIONS_MIN} to {ITERATIONS_MAX}");
            }
            let salt: [u8; SALT_BYTES] = rand::random();
            let salted = m.salted_password(password.as_bytes(), &salt, *iterations);
            let up = ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.clone()))
                .with_mechanism(m.wire())
                .with_iterations(*iterations as i32)
                .with_salt(Bytes::copy_from_slice(&salt))
                .with_salted_password(Bytes::from(salted));
            let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]);
            alter(&mut Conn::open(server, security, "gregor-users")?, &req)?;
            println!("added {} credential for user {user}", m.name());
            Ok(())
        }
        UsersCommand::Remove {
            user,
            mechanism: m,
            security,
        } => {
            let m = mechanism(m)?;
            let del = ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(user.clone()))
                .with_mechanism(m.wire());
            let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![del]);
            alter(&mut Conn::open(server, security, "gregor-users")?, &req)?;
            println!("removed {} credential of user {user}", m.name());
            Ok(())
        }
    }
}
