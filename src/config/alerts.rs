//! `[alerts]`: where alert mails go and when a node counts as overloaded. Absent: no mail.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// Plain SMTP, as the original sent its mails.
    #[default]
    None,
    /// Plain, then upgraded with `STARTTLS` (required).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// E-mail alerts (see `alerts`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// The mail server, `host` or `host:port` (port 25, or 465 with `tls = "tls"`).
    pub smtp: String,
    #[serde(default)]
    pub tls: MailTls,
    /// A PEM certificate to trust besides the system's roots, for a mail server whose
    /// certificate a private CA signed (with `tls` other than `none`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP login, if the server wants one (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// The mails' From.
    pub sender: String,
    pub receivers: Vec<String>,
    /// A node is over when its CPU use passes this share of one core.
    #[serde(default = "default_over")]
    pub over: f64,
    /// The region is overloaded when at least this share of its nodes is over.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Seconds before the same alert is mailed again.
    #[serde(default = "default_grace")]
    pub grace_period: u64,
}

fn default_over() -> f64 {
    0.9
}

fn default_threshold() -> f64 {
    0.25
}

fn default_grace() -> u64 {
    1800
}

impl AlertSettings {
    /// The mail server's host and port.
    pub fn server(&self) -> (&str, u16) {
        let default = match self.tls {
            MailTls::Tls => 465,
            MailTls::None | MailTls::Starttls => 25,
        };
        match self.smtp.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().unwrap_or(default)),
            None => (&self.smtp, default),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let port_ok = match self.smtp.rsplit_once(':') {
            Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
            None => !self.smtp.is_empty(),
        };
        check(port_ok, "alerts.smtp", "must be host or host:port")?;
        if let Some(ca) = &self.ca_file {
            check(
                self.tls != MailTls::None,
                "alerts.ca_file",
                "needs alerts.tls = \"starttls\" or \"tls\"",
            )?;
            check(
                ca.is_file(),
                "alerts.ca_file",
                format!("{} is not a readable file", ca.display()),
            )?;
        }
        check(
            self.user.is_some() == self.password.is_some(),
            "alerts.user",
            "and alerts.password go together",
        )?;
        check(
            is_address(&self.sender),
            "alerts.sender",
            format!("{:?} is not an e-mail address", self.sender),
        )?;
        check(
            !self.receivers.is_empty(),
            "alerts.receivers",
            "must name at least one address",
        )?;
        for receiver in &self.receivers {
            check(
                is_address(receiver),
                "alerts.receivers",
                format!("{receiver:?} is not an e-mail address"),
            )?;
        }
        check(
            self.over > 0.0 && self.over.is_finite(),
            "alerts.over",
            "must be a share of one core above 0 (0.9 is 90 %)",
        )?;
        check(
            self.threshold > 0.0 && self.threshold <= 1.0,
            "alerts.threshold",
            "must be a share of the region's nodes, above 0 and at most 1",
        )?;
        check(
            (1..=30 * 24 * 3600).contains(&self.grace_period),
            "alerts.grace_period",
            "must be from 1 second to 30 days",
        )
    }
}

/// Whether `text` parses as a mail address (what the mail library will accept).
fn is_address(text: &str) -> bool {
    text.parse::<lettre::Address>().is_ok()
}
