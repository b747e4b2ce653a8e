//! Runs sipp (Debian's `sip-tester`) as a UAS with a scenario from `tests/peers/sipp/`.

use crate::support::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A sipp process playing one scenario for one call.
pub struct Sipp {
    /// The port it listens on.
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Sipp {
    /// Starts sipp on a free loopback port and waits until it listens.
    pub fn uas(scenario: &str) -> Sipp {
        Self::uas_on(scenario, "u1")
    }

    /// Like [`Sipp::uas`], on sipp's transport `mode` (`u1`: UDP, `t1`: TCP).
    pub fn uas_on(scenario: &str, mode: &str) -> Sipp {
        Self::uas_with(scenario, mode, &[], 20)
    }

    /// Like [`Sipp::uas_on`], with `[key]` values for the scenario and a timeout for the
    /// whole call, in seconds.
    pub fn uas_with(scenario: &str, mode: &str, keys: &[(&str, &str)], timeout_s: u32) -> Sipp {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sipp-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers/sipp")
            .join(scenario);
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", mode])
            .args(["-m", "1", "-nostdin", "-timeout_error"])
            .args(["-timeout", &format!("{timeout_s}s")])
            .args(keys.iter().flat_map(|(k, v)| ["-key", k, v]))
            .args(["-trace_msg", "-message_file"])
            .arg(dir.join("messages.log"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .args(["-trace_screen", "-screen_file"])
            .arg(dir.join("screen.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("sipp starts");
        let mut sipp = Sipp { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(port, mode == "t1") {
            let exited = sipp.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "sipp did not start ({exited:?}):\n{}",
                sipp.messages()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sipp
    }

    /// Waits for sipp to finish its call; returns its exit status.
    pub fn finish(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// How many REGISTER requests sipp received (retransmissions included).
    pub fn registers_received(&self) -> usize {
        self.messages().matches("\nREGISTER sip:").count()
    }

    /// sipp's log of every message, and its error log.
    pub fn messages(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "{}\n{}\n{}\n{}",
            read("messages.log"),
            read("errors.log"),
            read("stderr.log"),
            read("screen.log")
        )
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a UDP socket is bound, or a TCP socket listens, on 127.0.0.1:`port`.
fn listening(port: u16, tcp: bool) -> bool {
    let needle = format!("0100007F:{port:04X}");
    let table = if tcp {
        "/proc/net/tcp"
    } else {
        "/proc/net/udp"
    };
    std::fs::read_to_string(table).is_ok_and(|t| t.contains(&needle))
}
