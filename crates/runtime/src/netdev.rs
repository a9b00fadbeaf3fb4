//! `linux.netDevices`: network devices of the runtime's namespace moved (and renamed) into the
//! container's network namespace, by the runtime, before the container is started.
//!
//! One rtnetlink request does it: RTM_NEWLINK on the device's index with IFLA_NET_NS_PID (the
//! init's pid) and IFLA_IFNAME (the name inside). It is built by hand here, a few bytes, rather
//! than pulling an async netlink stack into the runtime.

use std::os::fd::AsRawFd;

use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum NetDeviceError {
    #[error("network device {name:?}: no such device in the runtime's namespace")]
    NotFound { name: String },
    #[error("moving network device {name:?} into the container: {what}: {source}")]
    Netlink {
        name: String,
        what: &'static str,
        source: nix::Error,
    },
    #[error("moving network device {name:?} into the container: the kernel answered {errno}")]
    Refused { name: String, errno: nix::Error },
}

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 0x2;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_PID: u16 = 19;

/// Appends one rtattr (type, payload), padded to 4 bytes.
fn push_attr(buf: &mut Vec<u8>, typ: u16, payload: &[u8]) {
    let len = (4 + payload.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(payload);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// The RTM_NEWLINK request that moves device `index` into `pid`'s network namespace.
fn request(index: u32, pid: Pid, new_name: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    // struct ifinfomsg: family, pad, type, index, flags, change.
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&(index as i32).to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(
        &mut body,
        IFLA_NET_NS_PID,
        &(pid.as_raw() as u32).to_ne_bytes(),
    );
    if let Some(name) = new_name {
        let mut bytes = name.as_bytes().to_vec();
        bytes.push(0);
        push_attr(&mut body, IFLA_IFNAME, &bytes);
    }
    // struct nlmsghdr: len, type, flags, seq, pid.
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// Moves `name` into the network namespace of `pid`, as `new_name` if given.
pub fn move_into(pid: Pid, name: &str, new_name: Option<&str>) -> Result<(), NetDeviceError> {
    let index = nix::net::if_::if_nametoindex(name).map_err(|_| NetDeviceError::NotFound {
        name: name.to_string(),
    })?;
    let err = |what: &'static str| {
        move |source| NetDeviceError::Netlink {
            name: name.to_string(),
            what,
            source,
        }
    };
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(err("socket"))?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(err("bind"))?;
    let msg = request(index, pid, new_name);
    sendto(
        sock.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(err("send"))?;
    let mut buf = [0u8; 4096];
    let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(err("receive"))?;
    // The answer is an NLMSG_ERROR whose error field (after the 16-byte header) is 0 or -errno.
    let typ = buf.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let code = buf
        .get(16..20)
        .filter(|_| n >= 20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (typ, code) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(code)) => Err(NetDeviceError::Refused {
            name: name.to_string(),
            errno: nix::Error::from_raw(-code),
        }),
        _ => Err(NetDeviceError::Refused {
            name: name.to_string(),
            errno: nix::Error::EPROTO,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let msg = request(7, Pid::from_raw(1234), Some("eth1"));
        // header 16 + ifinfomsg 16 + NET_NS_PID 8 + IFNAME ("eth1\0" -> 9, padded 12).
        assert_eq!(msg.len(), 16 + 16 + 8 + 12);
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(i32::from_ne_bytes(msg[20..24].try_into().unwrap()), 7);
        assert_eq!(
            u16::from_ne_bytes(msg[34..36].try_into().unwrap()),
            IFLA_NET_NS_PID
        );
        assert_eq!(u32::from_ne_bytes(msg[36..40].try_into().unwrap()), 1234);
        assert_eq!(&msg[44..49], b"eth1\0");
    }
}
