//! The web UI's files, embedded at build time (see build.rs), served at `/`
//! with a fallback to index.html for client-side routes.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = path.strip_prefix("ui/").unwrap_or(path);
    if path.starts_with("api/") {
        return crate::error::ApiError::not_found(format_args!("/{path}")).into_response();
    }
    if let Some(bytes) = asset(path).filter(|_| !path.is_empty()) {
        // Hashed asset names change with their content: cache them; index.html never.
        let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        return ([(header::CONTENT_TYPE, content_type(path)), (header::CACHE_CONTROL, cache)], bytes).into_response();
    }
    match asset("index.html") {
        Some(index) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], index).into_response(),
        None => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>OpenVHT</title><p>The OpenVHT server is running, but this binary was built without the web UI \
             (web/dist was missing). The API is at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>",
        )
            .into_response(),
    }
}
