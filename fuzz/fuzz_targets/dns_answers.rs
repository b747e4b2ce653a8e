//! Arbitrary NAPTR and SRV answers: choosing the SRV names (RFC 3263 §4.1) and ordering
//! the SRV records (RFC 2782) never panics; only allowed transports come out, each SRV name
//! once, and the SRV order is a permutation of the usable records by rising priority.
#![no_main]

use lanscape_sip::engine::binding::Entropy;
use lanscape_sip::engine::target::{naptr_services, order_srv, Naptr, Srv};
use lanscape_sip::engine::transport::Transport;
use libfuzzer_sys::fuzz_target;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u16(&mut self) -> u16 {
        let (a, b) = (self.u8(), self.u8());
        u16::from_be_bytes([a, b])
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.u8() % 24).min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
}

struct Seeded(u64);

impl Entropy for Seeded {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let allowed: Vec<Transport> = [Transport::Udp, Transport::Tcp, Transport::Tls]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| data.first().is_some_and(|f| f >> i & 1 == 1))
        .map(|(_, t)| t)
        .collect();
    b.u8();
    let services = ["SIP+D2U", "SIP+D2T", "SIPS+D2T", "sip+d2u", "SIP+D2S", ""];
    let mut naptr = Vec::new();
    for _ in 0..b.u8() % 12 {
        naptr.push(Naptr {
            order: b.u16(),
            preference: b.u16(),
            flags: if b.u8() % 4 == 0 { b.text() } else { "s".into() },
            service: match b.u8() % 8 {
                i @ 0..=5 => services[usize::from(i)].to_string(),
                _ => b.text(),
            },
            replacement: b.text(),
        });
    }
    let chosen = naptr_services(&naptr, &allowed);
    for (i, (transport, name)) in chosen.iter().enumerate() {
        assert!(allowed.contains(transport));
        assert!(!chosen[..i].contains(&(*transport, name.clone())), "twice: {name}");
    }
    let mut srv = Vec::new();
    for _ in 0..b.u8() % 16 {
        srv.push(Srv {
            priority: b.u16() % 4,
            weight: b.u16(),
            port: b.u16(),
            target: match b.u8() % 5 {
                0 => ".".into(),
                _ => b.text(),
            },
        });
    }
    let usable: Vec<&Srv> = srv
        .iter()
        .filter(|r| r.target != "." && !r.target.is_empty())
        .collect();
    let ordered = order_srv(srv.clone(), &mut Seeded(u64::from(b.u8())));
    assert_eq!(ordered.len(), usable.len());
    assert!(ordered.windows(2).all(|w| w[0].priority <= w[1].priority));
    for r in &ordered {
        assert!(usable.contains(&r));
    }
});
