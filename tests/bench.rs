//! The load tool, `relaybox-bench`, run as its users run it: its figures are what issue notes
//! report, so it has to measure a real node and say plainly when it cannot reach one.

mod common;

use std::process::{Command, Output, Stdio};

use common::{Backend, TestNode, free_port};

fn bench_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relaybox-bench"));
    command.args(args);
    command
}

fn bench(args: &[&str]) -> Output {
    bench_command(args).output().expect("relaybox-bench runs")
}

#[test]
fn a_url_where_nothing_listens_is_one_clear_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = bench(&["--url", &url, "push", "--duration", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with(&format!("relaybox-bench: cannot connect to {url}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no figure without a node");
}

#[test]
fn push_measures_a_real_node() {
    let node = TestNode::start(Backend::Memory);
    let out = bench(&[
        "--url",
        &node.url(""),
        "push",
        "--connections",
        "4",
        "--duration",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let line = stdout.lines().next().unwrap_or_default();
    let rate: u64 = line
        .strip_prefix("push: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a push figure: {line}"));
    assert!(rate > 0, "{line}");
    assert!(line.contains(", 0 errors, "), "{line}");
    let requests: u64 = line
        .strip_suffix(" requests)")
        .and_then(|rest| rest.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count: {line}"));
    assert!(requests >= rate / 2, "{line}");
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let node = TestNode::start(Backend::Memory);
    let url = node.url("");
    let mut child = bench_command(&["--url", &url, "push", "--connections", "2"])
        .args(["--duration", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relaybox-bench runs");
    // The reader is gone before the first figure, as behind a `head` that has read enough.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("relaybox-bench ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
