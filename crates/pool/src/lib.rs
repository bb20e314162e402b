//! Buffer pool (work in progress).
