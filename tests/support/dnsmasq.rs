//! Runs dnsmasq (Debian's `dnsmasq-base`) as an authoritative DNS server on loopback with
//! the records a test gives: NAPTR, SRV and A records under `.test`, nothing else.

use crate::support::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A record dnsmasq serves.
pub enum Record {
    /// `name` has address 127.0.0.1.
    A(&'static str),
    /// `_service._proto.domain` → `target:port`, with priority and weight.
    Srv {
        name: &'static str,
        target: &'static str,
        port: u16,
        priority: u16,
        weight: u16,
    },
    /// `domain` NAPTR order preference "S" `service` → `replacement` (an SRV name).
    Naptr {
        domain: &'static str,
        order: u16,
        preference: u16,
        service: &'static str,
        replacement: &'static str,
    },
}

/// A running dnsmasq; killed on drop.
pub struct Dnsmasq {
    /// The UDP (and TCP) port it answers on, at 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl Dnsmasq {
    /// Serves `records` with a TTL of `ttl` seconds; every other name under `.test` does
    /// not exist (NXDOMAIN), and nothing is forwarded anywhere.
    pub fn start(records: &[Record], ttl: u32) -> Dnsmasq {
        Self::start_on(free_port(), records, ttl)
    }

    /// Like [`Dnsmasq::start`], on `port` (where an earlier instance ran: new answers).
    pub fn start_on(port: u16, records: &[Record], ttl: u32) -> Dnsmasq {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dnsmasq-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("dnsmasq.log");
        let _ = std::fs::remove_file(&log);
        let mut args: Vec<String> = [
            "--keep-in-foreground",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--local=/test/",
            "--log-queries",
            "--log-facility=-",
            "--user=root",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--port={port}"));
        args.push(format!("--local-ttl={ttl}"));
        for record in records {
            args.push(match record {
                Record::A(name) => format!("--host-record={name},127.0.0.1"),
                Record::Srv {
                    name,
                    target,
                    port,
                    priority,
                    weight,
                } => format!("--srv-host={name},{target},{port},{priority},{weight}"),
                Record::Naptr {
                    domain,
                    order,
                    preference,
                    service,
                    replacement,
                } => format!(
                    "--naptr-record={domain},{order},{preference},S,{service},,{replacement}"
                ),
            });
        }
        let child = Command::new("dnsmasq")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // With --log-facility=- its log (and any error) goes to stderr.
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dnsmasq starts (Debian package dnsmasq-base)");
        let mut dns = Dnsmasq { port, log, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dns.log().contains("started") {
            let exited = dns.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "dnsmasq did not start ({exited:?}): {}",
                dns.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        dns
    }

    /// `127.0.0.1:port`, as `SetSipDnsServers` takes it.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// dnsmasq's log: every query it answered.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Makes `engine` ask `dns` (`SetSipDnsServers`).
pub fn dns_servers(engine: lanscape_sip::ffi::lanscape::SIPHANDLE, dns: &Dnsmasq) {
    let servers = crate::support::cstr(&dns.server());
    // SAFETY: a live C string.
    let rc = unsafe { lanscape_sip::ffi::lanscape::SetSipDnsServers(engine, servers.as_ptr()) };
    assert_eq!(rc, lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::SipSuccess);
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
