//! Redelivery detection with bounded memory.
//!
//! Vercel redelivers a batch when it does not get a 2xx in time, so the same entry `id` can arrive
//! twice. Keys are remembered for `window_ms` (by the time given to `admit`) and at most
//! `max_keys` of them (oldest forgotten first). A redelivery after both limits is counted again.
//!
//! A key is first *pending* (admitted by a request whose data is not yet durable), then either
//! committed (stored) or forgotten (not stored). A redelivery that meets a pending key is neither
//! new nor a duplicate: the caller must ask the sender to retry, since the first copy may still
//! fail.

use std::collections::{HashMap, VecDeque};

use xxhash_rust::xxh3::xxh3_128;

/// What [`Deduper::admit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    New,
    /// Seen and stored.
    Duplicate,
    /// Seen, but its first copy is not yet durable.
    Pending,
}

#[derive(Debug)]
pub struct Deduper {
    window_ms: i64,
    max_keys: usize,
    /// Key hash → (admission time, pending).
    seen: HashMap<u128, (i64, bool)>,
    order: VecDeque<(i64, u128)>,
}

impl Deduper {
    pub fn new(window_ms: i64, max_keys: usize) -> Self {
        Deduper {
            window_ms,
            max_keys: max_keys.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `key` as pending if it was not seen within the window.
    pub fn admit(&mut self, key: &str, now_ms: i64) -> Admission {
        self.expire(now_ms);
        let h = xxh3_128(key.as_bytes());
        match self.seen.get(&h) {
            Some((_, true)) => return Admission::Pending,
            Some((_, false)) => return Admission::Duplicate,
            None => {}
        }
        self.insert(h, now_ms, true);
        Admission::New
    }

    /// Marks keys admitted earlier as stored.
    pub fn commit<S: AsRef<str>>(&mut self, keys: &[S]) {
        for k in keys {
            if let Some(v) = self.seen.get_mut(&xxh3_128(k.as_ref().as_bytes())) {
                v.1 = false;
            }
        }
    }

    /// Remembers a key known to be stored (for example, read back from the archive at start).
    pub fn seed(&mut self, key: &str, now_ms: i64) {
        let h = xxh3_128(key.as_bytes());
        if !self.seen.contains_key(&h) {
            self.insert(h, now_ms, false);
        }
    }

    fn insert(&mut self, h: u128, now_ms: i64, pending: bool) {
        self.seen.insert(h, (now_ms, pending));
        self.order.push_back((now_ms, h));
        while self.seen.len() > self.max_keys {
            self.pop_oldest();
        }
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
            if self.seen.get(&h).is_some_and(|v| v.0 == t) {
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
        use Admission::*;
        let mut d = Deduper::new(1000, 2);
        assert_eq!(d.admit("a", 0), New);
        assert_eq!(d.admit("a", 5), Pending);
        d.commit(&["a"]);
        assert_eq!(d.admit("a", 10), Duplicate);
        assert_eq!(d.admit("b", 20), New);
        assert_eq!(d.admit("c", 30), New); // evicts a (cap 2)
        assert_eq!(d.admit("a", 40), New);
        d.commit(&["c"]);
        assert_eq!(d.admit("c", 1029), Duplicate);
        assert_eq!(d.admit("c", 1031), New); // expired by time
        d.forget("c");
        assert_eq!(d.admit("c", 1032), New);
        d.seed("s", 1033);
        assert_eq!(d.admit("s", 1034), Duplicate);
    }
}
