//! Statistics: a sample every period, logged and archived in the store, read back by every node
//! of the region at `GET /admin/stats`.

mod common;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Backend, RedisServer, Store, TestNode, unix_now};
use serde_json::{Value, json};

/// Samples every second.
const EVERY_SECOND: (&str, &str) = ("RELAYBOX__STATS__PERIOD", "1");

fn figure(report: &Value, name: &str) -> usize {
    let figures = report["figures"].as_array().unwrap();
    (figures.iter())
        .position(|f| f == name)
        .unwrap_or_else(|| panic!("no figure {name}"))
}

/// The sum over `node`'s rows of figure `name`'s AVERAGE (each row of the finest archive holds
/// one sample).
fn summed(report: &Value, node: &str, name: &str) -> f64 {
    let i = figure(report, name);
    let rows = report["nodes"][node]
        .as_array()
        .map_or(&[][..], |rows| rows);
    rows.iter().filter_map(|row| row["avg"][i].as_f64()).sum()
}

fn report(node: &TestNode, query: &str) -> Value {
    let (status, report) = node.get(&format!("/admin/stats?{query}"));
    assert_eq!(status, 200, "{report}");
    report
}

/// Waits until `check` holds for the report of `query`, for up to 10 s.
fn wait_for(node: &TestNode, query: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let report = report(node, query);
        if check(&report) {
            return report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {report}"
        );
        sleep(Duration::from_millis(200));
    }
}

const ME: &str = "localhost:3001/3001";

fn samples_count_what_the_node_did(backend: Backend) {
    let node = TestNode::start_with(backend, &[EVERY_SECOND]);
    for i in 0..7 {
        node.push(&["counted", "twice"], &format!("m{i}"), "H");
    }
    assert_eq!(node.pop("counted", "max=10&timeout=1").data.len(), 7);
    let since = unix_now() - 5;
    let fine = wait_for(
        &node,
        &format!("from={since}"),
        "the pushes archived",
        |r| summed(r, ME, "popped") >= 7.0,
    );
    assert_eq!(summed(&fine, ME, "provisioned"), 7.0);
    assert_eq!(summed(&fine, ME, "pushed"), 14.0, "two queues each");
    assert!(summed(&fine, ME, "answers_2xx") >= 8.0);
    assert_eq!(fine["period"], 1);
    assert_eq!(
        fine["resolution"],
        json!({"steps": 1, "seconds": 1, "rows": 720})
    );
    // The coarser archives gather the same samples: rows of 5 periods.
    let coarse = report(&node, &format!("resolution=5&from={since}"));
    let i = figure(&coarse, "pushed");
    let max: f64 = (coarse["nodes"][ME].as_array().unwrap().iter())
        .filter_map(|row| row["max"][i].as_f64())
        .fold(0.0, f64::max);
    assert!(max >= 1.0, "{coarse}");
    assert_eq!(coarse["resolution"]["seconds"], 5);
    // One log event a sample, with the figures.
    let sampled = node
        .log()
        .iter()
        .filter(|l| l.contains("relaybox::stats") && l.contains("\"pushed\""))
        .count();
    assert!(sampled >= 1, "no sample in the log");
}

fn bad_queries_are_refused(backend: Backend) {
    let node = TestNode::start_with(backend, &[EVERY_SECOND]);
    for (query, problem) in [
        (
            "resolution=7",
            "no archive has rows of 7 periods; there are: 1, 5, 60, 1440, 43200",
        ),
        ("from=20&to=10", "from (20) is after to (10)"),
        ("from=soon", "invalid from: expected a whole number"),
    ] {
        let (status, reply) = node.get(&format!("/admin/stats?{query}"));
        assert_eq!(
            (status, reply["errors"][0].as_str()),
            (400, Some(problem)),
            "{query}"
        );
    }
}

