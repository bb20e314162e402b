//! The heartbeat says once which allocator it found, however often it ticks. Its own binary:
//! the detection and its log happen once per process, and the subscriber is process-wide.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use heapscape_heartbeat::{Allocator, Heartbeat};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Keeps the `allocator` field of every event.
#[derive(Default)]
struct AllocatorEvents {
    seen: Mutex<Vec<String>>,
    next_span: AtomicU64,
}

struct AllocatorField(Option<String>);

impl Visit for AllocatorField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "allocator" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "allocator" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for &'static AllocatorEvents {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Relaxed: only uniqueness matters.
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut field = AllocatorField(None);
        event.record(&mut field);
        if let Some(allocator) = field.0 {
            self.seen.lock().unwrap().push(allocator);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn the_allocator_is_logged_once() {
    let events: &'static AllocatorEvents = Box::leak(Box::default());
    tracing::subscriber::set_global_default(events).expect("the only subscriber");

    let heartbeat = Heartbeat::builder().build();
    for _ in 0..3 {
        heartbeat.tick().expect("the process values can be read");
    }
    assert_eq!(Allocator::detect(), Allocator::Other);

    assert_eq!(*events.seen.lock().unwrap(), ["other"]);
}
