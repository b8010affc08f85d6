//! A minimal HTTP/1.1 server for the stand-ins of engines that cannot run here: each
//! request (keep-alive connections included) goes to a handler giving a status and a JSON
//! body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// One request: method, target, body.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, body))
}

/// Serves `handler` on 127.0.0.1 (a free port) from background threads; returns the URL.
pub fn serve<F>(handler: F) -> String
where
    F: Fn(&str, &str, &[u8]) -> (u16, serde_json::Value) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while let Some((method, target, body)) = read_request(&mut reader) {
                    let (status, value) = handler(&method, &target, &body);
                    // A HEAD answer has no body.
                    let text = if method == "HEAD" {
                        String::new()
                    } else {
                        value.to_string()
                    };
                    let _ = write!(
                        writer,
                        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        if status < 300 { "OK" } else { "Error" },
                        text.len()
                    );
                    let _ = writer.flush();
                }
            });
        }
    });
    url
}
