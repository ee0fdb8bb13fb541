//! The web UI: the static files of `gateway/web/` (HTML, CSS, plain ES modules), embedded
//! in the binary at compile time and served by the gateway, so `martelo dev` prints one URL
//! that works with no build step, no CDN and nothing fetched at run time.
//!
//! - [`router`]: `GET /assets/{*path}` serves a file; the app's client-side routes
//!   ([`APP_ROUTES`], e.g. `/auctions/{id}`) serve `index.html`, whose script routes in the
//!   page. Anything else falls through to the API's 404.
//! - The page served for a route names that route's view module in a
//!   `<link rel="modulepreload">` (in place of the `<!-- view -->` marker), next to the
//!   shared modules that `index.html` preloads itself. The browser then fetches every module
//!   of the first page at once, instead of finding the view only after `app.js` has run:
//!   one round of requests, not a waterfall (issue 14's first-load target).
//! - Every file carries a strong `ETag` (its SHA-256, computed at compile time by
//!   `rust-embed`) and `Cache-Control: no-cache`: the browser keeps its copy and revalidates
//!   it with `If-None-Match` (a 304 with no body), so a new binary never serves a stale
//!   script, without a build step to hash file names.
//! - Pages get a strict Content-Security-Policy: scripts, styles and connections from this
//!   origin only, no inline script or style, no framing. `connect-src 'self'` covers the
//!   same-origin `ws://` / `wss://` socket in current browsers.
//!
//! What does not live here: the API (`crate::http`), the WebSocket (`crate::ws`). The UI is
//! a client of the documented API like any other: it adds no endpoint of its own.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The files of `gateway/web/`, in the binary in every build profile (`debug-embed`).
#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct Assets;

/// Paths that the page's client-side router handles, each with the view module it shows
/// (under `assets/`): each serves `index.html` with that module preloaded. Keep in step
/// with `ROUTES` in `web/assets/app.js` (a test compares the views).
pub const APP_ROUTES: &[(&str, &str)] = &[
    ("/", "views/list.js"),
    ("/signin", "views/auth.js"),
    ("/signup", "views/auth.js"),
    ("/sell", "views/sell.js"),
    ("/mine", "views/list.js"),
    ("/admin", "views/admin.js"),
    ("/admin/audit", "views/audit.js"),
    ("/activity", "views/activity.js"),
    ("/auctions/{id}", "views/auction.js"),
    ("/auctions/{id}/edit", "views/sell.js"),
];

/// Where `index.html` takes the route's view preload.
const VIEW_MARKER: &str = "<!-- view -->";

/// The policy for pages. `'self'` everywhere it is needed, `'none'` elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Longest asset path accepted, bytes (longer ones are 404 without a lookup).
const ASSET_PATH_BYTES_MAX: usize = 200;

/// The web UI's routes, for any router state (they need none).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/assets/{*path}", get(asset));
    for &(route, view) in APP_ROUTES {
        router = router.route(
            route,
            get(move |headers: HeaderMap| async move { page(view, &headers) }),
        );
    }
    router
}

/// The content type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether `If-None-Match` names `etag` (a list, `*`, or weak forms all count).
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

fn not_found() -> Response {
    crate::error::Problem::not_found("no such file").into_response()
}

/// Serves the embedded file `path` (`None` when absent), answering 304 when the client's
/// copy is current. Pages also get the security headers.
fn serve(path: &str, headers: &HeaderMap) -> Option<Response> {
    let file = Assets::get(path)?;
    let etag = format!("\"{}\"", hex_prefix(&file.metadata.sha256_hash()));
    // Embedded files are borrowed from the binary: no copy per request.
    let body = || match file.data {
        std::borrow::Cow::Borrowed(bytes) => Body::from(bytes),
        std::borrow::Cow::Owned(bytes) => Body::from(bytes),
    };
    Some(respond(path, &etag, body, headers))
}

/// `index.html` for a route whose view module is `view`: the view's preload in place of the
/// marker. Its tag is the file's plus the view's, since each route's page differs.
fn serve_page(view: &str, headers: &HeaderMap) -> Option<Response> {
    let file = Assets::get("index.html")?;
    let name = view.trim_start_matches("views/").trim_end_matches(".js");
    let etag = format!("\"{}-{name}\"", hex_prefix(&file.metadata.sha256_hash()));
    let body = || {
        let html = String::from_utf8_lossy(&file.data).replacen(
            VIEW_MARKER,
            &format!("<link rel=\"modulepreload\" href=\"/assets/{view}\">"),
            1,
        );
        Body::from(html)
    };
    Some(respond("index.html", &etag, body, headers))
}

