//! Node-to-node handlers (`/hello`, `/connected`, `/find`, `/range`): other nodes call them
//! with the cluster secret; apps and desktops never do. Answers look like the relay's own.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::AppState;
use super::relay::{answer, failed, finish, redirect, unavailable};
use super::routes::RelayRoute;
use crate::cluster::{Cluster, Refusal};
use crate::relay::headers::{self, HOST, HOSTS, PORT, PRODUCT_UNIV_ID, SECRET};
use crate::relay::{Location, Relay};

pub async fn serve(state: &AppState, route: RelayRoute, req: &HttpRequest) -> HttpResponse {
    if let Some(refused) = refusal(&state.cluster, req) {
        return refused;
    }
    let relay = &state.relay;
    let result = match route {
        RelayRoute::Hello => hello(&state.cluster, req).await,
        RelayRoute::Connected => connected(state, req).await,
        RelayRoute::Find => find(relay, req).await,
        _ => unreachable!("only /hello, /connected and /find come here"),
    };
    result.unwrap_or_else(|missing| failed(StatusCode::BAD_REQUEST, &format!("missing {missing}")))
}

/// Whether the request carries the cluster secret.
pub(super) fn admit(cluster: &Cluster, req: &HttpRequest) -> Result<(), Refusal> {
    let given = headers::text(req.headers(), SECRET);
    cluster.admit(given.as_deref())
}

/// The `403` a node-to-node call without the cluster secret gets, if it has none.
pub(super) fn refusal(cluster: &Cluster, req: &HttpRequest) -> Option<HttpResponse> {
    (admit(cluster, req).err()).map(|refusal| failed(StatusCode::FORBIDDEN, &refusal.to_string()))
}

/// A header the call cannot do without (`shown`: its name as the protocol writes it, for the
/// error).
fn required(
    req: &HttpRequest,
    name: &'static str,
    shown: &'static str,
) -> Result<String, &'static str> {
    headers::text(req.headers(), name)
        .filter(|v| !v.is_empty())
        .ok_or(shown)
}

/// `/hello`: a node of another region (`X-IWP-Host`) greets; it hears the regions this one
/// knows.
async fn hello(cluster: &Cluster, req: &HttpRequest) -> Result<HttpResponse, &'static str> {
    let newcomer = required(req, HOST, "X-IWP-Host")?;
    Ok(match cluster.greeted_by(&newcomer).await {
        Ok(known) => {
            let mut builder = answer(StatusCode::OK);
            builder.insert_header((HOSTS, known.join(",")));
            finish(builder)
        }
        Err(e) => unavailable(e),
    })
}

/// `/connected`: a desktop is attached at `X-IWP-Host`/`X-IWP-Port`, in another region.
async fn connected(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, &'static str> {
    let customer = required(req, PRODUCT_UNIV_ID, "X-IWP-ProductUnivId")?;
    let holder = Location {
        host: required(req, HOST, "X-IWP-Host")?,
        port: required(req, PORT, "X-IWP-Port")?,
    };
    let recorded = async {
        state.relay.remember(&customer, &holder).await?;
        state.cluster.learn(&holder.host).await
    };
    Ok(match recorded.await {
        Ok(()) => finish(answer(StatusCode::OK)),
        Err(e) => unavailable(e),
    })
}

/// `/find`: where this region has the desktop attached, or an empty answer.
async fn find(relay: &Relay, req: &HttpRequest) -> Result<HttpResponse, &'static str> {
    let customer = required(req, PRODUCT_UNIV_ID, "X-IWP-ProductUnivId")?;
    Ok(match relay.locate_here(&customer).await {
        Ok(Some(location)) => redirect(&location),
        Ok(None) => finish(answer(StatusCode::OK)),
        Err(e) => unavailable(e),
    })
}
