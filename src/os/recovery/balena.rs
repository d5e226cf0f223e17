//! The reboot through the balena supervisor, inside a balena container: `POST /v1/reboot` on
//! `BALENA_SUPERVISOR_ADDRESS` with `BALENA_SUPERVISOR_API_KEY` (the supervisor reboots the
//! device cleanly, stopping the containers first). Plain HTTP/1.1 over TCP, as the supervisor
//! listens on the host's loopback-like bridge address.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use netfailover_actors::ports::ActionOutcome;
use tokio::net::TcpStream;
use url::Url;

/// Longest the supervisor may take to answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The supervisor's API, as a balena container's environment names it.
#[derive(Clone, Debug)]
pub struct BalenaSupervisor {
    pub address: String,
    pub api_key: String,
}

/// The supervisor when both variables are set (inside a balena container).
pub fn supervisor_from_env() -> Option<BalenaSupervisor> {
    let address = std::env::var("BALENA_SUPERVISOR_ADDRESS").ok()?;
    let api_key = std::env::var("BALENA_SUPERVISOR_API_KEY").ok()?;
    (!address.is_empty() && !api_key.is_empty()).then_some(BalenaSupervisor { address, api_key })
}

impl BalenaSupervisor {
    /// `POST /v1/reboot?apikey=…`; a 2xx answer (202 Accepted) is done.
    pub async fn reboot(&self) -> ActionOutcome {
        match tokio::time::timeout(TIMEOUT, self.post("/v1/reboot")).await {
            Err(_) => ActionOutcome::Failed(format!(
                "the balena supervisor did not answer in {} s",
                TIMEOUT.as_secs()
            )),
            Ok(Err(e)) => ActionOutcome::Failed(format!("balena supervisor: {e}")),
            Ok(Ok(status)) if (200..300).contains(&status) => ActionOutcome::Done,
            Ok(Ok(status)) => {
                ActionOutcome::Failed(format!("the balena supervisor answered {status}"))
            }
        }
    }

    async fn post(&self, path: &str) -> Result<u16, String> {
        let url = Url::parse(&self.address).map_err(|e| format!("{}: {e}", self.address))?;
        if url.scheme() != "http" {
            return Err(format!("{}: only http is supported", self.address));
        }
        let host = url
            .host_str()
            .ok_or("no host in BALENA_SUPERVISOR_ADDRESS")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut target = url.join(path).map_err(|e| e.to_string())?;
        target
            .query_pairs_mut()
            .append_pair("apikey", &self.api_key);
        let query = target.query().map(|q| format!("?{q}")).unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let req = Request::post(format!("{}{query}", target.path()))
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{\"force\":false}")))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    }
}
