//! Calls to other regions' nodes: each a `POST http://<server>/<path>` with an empty body and
//! the cluster secret, so that the region's front proxy picks one of its nodes.

use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;

use crate::model::IdRange;
use crate::model::Location;
use crate::model::iwp::{
    FORWARDED, HOST, HOSTS, PORT, PRODUCT_UNIV_ID, RANGE_FROM, RANGE_SIZE, RANGE_TO, REASON, SECRET,
};

/// Most node-to-node calls under way at once; more wait for a slot.
const CONCURRENT_CALLS: usize = 64;

/// Why a call to another region did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{server} is unreachable: {source}")]
    Unreachable {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{server} answered {status} ({reason})")]
    Refused {
        server: String,
        status: u16,
        reason: String,
    },
}

/// The node's client for node-to-node calls.
pub struct Peers {
    client: reqwest::Client,
    secret: String,
    /// This node, as it announces itself.
    here: Location,
    slots: Semaphore,
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Peers {
    pub fn new(secret: String, here: Location, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .build()
            .expect("the HTTP client builds with its defaults");
        Peers {
            client,
            secret,
            here,
            slots: Semaphore::new(CONCURRENT_CALLS),
        }
    }

    /// POSTs to `http://<server><path>` and returns the answer's headers if it was a 2xx.
    async fn post(
        &self,
        server: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<HeaderMap, CallError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut request = self
            .client
            .post(format!("http://{server}{path}"))
            .header(SECRET, &self.secret);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let unreachable = |source| CallError::Unreachable {
            server: server.to_owned(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let headers = response.headers().clone();
        // Read the (empty) body so that the connection can be used again.
        response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(CallError::Refused {
                server: server.to_owned(),
                status: status.as_u16(),
                reason: text(&headers, REASON)
                    .unwrap_or("no reason given")
                    .to_owned(),
            });
        }
        Ok(headers)
    }

    /// `/hello`: announces this node; returns the other regions `server` knows.
    pub async fn hello(&self, server: &str) -> Result<Vec<String>, CallError> {
        let here = &self.here;
        let answer = self
            .post(server, "/hello", &[(HOST, &here.host), (PORT, &here.port)])
            .await?;
        Ok(text(&answer, HOSTS)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// `/connected`: tells `server` that `customer`'s desktop is attached at `holder`.
    pub async fn connected(
        &self,
        server: &str,
        customer: &str,
        holder: &Location,
    ) -> Result<(), CallError> {
        let headers = [
            (PRODUCT_UNIV_ID, customer),
            (HOST, holder.host.as_str()),
            (PORT, holder.port.as_str()),
        ];
        self.post(server, "/connected", &headers).await.map(drop)
    }

    /// `/find`: where `server`'s region has `customer`'s desktop attached, if anywhere.
    pub async fn find(&self, server: &str, customer: &str) -> Result<Option<Location>, CallError> {
        let answer = self
            .post(server, "/find", &[(PRODUCT_UNIV_ID, customer)])
            .await?;
        Ok(match (text(&answer, HOST), text(&answer, PORT)) {
            (Some(host), Some(port)) if !host.is_empty() && !port.is_empty() => Some(Location {
                host: host.to_owned(),
                port: port.to_owned(),
            }),
            _ => None,
        })
    }

    /// `/range[/<port>]`: a block of up to `size` customer IDs from the range master's region.
    /// `forwarded`: this node passes on a call it got, and the callee must not pass it on again.
    pub async fn range(
        &self,
        server: &str,
        port: Option<&str>,
        size: u64,
        forwarded: bool,
    ) -> Result<IdRange, CallError> {
        let path = match port {
            Some(port) => format!("/range/{port}"),
            None => "/range".to_owned(),
        };
        let size = size.to_string();
        let here = &self.here;
        let mut headers = vec![(HOST, here.host.as_str()), (PORT, here.port.as_str())];
        headers.push((RANGE_SIZE, &size));
        if forwarded {
            headers.push((FORWARDED, "1"));
        }
        let answer = self.post(server, &path, &headers).await?;
        let bound = |name| text(&answer, name).and_then(|v| v.parse::<u64>().ok());
        match (bound(RANGE_FROM), bound(RANGE_TO)) {
            (Some(from), Some(to)) if 0 < from && from <= to => Ok(IdRange { from, to }),
            _ => Err(CallError::Refused {
                server: server.to_owned(),
                status: 200,
                reason: "no usable X-IWP-Range-From/To in the answer".to_owned(),
            }),
        }
    }
}
