//! Starts the `switchboard` binary on free loopback ports for one test and
//! stops it again when the handle is dropped.
//!
//! The binary is the one Cargo built for this test run; `SWITCHBOARD_BIN`
//! points the harness at another build (say, a release binary) instead.
//!
//! The server's stdout and stderr go to a log file in the temp directory
//! (set `SWITCHBOARD_TEST_INHERIT_LOG=1` to see them on the console instead).
//! When a test panics while the server is running, the tail of that log is
//! printed so the failure comes with the server's side of the story.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer `GET /livez` after spawning.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server process; killed on drop.
pub struct Server {
    child: Child,
    http_addr: SocketAddr,
    udp_addr: SocketAddr,
    base_url: String,
    log_path: Option<PathBuf>,
    token: Option<String>,
}

/// The server binary to run.
pub fn binary() -> PathBuf {
    std::env::var_os("SWITCHBOARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_switchboard")))
}

/// Free port numbers: bind port 0, note the number, release it.
fn free_ports() -> (u16, u16) {
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let ports = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    drop(tcp);
    drop(udp);
    ports
}

impl Server {
    /// Spawn the binary with the standard loopback arguments plus
    /// `extra_args`, and wait until `/livez` answers 200.
    ///
    /// A `--token T` among `extra_args` is remembered and used by the
    /// signalling helpers that take the server.
    pub async fn start(extra_args: &[&str]) -> Server {
        let mut last_failure = String::new();
        // A port picked as free can be taken by someone else before the
        // server binds it; try a few times with fresh numbers.
        for _ in 0..3 {
            match Self::try_start(extra_args).await {
                Ok(server) => return server,
                Err(why) => {
                    eprintln!("server start attempt failed: {why}");
                    last_failure = why;
                }
            }
        }
        panic!("switchboard did not come up: {last_failure}");
    }

    async fn try_start(extra_args: &[&str]) -> Result<Server, String> {
        let (http_port, udp_port) = free_ports();
        let http_addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
        let udp_addr: SocketAddr = ([127, 0, 0, 1], udp_port).into();

        let mut cmd = Command::new(binary());
        // ICE-TCP on a free port too, unless the test chooses (the default, 7881, is one
        // fixed port that parallel tests would fight over).
        if !extra_args.contains(&"--tcp-addr") {
            cmd.arg("--tcp-addr").arg("127.0.0.1:0");
        }
        cmd.arg("--http-addr")
            .arg(http_addr.to_string())
            .arg("--udp-addr")
            .arg(udp_addr.to_string())
            .arg("--public-ip")
            .arg("127.0.0.1")
            .args(extra_args)
            .stdin(Stdio::null());
        // Plain log lines in the file.
        cmd.env("NO_COLOR", "1");
        // The server reads SWITCHBOARD_* variables as defaults for its
        // options; keep the caller's environment out of the test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(&key);
            }
        }

        let inherit = std::env::var_os("SWITCHBOARD_TEST_INHERIT_LOG").is_some();
        let log_path = if inherit {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            None
        } else {
            let path = std::env::temp_dir().join(format!(
                "switchboard-test-{}-{http_port}.log",
                std::process::id()
            ));
            let out = File::create(&path).map_err(|e| format!("create {path:?}: {e}"))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            cmd.stdout(out).stderr(err);
            Some(path)
        };

        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {:?}: {e}", binary()))?;

        let token = extra_args
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_string());

        let mut server = Server {
            child,
            http_addr,
            udp_addr,
            base_url: format!("http://{http_addr}"),
            log_path,
            token,
        };

        let client = super::http_client();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "server exited with {status} before /livez answered; log tail:\n{}",
                    server.log_tail(40)
                ));
            }
            let url = format!("{}/livez", server.base_url);
            if let Ok(resp) = client.get(&url).send().await {
                if resp.status().as_u16() == 200 {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "/livez not 200 within {STARTUP_TIMEOUT:?}; log tail:\n{}",
                    server.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send a signal (`"TERM"`, `"INT"`, `"KILL"`) to the server process.
    #[allow(dead_code)]
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait up to `timeout` for the process to exit; its status, or `None` if it still runs.
    #[allow(dead_code)]
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:P`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The single UDP port all media goes to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bearer token the server was started with, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Status of `GET /livez`, or `None` when nothing answered.
    pub async fn livez(&self) -> Option<u16> {
        super::http_client()
            .get(format!("{}/livez", self.base_url))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Body of `GET /metrics`.
    pub async fn metrics(&self) -> Option<String> {
        let resp = super::http_client()
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await
            .ok()?;
        resp.text().await.ok()
    }

    /// The value of one `/metrics` series, written with its labels and a trailing space
    /// (`"switchboard_sessions_pending "`); 0 when absent or unreadable.
    #[allow(dead_code)] // not every test binary uses every helper
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The server process's resident set size in KiB (`VmRSS` of `/proc/PID/status`); 0
    /// when unreadable.
    #[allow(dead_code)]
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The last `lines` lines of the server's log (empty when inherited).
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(path) = &self.log_path else {
            return String::new();
        };
        let mut text = String::new();
        if let Ok(mut f) = File::open(path) {
            let mut raw = Vec::new();
            let _ = f.read_to_end(&mut raw);
            text = String::from_utf8_lossy(&raw).into_owned();
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- switchboard log tail ({}) ----\n{}\n---- end of log ----",
                self.base_url,
                self.log_tail(80)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = &self.log_path {
            if !std::thread::panicking() && std::env::var_os("SWITCHBOARD_TEST_KEEP_LOG").is_none()
            {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
