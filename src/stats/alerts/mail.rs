//! Sending a letter over SMTP (lettre), as the settings say: plain, STARTTLS or TLS, with a
//! login if one is set. Proper mail: From, To, Date, Message-ID, a UTF-8 plain-text body after
//! a blank line.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::letters::Letter;
use crate::config::{AlertSettings, MailTls};

/// How long one mail may take to hand over, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot set up mail to {server}: {reason}")]
    Setup { server: String, reason: String },
    #[error("cannot write the mail: {0}")]
    Compose(String),
    #[error("mail server {server} did not take the mail: {reason}")]
    Send { server: String, reason: String },
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    pub fn new(settings: &AlertSettings) -> Result<Self, MailError> {
        let (host, port) = settings.server();
        let server = format!("{host}:{port}");
        let setup = |reason: String| MailError::Setup {
            server: server.clone(),
            reason,
        };
        let tls = |settings: &AlertSettings| -> Result<TlsParameters, MailError> {
            let mut parameters = TlsParameters::builder(host.to_owned());
            if let Some(ca) = &settings.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| setup(format!("alerts.ca_file {}: {e}", ca.display())))?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| setup(format!("alerts.ca_file {}: {e}", ca.display())))?;
                parameters = parameters.add_root_certificate(certificate);
            }
            parameters.build_rustls().map_err(|e| setup(e.to_string()))
        };
        let tls = match settings.tls {
            MailTls::None => Tls::None,
            MailTls::Starttls => Tls::Required(tls(settings)?),
            MailTls::Tls => Tls::Wrapper(tls(settings)?),
        };
        // "Dangerous" only in that it starts without TLS: the line above sets what the
        // settings ask for.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(tls);
        let mut builder = builder.port(port).timeout(Some(SEND_TIMEOUT));
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let address = |text: &str| {
            text.parse::<lettre::Address>()
                .map_err(|e| MailError::Compose(format!("{text:?}: {e}")))
        };
        Ok(Mailer {
            transport: builder.build(),
            from: Mailbox::new(Some("relaybox".to_owned()), address(&settings.sender)?),
            to: (settings.receivers.iter())
                .map(|r| address(r).map(|a| Mailbox::new(None, a)))
                .collect::<Result<_, _>>()?,
            server,
        })
    }

    /// Sends `letter` to every receiver.
    pub async fn send(&self, letter: &Letter) -> Result<(), MailError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(&letter.subject)
            .date_now()
            .message_id(None)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(letter.body.clone())
            .map_err(|e| MailError::Compose(e.to_string()))?;
        let sent = tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await;
        let reason = match sent {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
        };
        Err(MailError::Send {
            server: self.server.clone(),
            reason,
        })
    }
}