/// The response for a file of type `path` tagged `etag`: 304 when the client's copy is
/// current, else `body()`; with the caching and security headers.
fn respond(path: &str, etag: &str, body: impl FnOnce() -> Body, headers: &HeaderMap) -> Response {
    let mut response = if etag_matches(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(body());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        response
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.ends_with(".html") {
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        out.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        out.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

/// The first 16 bytes of a digest as lower-case hex (enough to tell versions apart).
fn hex_prefix(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(32);
    for byte in digest.iter().take(16) {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn page(view: &str, headers: &HeaderMap) -> Response {
    serve_page(view, headers).unwrap_or_else(not_found)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path.len() > ASSET_PATH_BYTES_MAX {
        return not_found();
    }
    serve(&format!("assets/{path}"), &headers).unwrap_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn client_side_routes_serve_the_page_with_a_strict_policy() {
        for path in [
            "/",
            "/signin",
            "/auctions/42",
            "/auctions/42/edit",
            "/admin",
            "/admin/audit",
            "/activity",
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            let policy = header_of(&response, header::CONTENT_SECURITY_POLICY);
            assert!(policy.contains("script-src 'self'"), "{policy}");
            assert!(!policy.contains("unsafe-inline"), "{policy}");
            assert_eq!(header_of(&response, header::X_FRAME_OPTIONS), "DENY");
        }
    }

    async fn text_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn each_route_preloads_its_view_and_is_tagged_apart() {
        let auction = get("/auctions/42", None).await;
        let auction_tag = header_of(&auction, header::ETAG).to_owned();
        let html = text_of(auction).await;
        assert!(
            html.contains(r#"<link rel="modulepreload" href="/assets/views/auction.js">"#),
            "{html}"
        );
        assert!(!html.contains(VIEW_MARKER), "the marker is replaced");
        let list = get("/", None).await;
        let list_tag = header_of(&list, header::ETAG).to_owned();
        assert!(text_of(list).await.contains("/assets/views/list.js"));
        assert_ne!(
            auction_tag, list_tag,
            "each route's page is its own version"
        );
        let again = get("/auctions/7", Some(&auction_tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = get("/", Some(&auction_tag)).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn every_route_names_an_embedded_view_that_the_app_routes_to() {
        let app = Assets::get("assets/app.js").expect("app.js is embedded");
        let app = String::from_utf8_lossy(&app.data);
        let index = Assets::get("index.html").expect("index.html is embedded");
        assert!(String::from_utf8_lossy(&index.data).contains(VIEW_MARKER));
        for (route, view) in APP_ROUTES {
            assert!(
                Assets::get(&format!("assets/{view}")).is_some(),
                "{route}: {view} is not embedded"
            );
            assert!(
                app.contains(&format!("import('./{view}')")),
                "{route}: app.js never loads {view}"
            );
        }
        // And every view app.js loads is some route's.
        for part in app.split("import('./").skip(1) {
            let view = part.split('\'').next().unwrap_or_default();
            assert!(
                APP_ROUTES.iter().any(|(_, known)| *known == view),
                "app.js loads {view}, which no route of web.rs preloads"
            );
        }
    }

    #[tokio::test]
    async fn assets_have_their_types_and_revalidate_by_etag() {
        let response = get("/assets/app.js", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        let etag = header_of(&response, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let again = get("/assets/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let listed = get("/assets/app.js", Some(&format!("\"x\", W/{etag}"))).await;
        assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
        let stale = get("/assets/app.js", Some("\"old\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
        let css = get("/assets/app.css", None).await;
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn unknown_files_and_escapes_are_not_found() {
        for path in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/src/web.rs",
            "/index.html",
            "/auctions",
        ] {
            let status = get(path, None).await.status();
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn every_module_the_page_loads_is_embedded() {
        let index = Assets::get("index.html").expect("index.html is embedded");
        let text = String::from_utf8_lossy(&index.data);
        assert!(text.contains("/assets/app.js"), "the page loads the app");
        for part in text.split(r#"rel="modulepreload" href="/"#).skip(1) {
            let path = part.split('"').next().unwrap_or_default();
            assert!(
                Assets::get(path).is_some(),
                "index.html preloads {path}: missing"
            );
        }
        for file in Assets::iter() {
            assert!(
                content_type(&file) != "application/octet-stream",
                "{file} has no content type"
            );
        }
    }
}
