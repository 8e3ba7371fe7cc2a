//! Exact event counters in time buckets, kept in a ring.

/// Good/total counts per bucket of `res_ms`, for buckets within the ring's span.
#[derive(Debug, Clone)]
pub struct CounterRing {
    res_ms: i64,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    idx: i64,
    good: u64,
    total: u64,
}

impl CounterRing {
    /// A ring that holds at least `span_ms` of past plus `future_ms` of future buckets.
    pub fn new(res_ms: i64, span_ms: i64, future_ms: i64) -> Self {
        let len = (span_ms + future_ms) / res_ms + 2;
        CounterRing {
            res_ms,
            slots: vec![
                Slot {
                    idx: i64::MIN,
                    good: 0,
                    total: 0
                };
                len as usize
            ],
        }
    }

    pub fn res_ms(&self) -> i64 {
        self.res_ms
    }

    /// Adds one event; false if its bucket is older than the ring holds.
    pub fn add(&mut self, time_ms: i64, good: bool) -> bool {
        let idx = time_ms.div_euclid(self.res_ms);
        let n = self.slots.len() as i64;
        let slot = &mut self.slots[idx.rem_euclid(n) as usize];
        if slot.idx != idx {
            if slot.idx > idx {
                return false;
            }
            *slot = Slot {
                idx,
                good: 0,
                total: 0,
            };
        }
        slot.total += 1;
        slot.good += u64::from(good);
        true
    }

    /// `(good, total)` over the buckets that intersect `[now − window, now]`: the
    /// `window / res + 1` buckets ending with the bucket of `now_ms`. Conservative by at most one
    /// bucket: no event younger than the window is missed, and at most one bucket of older ones
    /// is counted (so a rule never resolves early).
    pub fn sum(&self, now_ms: i64, window_ms: i64) -> (u64, u64) {
        let end = now_ms.div_euclid(self.res_ms);
        let buckets = (window_ms / self.res_ms + 1).clamp(1, self.slots.len() as i64 - 1);
        let n = self.slots.len() as i64;
        let (mut good, mut total) = (0, 0);
        for idx in end - buckets + 1..=end {
            let s = &self.slots[idx.rem_euclid(n) as usize];
            if s.idx == idx {
                good += s.good;
                total += s.total;
            }
        }
        (good, total)
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}
