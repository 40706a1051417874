//! The HTTP API and the status page (DESIGN.md `http.*`), on axum.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness: 200 while the process serves (never needs the token) |
//! | `GET /readyz` | 200 when the session is `online` and every sink is connected, else 503 naming what is not |
//! | `GET /metrics` | Prometheus text ([`crate::metrics`] lists the names) |
//! | `POST /send` | a send command (JSON, or multipart with a file); answers its result (200 for every result, `ok` tells) |
//! | `GET /media/<sha256>` | a stored media file (token, cookie or signed link; `Range`, `ETag`) |
//! | `POST /relogin` | requests a new login |
//! | `POST /signout` | ends the page's session with the bridge (not the WeChat session) |
//! | `GET /contacts` | the contacts of the current login |
//! | `GET /qr.png` | the login QR while a scan is awaited |
//! | `GET /` | the status page; `GET /api/status` is what it polls |
//!
//! With more than one account (`accounts:` in the config) every route of one account (`/send`,
//! `/relogin`, `/contacts`, `/qr.png`, `/media/<sha256>`, the page and `/api/status`) is
//! served under `/accounts/<account>/…` for each, and the plain path answers 404 naming
//! those; `GET /` then lists the accounts' pages. `/healthz`, `/readyz` (every account's
//! session and sinks), `/metrics` and `/signout` stay process-wide. With one account (either
//! config form) the plain paths are the account's, as they always were.
//!
//! Access rules are in [`auth`] and [`hosts`] (and [`media`] for signed links); how connections are accepted and bounded is in
//! [`listener`]. The listener is bound before anything else starts, so a taken port fails
//! `run` at once (exit 1, naming the address); it serves until the sinks stop, finishing the
//! requests in flight.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::sinks::Control;
use crate::spool::Store;
use crate::wechat::session::Session;

mod api;
mod auth;
mod health;
mod hosts;
mod listener;
mod media;
mod page;
mod recent;
mod upload;

pub use health::{observe, SinkHealth, Watched};
pub use listener::{connection_cap, nofile_limit, raise_nofile_limit, HEADER_TIMEOUT};
pub use recent::{Recent, RecentSink};

/// The listener could not be set up.
#[derive(Debug, Error)]
#[error("http.listen: cannot listen on {addr}: {cause}")]
pub struct HttpError {
    /// The configured address.
    pub addr: SocketAddr,
    /// Why.
    pub cause: std::io::Error,
}

/// Binds `http.listen`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| HttpError { addr, cause })
}

/// Everything the handlers read: each account's part, the metrics recorder and the `http`
/// section.
pub struct HttpState {
    /// Each account's part, in the config's order.
    pub accounts: Vec<AccountHttp>,
    /// Whether more than one account runs; then each account's routes
    /// are under `/accounts/<account>/…` and the plain ones answer 404 naming them.
    pub several: bool,
    /// The metrics recorder.
    pub metrics: PrometheusHandle,
    /// The `http` section: token, allowed hosts, connection cap, public URL.
    pub config: HttpConfig,
}

/// One account's part of the API: the bridge's watches and intake (through [`Control`]), the
/// spool, the sinks' health and the recent events.
pub struct AccountHttp {
    /// The bridge's watches, relogin request, intake and results.
    pub control: Control,
    /// The current session while logged in ([`crate::bridge::Bridge::session`]).
    pub session: watch::Receiver<Option<Session>>,
    /// When the last sync succeeded ([`crate::bridge::Bridge::last_sync`]).
    pub last_sync: watch::Receiver<Option<Instant>>,
    /// Today's sends against `send.limits.per_day`.
    pub sends_today: crate::bridge::SendsToday,
    /// The spool, for backlogs and the outbound queue depth.
    pub spool: Store,
    /// Every configured sink (or the stdout default).
    pub sinks: Vec<SinkHealth>,
    /// The newest spooled events.
    pub recent: Recent,
    /// `send.default_ttl`: how long `POST /send` waits for a queued command's result, at least.
    pub send_ttl: std::time::Duration,
    /// `send.max_bytes`: commands up to this size are read (larger ones are answered
    /// `invalid_command`; far larger ones are refused with 413).
    pub max_bytes: usize,
    /// The media store and URL signer, for `GET /media/<sha256>` and multipart `POST /send`.
    pub media: crate::media::Media,
}

/// What the handlers share.
type Shared = Arc<Inner>;

/// [`HttpState`] with the token prepared for checking, the page sessions and the accepted
/// host names.
struct Inner {
    state: HttpState,
    auth: Option<auth::Token>,
    sessions: auth::Sessions,
    hosts: hosts::AllowedHosts,
}

impl std::ops::Deref for Inner {
    type Target = HttpState;

    fn deref(&self) -> &HttpState {
        &self.state
    }
}

/// The state of one account's routes: the shared state and which account.
type Account = Arc<Scoped>;

