//! Checks of the monitoring kit; the tests live in `tests/`.
