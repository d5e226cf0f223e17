//! One HTTP(S) exchange over a fresh socket bound to the interface: connect with its own
//! timeout, TLS when the URI says https, a single HTTP/1.1 GET, and only as much of the body as
//! the classification needs (never more than 64 KiB). The connection is dropped afterwards: no
//! reuse between checks, so every check really leaves through the interface it names.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderValue, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use netfailover_actors::model::IfaceName;
use netfailover_actors::ports::Verdict;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use super::classify::{self, BodyPrefix, Head, BODY_CAP, ONLINE_HEADER};
use super::wire::{self, TcpMeter};
use super::{is_unreachable, CheckFailure, ConnectStep};

/// What the check asks for, from the check URI.
#[derive(Debug, Clone)]
pub struct GetRequest {
    /// `Host:` header value (the URI's authority).
    pub authority: HeaderValue,
    pub path_and_query: String,
}

/// Opens a TCP connection to `addr` through `iface` only, from `source` (the interface's own
/// address, so strict reverse-path filtering upstream accepts it).
pub async fn connect(
    iface: &IfaceName,
    source: IpAddr,
    addr: SocketAddr,
    connect_timeout: Duration,
    meter: &TcpMeter,
) -> Result<TcpStream, CheckFailure> {
    let socket = bound_socket(iface, source, addr)?;
    let started = Instant::now();
    let result = tokio::time::timeout(connect_timeout, socket.connect(addr)).await;
    meter.connect_attempt(started.elapsed(), matches!(result, Ok(Ok(_))));
    match result {
        Ok(Ok(stream)) => {
            // Abortive close: one RST when the check drops the connection instead of the
            // FIN, FIN-ACK, ACK exchange (about 100 B per check on a metered uplink) and no
            // TIME_WAIT left behind. The answer has been read by then.
            let _ = stream.set_zero_linger();
            // The kernel went back to quick ACKs on the SYN-ACK (at a connection's start it
            // ACKs every segment at once); delayed again, the ACK of the server's first answer
            // (ServerHello flight) rides on our next flight instead of leaving alone, and
            // `CountingStream` decides when one leaves alone (wire.rs).
            wire::delay_acks(&stream);
            Ok(stream)
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(CheckFailure::Refused { addr })
        }
        Ok(Err(error)) if is_unreachable(&error) => Err(CheckFailure::Unreachable {
            iface: iface.clone(),
            addr,
            error,
        }),
        Ok(Err(error)) => Err(CheckFailure::Connect {
            addr,
            step: ConnectStep::Connect,
            error,
        }),
        Err(_) => Err(CheckFailure::ConnectTimeout {
            addr,
            after: connect_timeout,
        }),
    }
}

/// A TCP socket on `iface` (SO_BINDTODEVICE) from `source`, ready to connect to `addr`: no Nagle,
/// delayed ACKs.
fn bound_socket(
    iface: &IfaceName,
    source: IpAddr,
    addr: SocketAddr,
) -> Result<TcpSocket, CheckFailure> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(|error| CheckFailure::Connect {
        addr,
        step: ConnectStep::Socket,
        error,
    })?;
    socket
        .bind_device(Some(iface.as_str().as_bytes()))
        .map_err(|e| {
            // SO_BINDTODEVICE names the device itself: ENODEV means it vanished after the
            // local check (a local fact, not a network answer).
            if e.raw_os_error() == Some(libc::ENODEV) {
                CheckFailure::Missing {
                    iface: iface.clone(),
                }
            } else {
                CheckFailure::Connect {
                    addr,
                    step: ConnectStep::BindDevice(iface.clone()),
                    error: e,
                }
            }
        })?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|error| CheckFailure::Connect {
            addr,
            step: ConnectStep::BindAddress(source),
            error,
        })?;
    // The request fits one segment; send it without waiting for Nagle.
    let _ = socket.set_nodelay(true);
    // Delayed ACKs from the start: the kernel then holds the ACK of the SYN-ACK back instead of
    // sending it alone, and the first data written right after the connect (the ClientHello,
    // or a plain HTTP request) carries it: one packet fewer per check.
    wire::delay_acks(&socket);
    Ok(socket)
}

/// TLS on top of `stream`, verified for `server_name`.
pub async fn tls<S>(
    connector: &TlsConnector,
    server_name: ServerName<'static>,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, CheckFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    connector.connect(server_name, stream).await.map_err(|e| {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(why)) => {
                CheckFailure::Tls(format!("invalid certificate ({why:?})"))
            }
            Some(other) => CheckFailure::Tls(other.to_string()),
            None => CheckFailure::Tls(e.to_string()),
        }
    })
}

/// Sends the GET over `io` and classifies the answer.
pub async fn exchange<S>(
    io: S,
    request: &GetRequest,
    expected: &[u8],
) -> Result<(Verdict, String), CheckFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::client::conn::http1::Builder::new();
    // Bounds what hyper buffers from the server: headers and body chunks alike.
    builder.max_buf_size(BODY_CAP);
    let (mut sender, conn) = builder
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(http_failure)?;
    let req = Request::get(request.path_and_query.as_str())
        .header(HOST, request.authority.clone())
        .body(Empty::new())
        .map_err(|e| CheckFailure::Http(e.to_string()))?;

    let ask = async move {
        let response = sender.send_request(req).await.map_err(http_failure)?;
        let head = Head {
            status: response.status().as_u16(),
            online_header: response
                .headers()
                .get(ONLINE_HEADER)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"online")),
        };
        let body = match classify::body_needed(head, expected) {
            None => None,
            Some(needed) => Some(read_prefix(response.into_body(), needed).await?),
        };
        Ok(classify::classify(head, expected, body.as_ref()))
    };
    // The connection future does the socket I/O; the request future waits on it. When the
    // connection ends first (server closed), what it already delivered still completes `ask`.
    let mut ask = std::pin::pin!(ask);
    let mut conn = std::pin::pin!(conn);
    let mut conn_done = false;
    loop {
        tokio::select! {
            result = &mut ask => return result,
            ended = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = ended {
                    return Err(http_failure(e));
                }
            }
        }
    }
}

/// Reads at most `needed` bytes of the body (never more than [`BODY_CAP`]).
async fn read_prefix(
    mut body: hyper::body::Incoming,
    needed: usize,
) -> Result<BodyPrefix, CheckFailure> {
    let needed = needed.min(BODY_CAP);
    let mut prefix = BodyPrefix::default();
    while prefix.bytes.len() < needed {
        match body.frame().await {
            None => {
                prefix.complete = true;
                break;
            }
            Some(Err(e)) => return Err(http_failure(e)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let take = (needed - prefix.bytes.len()).min(data.len());
                    prefix.bytes.extend_from_slice(&data[..take]);
                }
            }
        }
    }
    if !prefix.complete && hyper::body::Body::is_end_stream(&body) {
        prefix.complete = true;
    }
    Ok(prefix)
}

fn http_failure(e: hyper::Error) -> CheckFailure {
    use std::error::Error as _;
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    let what = match io {
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_string(),
        _ if e.is_incomplete_message() => "connection closed before a complete answer".into(),
        _ if e.is_parse() => format!("invalid answer ({e})"),
        _ => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    CheckFailure::Http(what)
}
