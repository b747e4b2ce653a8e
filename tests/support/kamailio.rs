//! Starts Kamailio (Debian's `kamailio` package) on loopback from `tests/peers/kamailio.cfg`
//! and reads its location table with `kamcmd ul.dump`.

use crate::support::free_port;
use lanscape_sip::testkit::pki::TestPki;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How one Kamailio instance is set up.
pub struct KamailioConfig {
    /// The SIP domain it is registrar for (an alias of itself).
    pub domain: &'static str,
    /// Digest algorithm of its challenges: "MD5" or "SHA-256".
    pub algorithm: &'static str,
    /// Auth user -> password.
    pub users: Vec<(&'static str, &'static str)>,
    /// Below this expiry it answers 423.
    pub min_expires: u32,
    /// When set, REGISTERs for other domains are relayed here (an outbound proxy).
    pub forward_to: Option<u16>,
    /// Whether REGISTERs must authenticate.
    pub auth: bool,
    /// Shared memory, MiB (the location table lives there).
    pub shm_mb: u32,
    /// Answer a wrong digest response with 403 Forbidden instead of a new challenge.
    pub forbid_wrong_credentials: bool,
    /// Also listen on TCP (the UDP port) and TLS (`tls_port`), with a certificate for the
    /// domain from a PKI of its own (`pki`).
    pub streams: bool,
    /// SIP Outbound and GRUU (outbound, path and stun modules), with this Flow-Timer.
    pub outbound: Option<u32>,
    /// After authentication, answer every REGISTER 423 (with `Min-Expires: min_expires`):
    /// a registrar whose policy refuses any expiry.
    pub refuse_interval: bool,
    /// Run inside this network namespace, listening on this address (port 5060), not on
    /// loopback.
    pub netns: Option<(String, std::net::Ipv4Addr)>,
}

impl Default for KamailioConfig {
    fn default() -> Self {
        KamailioConfig {
            domain: "kam.test",
            algorithm: "SHA-256",
            users: vec![("gw", "gw-secret")],
            min_expires: 10,
            forward_to: None,
            auth: true,
            shm_mb: 32,
            forbid_wrong_credentials: false,
            streams: false,
            outbound: None,
            refuse_interval: false,
            netns: None,
        }
    }
}

/// A running Kamailio; killed (its whole process group) on drop.
pub struct Kamailio {
    /// UDP (and TCP) port.
    pub port: u16,
    /// TLS port, with `streams`.
    pub tls_port: u16,
    /// The PKI of its TLS certificate, with `streams`.
    pub pki: Option<TestPki>,
    shm_mb: u32,
    dir: PathBuf,
    child: Option<Child>,
    netns: Option<String>,
    domain: &'static str,
    user: (&'static str, &'static str),
}

