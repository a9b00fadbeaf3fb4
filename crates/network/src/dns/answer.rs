//! What to do with one incoming message: answer it from the engine's data, forward it, or
//! drop it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::wire::{
    self, Header, Question, Rdata, Reply, CLASS_IN, RCODE_FORMERR, RCODE_NOTIMP, RCODE_SERVFAIL,
    TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR,
};
use super::Resolver;

/// The decision about one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not the engine's name: forward the message as it is; answer SERVFAIL if that fails.
    Forward { header: Header, question: Question },
    /// No header, or not a query: say nothing.
    Drop,
}

/// Decides about `message` from container `container_id`; replies are at most `max_len` bytes.
pub(crate) fn answer(
    message: &[u8],
    container_id: &str,
    resolver: &dyn Resolver,
    max_len: usize,
) -> Action {
    let Some(header) = Header::parse(message) else {
        return Action::Drop;
    };
    if header.is_response() {
        return Action::Drop;
    }
    let error = |rcode, question: Option<&Question>| {
        let reply = Reply {
            rcode,
            authoritative: false,
            max_len,
        };
        Action::Reply(wire::response(&header, question, &[], reply))
    };
    if header.opcode() != 0 {
        return error(RCODE_NOTIMP, None);
    }
    let question = match wire::parse_query(message) {
        Ok((_, question)) => question,
        Err(e) => {
            tracing::debug!(container = container_id, error = %e, "dns: malformed query");
            return error(RCODE_FORMERR, None);
        }
    };
    let local = |answers: &[Rdata]| {
        let reply = Reply {
            rcode: 0,
            authoritative: true,
            max_len,
        };
        Action::Reply(wire::response(&header, Some(&question), answers, reply))
    };
    let name = question.text();
    if question.qclass == CLASS_IN {
        if let Some(name) = &name {
            let ptr = (question.qtype == TYPE_PTR)
                .then(|| reverse_ip(name))
                .flatten()
                .and_then(|ip| match ip {
                    IpAddr::V4(ip) => resolver.reverse(container_id, ip),
                    IpAddr::V6(ip) => resolver.reverse6(container_id, ip),
                })
                .and_then(|target| wire::encode_name(&target));
            if let Some(target) = ptr {
                tracing::debug!(container = container_id, name, "dns: local PTR answer");
                return local(&[Rdata::Ptr(target)]);
            }
            if let Some(ips) = resolver.lookup(container_id, name) {
                tracing::debug!(
                    container = container_id,
                    name,
                    qtype = question.qtype,
                    "dns: local answer"
                );
                let v6 = || resolver.lookup6(container_id, name).unwrap_or_default();
                let answers: Vec<Rdata> = match question.qtype {
                    TYPE_A => ips.into_iter().map(Rdata::A).collect(),
                    TYPE_AAAA => v6().into_iter().map(Rdata::Aaaa).collect(),
                    TYPE_ANY => ips
                        .into_iter()
                        .map(Rdata::A)
                        .chain(v6().into_iter().map(Rdata::Aaaa))
                        .collect(),
                    _ => Vec::new(),
                };
                return local(&answers);
            }
        }
    }
    tracing::debug!(
        container = container_id,
        name = name.as_deref().unwrap_or("?"),
        qtype = question.qtype,
        "dns: forwarding"
    );
    Action::Forward { header, question }
}

/// The SERVFAIL answer to a query that could not be forwarded.
pub(crate) fn servfail(header: &Header, question: &Question, max_len: usize) -> Vec<u8> {
    let reply = Reply {
        rcode: RCODE_SERVFAIL,
        authoritative: false,
        max_len,
    };
    wire::response(header, Some(question), &[], reply)
}

/// The address a reverse name (`d.c.b.a.in-addr.arpa`, or 32 nibbles then `ip6.arpa`)
/// stands for.
fn reverse_ip(name: &str) -> Option<IpAddr> {
    if let Some(nibbles) = name.strip_suffix(".ip6.arpa") {
        return reverse_ip6(nibbles).map(IpAddr::V6);
    }
    reverse_ip4(name).map(IpAddr::V4)
}

/// `b.a.9.8. ... .0.0.d.f` (least significant nibble first) as an address.
fn reverse_ip6(nibbles: &str) -> Option<Ipv6Addr> {
    let mut value: u128 = 0;
    let mut count = 0;
    for (i, part) in nibbles.split('.').enumerate() {
        if i >= 32 || part.len() != 1 {
            return None;
        }
        let digit = u128::from(char::from(*part.as_bytes().first()?).to_digit(16)?);
        value |= digit << (4 * i);
        count += 1;
    }
    (count == 32).then_some(Ipv6Addr::from(value))
}

