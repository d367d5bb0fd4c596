//! Consumer groups (placeholder until the group coordinator lands: every group API is refused).

use crate::broker::{Broker, ReplyTo, Topic};
use crate::config::Config;
use crate::io::ConnId;
use crate::time::Instant;
use kafka_protocol::messages::RequestKind;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Coordinator {}

impl Coordinator {
    pub fn new(_config: &Config) -> Coordinator {
        Coordinator {}
    }
    pub fn recover(&mut self, _topics: &mut BTreeMap<String, Topic>) {}
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }
    pub fn on_conn_closed(&mut self, _conn: ConnId) {}
    pub fn invariants(&self) {}
}

/// Handle a group request; false if this is not a group API.
pub fn handle(_broker: &mut Broker, _to: ReplyTo, _body: RequestKind) -> bool {
    false
}
pub fn tick(_broker: &mut Broker) {}
pub fn after_step(_broker: &mut Broker) {}
