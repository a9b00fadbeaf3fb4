//! Tests of the DNS wire format.

use super::*;

/// A query for `name` of `qtype` with RD set.
pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&encode_name(name).unwrap());
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The answers of a response: (type, rdata), names in rdata not decompressed.
pub(crate) fn answers(message: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let header = Header::parse(message).unwrap();
    let mut at = HEADER_LEN;
    for _ in 0..header.qdcount {
        at = read_name(message, at).unwrap().1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..header.ancount {
        at = read_name(message, at).unwrap().1;
        let rtype = be16(message, at).unwrap();
        let len = usize::from(be16(message, at + 8).unwrap());
        out.push((rtype, message[at + 10..at + 10 + len].to_vec()));
        at += 10 + len;
    }
    assert_eq!(at, message.len(), "trailing bytes");
    out
}

#[test]
fn query_round_trip() {
    let q = query(0x1234, "Web.Example.", TYPE_A);
    let (header, question) = parse_query(&q).unwrap();
    assert_eq!(header.id, 0x1234);
    assert_eq!(header.opcode(), 0);
    assert!(!header.is_response());
    assert_eq!(question.qtype, TYPE_A);
    assert_eq!(question.qclass, CLASS_IN);
    assert_eq!(question.name, b"\x03Web\x07Example\x00");
    assert_eq!(question.text().as_deref(), Some("web.example"));
}

#[test]
fn response_echoes_question_and_points_answers_at_it() {
    let q = query(7, "WEB", TYPE_A);
    let (header, question) = parse_query(&q).unwrap();
    let ips = [Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 3)];
    let records: Vec<_> = ips.iter().map(|ip| Rdata::A(*ip)).collect();
    let reply = Reply {
        rcode: 0,
        authoritative: true,
        max_len: MAX_UDP,
    };
    let r = response(&header, Some(&question), &records, reply);
    let rh = Header::parse(&r).unwrap();
    assert_eq!(rh.id, 7);
    assert!(rh.is_response());
    assert_eq!(
        rh.flags & (FLAG_AA | FLAG_RA | FLAG_RD),
        FLAG_AA | FLAG_RA | FLAG_RD
    );
    assert!(!rh.truncated());
    assert_eq!((rh.qdcount, rh.ancount), (1, 2));
    let (_, echoed) = parse_query(&{
        let mut r = r.clone();
        r[6..8].copy_from_slice(&[0, 0]);
        r
    })
    .unwrap();
    assert_eq!(echoed, question);
    assert_eq!(
        answers(&r),
        vec![(TYPE_A, vec![10, 9, 0, 2]), (TYPE_A, vec![10, 9, 0, 3])]
    );
    // The answer's owner name is a pointer to the question.
    assert_eq!(read_name(&r, q.len()).unwrap().0, question.name);
}

#[test]
fn ptr_answer_and_truncation() {
    let q = query(1, "2.0.9.10.in-addr.arpa", TYPE_PTR);
    let (header, question) = parse_query(&q).unwrap();
    let ptr = Rdata::Ptr(encode_name("web").unwrap());
    let reply = Reply {
        rcode: 0,
        authoritative: true,
        max_len: MAX_UDP,
    };
    let r = response(&header, Some(&question), &[ptr], reply);
    assert_eq!(answers(&r), vec![(TYPE_PTR, b"\x03web\x00".to_vec())]);

    let many: Vec<_> = (0..100)
        .map(|i| Rdata::A(Ipv4Addr::new(10, 0, 0, i)))
        .collect();
    let r = response(&header, Some(&question), &many, reply);
    assert!(r.len() <= MAX_UDP);
    let rh = Header::parse(&r).unwrap();
    assert!(rh.truncated());
    assert!(rh.ancount > 0 && usize::from(rh.ancount) < many.len());
}

#[test]
fn compression_pointers_are_followed() {
    // Header, then "example.com" at 12, then "www" + pointer to 12 at 25.
    let mut m = vec![0u8; HEADER_LEN];
    m.extend_from_slice(b"\x07example\x03com\x00");
    let at = m.len();
    m.extend_from_slice(b"\x03www\xc0\x0c");
    let (name, end) = read_name(&m, at).unwrap();
    assert_eq!(name, b"\x03www\x07example\x03com\x00");
    assert_eq!(end, m.len());
}

#[test]
fn pointer_loops_and_forward_pointers_are_errors() {
    let mut m = vec![0u8; HEADER_LEN];
    m.extend_from_slice(&[0xc0, 12]); // points at itself
    assert!(read_name(&m, 12).is_err());
    let mut m = vec![0u8; HEADER_LEN];
    m.extend_from_slice(&[1, b'a', 0xc0, 12]); // back to its own start: a loop
    assert!(read_name(&m, 12).is_err());
    let mut m = vec![0u8; HEADER_LEN];
    m.extend_from_slice(&[0xc0, 14, 1, b'a', 0]); // forward
    assert!(read_name(&m, 12).is_err());
    let mut m = vec![0u8; HEADER_LEN];
    m.extend_from_slice(&[0x80, 1]); // reserved label type
    assert!(read_name(&m, 12).is_err());
}

#[test]
fn long_names_are_errors() {
    let mut m = vec![0u8; HEADER_LEN];
    for _ in 0..5 {
        m.push(63);
        m.extend_from_slice(&[b'a'; 63]);
    }
    m.push(0);
    assert!(read_name(&m, 12).is_err());
    assert!(encode_name(&vec!["a".repeat(63); 5].join(".")).is_none());
    assert!(encode_name(&"a".repeat(64)).is_none());
    assert!(encode_name("a..b").is_none());
    assert_eq!(encode_name("").unwrap(), vec![0]);
}

#[test]
fn every_truncation_of_a_query_is_an_error() {
    let q = query(9, "db.example", TYPE_A);
    for len in 0..q.len() {
        assert!(parse_query(&q[..len]).is_err(), "prefix of {len} bytes");
    }
    assert!(Header::parse(&q[..11]).is_none());
}

#[test]
fn odd_names_have_no_text() {
    let question = |name: &[u8]| Question {
        name: name.to_vec(),
        qtype: TYPE_A,
        qclass: CLASS_IN,
    };
    assert_eq!(question(b"\x00").text(), None);
    assert_eq!(question(b"\x03a.b\x00").text(), None);
    assert_eq!(question(b"\x03a b\x00").text(), None);
    assert_eq!(question(b"\x02\xc3\xa9\x00").text(), None);
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let len = (next() % 80) as usize;
        let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if m.len() > 5 && next() % 2 == 0 {
            m[4..6].copy_from_slice(&[0, 1]);
        }
        if let Ok((header, question)) = parse_query(&m) {
            let _ = question.text();
            let reply = Reply {
                rcode: 0,
                authoritative: false,
                max_len: MAX_UDP,
            };
            let _ = response(&header, Some(&question), &[], reply);
        }
        for start in 0..m.len() {
            let _ = read_name(&m, start);
        }
    }
}
