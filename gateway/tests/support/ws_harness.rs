//! The WebSocket tests' harness: a real cluster of `martelo node` processes on loopback
//! (martelo-devkit's `LocalCluster`), a gateway serving `/v1/ws` in this process on
//! 127.0.0.1:0, access tokens signed with the gateway's own key ring, and a small JSON
//! WebSocket client on tokio-tungstenite.
//!
//! The `martelo` binary comes from `martelo_devkit::martelo_bin` (`MARTELO_BIN`, else
//! `$CARGO_TARGET_DIR/debug/martelo`, else `target/debug/martelo`): build it first with
//! `cargo build -p martelo-cluster --bin martelo`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use martelo_client::{Client, ClientOptions};
use martelo_devkit::LocalCluster;
use martelo_engine::meta::FamilyId;
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionSpec, Currency, Description,
    IncrementPolicy, Reply, Request, RequestId, Role, Timestamp, Title, UserId,
};
use martelo_gateway::auth::tokens;
use martelo_gateway::{AppState, GatewayConfig};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::start_cluster;

#[path = "common.rs"]
mod common;

/// The seller of the auctions tests create.
pub const SELLER: UserId = UserId(1);

/// A cluster and a gateway in front of it.
pub struct Harness {
    pub cluster: LocalCluster,
    pub client: Client,
    pub state: AppState,
    /// Where the gateway listens.
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// What a test may change before the gateway starts.
pub struct Setup {
    pub nodes: usize,
    pub shards: u32,
    pub config: GatewayConfig,
    /// SO_SNDBUF of the gateway's sockets (small makes a client that does not read
    /// back-pressure the gateway quickly, instead of after megabytes of kernel buffers).
    pub send_buffer: Option<u32>,
}

impl Default for Setup {
    fn default() -> Setup {
        let mut config = GatewayConfig::default();
        config.rate.per_user_per_sec = 100_000;
        config.rate.per_user_burst = 100_000;
        config.rate.per_ip_per_sec = 100_000;
        config.rate.per_ip_burst = 100_000;
        config.allowed_origins = vec!["http://app.example".to_owned()];
        Setup {
            nodes: 3,
            shards: 2,
            config,
            send_buffer: None,
        }
    }
}

impl Harness {
    /// Starts the cluster (initialized) and the gateway.
    pub async fn start(setup: Setup) -> Harness {
        let (cluster, dir) = start_cluster(
            "martelo-ws-test-",
            setup.nodes,
            setup.shards,
            vec!["--log-format".into(), "text".into()],
        )
        .await;
        let options = ClientOptions {
            deadline: Duration::from_secs(10),
            attempts_max: 64,
            ..ClientOptions::default()
        };
        let client = Client::connect(&cluster.api_addresses(), options)
            .await
            .expect("client connects");
        let mut config = setup.config;
        config.cluster = cluster.api_addresses();
        let state = martelo_gateway::server::build_state(config)
            .await
            .expect("gateway state");
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = setup.send_buffer {
            socket.set_send_buffer_size(size).expect("SO_SNDBUF");
        }
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let listener = socket.listen(1024).expect("listen");
        let addr = listener.local_addr().expect("address");
        let app = martelo_gateway::http::router(state.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        Harness {
            cluster,
            client,
            state,
            addr,
            dir,
        }
    }

    /// A signed access token for `user`.
    pub fn token(&self, user: UserId, role: Role) -> String {
        self.token_issued_at(user, role, tokens::unix_now())
    }

    /// A signed access token for `user` issued at `now` (Unix seconds).
    pub fn token_issued_at(&self, user: UserId, role: Role, now: u64) -> String {
        self.session_token(user, role, None, now)
    }

    /// A signed access token for `user` issued at `now` in the session (refresh-token
    /// family) `session`, as sign-in issues them.
    pub fn session_token(
        &self,
        user: UserId,
        role: Role,
        session: Option<FamilyId>,
        now: u64,
    ) -> String {
        let roles: BTreeSet<Role> = [role].into_iter().collect();
        tokens::issue(
            &self.state.keys,
            &self.state.config.tokens,
            user,
            &roles,
            session,
            now,
        )
        .expect("token")
        .token
    }

    /// Opens a socket as `user` (a bidder) with a token of the session `family`.
    pub async fn open_in_session(&self, user: UserId, family: FamilyId) -> Ws {
        let token = self.session_token(user, Role::Bidder, Some(family), tokens::unix_now());
        let bearer = format!("Bearer {token}");
        self.open_with(&[("authorization", &bearer)], None)
            .await
            .expect("upgrade")
    }

    /// `ws://…/v1/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// Opens a socket with `headers` (name, value); the upgrade's refusal is `Err`.
    pub async fn open_with(
        &self,
        headers: &[(&str, &str)],
        receive_buffer: Option<u32>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        self.open_at(&self.url(), headers, receive_buffer).await
    }

    /// Opens an anonymous socket at `/v1/ws?{query}`; the upgrade's refusal is `Err`.
    pub async fn open_with_query(
        &self,
        query: &str,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        self.open_at(&format!("{}?{query}", self.url()), &[], None)
            .await
    }

    async fn open_at(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        receive_buffer: Option<u32>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let stream: TcpStream = socket.connect(self.addr).await.expect("connect");
        let (ws, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
        Ok(Ws { ws })
    }

    /// Opens a socket as `user` (a bidder).
    pub async fn open_as(&self, user: UserId) -> Ws {
        let bearer = format!("Bearer {}", self.token(user, Role::Bidder));
        self.open_with(&[("authorization", &bearer)], None)
            .await
            .expect("upgrade")
    }

    /// Creates auction `id` as [`SELLER`], open from now for `open_for`.
    pub async fn create_auction(&self, id: u64, open_for: Duration) {
        let start = now();
        let spec = AuctionSpec {
            title: Title::try_from("Test lot").expect("title"),
            description: Description::try_from("").expect("description"),
            currency: Currency::try_from("EUR").expect("currency"),
            starting_price: Amount(100),
            reserve_price: None,
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(10)),
            start,
            end: Timestamp(start.0 + open_for.as_micros() as u64),
            soft_close: None,
        };
        let proposed = self
            .client
            .propose(Request {
                actor: Actor {
                    user: SELLER,
                    role: Role::Seller,
                },
                request_id: RequestId::try_from(format!("create-{id}").as_str()).expect("id"),
                action: Action::CreateAuction {
                    auction_id: AuctionId(id),
                    spec,
                },
            })
            .await
            .expect("create proposed");
        assert!(
            matches!(
                proposed.reply,
                Reply::Accepted(Accepted::AuctionCreated { .. })
            ),
            "{:?}",
            proposed.reply
        );
    }

    /// Places a bid directly through the cluster client (not the gateway); `true` if accepted.
    pub async fn bid(&self, auction: u64, bidder: u64, amount: u64, request_id: &str) -> bool {
        let proposed = self
            .client
            .propose(Request {
                actor: Actor {
                    user: UserId(bidder),
                    role: Role::Bidder,
                },
                request_id: RequestId::try_from(request_id).expect("request id"),
                action: Action::PlaceBid {
                    auction_id: AuctionId(auction),
                    amount: Amount(amount),
                    max: None,
                },
            })
            .await
            .expect("bid decided");
        matches!(proposed.reply, Reply::Accepted(Accepted::Bid { .. }))
    }

    /// The auction's seq, read linearizably.
    pub async fn seq(&self, auction: u64) -> u64 {
        self.client
            .read_auction(AuctionId(auction), Default::default())
            .await
            .expect("read")
            .seq
    }

    /// Prints the tail of every node's log.
    pub fn dump_logs(&self) {
        for node in self.cluster.nodes() {
            if let Some(tail) = self.cluster.log_tail(node.id) {
                println!("--- node {} log tail ---\n{tail}", node.id);
            }
        }
    }
}

/// Cluster time now.
pub fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_micros() as u64,
    )
}