/// A node's history outlives the node: a node started again over the same store (the same data
/// directory, for the embedded one) sees its earlier rows, and the time it was down as missing.
fn history_survives_a_restart(backend: Backend) {
    let store = Store::start(backend);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let env = [
        EVERY_SECOND,
        ("RELAYBOX__NODE__DATA_DIR", data_dir.as_str()),
    ];
    let start = || store.node(&env);
    let first = start();
    first.push(&["before"], "m", "H");
    let since = unix_now() - 2;
    wait_for(&first, &format!("from={since}"), "the push archived", |r| {
        summed(r, ME, "pushed") >= 1.0
    });
    drop(first); // SIGKILL
    sleep(Duration::from_secs(3));
    let second = start();
    let restarted = unix_now();
    let report = wait_for(&second, &format!("from={since}"), "samples again", |r| {
        let rows = r["nodes"][ME].as_array().map_or(&[][..], |rows| rows);
        rows.iter()
            .any(|row| row["t"].as_i64() >= Some(restarted) && !row["avg"].is_null())
    });
    assert_eq!(
        summed(&report, ME, "pushed"),
        1.0,
        "the first node's push is still there"
    );
    let rows = report["nodes"][ME].as_array().unwrap();
    let known: Vec<bool> = rows.iter().map(|row| !row["avg"].is_null()).collect();
    let first_known = known.iter().position(|k| *k).unwrap();
    let last_known = known.iter().rposition(|k| *k).unwrap();
    assert!(
        known[first_known..last_known].contains(&false),
        "the seconds the node was down read as missing: {known:?}"
    );
}

/// Every node of a region reads every node's archives, and their totals.
#[test]
fn a_region_reads_every_node() {
    if common::skip_redis() {
        return;
    }
    let redis = RedisServer::start();
    let named = |server: &'static str| vec![EVERY_SECOND, ("RELAYBOX__NODE__SERVER", server)];
    let a = TestNode::on_redis(&[&redis], &named("node-a:80"));
    let b = TestNode::on_redis(&[&redis], &named("node-b:80"));
    a.push(&["qa"], "m", "H");
    b.push(&["qb"], "m", "H");
    b.push(&["qb"], "m", "H");
    let since = unix_now() - 2;
    let report = wait_for(&a, &format!("from={since}"), "both nodes archived", |r| {
        r["nodes"]["node-b:80/3001"].is_array()
            && summed(r, "node-a:80/3001", "pushed") >= 1.0
            && summed(r, "node-b:80/3001", "pushed") >= 2.0
    });
    let i = figure(&report, "pushed");
    let total: f64 = (report["total"].as_array().unwrap().iter())
        .filter_map(|row| row["avg"][i].as_f64())
        .sum();
    assert_eq!(total, 3.0);
    // One node's only, on request.
    let one = report_for(&b, since, "node-a:80/3001");
    assert_eq!(one["nodes"].as_object().unwrap().len(), 1);

    // A chart of the region, drawn by either node: both nodes' lines and the total.
    let svg = chart(&b, "pushed.1h.svg?size=S");
    let drawn = Chart::parse(&svg);
    assert_eq!(drawn.size, (307, 150));
    assert_eq!(drawn.title, "Messages pushed (1h)");
    assert_eq!(drawn.series, ["node-a:80/3001", "node-b:80/3001", "total"]);
    assert!(drawn.lines_drawn >= 3, "every series has a line: {svg}");
    assert!(svg.contains("messages/min"), "the unit is shown");
    // The whole set, as files named as the original's monitor named them.
    let out = tempfile::tempdir().unwrap();
    let published = Command::new(env!("CARGO_BIN_EXE_relaybox"))
        .args([
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml"),
        ])
        .args(["charts", "--out"])
        .arg(out.path())
        .env("RELAYBOX__STORE__BACKEND", "redis")
        .env("RELAYBOX__STORE__REDIS_SERVERS", redis.url())
        .env("RELAYBOX__STATS__PERIOD", "1")
        .output()
        .unwrap();
    assert!(published.status.success(), "{published:?}");
    let files = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(files, 18 * 9 * 3, "every type, period and size");
    let small = std::fs::read_to_string(out.path().join("cpu-max-s.6h.svg")).unwrap();
    let small = Chart::parse(&small);
    assert_eq!(small.size, (307, 150));
    assert_eq!(small.title, "CPU loading, peaks (6h)");
    assert!(small.series.contains(&"node-a:80/3001".to_owned()));
    let large = std::fs::read_to_string(out.path().join("bytes-l.1month.svg")).unwrap();
    assert_eq!(Chart::parse(&large).size, (897, 370));
}