fn reverse_ip4(name: &str) -> Option<Ipv4Addr> {
    let digits = name.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = digits.split('.');
    for octet in octets.iter_mut().rev() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::dns::wire::tests::{answers, query};
    use crate::dns::wire::{MAX_UDP, TYPE_ANY};

    const TYPE_MX: u16 = 15;

    struct Fake;

    impl Resolver for Fake {
        fn lookup(&self, container_id: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
            assert_eq!(container_id, "c1");
            match name {
                "web" => Some(vec![Ipv4Addr::new(10, 9, 0, 2)]),
                "db" => Some(vec![Ipv4Addr::new(10, 9, 0, 3)]),
                _ => None,
            }
        }
        fn reverse(&self, _: &str, ip: Ipv4Addr) -> Option<String> {
            (ip == Ipv4Addr::new(10, 9, 0, 2)).then(|| "web".to_string())
        }
        fn upstreams(&self, _: &str) -> Vec<SocketAddr> {
            Vec::new()
        }
        fn lookup6(&self, _: &str, name: &str) -> Option<Vec<Ipv6Addr>> {
            (name == "web").then(|| vec!["fd00:1::2".parse().unwrap()])
        }
        fn reverse6(&self, _: &str, ip: Ipv6Addr) -> Option<String> {
            (ip == "fd00:1::2".parse::<Ipv6Addr>().unwrap()).then(|| "web".to_string())
        }
    }

    fn reply(message: &[u8]) -> Vec<u8> {
        match answer(message, "c1", &Fake, MAX_UDP) {
            Action::Reply(bytes) => bytes,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn engine_names_are_answered_case_insensitively() {
        let r = reply(&query(5, "WeB", TYPE_A));
        let h = Header::parse(&r).unwrap();
        assert_eq!((h.id, h.rcode(), h.ancount), (5, 0, 1));
        assert_eq!(h.flags & 0x8580, 0x8580, "QR, AA, RD and RA");
        assert_eq!(&r[12..17], b"\x03WeB\x00", "question echoed as asked");
        assert_eq!(answers(&r), vec![(TYPE_A, vec![10, 9, 0, 2])]);
        let r = reply(&query(6, "db.", TYPE_ANY));
        assert_eq!(answers(&r), vec![(TYPE_A, vec![10, 9, 0, 3])]);
    }

    #[test]
    fn aaaa_and_ip6_reverse_names() {
        let r = reply(&query(5, "web", TYPE_AAAA));
        let mut want = vec![0u8; 16];
        want[..4].copy_from_slice(&[0xfd, 0, 0, 1]);
        want[15] = 2;
        assert_eq!(answers(&r), vec![(TYPE_AAAA, want.clone())]);
        let r = reply(&query(5, "web", TYPE_ANY));
        assert_eq!(
            answers(&r),
            vec![(TYPE_A, vec![10, 9, 0, 2]), (TYPE_AAAA, want)]
        );
        let name = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa";
        let r = reply(&query(5, name, TYPE_PTR));
        assert_eq!(answers(&r), vec![(TYPE_PTR, b"\x03web\x00".to_vec())]);
        assert_eq!(reverse_ip6("1.2.3"), None);
        let bad = format!("g{}", ".0".repeat(31));
        assert_eq!(reverse_ip6(&bad), None);
        let good = format!("1{}", ".0".repeat(31));
        assert_eq!(reverse_ip6(&good), Some(Ipv6Addr::from(1)));
    }

    #[test]
    fn other_types_of_engine_names_are_empty() {
        for qtype in [TYPE_AAAA, TYPE_MX] {
            let r = reply(&query(5, "db", qtype));
            let h = Header::parse(&r).unwrap();
            assert_eq!((h.rcode(), h.ancount), (0, 0));
        }
    }

    #[test]
    fn reverse_names_of_containers_are_answered() {
        let r = reply(&query(5, "2.0.9.10.in-addr.arpa", TYPE_PTR));
        assert_eq!(answers(&r), vec![(TYPE_PTR, b"\x03web\x00".to_vec())]);
        let q = query(5, "3.0.9.10.in-addr.arpa", TYPE_PTR);
        assert!(matches!(
            answer(&q, "c1", &Fake, MAX_UDP),
            Action::Forward { .. }
        ));
    }

    #[test]
    fn reverse_ip_parses_only_four_octets() {
        assert_eq!(
            reverse_ip("2.0.9.10.in-addr.arpa"),
            Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)))
        );
        assert_eq!(reverse_ip("0.9.10.in-addr.arpa"), None);
        assert_eq!(reverse_ip("1.2.0.9.10.in-addr.arpa"), None);
        assert_eq!(reverse_ip("256.0.9.10.in-addr.arpa"), None);
        assert_eq!(reverse_ip("+1.0.9.10.in-addr.arpa"), None);
        assert_eq!(reverse_ip("2.0.9.10.ip6.arpa"), None);
    }

    #[test]
    fn other_names_are_forwarded_and_servfail_echoes_the_question() {
        let q = query(9, "outside.test", TYPE_A);
        let Action::Forward { header, question } = answer(&q, "c1", &Fake, MAX_UDP) else {
            panic!("not forwarded");
        };
        let r = servfail(&header, &question, MAX_UDP);
        let h = Header::parse(&r).unwrap();
        assert_eq!(
            (h.id, h.rcode(), h.qdcount, h.ancount),
            (9, RCODE_SERVFAIL, 1, 0)
        );
        assert_eq!(&r[12..], &q[12..]);
    }

    #[test]
    fn malformed_messages_get_formerr_or_nothing() {
        assert_eq!(answer(&[1, 2, 3], "c1", &Fake, MAX_UDP), Action::Drop);
        let mut q = query(9, "web", TYPE_A);
        q.truncate(q.len() - 1);
        let r = reply(&q);
        assert_eq!(Header::parse(&r).unwrap().rcode(), RCODE_FORMERR);
        let mut q = query(9, "web", TYPE_A);
        q[2] |= 0x80; // a response
        assert_eq!(answer(&q, "c1", &Fake, MAX_UDP), Action::Drop);
        let mut q = query(9, "web", TYPE_A);
        q[2] |= 0x10; // opcode 2 (STATUS)
        assert_eq!(Header::parse(&reply(&q)).unwrap().rcode(), RCODE_NOTIMP);
    }

    #[test]
    fn random_and_truncated_messages_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = query(1, "2.0.9.10.in-addr.arpa", TYPE_PTR);
        for len in 0..=base.len() {
            let _ = answer(&base[..len], "c1", &Fake, MAX_UDP);
        }
        for _ in 0..20_000 {
            let mut m = base.clone();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            m.truncate((next() as usize) % (m.len() + 1));
            let _ = answer(&m, "c1", &Fake, MAX_UDP);
        }
    }
}
