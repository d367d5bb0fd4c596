//! The process's memory allocator: the system allocator, with one guard against a decoding
//! hazard in the `kafka-protocol` crate.
//!
//! That crate decodes a Kafka array by reading its element count off the wire and calling
//! `Vec::with_capacity(count)` before decoding a single element. A frame of a few bytes can
//! claim two billion elements; the allocator cannot satisfy the request, and Rust aborts the
//! process (an allocation failure is not a panic). Upstream knows (kafka-protocol-rs pull
//! requests 152, 161 and 200, open as of this writing); until a release bounds the capacity,
//! gregor's fuzzer found it in its first second.
//!
//! The guard: an allocation of 1 GiB or more (which gregor never makes on purpose; requests are
//! limited to `request_bytes_max`) is served by an anonymous `mmap` with `MAP_NORESERVE`.
//! Linux reserves only address space for it, so the doomed `with_capacity` succeeds, the
//! decoder fails on the first missing element with a clean error, and the mapping is returned
//! untouched. Under `vm.overcommit_memory = 2` (strict accounting) the mapping is refused and the
//! process aborts as before; the documentation says so.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large bypass the system allocator.
const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

pub struct GuardedAlloc;

fn huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

// SAFETY: every pointer handed out is either the system allocator's (and returned to it) or a
// fresh private anonymous mapping of at least `layout.size()` bytes, page-aligned (which
// satisfies any alignment up to a page), unmapped with the same size on dealloc.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if huge(&layout) {
            // SAFETY: an anonymous private mapping with no address hint has no preconditions.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return std::ptr::null_mut();
            }
            return p.cast();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if huge(&layout) {
            // SAFETY: as `alloc`; anonymous mappings are zero-filled.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if huge(&layout) {
            // SAFETY: `ptr` came from our `mmap` of exactly this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from the system allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return std::ptr::null_mut(),
        };
        if !huge(&layout) && !huge(&new_layout) {
            // SAFETY: both sides belong to the system allocator.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a fresh block of the new size; copy what both hold, free the old one.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use gregor_core::wire::decode_request;

    /// The fuzzer's first find: a JoinGroup frame whose protocols array claims ~900 million
    /// elements. With the guard (installed as this binary's allocator, tests included) it is a
    /// clean decode error, not an abort.
    #[test]
    fn a_huge_array_count_is_a_decode_error() {
        let mut frame = vec![0u8, 11, 0, 5, 0, 0, 0, 1, 0xff, 0xff]; // JoinGroup v5, corr 1, no client id
        frame.extend_from_slice(&[0, 1, b'g']); // group id
        frame.extend_from_slice(&[0, 0, 0x27, 0x10]); // session timeout
        frame.extend_from_slice(&[0, 0, 0x27, 0x10]); // rebalance timeout
        frame.extend_from_slice(&[0, 0]); // member id ""
        frame.extend_from_slice(&[0xff, 0xff]); // instance id null
        frame.extend_from_slice(&[0, 1, b'c']); // protocol type
        frame.extend_from_slice(&[0x35, 0xff, 0xff, 0xff]); // protocols: ~905 million of them
        assert!(decode_request(bytes::Bytes::from(frame)).is_err());
    }
}