fn chart(node: &TestNode, path: &str) -> String {
    let reply = node
        .client()
        .get(node.url(&format!("/admin/charts/{path}")))
        .send()
        .unwrap();
    assert_eq!(reply.status(), 200, "{path}");
    assert_eq!(
        reply.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
    reply.text().unwrap()
}

/// What a chart shows, read back from its SVG with an XML parser.
struct Chart {
    size: (u32, u32),
    title: String,
    /// The series' names, in the order drawn.
    series: Vec<String>,
    /// Series whose path draws something.
    lines_drawn: usize,
}

impl Chart {
    fn parse(svg: &str) -> Chart {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
        let root = doc.root_element();
        let number = |name| root.attribute(name).unwrap().parse().unwrap();
        let groups: Vec<_> = (root.descendants())
            .filter(|n| n.attribute("class") == Some("series"))
            .collect();
        Chart {
            size: (number("width"), number("height")),
            title: (root.children())
                .find(|n| n.has_tag_name("title"))
                .and_then(|n| n.text())
                .unwrap()
                .to_owned(),
            series: (groups.iter())
                .map(|g| g.attribute("data-name").unwrap().to_owned())
                .collect(),
            lines_drawn: (groups.iter())
                .filter(|g| {
                    g.children()
                        .any(|p| p.attribute("d").is_some_and(|d| d.starts_with('M')))
                })
                .count(),
        }
    }
}

fn bad_charts_are_refused(backend: Backend) {
    let node = TestNode::start_with(backend, &[EVERY_SECOND]);
    for (path, status, problem) in [
        ("cpux.1h.svg", 404, "no chart type \"cpux\""),
        ("cpu.2h.svg", 404, "no chart period \"2h\""),
        ("cpu.svg", 404, "charts are named <type>.<period>.svg"),
        (
            "cpu.1h.svg?size=XL",
            400,
            "invalid size \"XL\": expected S, M or L",
        ),
    ] {
        let (got, reply) = node.get(&format!("/admin/charts/{path}"));
        let message = reply["errors"][0].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path}: {reply}");
        assert!(message.contains(problem), "{path}: {message}");
    }
    // Before any sample: an empty chart that says so, not an error.
    let empty = Chart::parse(&chart(&node, "duration.1day.svg?size=L"));
    assert_eq!(empty.size, (897, 370));
    // A month is also `1m`, as rrdtool read it.
    assert!(chart(&node, "held-max.1m.svg").contains("(1month)"));
}

fn report_for(node: &TestNode, since: i64, name: &str) -> Value {
    report(node, &format!("from={since}&node={name}"))
}

/// The relay's figures: interactions, their durations, the bytes both ways, desktops waiting.
fn relays_are_counted(backend: Backend) {
    use common::relay::{FAST, app, desktop, reply};
    let mut env = FAST.to_vec();
    env.push(EVERY_SECOND);
    let node = TestNode::start_with(backend, &env);
    let desk = desktop(&node, "9191");
    let asking = app(&node, "9191", b"question".to_vec());
    let (id, request) = desk.join().unwrap();
    drop(request.bytes().unwrap());
    assert_eq!(
        reply(&node, "9191", &id, "200", b"answer!".to_vec()).status(),
        200
    );
    assert_eq!(asking.join().unwrap().text(), "answer!");
    let since = unix_now() - 10;
    let report = wait_for(&node, &format!("from={since}"), "the relay archived", |r| {
        summed(r, ME, "interactions_ended") >= 1.0
    });
    assert_eq!(summed(&report, ME, "interactions_started"), 1.0);
    assert_eq!(summed(&report, ME, "durations"), 1.0);
    assert_eq!(summed(&report, ME, "interactions_failed"), 0.0);
    assert_eq!(summed(&report, ME, "interactions_customers"), 1.0);
    assert_eq!(summed(&report, ME, "bytes_to_desktops"), 8.0);
    assert_eq!(summed(&report, ME, "bytes_to_apps"), 7.0);
    assert!(summed(&report, ME, "agents_waited") >= 1.0);
}

crate::every_store!(
    relays_are_counted,
    samples_count_what_the_node_did,
    bad_queries_are_refused,
    bad_charts_are_refused,
    history_survives_a_restart,
);
