//! A sliding one-minute window of counts (requests or tokens) in sixty
//! one-second slots: what was counted in the last 60 whole seconds. Sans-IO:
//! every call takes `now` in Unix seconds, so it is tested without a clock.
//!
//! Invariants: `sum` is always the sum of the slots; a slot older than 59
//! seconds before the newest one counts nothing. Held by the caller's lock
//! (one per key or team), so it needs no atomics of its own.

const SLOTS: u64 = 60;

#[derive(Clone, Debug)]
pub struct Window {
    slots: [u64; SLOTS as usize],
    /// The second the newest slot stands for.
    newest: u64,
    sum: u64,
    /// The oldest second in the window with a count (when `sum > 0`): found
    /// again only when it leaves the window, at most once a second.
    oldest: u64,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            slots: [0; SLOTS as usize],
            newest: 0,
            sum: 0,
            oldest: 0,
        }
    }
}

impl Window {
    /// Moves the window to `now`, dropping what fell out of it.
    fn advance(&mut self, now: u64) {
        if now <= self.newest {
            return;
        }
        if now - self.newest >= SLOTS {
            self.slots = [0; SLOTS as usize];
            self.sum = 0;
        } else {
            for s in self.newest + 1..=now {
                let slot = &mut self.slots[(s % SLOTS) as usize];
                self.sum -= *slot;
                *slot = 0;
            }
        }
        self.newest = now;
        let start = now + 1 - SLOTS.min(now + 1);
        if self.sum > 0 && self.oldest < start {
            self.oldest = (start..=now)
                .find(|&s| self.slots[(s % SLOTS) as usize] > 0)
                .unwrap_or(now);
        }
    }

    /// What the last 60 seconds counted.
    pub fn used(&mut self, now: u64) -> u64 {
        self.advance(now);
        self.sum
    }

    /// Counts `n` at `now`.
    pub fn add(&mut self, now: u64, n: u64) {
        self.advance(now);
        if self.sum == 0 {
            self.oldest = now;
        }
        self.slots[(now % SLOTS) as usize] += n;
        self.sum += n;
    }

    /// Takes back up to `n` counted at second `at`, if that second is still
    /// in the window (a reservation replaced by what was really used).
    pub fn take_back(&mut self, now: u64, at: u64, n: u64) {
        self.advance(now);
        if at > self.newest || self.newest - at >= SLOTS {
            return;
        }
        let slot = &mut self.slots[(at % SLOTS) as usize];
        let n = n.min(*slot);
        *slot -= n;
        self.sum -= n;
    }

    /// Seconds from `now` until the oldest count in the window leaves it
    /// (0 when the window is empty).
    pub fn oldest_leaves_in(&mut self, now: u64) -> u64 {
        self.advance(now);
        if self.sum == 0 {
            return 0;
        }
        // A take-back may have emptied that second: the answer is then a
        // little early, never late.
        self.oldest + SLOTS - now
    }

    /// Seconds from `now` until `need` more fits under `limit` (0 when it
    /// fits now; `None` when it never can, `need` being over `limit`).
    pub fn wait_for(&mut self, now: u64, need: u64, limit: u64) -> Option<u64> {
        if need > limit {
            return None;
        }
        self.advance(now);
        let mut sum = self.sum;
        // Oldest slot first: slot for second `s` leaves at `s + 60`.
        for age in (0..SLOTS).rev() {
            if sum + need <= limit {
                return Some(SLOTS - 1 - age);
            }
            let Some(second) = now.checked_sub(age) else {
                continue;
            };
            sum -= self.slots[(second % SLOTS) as usize];
        }
        Some(SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_sixty_seconds() {
        let mut w = Window::default();
        w.add(1000, 3);
        w.add(1030, 2);
        assert_eq!(w.used(1059), 5);
        assert_eq!(w.used(1060), 2, "second 1000 left the window");
        assert_eq!(w.used(1089), 2);
        assert_eq!(w.used(1090), 0);
        w.add(5000, 1);
        assert_eq!(w.used(5000), 1, "a long gap clears everything");
    }

    #[test]
    fn take_back_only_inside_the_window() {
        let mut w = Window::default();
        w.add(100, 10);
        w.take_back(120, 100, 4);
        assert_eq!(w.used(120), 6);
        w.take_back(120, 100, 100);
        assert_eq!(w.used(120), 0, "never below zero");
        w.add(130, 5);
        w.take_back(200, 130, 5);
        assert_eq!(w.used(200), 0);
    }

    #[test]
    fn wait_for_is_when_enough_slots_have_left() {
        let mut w = Window::default();
        w.add(100, 4);
        w.add(110, 4);
        assert_eq!(w.wait_for(115, 2, 10), Some(0));
        // 8 used, 4 needed, limit 10: second 100's four leave at 160.
        assert_eq!(w.wait_for(115, 4, 10), Some(45));
        assert_eq!(w.wait_for(115, 10, 10), Some(55));
        assert_eq!(w.wait_for(115, 11, 10), None);
        assert_eq!(w.oldest_leaves_in(115), 45);
        assert_eq!(w.oldest_leaves_in(160), 10, "second 110 is the oldest now");
        assert_eq!(w.oldest_leaves_in(170), 0);
        w.add(171, 1);
        assert_eq!(w.oldest_leaves_in(171), 60);
    }

    #[test]
    fn never_more_than_the_limit_in_any_aligned_minute() {
        // A model of admission: admit when used + 1 <= limit.
        let mut w = Window::default();
        let mut admitted = Vec::new();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut now = 1_000;
        for _ in 0..20_000 {
            now += u64::from(rng.u8(..) < 40);
            if w.used(now) < 17 {
                w.add(now, 1);
                admitted.push(now);
            }
        }
        for (i, &t) in admitted.iter().enumerate() {
            let in_minute = admitted[i..].iter().take_while(|&&u| u < t + 60).count();
            assert!(
                in_minute <= 17,
                "{in_minute} admitted in the minute from {t}"
            );
        }
    }
}
