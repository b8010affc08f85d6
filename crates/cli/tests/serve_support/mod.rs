//! A real `splade serve` process on 127.0.0.1 (a free port), and a small HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running server, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `splade serve --port 0 ARGS` and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_splade"))
            .args(["serve", "--port", "0"])
            .args(args)
            .env("RAYON_NUM_THREADS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start splade serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let _ = tx.send(rest.trim().to_string());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let address = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "splade serve did not start listening; its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child: Some(child),
            address,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal_and_wait(mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        child.wait().unwrap()
    }

    /// `kill -9` and wait.
    pub fn kill9(self) {
        let _ = self.signal_and_wait(libc::SIGKILL);
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (status {})", self.body, self.status))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .max_idle_connections_per_host(64)
        .build()
}

/// `METHOD url` with a raw body (`None`: no body) and extra headers.
pub fn call_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = agent.request(method, url);
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let result = match body {
        Some(b) => request
            .set("content-type", "application/json")
            .send_bytes(b),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let content_type = response.content_type().to_string();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let body = response.into_string().unwrap_or_default();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

pub fn post(agent: &ureq::Agent, url: &str, body: &serde_json::Value) -> Reply {
    call_with(agent, "POST", url, Some(body.to_string().as_bytes()), &[])
}

pub fn get(agent: &ureq::Agent, url: &str) -> Reply {
    call_with(agent, "GET", url, None, &[])
}

/// The shared data folder (`../shared/data` beside the repository).
pub fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(
        dir.join("scifact/corpus.jsonl").is_file(),
        "the real data is missing: expected {} (see the README's data section)",
        dir.display()
    );
    dir
}

/// SciFact queries (text) and the first `docs` documents (`id`, `title text`).
pub fn scifact(queries: usize, docs: usize) -> (Vec<String>, Vec<(String, String)>) {
    let dir = shared_data().join("scifact");
    let read = |name: &str, n: usize| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(n)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let q = read("queries.jsonl", queries)
        .into_iter()
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    let d = read("corpus.jsonl", docs)
        .into_iter()
        .map(|v| {
            (
                v["_id"].as_str().unwrap().to_string(),
                format!(
                    "{} {}",
                    v["title"].as_str().unwrap_or(""),
                    v["text"].as_str().unwrap()
                ),
            )
        })
        .collect();
    (q, d)
}
