//! Bytes on the wire: what one check costs at L3.
//!
//! Sockets are wrapped so every byte the probe really wrote or read is counted; the IP, TCP and
//! UDP headers the kernel adds are estimated per packet, because user space cannot see them.
//! The estimate (checked against veth counters in `tests/it/probe/`, see `docs/probe.md`):
//! - IP header: 20 B (IPv4) or 40 B (IPv6) per packet.
//! - TCP header: 32 B per segment (20 B plus the 12 B timestamp option Linux always sends), 40 B
//!   on SYN and SYN-ACK (MSS, SACK-permitted, timestamps, window scale).
//! - A connection costs SYN, SYN-ACK, and one RST when the probe drops it (the probe closes
//!   with SO_LINGER 0, see `http.rs`). The ACK of the SYN-ACK rides on the probe's first data
//!   (the socket delays ACKs, `http.rs`); only a connection the probe never writes to sends it
//!   alone.
//! - Payload is cut into segments of at most [`TCP_MSS`] bytes. The server acknowledges the
//!   probe's flights with one pure ACK per two segments, rounded up (Linux ACKs a connection's
//!   first data at once); the probe, whose ACKs are delayed and ride on its own data, sends one
//!   per two segments it reads, rounded down ([`CountingStream`]).
//! - UDP: 8 B header per datagram.
//! - A connect that never completes sent one SYN per kernel retransmission (1 s, 3 s, 7 s, ...).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nix::{setsockopt_impl, sockopt_impl};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest TCP payload per segment on a 1500 B Ethernet path with timestamps.
pub const TCP_MSS: u64 = 1448;
/// TCP header of an established-connection segment: 20 B + 12 B timestamp option.
pub const TCP_HEADER: u64 = 32;
/// TCP header of SYN and SYN-ACK: 20 B + 20 B of options.
pub const TCP_SYN_HEADER: u64 = 40;
/// UDP header.
pub const UDP_HEADER: u64 = 8;

sockopt_impl!(
    /// `TCP_QUICKACK` with Linux's values ([`delay_acks`], [`ack_now`]); nix has none.
    QuickAck,
    SetOnly,
    libc::IPPROTO_TCP,
    libc::TCP_QUICKACK,
    libc::c_int
);

/// Delays the socket's ACKs ("pingpong" mode, `TCP_QUICKACK` 0): an ACK waits up to the delayed
/// ACK timeout (40 ms and more) for data of ours to ride on. Set before the connect, the ACK of
/// the SYN-ACK rides on the first data written; the kernel goes back to quick ACKs on the
/// SYN-ACK, so it is set again once connected. Not permanent: [`ack_now`] keeps it, but the
/// kernel leaves it when its delayed-ACK timer fires.
pub fn delay_acks<F: std::os::fd::AsFd>(socket: &F) {
    let _ = nix::sys::socket::setsockopt(socket, QuickAck, &0);
}

/// Sends the ACK the kernel holds back, if any, and keeps ACKs delayed (`TCP_QUICKACK` 2: an
/// even value other than 0 acknowledges at once and stays in delayed mode; measured, 1 then 0
/// still had the kernel acknowledge the server's next segment alone).
pub fn ack_now<F: std::os::fd::AsFd>(socket: &F) {
    let _ = nix::sys::socket::setsockopt(socket, QuickAck, &2);
}

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
        // SYN(s) + SYN-ACK (+ our ACK alone if we never wrote), the data, the pure ACKs of
        // each side, and the RST.
        let lone_ack = if out == 0 { plain } else { 0 };
        let handshake = syns * syn + syn + lone_ack;
        let data = out + inn + (seg_out + seg_in) * plain;
        let acks = (seg_out.div_ceil(2) + seg_in / 2) * plain;
        let close = plain;
        handshake + data + acks + close
    }
}

/// Largest amount of written data [`CountingStream`] holds back before sending it anyway.
const HOLD_MAX: usize = 16 * 1024;

/// How long [`CountingStream`] waits, with data read and not acknowledged and nothing to send,
/// before it has the kernel acknowledge them alone ([`AckNow`]).
const ACK_AFTER: Duration = Duration::from_millis(10);