impl Kamailio {
    /// Writes the config and starts Kamailio on a free loopback port.
    pub fn start(config: KamailioConfig) -> Kamailio {
        // A port free for UDP and TCP alike, and one more for TLS (in a namespace of its
        // own, the usual port; the directory is then named after the namespace).
        let port = match &config.netns {
            Some(_) => 5060,
            None => loop {
                let port = free_port();
                if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                    break port;
                }
            },
        };
        let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let instance = match &config.netns {
            Some((ns, _)) => ns.clone(),
            None => port.to_string(),
        };
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kamailio-{instance}"));
        std::fs::create_dir_all(&dir).unwrap();
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kamailio.cfg"),
        )
        .unwrap();
        let users: String = config
            .users
            .iter()
            .map(|(u, p)| format!("    $sht(users=>{u}) = \"{p}\";\n"))
            .collect();
        let forward = match config.forward_to {
            Some(next) => format!(
                "        $du = \"sip:127.0.0.1:{next}\";\n        t_relay();\n        exit;"
            ),
            None => String::new(),
        };
        let mut defines = String::new();
        if config.auth {
            defines.push_str("#!define WITH_AUTH\n");
        }
        if config.outbound.is_some() {
            defines.push_str("#!define WITH_OUTBOUND\n");
        }
        if config.refuse_interval {
            defines.push_str("#!define REFUSE_INTERVAL\n");
        }
        if config.forbid_wrong_credentials {
            defines.push_str("#!define FORBID_WRONG_CREDENTIALS\n");
        }
        let pki = config.streams.then(|| TestPki::new(&[config.domain]));
        let tls_cfg = dir.join("tls.cfg");
        if let Some(pki) = &pki {
            defines.push_str("#!define WITH_STREAMS\n");
            let (_, cert, key) = pki.write(&dir);
            std::fs::write(
                &tls_cfg,
                format!(
                    "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                     require_certificate = no\nprivate_key = {}\ncertificate = {}\n",
                    key.display(),
                    cert.display()
                ),
            )
            .unwrap();
        }
        let listen_ip = config
            .netns
            .as_ref()
            .map_or("127.0.0.1".to_string(), |(_, ip)| ip.to_string());
        let cfg = template
            .replace(":127.0.0.1:@", &format!(":{listen_ip}:@"))
            .replace("@DEFINES@", &defines)
            .replace("@PORT@", &port.to_string())
            .replace("@TLS_PORT@", &tls_port.to_string())
            .replace("@TLS_CFG@", tls_cfg.to_str().unwrap())
            .replace("@DOMAIN@", config.domain)
            .replace("@CTL@", dir.join("ctl").to_str().unwrap())
            .replace("@MIN_EXPIRES@", &config.min_expires.to_string())
            .replace("@ALGORITHM@", config.algorithm)
            .replace("@USERS@", &users)
            .replace("@FORWARD@", &forward)
            .replace("@FLOW_TIMER@", &config.outbound.unwrap_or(0).to_string());
        std::fs::write(dir.join("kamailio.cfg"), cfg).unwrap();
        let mut kamailio = Kamailio {
            port,
            tls_port,
            pki,
            shm_mb: config.shm_mb,
            dir,
            child: None,
            netns: config.netns.map(|(ns, _)| ns),
            domain: config.domain,
            user: config.users.first().copied().unwrap_or_default(),
        };
        kamailio.launch();
        kamailio
    }

    fn launch(&mut self) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(self.dir.join("kamailio.log")).unwrap();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "kamailio"]);
                c
            }
            None => Command::new("kamailio"),
        };
        let child = command
            .arg("-f")
            .arg(self.dir.join("kamailio.cfg"))
            .args(["-DD", "-E", "-x", "tlsf", "-M", "8", "-m"])
            .arg(self.shm_mb.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("kamailio starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.kamcmd(&["core.uptime"]).is_none() {
            assert!(
                Instant::now() < deadline,
                "Kamailio did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the test programs (C#, Python) are told where to register: address, port, SIP
    /// domain, and its first user's name and password.
    pub fn program_args(&self) -> [String; 5] {
        [
            "127.0.0.1".to_string(),
            self.port.to_string(),
            self.domain.to_string(),
            self.user.0.to_string(),
            self.user.1.to_string(),
        ]
    }

    /// Kills Kamailio like a crash (SIGKILL to every process of it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// Freezes every process of it (SIGSTOP): sockets stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again after [`Kamailio::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, "--", &format!("-{}", child.id())])
                .status();
        }
    }

    /// `kamcmd ul.dump`, as text.
    pub fn dump(&self) -> String {
        self.kamcmd(&["ul.dump"]).unwrap_or_default()
    }

    /// Starts it again on the same port, with an empty location table.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Runs `kamcmd` against this instance.
    pub fn kamcmd(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.dir.join("ctl").display()))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The location table: (AoR, contact address, seconds left).
    pub fn contacts(&self) -> Vec<(String, String, u32)> {
        let dump = self.kamcmd(&["ul.dump"]).unwrap_or_default();
        let mut out = Vec::new();
        let (mut aor, mut address) = (String::new(), String::new());
        for line in dump.lines().map(str::trim) {
            if let Some(a) = line.strip_prefix("AoR: ") {
                aor = a.to_string();
            } else if let Some(a) = line.strip_prefix("Address: ") {
                address = a.to_string();
            } else if let Some(e) = line.strip_prefix("Expires: ") {
                out.push((aor.clone(), address.clone(), e.parse().unwrap_or(0)));
            }
        }
        out.sort();
        out
    }

    /// How many AoRs the location table holds (usrloc's own counter).
    pub fn registered_users(&self) -> Option<u64> {
        self.statistic("usrloc:registered_users")
    }

    /// One of Kamailio's statistics by its full name (`group:name`), such as
    /// `sl:401_replies` (the challenges it sent).
    pub fn statistic(&self, name: &str) -> Option<u64> {
        let group = name.split(':').next()?;
        let out = self.kamcmd(&["stats.get_statistics", &format!("{group}:")])?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().strip_prefix('='))?
            .trim()
            .parse()
            .ok()
    }

    /// Kamailio's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.kill();
    }
}
