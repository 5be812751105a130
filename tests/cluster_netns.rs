//! Two nodes, each in its own network namespace, advertising its own address
//! (`--public-ip-from host-ip`, as on Kubernetes), sharing rooms through Redis.
//!
//! Topology (made by the test, removed at the end): the host reaches node A at 10.77.1.2
//! and node B at 10.77.2.2 over two veth pairs; A and B reach each other's internal
//! listener over a third veth pair (10.77.3.1 ↔ 10.77.3.2); Redis runs on the host,
//! bound to the host's two veth addresses.
//!
//! Checked: a publisher sent to A and a viewer sent to B (proxied to A) get answers whose
//! ICE candidates carry A's advertised address and nothing else (not B's, not loopback,
//! not the inter-node link), and media flows to the viewer over the namespace link.
//!
//! Needs root and `ip` (iproute2); without them it prints why and passes.

mod common;

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Peer, PublisherKind, Role};

const SECRET: &str = "netns-test-secret-0123456789";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Namespaces, links and processes of the test; all removed on drop.
struct Topology {
    ns: [String; 2],
    host_links: [String; 2],
    children: Vec<Child>,
}

impl Topology {
    fn setup() -> Result<Topology, String> {
        let tag = std::process::id() % 100_000;
        let ns = [format!("sbA{tag}"), format!("sbB{tag}")];
        let host_links = [format!("sbha{tag}"), format!("sbhb{tag}")];
        let t = Topology {
            ns: ns.clone(),
            host_links: host_links.clone(),
            children: Vec::new(),
        };
        let (inner_ab, inner_ba) = (format!("sbab{tag}"), format!("sbba{tag}"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns", "add", &ns[0]],
            vec!["netns", "add", &ns[1]],
            vec![
                "link",
                "add",
                &host_links[0],
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns[0],
            ],
            vec![
                "link",
                "add",
                &host_links[1],
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns[1],
            ],
            vec![
                "link", "add", &inner_ab, "netns", &ns[0], "type", "veth", "peer", "name",
                &inner_ba, "netns", &ns[1],
            ],
            vec!["addr", "add", "10.77.1.1/24", "dev", &host_links[0]],
            vec!["addr", "add", "10.77.2.1/24", "dev", &host_links[1]],
            vec!["link", "set", &host_links[0], "up"],
            vec!["link", "set", &host_links[1], "up"],
            vec!["-n", &ns[0], "addr", "add", "10.77.1.2/24", "dev", "eth0"],
            vec!["-n", &ns[1], "addr", "add", "10.77.2.2/24", "dev", "eth0"],
            vec![
                "-n",
                &ns[0],
                "addr",
                "add",
                "10.77.3.1/24",
                "dev",
                &inner_ab,
            ],
            vec![
                "-n",
                &ns[1],
                "addr",
                "add",
                "10.77.3.2/24",
                "dev",
                &inner_ba,
            ],
            vec!["-n", &ns[0], "link", "set", "eth0", "up"],
            vec!["-n", &ns[1], "link", "set", "eth0", "up"],
            vec!["-n", &ns[0], "link", "set", &inner_ab, "up"],
            vec!["-n", &ns[1], "link", "set", &inner_ba, "up"],
            vec!["-n", &ns[0], "link", "set", "lo", "up"],
            vec!["-n", &ns[1], "link", "set", "lo", "up"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for step in &steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if !ip(&args) {
                return Err(format!("`ip {}` failed", args.join(" ")));
            }
        }
        Ok(t)
    }

    fn spawn(&mut self, ns: Option<usize>, program: &str, args: &[String]) {
        let mut cmd = match ns {
            Some(i) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns[i], program]);
                c
            }
            None => Command::new(program),
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(&key);
            }
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        self.children.push(child);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for l in &self.host_links {
            ip(&["link", "del", l]);
        }
        for n in &self.ns {
            ip(&["netns", "del", n]);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The distinct `ip:port`s of the `a=candidate` lines, in order.
fn candidates(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let found = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "<transport> <address>:<port>", e.g. "udp 10.77.1.2:7880".
            Some(format!(
                "{} {}:{}",
                f.get(2)?.to_lowercase(),
                f.get(4)?,
                f.get(5)?
            ))
        });
    // Every audio/video m-section repeats the candidates: each address once.
    for c in found {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

async fn wait_livez(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if common::get(&format!("{base}/livez"))
            .await
            .is_ok_and(|r| r.status == 200)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_in_their_own_namespaces_advertise_only_their_address() {
    if !is_root() {
        println!("SKIP: needs root for network namespaces");
        return;
    }
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: redis-server not found (scripts/install-test-deps.sh installs it)");
        return;
    }
    let mut topo = match Topology::setup() {
        Ok(t) => t,
        Err(why) => {
            println!("SKIP: cannot build the namespaces here: {why}");
            return;
        }
    };
    let port = 17_000 + (std::process::id() % 20_000) as u16;
    let redis_args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "10.77.1.1",
        "10.77.2.1",
        "--save",
        "",
        "--appendonly",
        "no",
        // Clients come from the namespaces, not loopback, and there is no password.
        "--protected-mode",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    topo.spawn(None, "redis-server", &redis_args);
    let bin = common::server::binary();
    let bin = bin.to_str().expect("utf-8 path");
    for (i, (id, me, redis_via, internal)) in [
        ("a", "10.77.1.2", "10.77.1.1", "10.77.3.1:8081"),
        ("b", "10.77.2.2", "10.77.2.1", "10.77.3.2:8081"),
    ]
    .into_iter()
    .enumerate()
    {
        let args: Vec<String> = [
            "--http-addr",
            "0.0.0.0:8080",
            "--udp-addr",
            "0.0.0.0:7880",
            "--public-ip-from",
            "host-ip",
            "--host-ip",
            me,
            "--redis-url",
            &format!("redis://{redis_via}:{port}/"),
            "--node-id",
            id,
            "--internal-addr",
            internal,
            "--internal-secret",
            SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        topo.spawn(Some(i), bin, &args);
    }
    let (a, b) = ("http://10.77.1.2:8080", "http://10.77.2.2:8080");
    wait_livez(a).await;
    wait_livez(b).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let host: IpAddr = [10, 77, 1, 1].into();
    let publisher = Peer::connect_from(
        host,
        a,
        "/whip/ns",
        None,
        Role::Publisher(PublisherKind::BrowserVp8),
    )
    .await
    .unwrap_or_else(|e| panic!("WHIP to A: {e:?}"));
    assert_eq!(
        candidates(publisher.answer()),
        vec!["udp 10.77.1.2:7880", "tcp 10.77.1.2:7881"],
        "{}",
        publisher.answer()
    );
    let viewer = Peer::connect_from(host, b, "/whep/ns", None, Role::Subscriber)
        .await
        .unwrap_or_else(|e| panic!("WHEP to B: {e:?}"));
    assert!(
        viewer.location_header().starts_with("/n/a/"),
        "B must hand the viewer to A: {}",
        viewer.location_header()
    );
    assert_eq!(
        candidates(viewer.answer()),
        vec!["udp 10.77.1.2:7880", "tcp 10.77.1.2:7881"],
        "only A's advertised address: {}",
        viewer.answer()
    );
    let (ok, r) = viewer
        .wait_for(Duration::from_secs(15), |r| r.subscriber.video.packets > 60)
        .await;
    assert!(ok, "no media over the namespace link: {r:#?}");
    viewer.stop().await;
    publisher.stop().await;
}