/// A socket whose held-back ACK the probe can send at once.
pub trait AckNow {
    /// Sends the ACK the kernel holds back, if any, and keeps later ACKs delayed.
    fn ack_now(&self);
}

impl AckNow for tokio::net::TcpStream {
    fn ack_now(&self) {
        ack_now(self);
    }
}

/// A stream that counts what passes through it into a [`TcpMeter`], and holds written data
/// back until the check waits for an answer: writes and flushes only queue, the next read
/// (or shutdown) sends everything queued in one `write`. A check always reads after it writes,
/// so nothing waits longer, while fewer TCP segments cross the uplink (docs/probe.md, "Bytes
/// on the wire"):
/// - the TLS client's ChangeCipherSpec and Finished leave together;
/// - with [`CountingStream::merge_request`], a TLS client's last handshake flight (TLS 1.3:
///   one ChangeCipherSpec record, then encrypted records only; a resumed TLS 1.2 handshake:
///   ChangeCipherSpec and the encrypted Finished) is held across the handshake's last read
///   too, until the HTTP request is written: flight and request in one segment.
///
/// It also decides when the probe's ACKs leave (the socket delays them, [`delay_acks`]): what
/// it reads is acknowledged by the next data it sends; only when it has waited [`ACK_AFTER`]
/// with data read and nothing to send does it have the kernel acknowledge them alone, because
/// a server with Nagle's algorithm holds its next small segment (the HTTP answer after its
/// session tickets) until then. The check drops the connection (one RST) as soon as it has
/// read the answer, so the answer itself is not acknowledged alone.
///
/// Data still queued when the stream is dropped are discarded: the check has ended by then.
#[derive(Debug)]
pub struct CountingStream<S> {
    inner: S,
    meter: Arc<TcpMeter>,
    held: Vec<u8>,
    merge: Merge,
    /// Data were read since the probe last sent anything: the kernel holds an ACK for them.
    unacked: bool,
    /// Runs while the probe waits with `unacked` data.
    ack_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Where [`CountingStream::merge_request`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    Off,
    /// Watching for a TLS client's last handshake flight.
    Armed,
    /// Holding that flight until the next write (the request).
    Holding,
}

impl<S> CountingStream<S> {
    pub fn new(inner: S, meter: Arc<TcpMeter>) -> Self {
        Self {
            inner,
            meter,
            held: Vec::new(),
            merge: Merge::Off,
            unacked: false,
            ack_timer: None,
        }
    }

    /// Sends a TLS client's last handshake flight with the first write after it (the caller
    /// writes the request right after the handshake: HTTPS checks).
    pub fn merge_request(mut self) -> Self {
        self.merge = Merge::Armed;
        self
    }
}

/// `held` is exactly a TLS client's last handshake flight as rustls writes it, after which
/// the handshake is complete and the client sends its request:
/// - TLS 1.3: the middlebox-compatibility ChangeCipherSpec record, then application-data
///   records (the encrypted Finished);
/// - TLS 1.2 resumed (abbreviated handshake: the server has sent its ChangeCipherSpec and
///   Finished first): ChangeCipherSpec, then one handshake record of an AEAD-encrypted
///   Finished, 40 B (AES-GCM: 8 B nonce, 16 B message, 16 B tag) or 32 B (ChaCha20-Poly1305).
///
/// A full TLS 1.2 handshake's flight (it starts with the ClientKeyExchange, and the server's
/// ChangeCipherSpec and Finished come after it) and a ClientHello retried after a TLS 1.3
/// HelloRetryRequest (ChangeCipherSpec, then a handshake record of at least 45 B) never match:
/// they wait for the server.
fn is_last_client_flight(held: &[u8]) -> bool {
    const CCS: [u8; 6] = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01];
    let Some(mut rest) = held.strip_prefix(&CCS) else {
        return false;
    };
    if let Some(&[0x16, 0x03, 0x03, 0x00, len]) = rest.get(..5) {
        return matches!(len, 32 | 40) && rest.len() == 5 + usize::from(len);
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(&[kind, _, _, hi, lo]) = rest.get(..5) else {
            return false;
        };
        if kind != 0x17 {
            return false;
        }
        match rest.get(5 + usize::from(u16::from_be_bytes([hi, lo]))..) {
            Some(next) => rest = next,
            None => return false,
        }
    }
    true
}

