//! Component stdout/stderr, line by line, tagged with the component's name,
//! on the runner's stderr. (Spin prints them untagged, and also keeps them
//! in files under its state directory.)

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Sends the instance's stdout and stderr to the runner's stderr.
pub fn configure(wasi: &mut wasmtime_wasi::WasiCtxBuilder, component: &str) {
    wasi.stdout(Tagged::new(component)).stderr(Tagged::new(component));
}

struct Tagged {
    tag: String,
}

impl Tagged {
    fn new(component: &str) -> Self {
        Tagged { tag: component.to_owned() }
    }
}

impl IsTerminal for Tagged {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Tagged {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { tag: self.tag.clone(), buf: Vec::new() })
    }
}

struct LineWriter {
    tag: String,
    buf: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self, all: bool) {
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            let _ = writeln!(std::io::stderr().lock(), "[{}] {}", self.tag, text);
        }
        if all && !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            self.buf.clear();
            let _ = writeln!(std::io::stderr().lock(), "[{}] {}", self.tag, text);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        // Bound memory for output with no newlines.
        let flush_all = self.buf.len() > 16 * 1024;
        self.emit(flush_all);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit(true);
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit(true);
    }
}
