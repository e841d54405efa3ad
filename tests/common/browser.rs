//! A real headless browser for the dashboard's tests: Debian's `chromium` (which `tools/test`
//! installs), driven over the Chrome DevTools Protocol on a WebSocket. It keeps every console
//! error, uncaught exception and failed load the page reports, and evaluates JavaScript in the
//! page to read what it shows. Killed when the handle is dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

pub struct Browser {
    child: Child,
    page: WebSocket<TcpStream>,
    _profile: tempfile::TempDir,
    next_id: u64,
    /// Console errors, exceptions and failed loads, as the page reported them.
    pub errors: Vec<String>,
}

impl Browser {
    pub fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium, which tools/test installs (apt-get install chromium)");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut endpoint = None;
        for line in stderr.lines() {
            let line = line.unwrap();
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                endpoint = Some(url.trim().to_owned());
                break;
            }
        }
        let endpoint = endpoint.expect("chromium says where its DevTools listen");
        let http = endpoint
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let targets: Value = reqwest::blocking::get(format!("http://{http}/json/list"))
            .unwrap()
            .json()
            .unwrap();
        let page = (targets.as_array().unwrap().iter())
            .find(|t| t["type"] == "page")
            .expect("the blank page");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let stream = TcpStream::connect(&http).unwrap();
        let (page, _) = tungstenite::client(url, stream).unwrap();
        page.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut browser = Browser {
            child,
            page,
            _profile: profile,
            next_id: 0,
            errors: Vec::new(),
        };
        for domain in [
            "Runtime.enable",
            "Log.enable",
            "Page.enable",
            "Network.enable",
        ] {
            browser.call(domain, json!({}));
        }
        browser
    }

    /// Calls `method` and waits for its result, noting the events that come meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({"id": id, "method": method, "params": params}).to_string();
        self.page.send(Message::text(call)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "{method}: no answer");
            let Some(message) = self.receive() else {
                continue;
            };
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
        }
    }

    /// The next message, if one comes within the read timeout; events are noted on the way.
    fn receive(&mut self) -> Option<Value> {
        let text = match self.page.read() {
            Ok(Message::Text(text)) => text,
            Ok(_) => return None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(e) => panic!("the browser's connection: {e}"),
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        self.note(&message);
        Some(message)
    }

    fn note(&mut self, message: &Value) {
        let params = &message["params"];
        let error = match message["method"].as_str() {
            Some("Runtime.exceptionThrown") => Some(params["exceptionDetails"].to_string()),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                Some(params["args"].to_string())
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                Some(params["entry"]["text"].to_string())
            }
            Some("Network.loadingFailed") => Some(params.to_string()),
            _ => None,
        };
        self.errors.extend(error);
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("the page to load", |b| {
            b.eval("document.readyState") == json!("complete")
        });
    }

    /// The value of a JavaScript expression in the page (awaited if it is a promise).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits (up to 15 s) until `check` holds, letting the page's events in meanwhile.
    pub fn wait_for(&mut self, what: &str, check: impl Fn(&mut Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !check(self) {
            assert!(Instant::now() < deadline, "waited for {what}");
            self.receive();
        }
    }

    /// The text of the element with id `id`.
    pub fn text(&mut self, id: &str) -> String {
        let value = self.eval(&format!("document.getElementById({id:?})?.textContent"));
        value.as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