/// One account of [`Inner`].
struct Scoped {
    shared: Shared,
    index: usize,
}

impl std::ops::Deref for Scoped {
    type Target = AccountHttp;

    fn deref(&self) -> &AccountHttp {
        &self.shared.accounts[self.index]
    }
}

/// The routes each account has, relative to its prefix (`/accounts/<account>` with several
/// accounts, nothing with one); `/` is its status page.
const ACCOUNT_PATHS: [&str; 6] = [
    "/send",
    "/relogin",
    "/contacts",
    "/qr.png",
    "/api/status",
    "/media/{sha256}",
];

/// The routes, with the host and token guards on every one but `/healthz`.
pub fn router(state: HttpState) -> Router {
    let secure = state
        .config
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https");
    let shared: Shared = Arc::new(Inner {
        auth: state
            .config
            .token
            .as_ref()
            .map(|t| auth::Token::new(t.expose())),
        sessions: auth::Sessions::new(auth::SESSION_LIFETIME, secure),
        hosts: hosts::AllowedHosts::new(&state.config.allowed_hosts),
        state,
    });
    let guard = |router: Router<Shared>| {
        router
            .route_layer(middleware::from_fn_with_state(shared.clone(), auth::guard))
            // Outermost, so a foreign Host is refused before anything else looks at the request.
            .route_layer(middleware::from_fn_with_state(shared.clone(), hosts::guard))
    };
    let mut global = Router::new()
        .route("/page.css", get(page::css))
        .route("/page.js", get(page::js))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/signout", post(auth::sign_out));
    if shared.several {
        global = global.route("/", get(page::accounts));
        for path in ACCOUNT_PATHS {
            global = global.route(path, any(api::per_account));
        }
    }
    let mut app = Router::new()
        .route("/healthz", get(api::healthz))
        .merge(guard(global).with_state(shared.clone()));
    for index in 0..shared.accounts.len() {
        let prefix = if shared.several {
            format!("/accounts/{}", shared.accounts[index].control.account)
        } else {
            String::new()
        };
        let scoped = Arc::new(Scoped {
            shared: shared.clone(),
            index,
        });
        app = app.merge(account_router(&shared, &prefix, scoped));
    }
    app
}

/// One account's routes under `prefix`: its page, send, relogin, contacts, QR, status and media.
fn account_router(shared: &Shared, prefix: &str, account: Account) -> Router {
    let body_limit = account.max_bytes.saturating_mul(2).max(1024 * 1024);
    let mut guarded = Router::new()
        .route(&format!("{prefix}/"), get(page::index))
        .route(&format!("{prefix}/api/status"), get(api::status))
        .route(
            &format!("{prefix}/send"),
            post(api::send).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(&format!("{prefix}/relogin"), post(api::relogin))
        .route(&format!("{prefix}/contacts"), get(api::contacts))
        .route(&format!("{prefix}/qr.png"), get(api::qr_png));
    if !prefix.is_empty() {
        // The page's own links are relative: it must be seen at `<prefix>/`.
        let to = format!("{prefix}/");
        guarded = guarded.route(
            prefix,
            get(move || async move { axum::response::Redirect::permanent(&to) }),
        );
    }
    let guarded = guarded
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth::guard))
        // Outermost, so a foreign Host is refused before anything else looks at the request.
        .route_layer(middleware::from_fn_with_state(shared.clone(), hosts::guard));
    // A signed link is checked before the host and token guards, which then let it pass.
    let media = Router::new()
        .route(&format!("{prefix}/media/{{sha256}}"), get(media::get))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth::guard))
        .route_layer(middleware::from_fn_with_state(shared.clone(), hosts::guard))
        .route_layer(middleware::from_fn_with_state(
            account.clone(),
            media::signed,
        ));
    // The account's work done for a request (a send's media stored, files evicted for it)
    // counts for the account.
    let name: Arc<str> = Arc::from(account.control.account.as_str());
    guarded
        .merge(media)
        .with_state(account)
        .layer(middleware::from_fn(
            move |request: axum::extract::Request, next: middleware::Next| {
                let name = name.clone();
                async move { crate::metrics::scope(&name, next.run(request)).await }
            },
        ))
}

/// Serves on `listener` until `shutdown`, then finishes the requests in flight. At most
/// `http.max_connections` connections are served at once, fewer when the open-file limit
/// leaves too little room ([`listener`]).
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: CancellationToken) {
    let addr = listener.local_addr().ok();
    let configured = state.config.max_connections;
    let nofile = nofile_limit();
    let cap = connection_cap(configured, nofile);
    if cap < configured {
        tracing::warn!(
            max_connections = cap,
            configured,
            open_file_limit = nofile,
            "http.max_connections lowered to leave descriptors for the rest of the bridge"
        );
    }
    let app = router(state);
    tracing::info!(addr = ?addr, max_connections = cap, "HTTP API listening");
    listener::serve(listener, app, cap, shutdown).await;
}