impl<S: AsyncWrite + Unpin> CountingStream<S> {
    /// Sends what is held back; `Pending` until all of it is written.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.meter.wrote(n);
            self.held.drain(..n);
            // The segment carries the ACK of everything read so far.
            self.unacked = false;
            self.ack_timer = None;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + AckNow + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.merge {
            Merge::Armed if is_last_client_flight(&self.held) => self.merge = Merge::Holding,
            Merge::Holding => {}
            _ => std::task::ready!(self.poll_send_held(cx))?,
        }
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                this.meter.read(n);
                if n > 0 {
                    this.unacked = true;
                    this.ack_timer = None;
                }
            }
            Poll::Pending if this.unacked => {
                let timer = this
                    .ack_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(ACK_AFTER)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.inner.ack_now();
                    this.unacked = false;
                    this.ack_timer = None;
                }
            }
            _ => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.merge == Merge::Holding {
            self.merge = Merge::Off;
        }
        if self.held.len() + buf.len() > HOLD_MAX {
            std::task::ready!(self.poll_send_held(cx))?;
        }
        let take = buf.len().min(HOLD_MAX);
        self.held.extend_from_slice(&buf[..take]);
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held until the next read (see the type's doc). The task is woken once more so a
        // caller whose read was already pending (hyper polls it before writing) reads, and
        // thereby sends, again.
        if !self.held.is_empty() {
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_held(cx))?;
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
    fn only_a_last_client_flight_is_held_for_the_request() {
        let ccs = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01];
        let record = |kind: u8, len: u16| {
            let mut r = vec![kind, 0x03, 0x03];
            r.extend_from_slice(&len.to_be_bytes());
            r.resize(5 + usize::from(len), 0xaa);
            r
        };
        let flight = |parts: &[Vec<u8>]| parts.concat();
        // TLS 1.3: ChangeCipherSpec, then the encrypted Finished; TLS 1.2 resumed:
        // ChangeCipherSpec, then the encrypted Finished (AES-GCM, ChaCha20-Poly1305).
        for held in [
            flight(&[ccs.to_vec(), record(0x17, 53)]),
            flight(&[ccs.to_vec(), record(0x16, 40)]),
            flight(&[ccs.to_vec(), record(0x16, 32)]),
        ] {
            assert!(is_last_client_flight(&held), "{held:?}");
        }
        // A full TLS 1.2 flight, a retried ClientHello, a TLS 1.2 Finished with more after it,
        // a lone CCS, a cut record: sent at once.
        for held in [
            flight(&[record(0x16, 37), ccs.to_vec(), record(0x16, 40)]),
            flight(&[ccs.to_vec(), record(0x16, 200)]),
            flight(&[ccs.to_vec(), record(0x16, 40), record(0x17, 30)]),
            flight(&[ccs.to_vec(), record(0x16, 40)])[..30].to_vec(),
            ccs.to_vec(),
            flight(&[ccs.to_vec(), record(0x17, 53)])[..40].to_vec(),
            Vec::new(),
        ] {
            assert!(!is_last_client_flight(&held), "{held:?}");
        }
    }

    #[test]
    fn a_small_http_exchange_costs_what_the_model_says() {
        let m = TcpMeter::new(false);
        m.connect_attempt(Duration::from_millis(1), true);
        m.wrote(60);
        m.read(100);
        // SYN, SYN-ACK (our ACK rides on the request) 60+60, data 160 + 2×52, the server's ACK
        // of the request 52 (the answer is not acknowledged alone), RST 52.
        assert_eq!(m.l3_bytes(), 120 + 264 + 52 + 52);
        // Connected, nothing written: the ACK of the SYN-ACK leaves alone.
        let m = TcpMeter::new(false);
        m.connect_attempt(Duration::from_millis(1), true);
        assert_eq!(m.l3_bytes(), 172 + 52);
    }
}
