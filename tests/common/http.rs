//! A minimal HTTP/1.1 client over `TcpStream` (for `otclip serve` and for WebDriver), and the
//! `otclip serve` child process the tests talk to. Loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One response: status, headers (lower-cased names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `method target` with an optional JSON body and reads the whole reply (the connection
/// is closed by the server after it).
pub fn request(address: SocketAddr, method: &str, target: &str, body: Option<&serde_json::Value>) -> Reply {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(payload.as_bytes()).unwrap();
    // Read until the body is whole: some servers (chromedriver) keep the connection open.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                Some(length) => raw.len() >= split + 4 + length,
                None => head.contains("chunked") && raw.ends_with(b"0\r\n\r\n"),
            };
            if done {
                break;
            }
        }
        let read = stream.read(&mut buffer).unwrap();
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a reply with headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status line");
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

/// `otclip serve` on a free port; killed when dropped.
pub struct Served {
    pub child: Child,
    pub address: SocketAddr,
}

impl Served {
    pub fn start(index: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otclip"))
            .args(["serve", "--index", index.to_str().unwrap(), "--port", "0"])
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("otclip serve printed {line:?}, not its address"));
        Self { child, address }
    }

    pub fn get(&self, target: &str) -> Reply {
        request(self.address, "GET", target, None)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session on a local chromedriver, with headless Chromium.
pub struct Browser {
    driver: Child,
    address: SocketAddr,
    session: String,
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts `chromedriver` (and through it headless `chromium`); `None` when either is missing.
    pub fn start(chromedriver: &std::path::Path, chromium: &std::path::Path) -> Option<Self> {
        let port = super::free_ports(1)[0];
        let driver = Command::new(chromedriver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = std::time::Instant::now();
        while TcpStream::connect(address).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not listen on {address}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium.to_str().unwrap(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,760", "--lang=vi"]
        }}}});
        let mut browser = Self { driver, address, session: String::new() };
        let reply = browser.call("POST", "/session", Some(capabilities));
        browser.session = reply["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {reply}")).to_string();
        Some(browser)
    }

    /// One WebDriver command; its `value`.
    pub fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let body = body.or_else(|| (method == "POST").then(|| serde_json::json!({})));
        let reply = request(self.address, method, path, body.as_ref());
        let json = reply.json();
        assert!(reply.status == 200, "WebDriver {method} {path}: {} {json}", reply.status);
        json["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn open(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), Some(serde_json::json!({ "url": url })));
    }

    /// The elements matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.call("POST", &self.session_path("/elements"), Some(serde_json::json!({"using": "css selector", "value": css})));
        let elements = found.as_array().unwrap_or_else(|| panic!("WebDriver found {found} for {css}"));
        elements.iter().map(|e| e[ELEMENT].as_str().unwrap_or_else(|| panic!("not an element: {e}")).to_string()).collect()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find_all(css).pop().unwrap_or_else(|| panic!("no element {css}"));
        self.call("POST", &self.session_path(&format!("/element/{element}/clear")), None);
        self.call("POST", &self.session_path(&format!("/element/{element}/value")), Some(serde_json::json!({ "text": text })));
    }

    pub fn click(&self, css: &str) {
        let element = self.find_all(css).into_iter().next().unwrap_or_else(|| panic!("no element {css}"));
        self.call("POST", &self.session_path(&format!("/element/{element}/click")), None);
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, script: &str) -> serde_json::Value {
        self.call("POST", &self.session_path("/execute/sync"), Some(serde_json::json!({"script": script, "args": []})))
    }

    /// Polls `script` until it returns something truthy, at most `limit`.
    pub fn wait_for(&self, script: &str, limit: Duration) -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let value = self.script(script);
            let truthy = !(value.is_null() || value == false || value == 0 || value == "" || value.as_array().is_some_and(|a| a.is_empty()));
            if truthy {
                return value;
            }
            if started.elapsed() > limit {
                let page = self.script("return [document.getElementById('status')?.textContent, [...document.querySelectorAll('img')].map(i => [i.src, i.complete, i.naturalWidth])]");
                panic!("the page never satisfied `{script}`; it shows {page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG screenshot of the window (base64 from WebDriver).
    pub fn screenshot_base64(&self) -> String {
        self.call("GET", &self.session_path("/screenshot"), None).as_str().unwrap().to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(self.address, "DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
