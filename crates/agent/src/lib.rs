//! heapscape agent (work in progress).
