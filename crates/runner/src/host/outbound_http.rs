//! Outbound HTTP (`wasi:http/outgoing-handler`), as Spin 4.0.2's
//! `factor-outbound-http` sends it:
//! - one pooled client for the whole runner (hyper-util's), so a
//!   connection to the same `scheme://host:port` is kept alive and reused
//!   across requests and components, as Spin does with
//!   `connection_pooling_enabled` (its default);
//! - the guest's `request-options` bound the TCP connect, the response's
//!   head (from the start: name lookup, connect, TLS handshake, request and
//!   the wait for the status line) and the gap between two body frames;
//!   each defaults to 600 s, as in Spin; a pooled connection skips the
//!   connect;
//! - `allowed_outbound_hosts` is checked before anything is sent
//!   (`http-request-denied`); `self.alt` means the app itself, as in Spin,
//!   and needs `http://self` (or `*://*:*`) in the list;
//! - the `host` header is dropped, the client sets it from the URL;
//! - https uses rustls and trusts the system's roots (`/etc/ssl/certs`,
//!   `SSL_CERT_FILE`) and the webpki roots, as Spin's default TLS config
//!   does, and offers HTTP/2 by ALPN.
//!
//! Errors become the same `wasi:http` error codes Spin reports: a failed
//! name lookup is `dns-error` ("address not available"), a refused connect
//! `connection-refused`, a TCP connect past its deadline
//! `connection-timeout`, a TLS failure `tls-protocol-error`, a late first
//! byte or a stalled body `connection-read-timeout`, anything else from the
//! connection `http-protocol-error`. (wasmtime 48 hands a body error to the
//! guest without its code: `http-error-code` answers none, where Spin's
//! wasmtime 44 answers the code.)

use super::allowed_hosts::AllowedHosts;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Spin's default for each of the three request-option timeouts.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The shared, pooled clients: plain HTTP/1.1, and TLS with ALPN.
pub struct Clients {
    http: Client<Connector, WasiBody>,
    https: Client<Connector, WasiBody>,
}

impl Clients {
    pub fn new() -> Clients {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        // A system store that cannot be read leaves the webpki roots.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let builder = Client::builder(TokioExecutor::new());
        Clients { http: builder.build(Connector { tls: None }), https: builder.build(Connector { tls: Some(Arc::new(tls)) }) }
    }
}

/// The `wasi:http` hooks of one instance.
pub struct Hooks {
    pub allowed: Arc<AllowedHosts>,
    pub clients: Arc<Clients>,
    /// Where `self.alt` requests go: the HTTP trigger's listen address
    /// (`None` outside an HTTP request, as for the Redis trigger).
    pub self_origin: Option<Authority>,
}

impl Hooks {
    /// Checks the destination and rewrites a self request; returns whether to use TLS.
    fn prepare(&self, request: &mut http::Request<WasiBody>) -> Result<bool, Error> {
        let is_self = request.uri().authority().is_none_or(|a| a.host() == "self.alt" || a.host().is_empty());
        let allowed = if is_self {
            self.allowed.allows_relative(&["http", "https"])
        } else {
            self.allowed.check_url(&request.uri().to_string(), "https")
        };
        if !allowed {
            return Err(Error::HttpRequestDenied);
        }
        let mut use_tls = request.uri().scheme() == Some(&Scheme::HTTPS);
        if is_self {
            let origin = self.self_origin.clone().ok_or(Error::HttpRequestUriInvalid)?;
            let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            *request.uri_mut() = http::Uri::builder().scheme(Scheme::HTTP).authority(origin).path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
            use_tls = false;
        }
        request.headers_mut().remove(http::header::HOST);
        Ok(use_tls)
    }
}

type ResponseFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: ResponseFuture,
    ) -> Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, ResponseFuture)>> + Send> {
        // How the guest consumes the response is of no interest here (Spin ignores it too).
        let _ = fut;
        let prepared = self.prepare(&mut request);
        let clients = self.clients.clone();
        let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT);
        let (connect, first_byte, between_bytes) = (timeout(|o| o.connect_timeout), timeout(|o| o.first_byte_timeout), timeout(|o| o.between_bytes_timeout));
        Box::new(async move {
            let client = if prepared? { &clients.https } else { &clients.http };
            let response = CONNECT_TIMEOUT.scope(connect, client.request(request));
            let response = tokio::time::timeout(first_byte, response).await.map_err(|_| Error::ConnectionReadTimeout)?.map_err(request_error)?;
            let response = response.map(|body| BetweenBytes { body, timeout: between_bytes, sleep: None }.boxed_unsync());
            Ok((response, Box::new(async { Ok(()) }) as ResponseFuture))
        })
    }
}

/// What a failed connect reports (the connector's error, found again in
/// the client's error chain).
#[derive(Debug, Clone, Copy)]
enum ConnectError {
    Dns(&'static str),
    Refused,
    Timeout,
    Tls,
    UriInvalid,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for ConnectError {}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Error {
        match e {
            ConnectError::Dns(rcode) => Error::DnsError { rcode: Some(rcode.into()), info_code: Some(0) },
            ConnectError::Refused => Error::ConnectionRefused,
            ConnectError::Timeout => Error::ConnectionTimeout,
            ConnectError::Tls => Error::TlsProtocolError,
            ConnectError::UriInvalid => Error::HttpRequestUriInvalid,
        }
    }
}

/// A connect error if the chain holds one, otherwise a protocol error.
fn error_code(mut source: Option<&(dyn std::error::Error + 'static)>) -> Error {
    while let Some(e) = source {
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            return (*c).into();
        }
        source = e.source();
    }
    Error::HttpProtocolError
}

fn request_error(e: hyper_util::client::legacy::Error) -> Error {
    error_code(Some(&e))
}

tokio::task_local! {
    /// The connect timeout of the request being sent: the pool's connector
    /// has no other way to learn it (this is how Spin passes it too).
    static CONNECT_TIMEOUT: Duration;
}

#[derive(Clone)]
struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let timeout = CONNECT_TIMEOUT.try_with(|t| *t).unwrap_or(DEFAULT_TIMEOUT);
        let tls = self.tls.clone();
        Box::pin(async move { connect(uri, timeout, tls).await.map(TokioIo::new) })
    }
}

async fn connect(uri: http::Uri, timeout: Duration, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Stream, ConnectError> {
    let authority = uri.authority().ok_or(ConnectError::UriInvalid)?;
    let default_port = if tls.is_some() { 443 } else { 80 };
    let host_and_port = match authority.port() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:{default_port}", authority.as_str()),
    };
    let addrs: Vec<_> = tokio::net::lookup_host(&host_and_port).await.map_err(|_| ConnectError::Dns("address not available"))?.collect();
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(&*addrs)).await.map_err(|_| ConnectError::Timeout)?.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrNotAvailable => ConnectError::Dns("address not available"),
        _ => ConnectError::Refused,
    })?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else { return Ok(Stream::Tcp(tcp)) };
    let name = rustls::pki_types::ServerName::try_from(uri.host().unwrap_or_default()).map_err(|_| ConnectError::Dns("invalid dns name"))?.to_owned();
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|_| ConnectError::Tls)?;
    Ok(Stream::Tls(Box::new(stream)))
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Tls(s) if s.get_ref().1.alpn_protocol() == Some(b"h2") => Connected::new().negotiated_h2(),
            _ => Connected::new(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A response body that fails with `connection-read-timeout` when no frame
/// arrives within `timeout` (the clock starts when the guest waits).
struct BetweenBytes {
    body: hyper::body::Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(|e| error_code(std::error::Error::source(&e)))))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
