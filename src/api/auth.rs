//! The optional shared bearer token (`PARSEC_API_TOKEN`): servers that have one answer 401 to
//! provide and retrieve requests that do not carry it; schedulers send it.

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use super::ApiError;

/// A shared secret between a scheduler and its servers.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token; an empty one is refused (it would authorise every request).
    pub fn new(token: impl Into<String>) -> Result<Self, String> {
        let token = token.into();
        if token.trim().is_empty() {
            return Err("the API token is empty; unset PARSEC_API_TOKEN to run without one".to_owned());
        }
        Ok(Self(token))
    }

    /// The `Authorization` header value that carries it.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// The token a server requires, if any (app data).
pub(crate) struct RequiredToken(pub(crate) Option<ApiToken>);

/// Extracted by handlers that need authorisation: its presence means the request may proceed.
pub(crate) struct Authorized;

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = check(request);
        Box::pin(async move { result })
    }
}

fn check(request: &HttpRequest) -> Result<Authorized, ApiError> {
    let Some(Some(token)) = request
        .app_data::<web::Data<RequiredToken>>()
        .map(|r| r.0.as_ref())
    else {
        return Ok(Authorized);
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer <token> header",
        ))?;
    if token.matches(presented.trim()) {
        Ok(Authorized)
    } else {
        Err(ApiError::Unauthorized(
            "the bearer token does not match this server's PARSEC_API_TOKEN",
        ))
    }
}
