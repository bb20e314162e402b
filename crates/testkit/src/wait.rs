//! Bounded waits for conditions.

use std::time::{Duration, Instant};

/// The usual timeout of a wait: generous, the test machine is a shared 2-core box.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, and returns that value; panics naming `what` once
/// `timeout` has passed. Polls quickly at first, then every 200 ms.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Polls `condition` until it holds; panics naming `what` once `timeout` has passed.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || condition().then_some(()));
}
