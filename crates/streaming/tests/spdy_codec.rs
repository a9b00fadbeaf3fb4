#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! The crate's SPDY codec against bytes built apart from it: frames assembled by hand, header
//! blocks compressed by another zlib (Python's, level 9 as Go's spdystream) and by the test's
//! own flate2 with the dictionary written out in the test.

mod common;

use berth_streaming::spdy::dict::dictionary;
use berth_streaming::spdy::frame::{Decoder, Encoder, Frame};
use bytes::{Bytes, BytesMut};
use common::*;

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode(frame, &mut out).unwrap();
    out
}

fn decode_all(bytes: &[u8]) -> Vec<Frame> {
    let mut dec = Decoder::new();
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn dictionary_is_the_specs() {
    assert_eq!(dictionary().len(), 1423);
    assert_eq!(dictionary(), DICT);
    // The DICTID every SPDY/3 header stream starts with.
    assert_eq!(adler32(DICT), 0xe3c6_a7c2);
}

#[test]
fn reads_syn_streams_compressed_elsewhere() {
    // Two SYN_STREAMs on one zlib stream, from Python's zlib at level 9 with the dictionary.
    let first = unhex("80030001000000280000000100000000000078f9e3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff");
    let second = unhex("800300010000001900000003000000000000c22a054ccc29f9a52500000000ffff");
    let frames = decode_all(&[first, second].concat());
    let header = |v: &str| vec![("streamtype".to_string(), v.to_string())];
    assert_eq!(
        frames,
        vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: header("error")
            },
            Frame::SynStream {
                stream_id: 3,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: header("stdout")
            },
        ]
    );
}

#[test]
fn reads_what_the_test_compressor_writes() {
    let mut z = Zout::default();
    let mut wire = Vec::new();
    for (id, port) in [(1u32, "8080"), (3, "9090")] {
        let block = nv_block(&[("port", port), ("requestid", "0"), ("streamtype", "data")]);
        let zb = z.compress(&block);
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0b1110_0000, 0]);
        body.extend_from_slice(&zb);
        wire.extend_from_slice(&control(1, 0x01, &body));
    }
    let frames = decode_all(&wire);
    match &frames[1] {
        Frame::SynStream {
            stream_id: 3,
            priority: 7,
            flags: 1,
            headers,
            ..
        } => {
            assert_eq!(headers[0], ("port".to_string(), "9090".to_string()));
            assert_eq!(headers.len(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn writes_header_blocks_another_zlib_reads() {
    let mut enc = Encoder::new();
    let mut zin = Zin::default();
    for id in [1u32, 3, 5] {
        let mut out = Vec::new();
        enc.encode(
            &Frame::SynReply {
                stream_id: id,
                flags: 0,
                headers: vec![("x-a".into(), "b".into())],
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..5], &[0x80, 3, 0, 2, 0]);
        assert_eq!(
            u32::from_be_bytes([0, out[5], out[6], out[7]]) as usize,
            out.len() - 8
        );
        assert_eq!(&out[8..12], &id.to_be_bytes());
        if id == 1 {
            // A zlib header with FDICT and the SPDY dictionary's id.
            assert_eq!(out[12] & 0x0f, 8);
            assert_ne!(out[13] & 0x20, 0);
            assert_eq!(&out[14..18], &0xe3c6_a7c2u32.to_be_bytes());
        }
        let block = zin.decompress(&out[12..]);
        assert_eq!(parse_nv(&block), vec![("x-a".to_string(), "b".to_string())]);
    }
}

#[test]
fn fixed_frames_match_hand_assembled_bytes() {
    let cases: Vec<(Frame, Vec<u8>)> = vec![
        (
            Frame::RstStream {
                stream_id: 5,
                status: 3,
            },
            vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 3],
        ),
        (
            Frame::Ping { id: 0x0102_0304 },
            vec![0x80, 3, 0, 6, 0, 0, 0, 4, 1, 2, 3, 4],
        ),
        (
            Frame::GoAway {
                last_good: 7,
                status: 0,
            },
            vec![0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0],
        ),
        (
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 65536,
            },
            vec![0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0],
        ),
        (
            Frame::Settings {
                flags: 0,
                entries: vec![(1, 7, 0x1000)],
            },
            vec![
                0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 7, 0, 0, 0x10, 0,
            ],
        ),
        (
            Frame::Data {
                stream_id: 0x7fff_fffd,
                flags: 1,
                data: Bytes::from_static(b"hi"),
            },
            vec![0x7f, 0xff, 0xff, 0xfd, 1, 0, 0, 2, b'h', b'i'],
        ),
    ];
    for (frame, bytes) in cases {
        assert_eq!(encode(&frame), bytes, "{frame:?}");
        assert_eq!(decode_all(&bytes), vec![frame]);
    }
}

#[test]
fn unknown_control_frames_are_skipped() {
    let mut wire = control(0x0a, 0, &[1, 2, 3]);
    wire.extend_from_slice(&control(6, 0, &[0, 0, 0, 9]));
    assert_eq!(
        decode_all(&wire),
        vec![Frame::Unknown { kind: 0x0a }, Frame::Ping { id: 9 }]
    );
}
