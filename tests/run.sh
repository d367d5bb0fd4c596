#!/usr/bin/env bash
# Run every gregor test on a fresh Debian machine: install the real Kafka clients the
# end-to-end tests drive (kcat from Debian; confluent-kafka and kafka-python from PyPI),
# build, then run the core's unit and model tests, the simulator's seed range and checker
# tests, and the end-to-end tests against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

if ! command -v kcat >/dev/null; then
  echo "== installing kcat (librdkafka 2.0.2) from Debian"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null
fi
if ! command -v rsyslogd >/dev/null && [ ! -x /usr/sbin/rsyslogd ]; then
  echo "== installing rsyslog (forwards to gregor connect's syslog source in tests/it/connect.rs)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rsyslog >/dev/null
fi
if ! python3 -c "import confluent_kafka, kafka, prometheus_client, sys; sys.exit(0 if confluent_kafka.__version__.startswith('2.16') and kafka.__version__ == '3.0.12' else 1)" 2>/dev/null; then
  echo "== installing confluent-kafka 2.16, kafka-python 3.0.12 and prometheus-client 0.26 from PyPI"
  python3 -m pip install -q "confluent-kafka==2.16.*" "kafka-python==3.0.12" "prometheus-client==0.26.*"
fi

echo "== building (release)"
cargo build --release --workspace

echo "== tests"
cargo test --release --workspace

echo "== madsim: the real tokio shell over simulated TCP (kill, restart, clog), deterministic"
RUSTFLAGS="--cfg madsim" cargo test --release -p gregor-net --target-dir target/madsim madsim_tests

echo "== simulator: a fixed seed range, then fresh random seeds (printed, so a failure replays)"
./target/release/gregor-sim --seeds 0..300
./target/release/gregor-sim --random 40
./target/release/gregor-sim --cluster 1 --seeds 0..20 && ./target/release/gregor-sim --cluster 3 --seeds 0..120 && ./target/release/gregor-sim --cluster 5 --seeds 0..30
./target/release/gregor-sim --cluster 3 --replication --seeds 0..100 && ./target/release/gregor-sim --cluster 5 --replication --seeds 0..20
# The ACL workload (SASL logins, ACLs changing during the run, the acl-* checkers): docs/simulation.md.
./target/release/gregor-sim --cluster 3 --acls --seeds 0..12
