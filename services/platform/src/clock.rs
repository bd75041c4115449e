//! The time a service's scheduler runs on. In production, the system clock;
//! in tests, the same clock moved forward by hand, so that deadlines measured
//! in days (reminders, expiry) can pass in a second, and keep passing across a
//! restart of the service that shares it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::db::now_us;

/// The system clock plus an offset that only tests move.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_us: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, in microseconds since the Unix epoch.
    pub fn now_us(&self) -> i64 {
        now_us() + self.offset_us.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Today in Paris (`YYYY-MM-DD`) on this clock.
    pub fn today(&self) -> String {
        let at = crate::db::from_us(self.now_us());
        crate::consent::paris_date(at)
            .format(crate::consent::DATE_FORMAT)
            .unwrap_or_default()
    }
}
