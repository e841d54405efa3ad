//! A real SMTP server for the alert tests: aiosmtpd (Debian's `python3-aiosmtpd`, which
//! `tools/test` installs) on a free loopback port, keeping every mail it receives in a Maildir
//! that the tests read back. Killed when the handle is dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The interpreter Debian's `python3-aiosmtpd` is installed for (not a `python3` that a
/// version manager put first on the PATH).
const PYTHON: &str = "/usr/bin/python3";

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

/// One received mail.
#[derive(Debug, Clone)]
pub struct Mail {
    /// As received, line ends normalised to `\n`.
    pub raw: String,
    pub subject: String,
    /// The body, quoted-printable decoded.
    pub body: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.raw.split("\n\n").next().unwrap_or_default();
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

impl SmtpServer {
    pub fn start() -> Self {
        Self::start_on(super::free_port())
    }

    /// On `port` (e.g. one a node was already told about, to bring its mail server back).
    pub fn start_on(port: u16) -> Self {
        Self::launch(port, &[])
    }

    /// Speaking TLS with certificate `cert` and key `key`: after `STARTTLS` (which it then
    /// requires), or from the first byte (SMTPS).
    pub fn start_tls(starttls: bool, cert: &Path, key: &Path) -> Self {
        let (cert_flag, key_flag) = match starttls {
            true => ("--tlscert", "--tlskey"),
            false => ("--smtpscert", "--smtpskey"),
        };
        let args = [
            cert_flag,
            cert.to_str().unwrap(),
            key_flag,
            key.to_str().unwrap(),
        ];
        Self::launch(super::free_port(), &args)
    }

    fn launch(port: u16, args: &[&str]) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(args)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A path that does not exist yet: aiosmtpd makes the Maildir there.
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON} -m aiosmtpd does not start: {e}"));
        let server = SmtpServer {
            child,
            port,
            maildir,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "aiosmtpd did not listen on port {port}: is python3-aiosmtpd installed \
                 (tools/test installs it)?"
            );
            sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every mail received so far, in the order received.
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail/new")) else {
            return Vec::new();
        };
        // Maildir names carry a per-process counter: `<time>.M<µs>P<pid>Q<n>.<host>`.
        let order = |name: &str| -> u64 {
            let after = name.split('Q').nth(1).unwrap_or_default();
            after
                .split('.')
                .next()
                .unwrap_or_default()
                .parse()
                .unwrap_or(0)
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort_by_key(|path| order(&path.file_name().unwrap().to_string_lossy()));
        files
            .iter()
            .map(|path| parse(&std::fs::read_to_string(path).unwrap()))
            .collect()
    }

    /// Waits up to `limit` for the mails received to satisfy `check`; returns them.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[Mail]) -> bool,
    ) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let mails = self.mails();
            if check(&mails) {
                return mails;
            }
            let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
            assert!(
                started.elapsed() < limit,
                "{what}; mails so far: {subjects:?}"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (_, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut mail = Mail {
        subject: String::new(),
        body: decode_quoted_printable(body),
        raw: raw.clone(),
    };
    mail.subject = mail.header("Subject").unwrap_or_default().to_owned();
    mail
}

/// Quoted-printable (RFC 2045): `=` at a line's end joins it to the next; `=XX` is a byte.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'=' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
