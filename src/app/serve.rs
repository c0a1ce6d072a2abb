//! `otclip serve`: a small search page for an index, served from the binary. One types a query
//! (or clicks an image) and sees the closest images. Only the indexed images are served, by row
//! number: no path from a request reaches the file system.
//!
//! Routes: `/` the page; `/api/info`; `/api/search?q=TEXT&k=N` or `?image=ROW&k=N`;
//! `/image/ROW`. Everything else is 404; methods other than GET and HEAD are 405.
//!
//! The server is plain HTTP/1.1 on `std::net`: a thread per connection reads one request head,
//! the main thread (which holds the model) answers it, and the connection closes. No keep-alive,
//! so a browser's idle or half-open connections never hold up another request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;
use serde_json::json;

use super::search::{Gallery, Query, Searcher};
use super::trained::ModelSource;
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};

/// The page, with its script and style inline.
const PAGE: &str = include_str!("serve_page.html");
/// The most results one request may ask for.
const MAX_K: usize = 100;
/// The largest request head read; a longer one is answered 431.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request, or to take its response.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServeTask {
    pub index: PathBuf,
    pub model: Option<ModelSource>,
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub address: SocketAddr,
    /// Called with the bound address once the server listens (the command prints it).
    pub on_listen: fn(SocketAddr, &str),
}

/// One request: its method and target, and the connection to answer on.
struct Incoming {
    method: String,
    target: String,
    stream: TcpStream,
}

impl InferenceTask for ServeTask {
    type Output = ();
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<()> {
        let searcher = Searcher::<B>::open(&self.index, self.model.as_ref(), &device)?;
        let listener = TcpListener::bind(self.address).map_err(|e| anyhow!("cannot listen on {}: {e}", self.address))?;
        let address = listener.local_addr()?;
        let description = format!("{} images, model {}", searcher.index.images.len(), searcher.model.source);
        let (sender, receiver) = mpsc::channel::<Incoming>();
        std::thread::spawn(move || accept(listener, sender));
        (self.on_listen)(address, &description);
        for incoming in receiver {
            let Incoming { method, target, mut stream } = incoming;
            let reply = answer(&searcher, &method, &target);
            let _ = reply.write(&mut stream, method == "HEAD");
        }
        Ok(())
    }
}

impl ServeTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<()> {
        dispatch_inference(spec, false, self)
    }
}

/// Accepts connections; a thread per connection reads its request head and queues it.
fn accept(listener: TcpListener, sender: mpsc::Sender<Incoming>) {
    for stream in listener.incoming().flatten() {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
            let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
            match read_head(&mut stream) {
                Ok((method, target)) => {
                    let _ = sender.send(Incoming { method, target, stream });
                }
                Err(Some(reply)) => {
                    let _ = reply.write(&mut stream, false);
                }
                Err(None) => {}
            }
        });
    }
}

/// The method and target of a request head; on a bad head the reply to send (`None`: the
/// client went away or sent nothing).
fn read_head(stream: &mut TcpStream) -> std::result::Result<(String, String), Option<Reply>> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(Some(Reply::error(431, "the request head is too large")));
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| Some(Reply::error(400, "the request line is not UTF-8")))?;
    match line.split(' ').collect::<Vec<_>>().as_slice() {
        [method, target, version] if version.starts_with("HTTP/1.") && target.starts_with('/') => Ok((method.to_string(), target.to_string())),
        _ => Err(Some(Reply::error(400, "not an HTTP/1.x request line"))),
    }
}

/// A response, written whole with its length; the connection closes after it.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    cache: bool,
}

impl Reply {
    fn json(status: u16, value: serde_json::Value) -> Self {
        Self { status, content_type: "application/json; charset=utf-8", body: value.to_string().into_bytes(), cache: false }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, json!({ "error": message }))
    }

    fn write(&self, stream: &mut TcpStream, head_only: bool) -> std::io::Result<()> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            _ => "Error",
        };
        let cache = if self.cache { "max-age=3600" } else { "no-store" };
        let head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: {cache}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        stream.write_all(head.as_bytes())?;
        if !head_only {
            stream.write_all(&self.body)?;
        }
        stream.flush()
    }
}

/// The reply to one request.
fn answer<B: Backend>(searcher: &Searcher<B>, method: &str, target: &str) -> Reply {
    if !matches!(method, "GET" | "HEAD") {
        return Reply::error(405, "only GET is served");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/" | "/index.html" => Reply { status: 200, content_type: "text/html; charset=utf-8", body: PAGE.as_bytes().to_vec(), cache: false },
        "/api/info" => Reply::json(
            200,
            json!({"images": searcher.index.images.len(), "captions": searcher.index.captions.len(), "model": searcher.model.source.to_string(), "dim": searcher.model.dim()}),
        ),
        "/api/search" => match search(searcher, query) {
            Ok(value) => Reply::json(200, value),
            Err(message) => Reply::error(400, &message),
        },
        _ => match path.strip_prefix("/image/").map(str::parse::<usize>) {
            Some(Ok(row)) if row < searcher.index.images.len() => image(searcher, row),
            Some(_) => Reply::error(404, "no such image in the index"),
            None => Reply::error(404, "not found"),
        },
    }
}

/// The file of image `row` (its path comes from the index, never from the request).
fn image<B: Backend>(searcher: &Searcher<B>, row: usize) -> Reply {
    let path = searcher.index.image_path(row);
    let content_type = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        _ => "image/jpeg",
    };
    match std::fs::read(&path) {
        Ok(body) => Reply { status: 200, content_type, body, cache: true },
        Err(e) => Reply::error(404, &format!("image {row} cannot be read: {e}")),
    }
}

/// `q=TEXT` or `image=ROW`, with `k` (default 12, at most [`MAX_K`]).
fn search<B: Backend>(searcher: &Searcher<B>, query: &str) -> Result<serde_json::Value, String> {
    let mut text = None;
    let mut image = None;
    let mut k = 12;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or("the query is not valid percent-encoded UTF-8")?;
        match key {
            "q" => text = Some(value),
            "image" => image = Some(value.parse::<usize>().map_err(|_| format!("image={value}: expected an image number"))?),
            "k" => k = value.parse::<usize>().ok().filter(|&k| (1..=MAX_K).contains(&k)).ok_or(format!("k={value}: expected a number from 1 to {MAX_K}"))?,
            _ => {}
        }
    }
    let query = match (text, image) {
        (Some(text), None) => Query::Text(text),
        (None, Some(row)) => Query::IndexedImage(row),
        _ => return Err("give either q=TEXT or image=ROW".into()),
    };
    let found = searcher.search(&query, Gallery::Images, k).map_err(|e| format!("{e:#}"))?;
    let results: Vec<serde_json::Value> = found
        .iter()
        .map(|f| json!({"rank": f.rank, "score": f.score, "image": f.image, "key": f.key, "url": format!("/image/{}", f.image)}))
        .collect();
    Ok(json!({ "results": results }))
}

/// Decodes `%XX` escapes and `+` (a space in a form query) into UTF-8 text.
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' => {
                let hex = bytes.get(at + 1..at + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
