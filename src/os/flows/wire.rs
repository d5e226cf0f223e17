//! A small blocking netlink request connection shared by the sock_diag and ctnetlink parts:
//! dumps (`NLM_F_DUMP` until `NLMSG_DONE`) and acknowledged requests (`NLM_F_ACK`), on a
//! `netlink-sys` socket with a receive timeout, so a silent kernel can never hang a caller.
//!
//! Blocking on purpose: a flow reset or a socket sample is a burst of request/ack round trips
//! that runs on a blocking thread (`spawn_blocking`), and the socket belongs to the network
//! namespace of the thread that opened it (the namespace tests open it inside one).

use std::fmt::Debug;
use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// Longest wait for one datagram from the kernel.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// Receive buffer: dumps come in datagrams of up to 32 KiB; requests get one small ack.
const BUF_LEN: usize = 256 * 1024;

/// Upper bound of datagrams read for one dump (each holds many entries): a runaway dump ends.
const MAX_DATAGRAMS: usize = 1_000_000;

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed (including the receive timeout).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The kernel answered with this errno (positive, e.g. `libc::EOPNOTSUPP`).
    #[error("{}", io::Error::from_raw_os_error(*.0))]
    Errno(i32),
    /// A message that does not parse.
    #[error("undecodable netlink message: {0}")]
    Decode(String),
}

/// One blocking request socket for a netlink protocol (`NETLINK_SOCK_DIAG`, ...).
pub struct Conn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Conn {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open(protocol: isize) -> io::Result<Self> {
        Self::open_with(protocol, BUF_LEN)
    }

    /// [`Conn::open`] with a receive buffer of `buf_len` bytes, for a caller whose answers are
    /// small (one link, one interface's addresses): a datagram longer than that fails to decode.
    pub fn open_with(protocol: isize, buf_len: usize) -> io::Result<Self> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let timeout = TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &timeout).map_err(io::Error::from)?;
        Ok(Self {
            sock,
            seq: 0,
            buf: Vec::with_capacity(buf_len),
        })
    }

    /// The socket, for options only its user knows of (`NETLINK_GET_STRICT_CHK`).
    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    fn send<T: NetlinkSerializable + Debug>(&mut self, msg: T, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.sock.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads datagrams and hands every message of sequence `seq` to `each` until it returns
    /// `false` (done). Messages of other sequences (late acks) are skipped.
    fn read<T: NetlinkDeserializable + Debug>(
        &mut self,
        seq: u32,
        mut each: impl FnMut(NetlinkPayload<T>) -> Result<bool, WireError>,
    ) -> Result<(), WireError> {
        for _ in 0..MAX_DATAGRAMS {
            self.buf.clear();
            let n = self.sock.recv(&mut self.buf, 0)?;
            let datagram = &self.buf[..n.min(self.buf.len())];
            let mut offset = 0;
            while offset < datagram.len() {
                let rest = &datagram[offset..];
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| WireError::Decode(e.to_string()))?
                    .length() as usize;
                let Some(bytes) = rest.get(..len).filter(|_| len > 0) else {
                    return Err(WireError::Decode(format!("bad message length {len}")));
                };
                offset += (len + 3) & !3;
                let msg = NetlinkMessage::<T>::deserialize(bytes)
                    .map_err(|e| WireError::Decode(e.to_string()))?;
                if msg.header.sequence_number != seq {
                    continue;
                }
                if !each(msg.payload)? {
                    return Ok(());
                }
            }
        }
        Err(WireError::Decode("the kernel never ended the dump".into()))
    }

    /// Sends a dump request and calls `each` for every entry until `NLMSG_DONE`.
    pub fn dump<T: NetlinkSerializable + NetlinkDeserializable + Debug>(
        &mut self,
        request: T,
        mut each: impl FnMut(T),
    ) -> Result<(), WireError> {
        let seq = self.send(request, NLM_F_DUMP)?;
        self.read::<T>(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(m) => {
                each(m);
                Ok(true)
            }
            NetlinkPayload::Done(d) if d.code < 0 => Err(WireError::Errno(-d.code)),
            NetlinkPayload::Done(_) => Ok(false),
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(WireError::Errno(-code.get())),
                None => Ok(false),
            },
            _ => Ok(true),
        })
    }

    /// Sends a request the kernel answers with one message (an `RTM_GETLINK` for one link)
    /// and returns that message.
    pub fn get<T: NetlinkSerializable + NetlinkDeserializable + Debug>(
        &mut self,
        request: T,
    ) -> Result<T, WireError> {
        let seq = self.send(request, 0)?;
        let mut answer = None;
        self.read::<T>(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(m) => {
                answer = Some(m);
                Ok(false)
            }
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(WireError::Errno(-code.get())),
                None => Ok(false),
            },
            NetlinkPayload::Done(_) => Ok(false),
            _ => Ok(true),
        })?;
        answer.ok_or_else(|| WireError::Decode("no answer".into()))
    }

    /// Sends a request and waits for its acknowledgement.
    pub fn request<T: NetlinkSerializable + NetlinkDeserializable + Debug>(
        &mut self,
        request: T,
    ) -> Result<(), WireError> {
        self.request_with(request, 0)
    }

    /// [`Conn::request`] with more header flags (`NLM_F_CREATE`, ...).
    pub fn request_with<T: NetlinkSerializable + NetlinkDeserializable + Debug>(
        &mut self,
        request: T,
        flags: u16,
    ) -> Result<(), WireError> {
        let seq = self.send(request, NLM_F_ACK | flags)?;
        self.read::<T>(seq, |payload| match payload {
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(WireError::Errno(-code.get())),
                None => Ok(false),
            },
            _ => Ok(true),
        })
    }
}
