//! CPU time and resident memory of a process on this host, from Linux `/proc`:
//! `utime + stime` of `/proc/PID/stat` and `VmRSS` of `/proc/PID/status`.
//!
//! Elsewhere (or for a PID that is gone) every sample is `None`; nothing panics.

/// Clock ticks per second of `/proc/PID/stat` times. The kernel reports them in
/// `USER_HZ`, which is 100 on every architecture Linux exposes to user space.
const USER_HZ: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// User plus system CPU time consumed so far, in seconds.
    pub cpu_s: f64,
    /// Resident set size, in KiB.
    pub rss_kib: Option<u64>,
}

/// Read process `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let cpu_s = parse_cpu_seconds(&stat)?;
    let rss_kib = std::fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| parse_rss_kib(&s));
    Some(Sample { cpu_s, rss_kib })
}

/// `utime + stime` in seconds from the text of `/proc/PID/stat`. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.25));
        assert_eq!(parse_cpu_seconds("garbage"), None);
        assert_eq!(
            parse_rss_kib("Name:\tx\nVmRSS:\t   12345 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        if cfg!(target_os = "linux") {
            let s = sample(None).unwrap();
            assert!(s.cpu_s >= 0.0);
            assert!(s.rss_kib.unwrap() > 0);
        }
        assert!(sample(Some(u32::MAX)).is_none());
    }
}
