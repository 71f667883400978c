//! A cap on the message data that all SMTP sessions together hold in memory.
//!
//! Each session keeps the message it is receiving in memory until intake has made it durable.
//! The connection limits alone allow `max_connections × max_message_size` of that (12.5 GiB
//! with the defaults), far more than a modest server has: a burst of large messages would get
//! carepost killed for want of memory, losing every session at once. Instead, every byte of
//! buffer a session holds is first reserved from one [`DataBudget`]; a session that cannot
//! reserve gets a temporary `452 4.3.1` (RFC 3463: insufficient system storage), and its client
//! retries later, as SMTP clients do. A [`Reservation`] gives its bytes back when it is dropped:
//! when the message is queued or refused, the transaction is reset, or the session ends in any
//! way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes of message data all sessions may hold. Cheap to clone; clones share the budget.
#[derive(Debug, Clone)]
pub struct DataBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    used: AtomicUsize,
}

impl DataBudget {
    pub fn new(capacity: usize) -> Self {
        DataBudget { inner: Arc::new(Inner { capacity, used: AtomicUsize::new(0) }) }
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Bytes reserved now, over all sessions.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Bytes that could be reserved now.
    pub fn available(&self) -> usize {
        self.capacity().saturating_sub(self.in_use())
    }

    /// An empty reservation, to grow as data arrives.
    pub fn reservation(&self) -> Reservation {
        Reservation { budget: self.clone(), held: 0 }
    }

    /// Takes `bytes` more, all or nothing; never past the capacity.
    fn take(&self, bytes: usize) -> bool {
        let capacity = self.inner.capacity;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= capacity)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes of a [`DataBudget`] held by one message; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: DataBudget,
    held: usize,
}

impl Reservation {
    pub fn held(&self) -> usize {
        self.held
    }

    /// Grows the reservation to `total` bytes. False, with nothing changed, when the budget
    /// cannot give that much now.
    pub fn grow_to(&mut self, total: usize) -> bool {
        if total <= self.held {
            return true;
        }
        if !self.budget.take(total - self.held) {
            return false;
        }
        self.held = total;
        true
    }

    /// Gives every byte back at once.
    pub fn release(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.held));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// A message body being received, whose memory is covered by a [`Reservation`] before it is
/// allocated. The first `headroom` bytes (room for carepost's trace headers, a fixed few
/// kilobytes per session like the read buffer) are not counted; everything after them is.
#[derive(Debug)]
pub struct BodyBuffer {
    data: Vec<u8>,
    reservation: Reservation,
    headroom: usize,
    /// The most the decoder will ever keep: the headroom plus the message size limit.
    max_len: usize,
    over_budget: bool,
}

impl BodyBuffer {
    /// A buffer with `headroom` zero bytes in front, and room reserved for `hint` bytes of
    /// message. `None` when the budget cannot even give that.
    pub fn new(budget: &DataBudget, headroom: usize, hint: usize, max_size: usize) -> Option<BodyBuffer> {
        let hint = hint.min(max_size);
        let mut reservation = budget.reservation();
        if !reservation.grow_to(hint) {
            return None;
        }
        let mut data = Vec::with_capacity(headroom + hint);
        data.resize(headroom, 0);
        Some(BodyBuffer { data, reservation, headroom, max_len: headroom.saturating_add(max_size), over_budget: false })
    }

    /// A buffer that keeps nothing: for data read only to be thrown away.
    pub fn sink() -> BodyBuffer {
        BodyBuffer {
            data: Vec::new(),
            reservation: DataBudget::new(0).reservation(),
            headroom: 0,
            max_len: 0,
            over_budget: false,
        }
    }

    /// Makes room, within the budget, for `incoming` more bytes. When the budget cannot cover
    /// them the message is lost: what was kept is freed and its bytes given back at once, so
    /// other sessions can go on, and the rest of the message is only read and dropped.
    pub fn make_room(&mut self, incoming: usize) {
        if self.over_budget {
            self.data.clear();
            return;
        }
        let need = self.data.len().saturating_add(incoming).min(self.max_len);
        let capacity = self.data.capacity();
        if need <= capacity {
            return;
        }
        // Grow by doubling like a Vec would, but only as far as the budget and the size
        // limit allow, and never without the bytes reserved first.
        let generous = need.max(capacity.saturating_mul(2)).min(self.max_len);
        let counted = |len: usize| len.saturating_sub(self.headroom);
        let target = if self.reservation.grow_to(counted(generous)) {
            generous
        } else if self.reservation.grow_to(counted(need)) {
            need
        } else {
            self.over_budget = true;
            self.data = Vec::new();
            self.reservation.release();
            return;
        };
        self.data.reserve_exact(target - self.data.len());
    }

    /// Where the decoder appends.
    pub fn data(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Whether the message was dropped for want of memory.
    pub fn over_budget(&self) -> bool {
        self.over_budget
    }

    /// The message (after the headroom) and the reservation that covers it, which the caller
    /// holds until it is done with the message.
    pub fn into_parts(self) -> (Vec<u8>, Reservation) {
        (self.data, self.reservation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_capacity_and_are_given_back_on_drop() {
        let budget = DataBudget::new(100);
        let mut a = budget.reservation();
        assert!(a.grow_to(60));
        let mut b = budget.reservation();
        assert!(!b.grow_to(41), "all or nothing");
        assert_eq!(budget.in_use(), 60);
        assert!(b.grow_to(40));
        assert!(a.grow_to(50), "shrinking requests are no-ops");
        assert_eq!((budget.in_use(), budget.available()), (100, 0));
        drop(a);
        assert_eq!(budget.in_use(), 40);
        b.release();
        assert_eq!(budget.in_use(), 0);
        drop(b);
        assert_eq!(budget.in_use(), 0, "a released reservation gives nothing back twice");
    }

    #[test]
    fn a_buffer_is_always_covered_and_frees_everything_when_the_budget_runs_out() {
        let budget = DataBudget::new(1000);
        let mut body = BodyBuffer::new(&budget, 16, 100, 5000).unwrap();
        assert_eq!(budget.in_use(), 100);
        for _ in 0..9 {
            body.make_room(100);
            body.data().extend_from_slice(&[b'x'; 100]);
            assert!(body.data().capacity() - 16 <= budget.in_use(), "every byte of capacity is reserved");
        }
        assert!(!body.over_budget());
        assert!(BodyBuffer::new(&budget, 16, 200, 5000).is_none(), "another message cannot start");
        body.make_room(500);
        assert!(body.over_budget());
        assert_eq!(budget.in_use(), 0, "a message that cannot fit gives its bytes back at once");
        assert!(body.data().is_empty());
        let (_, reservation) = body.into_parts();
        assert_eq!(reservation.held(), 0);
        let fresh = BodyBuffer::new(&budget, 16, 1000, 5000).unwrap();
        assert_eq!(budget.in_use(), 1000);
        drop(fresh);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn growth_stops_at_the_size_limit() {
        let budget = DataBudget::new(1 << 20);
        let mut body = BodyBuffer::new(&budget, 8, 10, 64).unwrap();
        body.make_room(1 << 16);
        assert_eq!(budget.in_use(), 64, "never more than the largest message");
        assert!(BodyBuffer::sink().data().capacity() == 0);
    }
}
