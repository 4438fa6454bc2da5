//! Placeholder: the notify component is being built (see its issue).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;
use spindle::http::Problem;
use spindle::spin::serve;

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    serve(req, |r| async move { Err(Problem::not_found(&r.path)) }).await
}
