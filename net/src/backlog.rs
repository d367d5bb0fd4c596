//! Flow control for one connection's answers: how many response bytes wait to be written, and
//! the request permits held back while too many do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Response bytes queued for one connection and not yet written to its socket, and the request
/// permits held back because of them.
///
/// A client that sends requests but does not read the answers would otherwise make the broker
/// buffer responses without bound. When more than `connection_buffer_bytes_max` is waiting, the
/// broker stops giving the reader permits back, so it stops reading requests; the writer gives
/// them back once the client has drained its answers below the limit.
pub struct Backlog {
    pub queued: AtomicUsize,
    withheld: AtomicUsize,
    limit: usize,
    permits: Arc<Semaphore>,
}

impl Backlog {
    pub fn new(limit: usize, permits: Arc<Semaphore>) -> Backlog {
        Backlog {
            queued: AtomicUsize::new(0),
            withheld: AtomicUsize::new(0),
            limit,
            permits,
        }
    }

    /// `n` requests finished: give their permits back, unless too much is waiting to be written.
    pub fn release(&self, n: usize) {
        if self.queued.load(Ordering::SeqCst) < self.limit {
            self.permits.add_permits(n);
            return;
        }
        self.withheld.fetch_add(n, Ordering::SeqCst);
        // The writer may have drained meanwhile; check again so no permit is lost.
        self.drained();
    }

    /// Called after writing: hand back permits held while the backlog was over the limit.
    pub fn drained(&self) {
        if self.queued.load(Ordering::SeqCst) < self.limit {
            let n = self.withheld.swap(0, Ordering::SeqCst);
            if n > 0 {
                self.permits.add_permits(n);
            }
        }
    }
}
