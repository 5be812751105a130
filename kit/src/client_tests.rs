use std::net::SocketAddr;
use std::time::Duration;

use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState};

use super::*;
use crate::media::{self as kit, PayloadCodec};
use crate::peer::{self, ClientConfig, OfferSpec, VideoCodecs};
use crate::source::{AudioPlan, Keyframes, Shape, Sizing, SourcePlan, StreamPlan};

const MS: Duration = Duration::from_millis(1);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// A simulcast VP8 publisher's client and an RTP-mode answerer (ICE lite, like the
/// server), negotiated in memory.
fn pair(t0: Instant) -> (Client, Rtc) {
    let spec = OfferSpec {
        simulcast: vec!["q".into(), "h".into()],
        ..OfferSpec::one_each(Direction::SendOnly)
    };
    let made = peer::offer(&ClientConfig::browser(VideoCodecs::Vp8), &spec, addr(1), t0).unwrap();
    let mut server = Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(true)
        .build(t0);
    server.add_local_candidate(Candidate::host(addr(2), "udp").unwrap());
    let offer = SdpOffer::from_sdp_string(&made.sdp).unwrap();
    let answer = server
        .sdp_api()
        .accept_offer(offer)
        .unwrap()
        .to_sdp_string();
    let mut rtc = made.rtc;
    peer::accept_answer(&mut rtc, made.pending, &answer).unwrap();
    let (audio_mid, video_mid) = (made.audio_mids[0], made.video_mids[0]);
    let pt = |c| peer::negotiated_pt(&rtc, video_mid, c).unwrap();
    let (video_pt, audio_pt) = (pt(PayloadCodec::Vp8), {
        peer::negotiated_pt(&rtc, audio_mid, PayloadCodec::Opus).unwrap()
    });
    let sizing = Sizing::Fixed {
        key: Shape {
            packets: 3,
            len: 500,
        },
        delta: [Shape {
            packets: 1,
            len: 400,
        }; 2],
    };
    let video = ["q", "h"]
        .map(|rid| {
            let every = Keyframes::Grid {
                every: 300,
                offset: 0,
            };
            StreamPlan::random(Some(Rid::from(rid)), sizing, every)
        })
        .to_vec();
    let source = Source::new(SourcePlan {
        codec: PayloadCodec::Vp8,
        fps: 30,
        temporal_layers: 1,
        vp8_picture_id: false,
        video,
        audio: AudioPlan::random(100),
        max_catch_up: 3,
    });
    let mut counter = 0;
    let bodies = Box::new(move |slot, _| {
        counter += 1;
        let stream = match slot {
            Slot::Video { layer, .. } => kit::stream_byte(layer as u8, 0),
            Slot::Audio { .. } => kit::AUDIO_STREAM,
        };
        Body {
            stream,
            counter,
            ..Body::default()
        }
    });
    let mut client = Client::new(rtc, t0);
    client.publish(Publishing::new(
        source,
        bodies,
        (audio_mid, audio_pt),
        (video_mid, video_pt),
    ));
    (client, server)
}

/// What the run saw.
#[derive(Default)]
struct Seen {
    connected: Option<Instant>,
    written: Vec<Written>,
    /// Keyframes written per layer, after the request.
    keyframes_after_request: Vec<usize>,
    /// RTP packets the answerer got, per RID (`None`: audio).
    got: std::collections::HashMap<Option<Rid>, usize>,
}

#[test]
fn a_publisher_starts_at_connected_writes_every_layer_and_keyframes_on_request() {
    let t0 = Instant::now();
    let (mut client, mut server) = pair(t0);
    let mut seen = Seen::default();
    let mut now = t0;
    let mut requested = None;
    while now < t0 + 2_000 * MS {
        // The client: timeouts, due media, outputs to the answerer.
        client.handle_input(Input::Timeout(now)).unwrap();
        client.write_due(now).unwrap();
        loop {
            match client.poll_output().unwrap() {
                Out::Timeout(_) => break,
                Out::Transmit(t) => {
                    let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents);
                    server
                        .handle_input(Input::Receive(now, r.unwrap()))
                        .unwrap();
                }
                Out::Event(Event::Connected) => {
                    seen.connected.get_or_insert(now);
                }
                Out::Event(_) => {}
                Out::Written(w) => {
                    if requested.is_some() && w.keyframe && w.layer == Some(1) {
                        seen.keyframes_after_request.push(w.frame as usize);
                    }
                    seen.written.push(w);
                }
            }
        }
        // A second after connecting, the answerer asks for a keyframe of "h".
        if let (Some(c), None) = (seen.connected, requested) {
            if now >= c + 1_000 * MS {
                let mut api = server.direct_api();
                let rx = api
                    .stream_rx_by_mid(client.publishing().unwrap().video_mid, Some(Rid::from("h")));
                rx.unwrap().request_keyframe(KeyframeRequestKind::Pli);
                requested = Some(now);
            }
        }
        server.handle_input(Input::Timeout(now)).unwrap();
        loop {
            match server.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents);
                    client
                        .handle_input(Input::Receive(now, r.unwrap()))
                        .unwrap();
                }
                Output::Event(Event::RtpPacket(p)) => {
                    let rid = server
                        .direct_api()
                        .stream_rx(&p.header.ssrc)
                        .and_then(|s| s.rid());
                    *seen.got.entry(rid).or_default() += 1;
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => {
                    panic!("disconnected")
                }
                Output::Event(_) => {}
            }
        }
        now += 5 * MS;
    }
    let connected = seen.connected.expect("connected");
    assert!(
        connected < t0 + 500 * MS,
        "connected after {:?}",
        connected - t0
    );
    // Nothing before the connection; then audio and both layers, each with an SSRC.
    assert!(!seen.written.is_empty());
    assert!(
        seen.written.iter().all(|w| w.ssrc.is_some()),
        "a packet without a send stream"
    );
    for layer in [None, Some(0), Some(1)] {
        let n = seen.written.iter().filter(|w| w.layer == layer).count();
        assert!(n > 20, "{layer:?}: {n} packets written");
    }
    // Frame 0 is a keyframe of each layer; the request adds one on "h" only.
    let first: Vec<bool> = [0, 1]
        .map(|l| {
            seen.written
                .iter()
                .find(|w| w.layer == Some(l))
                .unwrap()
                .keyframe
        })
        .to_vec();
    assert_eq!(first, [true, true]);
    assert!(
        !seen.keyframes_after_request.is_empty(),
        "no keyframe after the PLI"
    );
    let q_keys = seen
        .written
        .iter()
        .filter(|w| w.layer == Some(0) && w.keyframe)
        .map(|w| w.frame)
        .max();
    assert_eq!(q_keys, Some(0), "the request for h made a keyframe on q");
    // The answerer decrypts and reads them: audio, and the layer it asked a keyframe of
    // (the simulations check every layer through the server's forwarding).
    let got = |rid: Option<&str>| seen.got.get(&rid.map(Rid::from)).copied().unwrap_or(0);
    assert!(got(None) > 50 && got(Some("h")) > 20, "{:?}", seen.got);
}
