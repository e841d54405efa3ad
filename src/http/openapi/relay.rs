//! The device relay's operations (the My Notes protocol) and the calls between regions. The
//! node's own answers have an empty body and say what they have to say in `X-IWP-…` headers
//! (`X-IWP-Reason` on errors); relayed answers carry the other side's status, headers and
//! body, whatever they are.

use super::Op;

const CUSTOMER: &str = "X-IWP-ProductUnivId";

/// A relay call: POST, naming its customer, answered as the protocol answers.
fn call(id: &str, path: &str, summary: &'static str) -> Op {
    Op::post(id, path, summary)
        .header(CUSTOMER, true, "The customer (desktop) the call is about.")
        .bare("200", "Done; what there is to say is in the X-IWP headers.")
        .bare(
            "400",
            "A required X-IWP header is missing or wrong (X-IWP-Reason).",
        )
        .bare(
            "503",
            "The node or its store cannot serve now (X-IWP-Reason).",
        )
}

/// A call between regions: it carries the cluster's secret.
fn between_regions(id: &str, path: &str, summary: &'static str) -> Op {
    Op::post(id, path, summary)
        .header(
            "X-IWP-Secret",
            false,
            "The cluster's secret, when it has one.",
        )
        .header("X-IWP-Host", false, "The calling node (for /hello).")
        .bare("200", "Done; the answer is in the X-IWP headers.")
        .bare("400", "A required X-IWP header is missing (X-IWP-Reason).")
        .bare("403", "Without the cluster's secret.")
        .bare("503", "The node or its store cannot serve now.")
}

pub fn operations() -> Vec<Op> {
    vec![
        Op::post("relay_ping", "/ping", "Is the node there?").bare("200", "It is."),
        Op::get(
            "relay_not_post",
            "/ping",
            "Any method but POST on a relay path",
        )
        .bare(
            "405",
            "Only POST is served on the relay's paths (Allow: POST).",
        ),
        call(
            "relay_connect",
            "/connect",
            "A desktop attaches to this node",
        ),
        call(
            "relay_locate",
            "/client",
            "Where is the customer's desktop? (X-IWP-Host and X-IWP-Port, or none)",
        ),
        call(
            "relay_client",
            "/client/{instance}",
            "Relay an app's request to the desktop",
        )
        .any_body()
        .bare(
            "default",
            "The desktop's reply (its status, headers and body), or the relay's failure \
             (502, 503, 504 with X-IWP-Reason).",
        ),
        call("relay_agent", "/agent/{instance}", "A desktop's long poll")
            .bare("408", "The app's request stalled while it was relayed."),
        call(
            "relay_agent_reply",
            "/agentreply/{instance}",
            "A desktop's reply to an app's request",
        )
        .header("X-IWP-RequestId", true, "The request replied to.")
        .header("X-iwp-responsecode", false, "The status the app gets.")
        .any_body()
        .bare("408", "The reply's body stalled.")
        .bare("502", "The app went away."),
        Op::post(
            "get_universal_id",
            "/getuniversalid",
            "A new customer ID for a desktop",
        )
        .bare("200", "X-IWP-ProductUnivId holds it.")
        .bare("503", "No ID can be had now (X-IWP-Reason)."),
        between_regions("cluster_hello", "/hello", "A node of another region greets"),
        between_regions(
            "cluster_connected",
            "/connected",
            "Another region has a desktop attached",
        ),
        between_regions(
            "cluster_find",
            "/find",
            "Is a desktop attached in this region?",
        ),
        between_regions(
            "cluster_range",
            "/range",
            "A block of customer IDs for another node",
        )
        .header("X-IWP-Range-Size", false, "How many IDs."),
    ]
}
