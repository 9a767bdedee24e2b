//! The AWS SDK's HTTP client: the SDK's requests sent with reqwest, the stack the HTTP checks use,
//! over [`crate::tls`]'s configuration. One HTTP stack and one set of trusted roots per process,
//! where the SDK's own client would bring a second of each.
//!
//! As the SDK's own client does, it applies the SDK's connect and read timeouts, keeps a pool per
//! set of timeouts, uses no proxy, and sorts failures into the SDK's kinds (timeout, I/O, other),
//! on which its retry policy decides. Request bodies are in memory for every call the hooks make
//! (JSON documents); a streaming body is refused as a user error rather than sent half.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codedeploy::config::SharedHttpClient;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// Why an AWS endpoint that never answered is likely out of reach, for the messages of such calls.
pub const UNREACHABLE: &str = "the AWS endpoint could not be reached: a hook in private subnets needs a NAT gateway or interface VPC endpoints for the services it calls (codedeploy, ecs, lambda, monitoring, ssm, elasticloadbalancing), with security groups that admit it on port 443";

/// A failed call's reason, for a check or discovery: an access denial names the grant
/// (`<service>:<operation>` on `scope`), else the service's message, else [`call_failure`].
pub(crate) fn call_error<E, R>(
    service: &str,
    operation: &str,
    scope: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let answered = err.as_service_error();
    if crate::is_access_denied(answered.and_then(|e| e.code())) {
        return format!(
            "access denied calling {service}:{operation}: grant the hook's role {service}:{operation} on {scope}"
        );
    }
    match answered.and_then(|e| e.message()) {
        Some(message) => format!("{service}:{operation} failed: {message}"),
        None => format!("{service}:{operation} failed: {}", call_failure(&err)),
    }
}

/// A failed AWS call's error with its causes; when the endpoint never answered (a connect timeout,
/// a refused or unroutable connection), also [`UNREACHABLE`], the likely reason.
pub fn call_failure<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let shown = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
    match err {
        SdkError::DispatchFailure(failure) if failure.is_timeout() || failure.is_io() => {
            format!("{shown}; {UNREACHABLE}")
        }
        _ => shown,
    }
}

/// The client to give `aws_config::defaults(..).http_client(..)`.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttpClient::default())
}

type Timeouts = (Option<Duration>, Option<Duration>);

/// Connectors by the timeouts they apply; the SDK asks for one per request attempt.
#[derive(Debug, Default)]
struct SdkHttpClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        connectors.entry(timeouts).or_insert_with(|| SharedHttpConnector::new(Connector::new(timeouts))).clone()
    }
}

/// One reqwest client. When no TLS configuration could be built (a bad `SSL_CERT_FILE`), the
/// client trusts nothing and every HTTPS call fails with that reason, while plain HTTP (a local
/// endpoint) still works.
#[derive(Debug)]
struct Connector {
    client: Result<reqwest::Client, Arc<str>>,
    tls_error: Option<Arc<str>>,
}

impl Connector {
    fn new((connect, read): Timeouts) -> Self {
        let (tls, tls_error) = match crate::tls::client_config(&[]) {
            Ok(tls) => (Ok(tls), None),
            Err(err) => (crate::tls::trusting_nothing(), Some(Arc::from(err.to_string()))),
        };
        let client = tls.map_err(|err| err.to_string()).and_then(|tls| {
            let mut builder = reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy();
            if let Some(connect) = connect {
                builder = builder.connect_timeout(connect);
            }
            if let Some(read) = read {
                builder = builder.read_timeout(read);
            }
            builder.build().map_err(|err| crate::checks::error_chain(&err))
        });
        Self { client: client.map_err(Arc::from), tls_error }
    }

    fn refuse(why: &str) -> HttpConnectorFuture {
        let why = format!("cannot build the AWS SDK's HTTP client: {why}");
        HttpConnectorFuture::ready(Err(ConnectorError::other(why.into(), None)))
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(why) => return Self::refuse(why),
        };
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        if let Some(why) =
            self.tls_error.as_deref().filter(|_| request.uri().scheme() == Some(&http::uri::Scheme::HTTPS))
        {
            return Self::refuse(why);
        }
        let (parts, body) = request.into_parts();
        let Some(body) = body.bytes().map(<[u8]>::to_vec) else {
            return HttpConnectorFuture::ready(Err(ConnectorError::user("a streaming request body".into())));
        };
        let request = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
        HttpConnectorFuture::new(async move {
            let response = request.send().await.map_err(classify)?;
            let mut head = http::Response::builder().status(response.status()).version(response.version());
            if let Some(headers) = head.headers_mut() {
                headers.extend(response.headers().iter().map(|(name, value)| (name.clone(), value.clone())));
            }
            let body = response.bytes().await.map_err(classify)?;
            let response = head.body(SdkBody::from(body)).map_err(|err| ConnectorError::other(err.into(), None))?;
            HttpResponse::try_from(response).map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// The SDK's kind of a reqwest failure: a timeout or I/O is retried, anything else is not.
fn classify(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(err.into())
    } else if err.is_connect() || err.is_request() || err.is_body() {
        ConnectorError::io(err.into())
    } else {
        ConnectorError::other(err.into(), None)
    }
}
