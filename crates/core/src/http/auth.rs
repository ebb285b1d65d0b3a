//! Request authentication: what a request carries.

use std::fmt;
use std::sync::Arc;

use reqwest::header::HeaderName;

use super::token::TokenSource;
use super::{HttpClient, HttpRequest};
use crate::{ConnectorError, SecretString};

/// How requests authenticate. `Debug` names the mode (and the header or token
/// URL), never a secret.
#[derive(Clone)]
pub enum HttpAuth {
    /// No authentication.
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: SecretString,
        /// The password, when there is one.
        password: Option<SecretString>,
    },
    /// A static bearer token.
    Bearer(SecretString),
    /// A secret in a header of the driver's choosing (API keys).
    Header {
        /// The header's name.
        name: HeaderName,
        /// The header's value.
        value: SecretString,
    },
    /// A bearer token from a token endpoint, cached until shortly before it
    /// expires (shared by clones).
    Token(Arc<TokenSource>),
}

impl HttpAuth {
    /// The mode's name for messages and `Debug` (`basic`, `bearer`, …).
    pub fn mode(&self) -> &'static str {
        match self {
            HttpAuth::None => "none",
            HttpAuth::Basic { .. } => "basic",
            HttpAuth::Bearer(_) => "bearer",
            HttpAuth::Header { .. } => "apiKey",
            HttpAuth::Token(t) => t.grant_name(),
        }
    }

    /// Fetches the token now when the mode needs one, so that bad credentials
    /// fail at connect rather than on the first call.
    pub async fn authorize(&self, client: &HttpClient) -> Result<(), ConnectorError> {
        if let HttpAuth::Token(t) = self {
            t.token(client).await?;
        }
        Ok(())
    }

    /// Adds the credentials to a request (through the request's own client for
    /// a token fetch, so the token endpoint is under the same egress policy).
    pub async fn apply(&self, req: HttpRequest) -> Result<HttpRequest, ConnectorError> {
        Ok(match self {
            HttpAuth::None => req,
            HttpAuth::Basic { username, password } => req.basic_auth(username, password.as_ref()),
            HttpAuth::Bearer(t) => req.bearer(t)?,
            HttpAuth::Header { name, value } => req.secret_header(name.clone(), value)?,
            HttpAuth::Token(source) => {
                let token = source.token(&req.client).await?;
                req.bearer(&token)?
            }
        })
    }
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpAuth::Header { name, .. } => write!(f, "Auth(apiKey in {name})"),
            HttpAuth::Token(t) => write!(f, "Auth({t:?})"),
            other => write!(f, "Auth({})", other.mode()),
        }
    }
}
