//! A network namespace joined to this one by a veth pair, with nftables inside it to lose
//! a share of the UDP packets both ways, or all of them (the kernel here has no netem).
//! Needs root, `ip` (iproute2) and `nft` (nftables); removed on drop.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct NetNs {
    /// The namespace's name.
    pub name: String,
    /// Our end of the link.
    pub host_ip: Ipv4Addr,
    /// Its end.
    pub ns_ip: Ipv4Addr,
    host_link: String,
}

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

impl NetNs {
    /// Creates a namespace and a /30 link to it, unique to this process.
    pub fn create() -> NetNs {
        // SAFETY: a plain system call without arguments.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "network namespaces need root: run scripts/test as root"
        );
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = (std::process::id() % 200 + n * 7) % 250;
        let name = format!("lsip-{}-{n}", std::process::id());
        let host_link = format!("lsh{}x{n}", std::process::id() % 100_000);
        let ns_link = format!("lsn{}x{n}", std::process::id() % 100_000);
        let host_ip = Ipv4Addr::new(10, 213, tag as u8, 1);
        let ns_ip = Ipv4Addr::new(10, 213, tag as u8, 2);
        run(&["ip", "netns", "add", &name]);
        let ns = NetNs {
            name: name.clone(),
            host_ip,
            ns_ip,
            host_link: host_link.clone(),
        };
        run(&[
            "ip", "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
        ]);
        run(&["ip", "link", "set", &ns_link, "netns", &name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_link,
        ]);
        // The link carries datagrams, as a wire does: a segmented send (UDP GSO) is cut into
        // them before it enters, where it would otherwise cross the pair as one packet, be
        // dropped or counted below as one.
        run(&["ip", "link", "set", &host_link, "gso_max_segs", "1"]);
        run(&["ip", "link", "set", &host_link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &name];
            all.extend_from_slice(args);
            run(&all);
        };
        inside(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_link]);
        inside(&["ip", "link", "set", &ns_link, "gso_max_segs", "1"]);
        inside(&["ip", "link", "set", &ns_link, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        ns.drop_percent(0);
        ns
    }

    /// Replaces the rules: each UDP packet either way is dropped with this chance (100: a
    /// partition). Packets are dropped as they arrive at the far end of the link (ingress
    /// of each veth end), as a lossy network would: a sender never hears of it (a drop on
    /// its own output would fail its send with EPERM). Requests to port 5060 are counted
    /// before anything is dropped (the counter starts again at 0).
    pub fn drop_percent(&self, percent: u32) {
        let rule = match percent {
            0 => String::new(),
            100.. => "meta l4proto udp drop".to_string(),
            p => format!("meta l4proto udp numgen random mod 100 < {p} drop"),
        };
        let ns_link = self.host_link.replacen("lsh", "lsn", 1);
        let inside = format!(
            "table netdev lossy\ndelete table netdev lossy\n\
             table netdev lossy {{\n\
               counter requests {{ }}\n\
               chain ingress {{ type filter hook ingress device \"{ns_link}\" priority 0;\n\
                 udp dport 5060 counter name \"requests\"\n\
                 {rule}\n\
               }}\n\
             }}\n"
        );
        let table = self.host_table();
        let outside = format!(
            "table netdev {table}\ndelete table netdev {table}\n\
             table netdev {table} {{\n\
               chain ingress {{ type filter hook ingress device \"{}\" priority 0;\n\
                 {rule}\n\
               }}\n\
             }}\n",
            self.host_link
        );
        nft(Some(&self.name), &inside);
        nft(None, &outside);
    }

    fn host_table(&self) -> String {
        format!("lossy_{}", self.host_link)
    }

    /// UDP packets that arrived for port 5060 since the rules were last set.
    pub fn requests(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.name, "nft", "list", "counter", "netdev", "lossy",
                "requests",
            ])
            .output()
            .expect("nft runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "nft list counter: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Feeds `rules` to `nft -f -`, inside namespace `ns` if given.
fn nft(ns: Option<&str>, rules: &str) {
    use std::io::Write;
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = command.stdin(Stdio::piped()).spawn().expect("nft runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft refused:\n{rules}");
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let table = self.host_table();
        let _ = Command::new("nft")
            .args(["delete", "table", "netdev", &table])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
