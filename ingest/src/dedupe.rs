//! Redelivery detection with bounded memory.
//!
//! Vercel redelivers a batch when it does not get a 2xx in time, so the same entry `id` can arrive
//! twice. Keys are remembered for `window_ms` (by the time given to `admit`) and at most
//! `max_keys` of them (oldest forgotten first). A redelivery after both limits is counted again.

use std::collections::{HashMap, VecDeque};

use xxhash_rust::xxh3::xxh3_128;

#[derive(Debug)]
pub struct Deduper {
    window_ms: i64,
    max_keys: usize,
    seen: HashMap<u128, i64>,
    order: VecDeque<(i64, u128)>,
}

impl Deduper {
    pub fn new(window_ms: i64, max_keys: usize) -> Self {
        Deduper { window_ms, max_keys: max_keys.max(1), seen: HashMap::new(), order: VecDeque::new() }
    }

    /// Records `key` and returns true if it was not seen within the window.
    pub fn admit(&mut self, key: &str, now_ms: i64) -> bool {
        self.expire(now_ms);
        let h = xxh3_128(key.as_bytes());
        if self.seen.contains_key(&h) {
            return false;
        }
        self.seen.insert(h, now_ms);
        self.order.push_back((now_ms, h));
        while self.seen.len() > self.max_keys {
            self.pop_oldest();
        }
        true
    }

    /// Forgets keys admitted by a request that was then not stored, so a redelivery is accepted.
    pub fn forget(&mut self, key: &str) {
        self.seen.remove(&xxh3_128(key.as_bytes()));
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some(&(t, _)) = self.order.front() {
            if t > now_ms.saturating_sub(self.window_ms) {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((t, h)) = self.order.pop_front() {
            // A forgotten-then-readmitted key has a newer time; keep that one.
            if self.seen.get(&h) == Some(&t) {
                self.seen.remove(&h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_cap() {
        let mut d = Deduper::new(1000, 2);
        assert!(d.admit("a", 0));
        assert!(!d.admit("a", 10));
        assert!(d.admit("b", 20));
        assert!(d.admit("c", 30)); // evicts a (cap 2)
        assert!(d.admit("a", 40));
        assert!(!d.admit("c", 1029));
        assert!(d.admit("c", 1031)); // expired by time
        d.forget("c");
        assert!(d.admit("c", 1032));
    }
}
