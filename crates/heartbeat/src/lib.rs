//! Heap heartbeat (work in progress).