/// A JSON WebSocket client.
pub struct Ws {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a socket received.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Closed(Option<(u16, String)>),
}

impl Ws {
    /// Sends a JSON message.
    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|error| error.to_string())
    }

    /// The next JSON message or the close, within `timeout`; `None` on timeout.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Got> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(Got::Json(serde_json::from_str(&text).expect("JSON")));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Got::Closed(
                        frame.map(|frame| (u16::from(frame.code), frame.reason.to_string())),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Got::Closed(None)),
            }
        }
    }

    /// The next JSON message that is not `time`, or panics after `timeout`.
    pub async fn next_json(&mut self, timeout: Duration) -> Value {
        loop {
            match self.next_within(timeout).await {
                Some(Got::Json(value)) if value["type"] == "time" => continue,
                Some(Got::Json(value)) => return value,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }
}

/// One auction's stream as a client saw it: checks the seq discipline as it goes.
#[derive(Debug, Default)]
pub struct Seen {
    /// The seq the client is at (after a snapshot or event).
    pub at: Option<u64>,
    /// Every event's seq, in arrival order.
    pub events: Vec<u64>,
    /// Each snapshot's (seq, reason).
    pub snapshots: Vec<(u64, String)>,
}

impl Seen {
    /// Takes one server message about the auction; panics on a duplicate or a gap.
    pub fn take(&mut self, message: &Value) {
        match message["type"].as_str() {
            Some("snapshot") => {
                let seq = message["seq"].as_u64().expect("seq");
                let reason = message["reason"].as_str().unwrap_or_default().to_owned();
                self.snapshots.push((seq, reason));
                self.at = Some(seq);
            }
            Some("resumed") => {
                self.at = Some(message["after_seq"].as_u64().expect("after_seq"));
            }
            Some("event") => {
                let seq = message["seq"].as_u64().expect("seq");
                let at = self.at.expect("an event before any snapshot");
                assert_eq!(
                    seq,
                    at + 1,
                    "event seq {seq} after {at}: a gap or a duplicate"
                );
                self.at = Some(seq);
                self.events.push(seq);
            }
            _ => {}
        }
    }
}
