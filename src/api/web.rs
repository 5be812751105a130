//! The embedded browser client: `web/` is compiled into the binary, so `cargo run`
//! serves working pages with no files beside it. Plain ES modules, no build step.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

use super::{ApiError, AppState};

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| page("index.html")))
        .route("/publish", get(|| page("publish.html")))
        .route("/watch", get(|| page("watch.html")))
        .route("/room/{name}", get(|| page("room.html")))
        .route("/assets/{*path}", get(asset))
}

async fn page(name: &'static str) -> Response {
    serve(name)
}

async fn asset(Path(path): Path<String>) -> Response {
    serve(&format!("assets/{path}"))
}

fn serve(path: &str) -> Response {
    if path.contains("..") {
        return ApiError::NotFound("no such file".into()).into_response();
    }
    match WEB.get_file(path) {
        Some(f) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            f.contents(),
        )
            .into_response(),
        None => ApiError::NotFound(format!("no such file: {path}")).into_response(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}
