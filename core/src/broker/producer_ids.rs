//! InitProducerId: producer ids handed out in blocks that survive restarts.

use super::*;
use crate::ids::ProducerEpoch;

impl Broker {
    pub(super) fn init_producer_id(&mut self, to: ReplyTo, r: InitProducerIdRequest) {
        // Clients send a null transactional id for a plain idempotent producer; an empty one is
        // treated the same way.
        if r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
            let resp = InitProducerIdResponse::default()
                .with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.into())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(ProducerEpoch::NONE.0);
            self.log(LogLevel::Warn, format!("{:?}: InitProducerId with a transactional id refused: transactions are not supported", to.conn));
            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
            return;
        }
        if self.config.kraft {
            return self.kraft_init_producer_id(to);
        }
        if self.meta_waiters.len() >= self.config.producer_id_waiters_max {
            // Too many wait for broker.meta to be written: the client retries (Kafka's
            // producer treats COORDINATOR_LOAD_IN_PROGRESS as retriable).
            let resp = InitProducerIdResponse::default()
                .with_error_code(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.into())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(ProducerEpoch::NONE.0);
            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
            return;
        }
        self.meta_waiters.push(to);
        assert!(self.meta_waiters.len() <= self.config.producer_id_waiters_max);
        if self.next_producer_id >= self.producer_id_block_end {
            if !self.meta_write_in_flight {
                // Reserve the next block durably before handing out any id from it.
                self.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK;
                self.write_broker_meta();
            }
            // Postcondition: the reservation covering the next id is being written.
            assert!(self.meta_write_in_flight);
            return;
        }
        if !self.meta_write_in_flight {
            let waiters = std::mem::take(&mut self.meta_waiters);
            let first = self.next_producer_id;
            let count = waiters.len() as i64;
            for to in waiters {
                self.hand_out_producer_id(to);
            }
            // Each waiter got its own id, or waits again for the next block's reservation.
            assert_eq!(
                self.next_producer_id - first + self.meta_waiters.len() as i64,
                count
            );
        }
    }

    pub(super) fn hand_out_producer_id(&mut self, to: ReplyTo) {
        // While the next block's reservation is being written, nothing from it is handed out
        // (a restart before it is durable would hand the same ids out again).
        if self.next_producer_id >= self.producer_id_block_end || self.meta_write_in_flight {
            self.meta_waiters.push(to);
            assert!(self.meta_waiters.len() <= self.config.producer_id_waiters_max);
            if !self.meta_write_in_flight {
                self.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK;
                self.write_broker_meta();
            }
            return;
        }
        let pid = self.next_producer_id;
        // Every id handed out lies in a block that broker.meta already reserves.
        assert!(pid < self.producer_id_block_end && !self.meta_write_in_flight);
        self.next_producer_id += 1;
        assert!(self.next_producer_id <= self.producer_id_block_end);
        let resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0);
        self.respond(to, Some(ResponseKind::InitProducerId(resp)));
    }
}
