//! The server's bandwidth estimates, captured from its tracing: `switchboard::forwarder`
//! logs every estimate it receives at debug level (`subscriber`, `estimate_bps`). A
//! thread-local subscriber set by [`capture`] keeps them until the driver stamps them
//! with the virtual time of the step that produced them ([`take`]).

use std::cell::RefCell;

use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const TARGET: &str = "switchboard::forwarder";

thread_local! {
    static PENDING: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
}

/// Records estimate events into `PENDING`.
struct EstimateLayer;

#[derive(Default)]
struct Fields {
    subscriber: Option<u64>,
    estimate_bps: Option<u64>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "subscriber" => self.subscriber = Some(value),
            "estimate_bps" => self.estimate_bps = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(v) = u64::try_from(value) {
            self.record_u64(field, v);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for EstimateLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if let (Some(sub), Some(bps)) = (f.subscriber, f.estimate_bps) {
            PENDING.with(|p| p.borrow_mut().push((sub, bps)));
        }
    }
}

/// Capture estimates on this thread until the guard drops.
pub fn capture() -> DefaultGuard {
    let only = Targets::new().with_target(TARGET, Level::DEBUG);
    let subscriber = tracing_subscriber::registry().with(EstimateLayer.with_filter(only));
    tracing::subscriber::set_default(subscriber)
}

/// The estimates logged since the last call: (participant id, bit/s).
pub fn take() -> Vec<(u64, u64)> {
    PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()))
}
