//! Bytes on the wire: what one check costs at L3.
//!
//! Sockets are wrapped so every byte the probe really wrote or read is counted; the IP, TCP and
//! UDP headers the kernel adds are estimated per packet, because user space cannot see them.
//! The estimate (checked against veth counters in `tests/it/probe/`, see `docs/probe.md`):
//! - IP header: 20 B (IPv4) or 40 B (IPv6) per packet.
//! - TCP header: 32 B per segment (20 B plus the 12 B timestamp option Linux always sends), 40 B
//!   on SYN and SYN-ACK (MSS, SACK-permitted, timestamps, window scale).
//! - A connection costs SYN, SYN-ACK, ACK, and one RST when the probe drops it (the probe closes
//!   with SO_LINGER 0, see `http.rs`).
//! - Payload is cut into segments of at most [`TCP_MSS`] bytes; the side that receives a flight
//!   acknowledges it with one pure ACK per two segments (delayed ACK), rounded up.
//! - UDP: 8 B header per datagram.
//! - A connect that never completes sent one SYN per kernel retransmission (1 s, 3 s, 7 s, ...).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest TCP payload per segment on a 1500 B Ethernet path with timestamps.
pub const TCP_MSS: u64 = 1448;
/// TCP header of an established-connection segment: 20 B + 12 B timestamp option.
pub const TCP_HEADER: u64 = 32;
/// TCP header of SYN and SYN-ACK: 20 B + 20 B of options.
pub const TCP_SYN_HEADER: u64 = 40;
/// UDP header.
pub const UDP_HEADER: u64 = 8;

/// IP header size for an address family.
pub fn ip_header(ipv6: bool) -> u64 {
    if ipv6 {
        40
    } else {
        20
    }
}

fn segments(bytes: u64) -> u64 {
    bytes.div_ceil(TCP_MSS)
}

/// Counters of one TCP connection, shared between the probe and the wrapped stream (which hyper
/// owns and drops whenever the check ends, timeouts included).
#[derive(Debug, Default)]
pub struct TcpMeter {
    ipv6: AtomicBool,
    syn_sent: AtomicU64,
    established: AtomicBool,
    payload_out: AtomicU64,
    payload_in: AtomicU64,
    segments_out: AtomicU64,
    segments_in: AtomicU64,
}

impl TcpMeter {
    pub fn new(ipv6: bool) -> Arc<Self> {
        let meter = Self::default();
        meter.ipv6.store(ipv6, Ordering::Relaxed);
        Arc::new(meter)
    }

    /// Records a connect attempt that lasted `waited`: the kernel sent its SYN and one more per
    /// retransmission timeout (1 s initial RTO, doubling) that passed.
    pub fn connect_attempt(&self, waited: Duration, established: bool) {
        let mut syns = 1;
        let mut next_rto = Duration::from_secs(1);
        let mut at = next_rto;
        while !established && at <= waited {
            syns += 1;
            next_rto *= 2;
            at += next_rto;
        }
        self.syn_sent.fetch_add(syns, Ordering::Relaxed);
        if established {
            self.established.store(true, Ordering::Relaxed);
        }
    }

    fn wrote(&self, n: usize) {
        let n = n as u64;
        self.payload_out.fetch_add(n, Ordering::Relaxed);
        self.segments_out.fetch_add(segments(n), Ordering::Relaxed);
    }

    fn read(&self, n: usize) {
        let n = n as u64;
        self.payload_in.fetch_add(n, Ordering::Relaxed);
        self.segments_in.fetch_add(segments(n), Ordering::Relaxed);
    }

    /// Payload bytes written and read so far (TLS records included).
    pub fn payload(&self) -> (u64, u64) {
        (
            self.payload_out.load(Ordering::Relaxed),
            self.payload_in.load(Ordering::Relaxed),
        )
    }

    /// Estimated L3 bytes of the whole connection, both directions, per the module's model.
    pub fn l3_bytes(&self) -> u64 {
        let ip = ip_header(self.ipv6.load(Ordering::Relaxed));
        let syn = ip + TCP_SYN_HEADER;
        let plain = ip + TCP_HEADER;
        let syns = self.syn_sent.load(Ordering::Relaxed);
        if !self.established.load(Ordering::Relaxed) {
            return syns * syn;
        }
        let (out, inn) = self.payload();
        let seg_out = self.segments_out.load(Ordering::Relaxed);
        let seg_in = self.segments_in.load(Ordering::Relaxed);
        // SYN(s) + SYN-ACK + ACK, the data, the delayed ACKs of each side, and the RST.
        let handshake = syns * syn + syn + plain;
        let data = out + inn + (seg_out + seg_in) * plain;
        let acks = (seg_out.div_ceil(2) + seg_in.div_ceil(2)) * plain;
        let close = plain;
        handshake + data + acks + close
    }
}

/// A stream that counts what passes through it into a [`TcpMeter`].
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    meter: Arc<TcpMeter>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, meter: Arc<TcpMeter>) -> Self {
        Self { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.meter.read(buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.meter.wrote(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// L3 bytes of DNS traffic through one interface, accumulated over the life of its resolvers.
#[derive(Debug, Default)]
pub struct DatagramMeter {
    bytes: AtomicU64,
}

impl DatagramMeter {
    /// One UDP datagram of `payload` bytes.
    pub fn datagram(&self, payload: usize, ipv6: bool) {
        let bytes = payload as u64 + ip_header(ipv6) + UDP_HEADER;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_retransmissions_follow_the_kernels_backoff() {
        let m = TcpMeter::new(false);
        m.connect_attempt(Duration::from_millis(500), false);
        assert_eq!(m.l3_bytes(), 60);
        let m = TcpMeter::new(false);
        m.connect_attempt(Duration::from_millis(3500), false);
        // SYNs at 0, 1 s and 3 s.
        assert_eq!(m.l3_bytes(), 3 * 60);
    }

    #[test]
    fn a_small_http_exchange_costs_what_the_model_says() {
        let m = TcpMeter::new(false);
        m.connect_attempt(Duration::from_millis(1), true);
        m.wrote(60);
        m.read(100);
        // handshake 60+60+52, data 160 + 2×52, ACKs 2×52, RST 52.
        assert_eq!(m.l3_bytes(), 172 + 264 + 104 + 52);
    }
}
