pub mod spdy;
