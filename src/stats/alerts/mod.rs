//! E-mail alerts: the region down, overloaded, nodes silent or over, and each of those clearing
//! — checked every period by one node of the region ([`AlertWatch`]) from the archives every
//! node writes, and mailed with lettre. Nothing is sent without `[alerts]`.

mod letters;
mod mail;
pub mod rules;
mod watch;

use std::sync::Arc;

use actix::Actor;
use tracing::info;

pub use self::letters::Letter;
pub use self::mail::MailError;
use self::mail::Mailer;
pub use self::watch::AlertWatch;
use crate::config::{AlertSettings, Settings};
use crate::model::{unix_now, utc};
use crate::store::Store;

/// A node's alerting: its mail settings and how it names itself and its region.
#[derive(Clone)]
pub struct Alerts {
    settings: Arc<AlertSettings>,
    mailer: Arc<Mailer>,
    /// This node (`server/port`): the lease's holder.
    node: String,
    /// The region, by its public name (`node.server`), as the mails call it.
    region: String,
}

impl Alerts {
    /// The node's alerting, if `[alerts]` is set; fails when the mail transport cannot be set
    /// up (e.g. a TLS server name that is not one).
    pub fn from_settings(settings: &Settings) -> Result<Option<Alerts>, MailError> {
        let Some(alerts) = &settings.alerts else {
            return Ok(None);
        };
        Ok(Some(Alerts {
            mailer: Arc::new(Mailer::new(alerts)?),
            settings: Arc::new(alerts.clone()),
            node: crate::range::node_name(&settings.node.server, &settings.node.port),
            region: settings.node.server.clone(),
        }))
    }

    /// Starts checking the region's alerts (when this node holds the lease).
    pub fn watch(&self, settings: &Settings, store: Arc<dyn Store>) {
        AlertWatch::new(self.clone(), &settings.stats, store).start();
    }

    /// `relaybox watch`: starts checking the region's alerts from outside its nodes, as My
    /// Notes' monitor did from cron. It takes its turn at the lease like a node, and is what
    /// reports a region whose nodes are all gone.
    pub async fn watch_alone(settings: &Settings) -> Result<(), String> {
        let Some(mut alerts) = Alerts::from_settings(settings).map_err(|e| e.to_string())? else {
            return Err("nothing to watch: no [alerts] is configured".to_owned());
        };
        if !settings.store.backend.is_shared() {
            return Err(
                "nothing to watch from outside: the embedded store's statistics live inside its \
                 node (store.backend = \"redis\" is needed)"
                    .to_owned(),
            );
        }
        let store = crate::store::open(settings)
            .await
            .map_err(|e| e.to_string())?;
        alerts.node = format!("watch@{}", alerts.node);
        alerts.watch(settings, store);
        info!(region = %alerts.region, "watching the region's alerts");
        Ok(())
    }

    /// Mails a test letter to every receiver (`POST /admin/alerts/test`).
    pub async fn send_test(&self) -> Result<&[String], MailError> {
        let letter = Letter {
            subject: format!("relaybox region \"{}\": test alert", self.region),
            body: format!(
                "A test of the alert mails, asked for on node {} at {} (UTC).\n\n\
                 Alerts are checked every stats period by one node of the region and mailed \
                 to: {}.\n",
                self.node,
                utc(unix_now()),
                self.settings.receivers.join(", ")
            ),
        };
        self.mailer.send(&letter).await?;
        Ok(&self.settings.receivers)
    }
}
