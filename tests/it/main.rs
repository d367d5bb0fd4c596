//! End-to-end tests: the real `gregor` binary, started as a process, driven by real Kafka
//! clients — kcat (librdkafka 2.0.2), confluent-kafka 2.16 and kafka-python 3.0.12 — and by a
//! hostile raw socket. `tests/run.sh` installs the clients; a missing client fails the test
//! with a message saying so.

mod acls;
mod admin_ops;
mod client_cli;
mod clients;
mod cluster;
mod compaction;
mod conformance;
mod connect;
mod crash;
mod enforced_configs;
mod epochs;
mod failover;
mod groups;
mod groups_failover;
mod harness;
mod hostile;
mod metrics;
mod operate;
mod quorum;
mod reassign;
mod replication;
mod roles;
mod scram_users;
mod security;
mod shutdown;
mod solo;
mod streams;
mod topic_configs;
mod wiped;
