//! gRPC server bootstrap: every service gets grpc.health.v1, reflection,
//! tracing and metrics, and the auth layer that verifies the caller's token
//! before any method runs (deny by default; public methods are listed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::{Layer, Service};

use crate::auth::Verifier;
use crate::shutdown::Shutdown;
use crate::telemetry::grpc::GrpcTelemetryLayer;

/// Methods callable without a token, besides health and reflection.
pub type PublicMethods = Arc<[&'static str]>;

/// A service's gRPC server, built then served once.
pub struct GrpcServer {
    name: &'static str,
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    public: Vec<&'static str>,
    verifier: Option<Verifier>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("grpc: {0}")]
    Serve(String),
    #[error("grpc: no token verifier configured for {0}")]
    NoVerifier(&'static str),
}

impl GrpcServer {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            public: Vec::new(),
            verifier: None,
        }
    }

    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(svc);
        self
    }

    /// Full method paths (`/eva.identity.v1.KeyService/GetJwks`) that
    /// need no token.
    pub fn public(mut self, methods: &[&'static str]) -> Self {
        self.public.extend_from_slice(methods);
        self
    }

    pub fn auth(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Serves on `listener` until shutdown; health turns NOT_SERVING first so
    /// load balancers stop sending, then in-flight calls drain.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> Result<(), GrpcError> {
        let verifier = self.verifier.ok_or(GrpcError::NoVerifier(self.name))?;
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in &self.names {
            reporter
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        // Reflection lists only what this server serves, not every contract.
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(eva_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in &self.names {
            reflection = reflection.with_service_name(*name);
        }
        let reflection = reflection
            .build_v1()
            .map_err(|e| GrpcError::Serve(e.to_string()))?;
        let mut routes = self.routes;
        routes.add_service(health).add_service(reflection);

        let names = self.names.clone();
        let on_shutdown = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                for name in &names {
                    reporter
                        .set_service_status(*name, ServingStatus::NotServing)
                        .await;
                }
                reporter
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
            }
        };
        let addr = listener.local_addr().ok();
        tracing::info!(service = self.name, ?addr, "grpc listening");
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .timeout(Duration::from_secs(60))
            .layer(GrpcTelemetryLayer::new(self.name))
            .layer(AuthLayer {
                verifier,
                public: self.public.into(),
            })
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, on_shutdown)
            .await
            .map_err(|e| GrpcError::Serve(e.to_string()))
    }
}

/// Verifies `authorization: Bearer …` and puts the [`crate::auth::Principal`]
/// in the request's extensions; refuses with UNAUTHENTICATED otherwise.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Verifier,
    public: PublicMethods,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            public: self.public.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Verifier,
    public: PublicMethods,
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = req.uri().path();
        if is_open(path, &self.public) {
            return Box::pin(inner.call(req));
        }
        let token = bearer(req.headers());
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let Some(token) = token else {
                return Ok(unauthenticated("jeton manquant / missing bearer token"));
            };
            match verifier.verify(&token).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::debug!(error = %e, "token refused");
                    Ok(unauthenticated(&format!(
                        "jeton refusé / token refused: {e}"
                    )))
                }
            }
        })
    }
}

fn is_open(path: &str, public: &[&'static str]) -> bool {
    path.starts_with("/grpc.health.v1.")
        || path.starts_with("/grpc.reflection.")
        || public.contains(&path)
}

fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_owned())
}

fn unauthenticated(msg: &str) -> http::Response<tonic::body::Body> {
    tonic::Status::unauthenticated(msg).into_http()
}

/// INVALID_ARGUMENT naming the bad field, as a `google.rpc.BadRequest`
/// detail the gateway turns into a problem+json `errors` entry.
pub fn invalid_field(field: &str, message: &str) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    tonic::Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {message}"),
        ErrorDetails::with_bad_request_violation(field, message),
    )
}
