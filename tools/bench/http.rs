//! A minimal HTTP/1.1 keep-alive client: exactly what the benchmarks need and no more, so the
//! load generator costs as little CPU as possible next to the node it measures.

use std::io::{self, Write};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The header of the inbox API's request bodies.
pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// The largest body sent in one write with its head.
const SMALL_BODY: usize = 64 * 1024;

pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
    line: String,
    /// The request being sent, reused from one request to the next.
    out: Vec<u8>,
    /// Where bodies go when they are read only to be counted (see [`Conn::discarding`]).
    scratch: Option<Vec<u8>>,
}

/// One answer: its status, headers (names lower-cased) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Empty when the connection discards bodies.
    pub body: Vec<u8>,
    /// The body's length.
    pub length: usize,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Conn {
    pub async fn open(host: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            host: host.to_owned(),
            line: String::new(),
            out: Vec::new(),
            scratch: None,
        })
    }

    /// Reads answers' bodies through one reused buffer and keeps only their length, so that
    /// measuring large bodies costs the load generator no allocation per answer.
    pub fn discarding(mut self) -> Self {
        self.scratch = Some(vec![0; 64 * 1024]);
        self
    }

    /// Sends a request without waiting for the answer (for held long-polls). A small body goes
    /// in the same write as the head, as most clients send it: written apart, they make the
    /// node read twice per request, which the benchmark would count against the node. A large
    /// one is written on its own rather than copied.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
            self.host
        )?;
        for (name, value) in headers {
            write!(self.out, "{name}: {value}\r\n")?;
        }
        write!(self.out, "Content-Length: {}\r\n\r\n", body.len())?;
        let together = body.len() <= SMALL_BODY;
        if together {
            self.out.extend_from_slice(body);
        }
        let stream = self.stream.get_mut();
        stream.write_all(&self.out).await?;
        if !together {
            stream.write_all(body).await?;
        }
        Ok(())
    }

    /// Reads one answer (the node sends `Content-Length` on everything the benchmarks ask).
    pub async fn receive(&mut self) -> io::Result<Answer> {
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {:?}", self.line)))?;
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line).await?;
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.to_ascii_lowercase(), value.trim().to_owned());
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                } else if name == "transfer-encoding" {
                    return Err(invalid(format!("unexpected {name}: {value}")));
                }
                headers.push((name, value));
            }
        }
        let body = match self.scratch.as_mut() {
            Some(scratch) => {
                let mut left = length;
                while left > 0 {
                    let n = left.min(scratch.len());
                    self.stream.read_exact(&mut scratch[..n]).await?;
                    left -= n;
                }
                Vec::new()
            }
            None => {
                let mut body = vec![0; length];
                self.stream.read_exact(&mut body).await?;
                body
            }
        };
        Ok(Answer {
            status,
            headers,
            body,
            length,
        })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Answer> {
        self.send(method, path, headers, body).await?;
        self.receive().await
    }
}
