//! SPDY/3.1, as far as Kubernetes' streaming protocols use it: the frame codec
//! ([`frame`]), header blocks ([`headers`], [`dict`]) and a server connection ([`conn`]).

pub mod conn;
pub mod dict;
pub mod frame;
pub mod headers;
