//! How a session ends: [`EndReason`] (the `reason` label of ended sessions) and, for a
//! failed DTLS handshake, [`DtlsFailure`] (the `cause` label of
//! `switchboard_dtls_failures_total`), read from the error str0m reports.
//!
//! Pure: no clock, no I/O.

use str0m::RtcError;

/// Why a participant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// DELETE on the session resource.
    Delete,
    /// ICE/DTLS never completed, ICE disconnected, or the peer went silent.
    Timeout,
    /// str0m reported an error; only this participant is affected.
    Error,
    /// The peer closed DTLS.
    Closed,
    /// Removed by the room API (participant removed or room closed).
    Removed,
    /// A new WHIP session of the same identity and source took over.
    Replaced,
    /// The DTLS handshake failed (see [`DtlsFailure`]).
    DtlsFailed,
}

impl EndReason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Delete => "delete",
            EndReason::Timeout => "timeout",
            EndReason::Error => "error",
            EndReason::Closed => "closed",
            EndReason::Removed => "removed",
            EndReason::Replaced => "replaced",
            EndReason::DtlsFailed => "dtls_failed",
        }
    }
}

/// Why a DTLS handshake (RFC 6347, DTLS-SRTP RFC 5764) failed: the `cause` label of
/// `switchboard_dtls_failures_total`. A failed handshake cannot recover (an alert was
/// sent or received), so the session ends at once instead of waiting for its connect
/// timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsFailure {
    /// The peer refused the handshake with a fatal alert (e.g. it rejected our
    /// certificate or suites).
    PeerAlert,
    /// The peer's certificate or its CertificateVerify signature could not be used.
    Certificate,
    /// No common cipher suite, SRTP profile or version, or a malformed flight.
    Negotiation,
    /// The certificate does not match the SDP `a=fingerprint` (RFC 8842 §5), or the
    /// offer had none.
    Fingerprint,
    /// ICE connected but the handshake did not complete within [`CONNECT_TIMEOUT`](super::participant::CONNECT_TIMEOUT).
    Timeout,
    /// Any other DTLS error.
    Other,
}

impl DtlsFailure {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DtlsFailure::PeerAlert => "peer_alert",
            DtlsFailure::Certificate => "certificate",
            DtlsFailure::Negotiation => "negotiation",
            DtlsFailure::Fingerprint => "fingerprint",
            DtlsFailure::Timeout => "timeout",
            DtlsFailure::Other => "other",
        }
    }

    /// The failure an `Rtc` error stands for, if it is a DTLS one. Reads the error's
    /// text: str0m passes the DTLS stack's error on as text (`crate::dtls` names its
    /// classes so; str0m's own stack words them alike).
    pub fn of(e: &RtcError) -> Option<DtlsFailure> {
        match e {
            RtcError::Dtls(d) => {
                let t = d.to_string().to_ascii_lowercase();
                Some(if t.contains("connection closed") || t.contains("alert") {
                    DtlsFailure::PeerAlert
                } else if t.contains("certificate") || t.contains("signature") {
                    DtlsFailure::Certificate
                } else if t.contains("security error") || t.contains("crypto error") {
                    DtlsFailure::Negotiation
                } else {
                    DtlsFailure::Other
                })
            }
            RtcError::RemoteSdp(m) if m.contains("fingerprint") => Some(DtlsFailure::Fingerprint),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::error::DtlsError;

    fn dtls(text: &str) -> RtcError {
        RtcError::Dtls(DtlsError::Io(std::io::Error::other(text.to_owned())))
    }

    #[test]
    fn causes_from_errors() {
        let cases = [
            (
                dtls("DTLS error: connection closed"),
                Some(DtlsFailure::PeerAlert),
            ),
            (
                dtls("DTLS error: certificate error: parse failed"),
                Some(DtlsFailure::Certificate),
            ),
            (
                dtls("DTLS error: security error: no mutually acceptable cipher suite"),
                Some(DtlsFailure::Negotiation),
            ),
            (
                dtls("DTLS error: receive queue full"),
                Some(DtlsFailure::Other),
            ),
            (
                RtcError::RemoteSdp("remote fingerprint no match".into()),
                Some(DtlsFailure::Fingerprint),
            ),
            (RtcError::RemoteSdp("something else".into()), None),
        ];
        for (e, want) in cases {
            assert_eq!(DtlsFailure::of(&e), want, "{e}");
        }
        assert_eq!(EndReason::DtlsFailed.as_str(), "dtls_failed");
    }
}
