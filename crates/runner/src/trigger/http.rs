//! The HTTP trigger, as Spin 4.0.2's `trigger-http` answers:
//! - `/.well-known/spin/health` is `200 OK`, `/.well-known/spin/info` the
//!   app's name (and version) as JSON, anything else under that prefix 404;
//! - a path no route matches is a `404` with an empty body;
//! - a routed request gets an absolute URI (`http://` + its `Host`; a
//!   request with no `Host`, or one that disagrees with its URI, is dropped
//!   without an answer, as Spin drops it) and the `spin-*` headers
//!   ([`super::headers`]), and runs in a fresh instance of the component;
//! - a component that traps, or returns without answering, is a `500` with
//!   an empty body; the error goes to the log, never to the client. A trap
//!   after the response started ends the body early and is logged.
//!
//! Each request is logged as one line: method, path, status, time, component.

use super::headers;
use super::routes::{Router, WELL_KNOWN_PREFIX};
use crate::app::Runtime;
use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http::uri::Authority;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

pub struct HttpTrigger {
    rt: Arc<Runtime>,
    router: Router,
    /// `/.well-known/spin/info`, rendered once.
    info: Bytes,
    /// Where `self.alt` requests go: the address the runner was told to listen on.
    origin: Authority,
}

fn empty(status: StatusCode) -> Response<HyperOutgoingBody> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = status;
    r
}

fn full(content_type: Option<&str>, body: Bytes) -> Response<HyperOutgoingBody> {
    let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    if let Some(t) = content_type {
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_str(t).expect("a valid content type"));
    }
    r
}

impl HttpTrigger {
    pub fn new(rt: Arc<Runtime>, manifest: &crate::manifest::Manifest, listen: SocketAddr) -> Result<HttpTrigger> {
        let (router, duplicates) = Router::from_manifest(manifest)?;
        if !duplicates.is_empty() {
            eprintln!("The following component routes are duplicates and will never be used:");
            for d in &duplicates {
                eprintln!("  {}: {} (duplicate of {})", d.replaced, d.route, d.effective);
            }
        }
        if router.has_reserved_route() {
            eprintln!("Routes under {WELL_KNOWN_PREFIX} are handled by the Spin runtime and will never be reached");
        }
        let mut info = serde_json::Map::new();
        info.insert("name".into(), manifest.application.name.clone().into());
        if let Some(v) = &manifest.application.version {
            info.insert("version".into(), v.clone().into());
        }
        let info = Bytes::from(serde_json::to_vec_pretty(&info)?);
        Ok(HttpTrigger { rt, router, info, origin: listen.to_string().parse()? })
    }

    /// The routes for the start-up listing: `(component, path, wildcard)`.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.router.routes()
    }

    /// Answers one request and logs it. An error means: drop the connection
    /// without an answer.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>, client: SocketAddr) -> Result<Response<HyperOutgoingBody>> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (resp, component) = if let Some(well_known) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            let resp = match well_known {
                "health" => full(None, Bytes::from_static(b"OK")),
                "info" => full(Some("application/json"), self.info.clone()),
                _ => empty(StatusCode::NOT_FOUND),
            };
            (resp, "-")
        } else {
            match self.router.route(&path) {
                None => (empty(StatusCode::NOT_FOUND), "-"),
                Some(m) => {
                    let mut req = req;
                    *req.uri_mut() = absolute_uri(&req).with_context(|| format!("{method} {path}: request dropped"))?;
                    let resp = match self.dispatch(req, &m, client).await {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("[{}] Error processing request: {e:#}", m.component);
                            empty(StatusCode::INTERNAL_SERVER_ERROR)
                        }
                    };
                    (resp, m.component)
                }
            }
        };
        eprintln!("{method} {path} {} {:.2}ms {component}", resp.status().as_u16(), started.elapsed().as_secs_f64() * 1000.0);
        Ok(resp)
    }

    async fn dispatch(&self, mut req: Request<hyper::body::Incoming>, m: &super::routes::Match<'_>, client: SocketAddr) -> Result<Response<HyperOutgoingBody>> {
        let uri = req.uri().clone();
        headers::prepare(req.headers_mut(), &uri, m, client)?;
        let component = self.rt.component(m.component).with_context(|| format!("component {} is not loaded", m.component))?;
        let pre = component.http.as_ref().context("the component does not export wasi:http/incoming-handler")?.clone();
        let mut store = self.rt.new_store(component, Some(self.origin.clone()));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
        });
        match receiver.await {
            Ok(response) => {
                let name = component.env.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => eprintln!("[{name}] Component error after response started: {e:?}"),
                        Err(e) => eprintln!("[{name}] Component error after response started: {e}"),
                    }
                });
                Ok(response.map_err(|code| anyhow::anyhow!("guest failed to produce a response: {code:?}"))?)
            }
            Err(_) => {
                task.await.context("guest invocation panicked")?.map_err(anyhow::Error::from).context("guest invocation failed")?;
                bail!("guest failed to produce a response prior to returning")
            }
        }
    }
}

/// The request's URI with scheme and authority, the authority from `Host`
/// (Spin's `set_req_uri`).
fn absolute_uri(req: &Request<hyper::body::Incoming>) -> Result<http::Uri> {
    let from_header = req
        .headers()
        .get(http::header::HOST)
        .map(|h| -> Result<Authority> {
            let h = h.to_str().context("'Host' header is not valid UTF-8")?;
            h.parse().context("'Host' header contains an invalid authority")
        })
        .transpose()?;
    let authority = match (from_header, req.uri().authority().cloned()) {
        (None, None) => bail!("no 'Host' header present in request"),
        (None, Some(a)) | (Some(a), None) => a,
        (Some(a), Some(b)) => {
            ensure!(a == b, "authority in 'Host' header does not match authority in URI");
            a
        }
    };
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    Ok(http::Uri::from_parts(parts)?)
}
