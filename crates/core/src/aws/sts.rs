//! STS AssumeRole over the Query API, signed by [`super::sigv4_headers`], so
//! no STS client crate is needed.

use super::errors::{parse_error, xml_text, Failure};
use super::sign::{sigv4_headers, ToSign};
use super::{AwsHttp, AwsSettings, Keys, Role};
use crate::http::header::{HeaderValue, CONTENT_TYPE};
use crate::{with_timeout, ConnectorError, ErrorCode, SecretString};

/// Temporary keys from STS AssumeRole, or the configured keys when no role is
/// set. Bounded by the connect timeout.
pub async fn effective_keys(
    settings: &AwsSettings,
    http: &AwsHttp,
) -> Result<Keys, ConnectorError> {
    let Some(role) = &settings.role else {
        return Ok(settings.keys.clone());
    };
    let what = format!("STS AssumeRole {}", role.arn);
    with_timeout(
        settings.timeouts.connect(),
        &what,
        assume_role(settings, role, http, &what),
    )
    .await
}

/// Form-encodes `application/x-www-form-urlencoded` pairs.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn assume_role(
    settings: &AwsSettings,
    role: &Role,
    http: &AwsHttp,
    what: &str,
) -> Result<Keys, ConnectorError> {
    let mut pairs = vec![
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role.arn.as_str()),
        ("RoleSessionName", role.session_name.as_str()),
        ("DurationSeconds", "900"),
    ];
    if let Some(x) = &role.external_id {
        pairs.push(("ExternalId", x));
    }
    let body = form_encode(&pairs);
    let mut url = role.sts.clone();
    url.set_path("/");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signed = sigv4_headers(
        &settings.keys,
        &settings.region,
        "sts",
        ToSign {
            method: "POST",
            url: &url,
            headers: &[("content-type", content_type)],
            body: body.as_bytes(),
        },
        what,
    )?;
    let mut rb = http
        .client
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in signed {
        rb = rb.header(name, value);
    }
    let transport = |e: ConnectorError| parse_error(Failure::Transport(Box::new(e)), what);
    let resp = rb.body(body).send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    http.remember_server(resp.headers());
    let resp = resp.bytes().await.map_err(transport)?;
    if !(200..300).contains(&status) {
        return Err(parse_error(Failure::from_body(status, &resp), what));
    }
    let text = String::from_utf8_lossy(&resp);
    let field = |name: &str| xml_text(&text, name);
    match (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    ) {
        (Some(id), Some(secret), token) => Ok(Keys {
            access_key_id: SecretString::new(id),
            secret_access_key: SecretString::new(secret),
            session_token: token.map(SecretString::new),
        }),
        _ => Err(ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the answer holds no credentials"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("RoleArn", "arn:aws:iam::1:role/a b"), ("X", "&=")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa+b&X=%26%3D"
        );
    }
}
