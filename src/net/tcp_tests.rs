use std::io::{Read, Write};

use super::*;
use crate::net::demux::tests::stun_check;
use crate::net::framing::encode_frame;

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(encode_frame(packet, &mut out));
    out
}

struct Fixture {
    ice: Arc<TcpIce>,
    addr: SocketAddr,
    key: RoomKey,
    room: mpsc::Receiver<Datagram>,
}

async fn fixture(max_connections: u32) -> Fixture {
    let table = Arc::new(RoomTable::default());
    let (tx, room) = mpsc::channel(64);
    let key = table.register(tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ice = Arc::new(TcpIce::new(table, vec![addr], max_connections));
    tokio::spawn(Arc::clone(&ice).run(listener));
    Fixture {
        ice,
        addr,
        key,
        room,
    }
}

/// A blocking client (its own thread), so the server's tasks run on the runtime.
fn client(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Whether the server closed `s` (EOF or reset) within the read timeout.
fn closed_by_server(mut s: std::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

async fn recv(room: &mut mpsc::Receiver<Datagram>) -> Datagram {
    tokio::time::timeout(Duration::from_secs(5), room.recv())
        .await
        .expect("a datagram in time")
        .expect("room queue open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_routes_the_connection_and_replies_go_back_framed() {
    let mut f = fixture(8).await;
    let check = stun_check(&format!("{}abcd", f.key.ufrag_prefix()));
    let mut c = client(f.addr);
    let peer = c.local_addr().unwrap();
    // The check and a DTLS record, cut mid-frame across writes.
    let mut bytes = framed(&check);
    bytes.extend(framed(&[22, 254, 253, 0, 1, 2, 3]));
    c.write_all(&bytes[..7]).unwrap();
    c.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.write_all(&bytes[7..]).unwrap();

    let first = recv(&mut f.room).await;
    assert_eq!(first.contents, check);
    assert_eq!(first.source, peer);
    assert_eq!(first.destination, f.addr);
    assert_eq!(first.proto(), str0m::net::Protocol::Tcp);
    let second = recv(&mut f.room).await;
    assert_eq!(second.contents, vec![22, 254, 253, 0, 1, 2, 3]);

    // The room's task learns the path and answers on it.
    let mut paths = TcpPaths::default();
    paths.learn(&first);
    assert_eq!(paths.len(), 1);
    let reply = Transmit {
        proto: str0m::net::Protocol::Tcp,
        source: f.addr,
        destination: peer,
        contents: vec![1, 1, 0, 0, 9, 9].into(),
    };
    paths.send(&reply);
    paths.send(&reply);
    let got = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 16];
        c.read_exact(&mut buf).unwrap();
        buf
    })
    .await
    .unwrap();
    assert_eq!(&got[..8], &[0, 6, 1, 1, 0, 0, 9, 9]);
    assert_eq!(&got[8..], &[0, 6, 1, 1, 0, 0, 9, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_frame_that_is_not_a_check_for_a_room_closes_the_connection() {
    let f = fixture(8).await;
    let cases: Vec<Vec<u8>> = vec![
        // HTTP on the ICE port: "GE" announces an 18 KB frame, over the limit.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // A framed DTLS record before any check.
        framed(&[22, 254, 253, 0, 0]),
        // A framed check naming no room here.
        framed(&stun_check("0000000fabcd")),
        // A zero-length frame.
        vec![0, 0, 0, 0],
    ];
    for bytes in cases {
        let addr = f.addr;
        let closed = tokio::task::spawn_blocking(move || {
            let mut c = client(addr);
            c.write_all(&bytes).unwrap();
            closed_by_server(c)
        })
        .await
        .unwrap();
        assert!(closed);
    }
    drop(f.ice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_after_routing_closes_only_that_connection() {
    let mut f = fixture(8).await;
    let check = framed(&stun_check(&format!("{}abcd", f.key.ufrag_prefix())));
    let addr = f.addr;
    let (c1, c2) = tokio::task::spawn_blocking(move || {
        let mut a = client(addr);
        let mut b = client(addr);
        a.write_all(&check).unwrap();
        b.write_all(&check).unwrap();
        (a, b)
    })
    .await
    .unwrap();
    recv(&mut f.room).await;
    recv(&mut f.room).await;
    let (closed, c2) = tokio::task::spawn_blocking(move || {
        let mut c1 = c1;
        // 2,001 bytes announced: more than any datagram a room takes.
        c1.write_all(&[0x07, 0xD1, 0x80]).unwrap();
        (closed_by_server(c1), c2)
    })
    .await
    .unwrap();
    assert!(closed);
    // The other connection still delivers.
    tokio::task::spawn_blocking(move || {
        let mut c2 = c2;
        c2.write_all(&framed(&[0x80, 96, 0, 1])).unwrap();
        c2
    })
    .await
    .unwrap();
    assert_eq!(recv(&mut f.room).await.contents, vec![0x80, 96, 0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_a_connection_is_closed_at_once() {
    let mut f = fixture(1).await;
    let check = framed(&stun_check(&format!("{}abcd", f.key.ufrag_prefix())));
    let addr = f.addr;
    let first = tokio::task::spawn_blocking(move || {
        let mut a = client(addr);
        a.write_all(&check).unwrap();
        a
    })
    .await
    .unwrap();
    recv(&mut f.room).await;
    let closed = tokio::task::spawn_blocking(move || closed_by_server(client(addr)))
        .await
        .unwrap();
    assert!(closed);
    drop(first);
}

#[tokio::test]
async fn a_full_write_queue_drops_and_a_closed_connection_is_forgotten() {
    let (tx, mut rx) = mpsc::channel(1);
    let link = TcpLink {
        id: 7,
        tx,
        queued: Arc::default(),
    };
    let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let d = Datagram {
        source: peer,
        destination: "127.0.0.1:7881".parse().unwrap(),
        received: Instant::now(),
        contents: vec![0x80],
        transport: Transport::Tcp(link),
    };
    let mut paths = TcpPaths::default();
    paths.learn(&d);
    let t = Transmit {
        proto: str0m::net::Protocol::Tcp,
        source: d.destination,
        destination: peer,
        contents: vec![0x80, 1].into(),
    };
    paths.send(&t);
    paths.send(&t); // queue of 1 is full: dropped, not waited for
    assert_eq!(rx.try_recv().unwrap(), vec![0, 2, 0x80, 1]);
    assert!(rx.try_recv().is_err());
    drop(rx);
    paths.send(&t);
    assert!(paths.is_empty());
    // A UDP datagram teaches nothing.
    paths.learn(&Datagram::udp(
        peer,
        d.destination,
        Instant::now(),
        vec![0x80],
    ));
    assert!(paths.is_empty());
}

/// A connection whose writer is not draining takes at most `WRITE_QUEUE_BYTES`: later
/// frames are dropped until the writer takes bytes off.
#[tokio::test]
async fn a_connection_holds_at_most_write_queue_bytes() {
    let (tx, mut rx) = mpsc::channel(WRITE_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let link = TcpLink {
        id: 8,
        tx,
        queued: Arc::clone(&queued),
    };
    let peer: SocketAddr = "192.0.2.2:5000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:7881".parse().unwrap();
    let mut paths = TcpPaths::default();
    paths.learn(&Datagram {
        source: peer,
        destination: local,
        received: Instant::now(),
        contents: vec![0x80],
        transport: Transport::Tcp(link),
    });
    let t = Transmit {
        proto: str0m::net::Protocol::Tcp,
        source: local,
        destination: peer,
        contents: vec![0x80; 1198].into(),
    };
    for _ in 0..WRITE_QUEUE {
        paths.send(&t);
    }
    let fit = WRITE_QUEUE_BYTES / 1200;
    let mut got = 0;
    while rx.try_recv().is_ok() {
        got += 1;
    }
    assert_eq!(got, fit, "frames queued");
    assert_eq!(queued.load(Ordering::Relaxed), fit * 1200);
    // The writer wrote them: room again.
    queued.fetch_sub(fit * 1200, Ordering::Relaxed);
    paths.send(&t);
    assert!(rx.try_recv().is_ok());
}
