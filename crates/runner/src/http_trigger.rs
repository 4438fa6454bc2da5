//! The HTTP trigger: Spin's routing and `spin-*` headers, one fresh instance
//! per request from a pre-instantiated component.

use crate::app::{Loaded, Runtime};
use crate::routes::Match;
use bytes::Bytes;
use std::future::Future;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks, WasiHttpView};

/// The `wasi:http` hooks of one request: outbound calls are checked against
/// the component's `allowed_outbound_hosts` before they are sent.
pub struct OutboundHooks {
    pub component: String,
    pub allowed: crate::outbound::AllowedHosts,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri.port_u16().or_else(|| crate::outbound::default_port(&scheme)).unwrap_or(0);
        if !self.allowed.allows(&scheme, &host, port) {
            eprintln!("[{}] outbound http to {scheme}://{host}:{port} denied: not in allowed_outbound_hosts", self.component);
            return Box::new(async move {
                Err(wasmtime_wasi_http::Error::from(
                    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpRequestDenied,
                ))
            });
        }
        let _ = fut;
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

fn problem(status: u16, title: &str, detail: &str) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "type": format!("urn:spindle:problem:{}", title.to_ascii_lowercase().replace(' ', "-")),
        "title": title,
        "status": status,
        "detail": detail,
    })
    .to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/problem+json")
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync())
        .unwrap()
}

/// Handles one request end to end and logs one line for it.
pub async fn handle(
    rt: Arc<Runtime>,
    req: Request<hyper::body::Incoming>,
    client: SocketAddr,
    local: SocketAddr,
) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (resp, component) = match rt.router.route(&path) {
        None => (problem(404, "Not Found", &format!("no route for {path}")), "-".to_owned()),
        Some(m) => {
            let component = m.component.to_owned();
            let resp = match dispatch(&rt, req, &m, client, local).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("[{component}] error: {e:#}");
                    problem(500, "Internal Server Error", "the component failed")
                }
            };
            (resp, component)
        }
    };
    eprintln!(
        "{method} {path} {} {:.2}ms {component}",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

fn set_spin_headers(req: &mut Request<hyper::body::Incoming>, m: &Match<'_>, client: SocketAddr, local: SocketAddr) -> anyhow::Result<()> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| local.to_string());
    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    let full_url = format!("http://{host}{pq}");
    // A client must not be able to forge what the host asserts.
    let forged: Vec<_> = req.headers().keys().filter(|k| k.as_str().starts_with("spin-")).cloned().collect();
    let h = req.headers_mut();
    for k in forged {
        h.remove(k);
    }
    let mut set = |k: &str, v: &str| -> anyhow::Result<()> {
        h.insert(http::HeaderName::from_bytes(k.as_bytes())?, http::HeaderValue::from_str(v)?);
        Ok(())
    };
    set("spin-full-url", &full_url)?;
    set("spin-path-info", &m.path_info)?;
    set("spin-matched-route", m.raw_route)?;
    set("spin-raw-component-route", m.raw_route)?;
    set("spin-component-route", &m.component_route)?;
    set("spin-base-path", "/")?;
    set("spin-client-addr", &client.to_string())?;
    for (name, value) in &m.params {
        set(&format!("spin-path-match-{}", name.to_ascii_lowercase()), value)?;
    }
    Ok(())
}

async fn dispatch(
    rt: &Arc<Runtime>,
    mut req: Request<hyper::body::Incoming>,
    m: &Match<'_>,
    client: SocketAddr,
    local: SocketAddr,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let loaded: &Loaded = rt.components.get(m.component).ok_or_else(|| anyhow::anyhow!("component not loaded"))?;
    let pre = loaded.http.as_ref().ok_or_else(|| anyhow::anyhow!("component does not export wasi:http/incoming-handler"))?;
    set_spin_headers(&mut req, m, client, local)?;
    let mut store = rt.new_store(loaded);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let pre = pre.clone();
    let name = loaded.env.id.clone();
    let task = tokio::task::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
    });
    match receiver.await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(code)) => anyhow::bail!("guest answered with error code {code:?}"),
        Err(_) => match task.await {
            Ok(Ok(())) => anyhow::bail!("guest never set a response"),
            Ok(Err(e)) => {
                eprintln!("[{name}] trap: {e:?}");
                anyhow::bail!("guest trapped")
            }
            Err(e) => anyhow::bail!("guest task failed: {e}"),
        },
    }
}
