//! Bandwidth estimation support (per subscriber): bitrate meters for published layers,
//! the allocation rule, the loss-based fallback estimate, when video may be paused, and
//! when a falling send-side estimate steps layers down.
//! The main estimate comes from str0m (GCC over TWCC, or the receiver's REMB); this
//! module measures, allocates and decides, it never reads a clock: time is passed in.

pub mod allocator;
pub mod loss;
pub(crate) mod meter;
pub(crate) mod pause;
pub(crate) mod policy;
pub(crate) mod step_down;

/// Where a subscriber's downlink estimate comes from. What the server can do about a low
/// estimate depends on it: only with TWCC can it probe for more bandwidth without sending
/// media (str0m pads and probes only with transport-wide feedback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EstimateKind {
    /// Send-side GCC over transport-wide congestion control feedback
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01, draft-ietf-rmcat-gcc-02),
    /// with probing available.
    Twcc,
    /// The receiver's own estimate, REMB (draft-alvestrand-rmcat-remb-03). A receive-side
    /// estimate only grows with what arrives (GCC caps it at 1.5× the incoming rate,
    /// draft-ietf-rmcat-gcc-02 §5.5), so it cannot show room for media that is not sent.
    Remb,
    /// The server's loss-based fallback from RTCP receiver reports (`bwe::loss`).
    Loss,
}

impl EstimateKind {
    /// Every kind, in label order.
    pub const ALL: [EstimateKind; 3] = [EstimateKind::Twcc, EstimateKind::Remb, EstimateKind::Loss];

    /// The metric label: `twcc`, `remb` or `loss`.
    pub fn as_str(self) -> &'static str {
        match self {
            EstimateKind::Twcc => "twcc",
            EstimateKind::Remb => "remb",
            EstimateKind::Loss => "loss",
        }
    }

    /// Whether the server can probe for more bandwidth without sending more media.
    pub fn can_probe(self) -> bool {
        self == EstimateKind::Twcc
    }
}
