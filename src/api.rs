//! The parsec server HTTP API (`POST /provide`, `POST /retrieve/{cid}`, `GET /readiness`): a
//! thin actix-web adapter over a node's mailboxes, wire-compatible with parsec's OpenAPI file.

mod auth;
pub mod client;
pub mod dto;
mod error;
mod handlers;
mod hangup;
pub mod pubsub;
pub mod reprovide;

use std::net::TcpListener;

use actix_web::{
    dev::{Server, Service as _},
    web, App, HttpServer,
};
use parsec_actors::NodeRecipients;

pub use self::{auth::ApiToken, error::ApiError};
use crate::telemetry::metrics::ServerMetrics;

/// Largest request body accepted; content blobs are 1 KiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How long a client may take to send its request body once the headers arrived.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a client may take to send its request headers.
const HEAD_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open connections per HTTP worker; beyond it, new ones wait in the accept queue. A fleet's
/// schedulers need a few; the cap keeps slow or idle clients from taking every descriptor.
const MAX_CONNECTIONS_PER_WORKER: usize = 256;

/// Header naming the scheduler that sends a request (labels metrics).
pub const SCHEDULER_ID_HEADER: &str = "x-scheduler-id";

/// The longest `x-scheduler-id` accepted: a scheduler's id is a number or a UUID, and every
/// value seen becomes a metrics label for the life of the process.
pub const MAX_SCHEDULER_ID_BYTES: usize = 64;

/// How a server's API behaves beyond its routes.
#[derive(Clone, Debug, Default)]
pub struct ApiOptions {
    /// With a token, provide and retrieve requests must carry it as
    /// `Authorization: Bearer <token>`; readiness stays open for health checks.
    pub token: Option<ApiToken>,
    /// Where operation durations and requests are counted.
    pub metrics: Option<ServerMetrics>,
    /// The node's pubsub requests (`None`: the server does not speak gossipsub; `/pubsub/...`
    /// answers 501, except the clock).
    pub pubsub: Option<parsec_actors::node::pubsub::PubsubRecipients>,
    /// Where reprovide rounds go (`None`: `/reprovide` answers 501).
    pub reprovide: Option<actix::Recipient<parsec_actors::node::reprovide::ReprovideContent>>,
}

/// Registers the API routes for `node`.
pub fn configure(node: NodeRecipients, options: ApiOptions) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(web::Data::new(node))
            .app_data(web::Data::new(auth::RequiredToken(options.token)))
            .app_data(web::Data::new(options.metrics))
            .app_data(web::Data::new(options.pubsub))
            .app_data(web::Data::new(options.reprovide))
            // A query string that does not parse (`wait_ms=-1`, a repeated key) is a JSON 400 too.
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(format!("invalid query string: {e}")).into()),
            )
            .service(
                web::resource("/pubsub/subscribe")
                    .route(web::post().to(pubsub::subscribe))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/pubsub/unsubscribe")
                    .route(web::post().to(pubsub::unsubscribe))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/pubsub/publish")
                    .route(web::post().to(pubsub::publish))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/pubsub/messages/{id}")
                    .route(web::get().to(pubsub::message))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/pubsub/topics/{topic}")
                    .route(web::get().to(pubsub::topic))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/pubsub/clock")
                    .route(web::get().to(pubsub::clock))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/reprovide")
                    .route(web::post().to(reprovide::reprovide))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/provide")
                    .route(web::post().to(handlers::provide))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/retrieve/{cid}")
                    .route(web::post().to(handlers::retrieve))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .service(
                web::resource("/readiness")
                    .route(web::get().to(handlers::readiness))
                    .default_service(web::to(handlers::method_not_allowed)),
            )
            .default_service(web::to(handlers::not_found));
    }
}

/// Serves the API for `node` on `listener` with `workers` threads. Signals are left to the
/// caller, which decides how the node shuts down.
pub fn serve(
    listener: TcpListener,
    node: NodeRecipients,
    options: ApiOptions,
    workers: usize,
) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        let counted = options.metrics.clone();
        App::new()
            // Counted after routing, so the label is the route, not the raw path.
            .wrap_fn(move |request, service| {
                let response = service.call(request);
                let counted = counted.clone();
                async move {
                    let response = response.await?;
                    if let Some(metrics) = &counted {
                        let request = response.request();
                        metrics.count_request(
                            request.method().as_str(),
                            request.match_pattern().as_deref(),
                            // An id refused by the handler labels nothing.
                            handlers::scheduler_id(request).ok().flatten().as_deref(),
                        );
                    }
                    Ok(response)
                }
            })
            .configure(configure(node.clone(), options.clone()))
    })
    .on_connect(hangup::on_connect)
    .workers(workers.max(1))
    .max_connections(MAX_CONNECTIONS_PER_WORKER)
    .client_request_timeout(HEAD_READ_TIMEOUT)
    .disable_signals()
    .listen(listener)?
    .run())
}
