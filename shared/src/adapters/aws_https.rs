//! The HTTPS client under every AWS SDK call. It is the SDK's own (hyper 1 and rustls with
//! aws-lc), with one change: it trusts the roots that AWS service endpoints chain to
//! (`certs/aws-roots.pem`: Amazon Root CA 1 to 4 and Starfield Services Root G2) instead of
//! the machine's whole store.
//!
//! Why: the SDK builds its connector when a client is made, and that parses every root the
//! system has. On Debian that is each of ~146 roots twice (the bundle, then the directory),
//! and it was the largest part of a function's start-up (BENCHMARKS.md, 2026-12-06). Five
//! roots parse in microseconds. A deployment whose endpoints sit behind another CA (a proxy,
//! an emulator over TLS) sets `SSL_CERT_FILE` or `SSL_CERT_DIR`, and then the system store
//! is used, as the SDK would.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The roots of AWS service endpoints, PEM.
pub const AWS_ROOTS_PEM: &[u8] = include_bytes!("../../certs/aws-roots.pem");

/// Which roots the AWS clients trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The roots of AWS service endpoints only.
    Aws,
    /// The machine's store (`SSL_CERT_FILE`, `SSL_CERT_DIR`, or the system's default): the
    /// SDK's default client.
    System,
}

impl Roots {
    /// `System` when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, else `Aws`.
    pub fn from_env() -> Roots {
        Roots::from_vars(|k| std::env::var_os(k))
    }

    fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Roots {
        let set = |k| var(k).is_some_and(|v| !v.is_empty());
        if set("SSL_CERT_FILE") || set("SSL_CERT_DIR") {
            Roots::System
        } else {
            Roots::Aws
        }
    }
}

/// The SDK's default HTTPS client (proxy settings from the environment, the SDK's sleep and
/// connector settings), trusting only the roots of AWS service endpoints. For `Roots::System`
/// the SDK's own default client is the right one: set none.
pub fn aws_roots_client() -> SharedHttpClient {
    client_trusting(TrustStore::empty().with_native_roots(false).with_pem_certificate(AWS_ROOTS_PEM))
}

fn client_trusting(trust: TrustStore) -> SharedHttpClient {
    let context = TlsContext::builder().with_trust_store(trust).build().expect("a trust store without names is valid");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        b.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            b.set_sleep_impl(components.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.tls_context(context.clone()).build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn openssl(args: &[&str], input: Option<&[u8]>) -> String {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("these tests need the openssl command");
        if let Some(input) = input {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_shipped_roots_are_the_five_that_aws_endpoints_chain_to() {
        let text = std::str::from_utf8(AWS_ROOTS_PEM).unwrap();
        let mut subjects: Vec<String> = text
            .split_inclusive("-----END CERTIFICATE-----")
            .filter(|c| c.contains("BEGIN CERTIFICATE"))
            .map(|c| {
                openssl(&["x509", "-noout", "-subject", "-nameopt", "RFC2253"], Some(c.as_bytes())).trim().to_string()
            })
            .collect();
        subjects.sort();
        assert_eq!(
            subjects,
            [
                "subject=CN=Amazon Root CA 1,O=Amazon,C=US",
                "subject=CN=Amazon Root CA 2,O=Amazon,C=US",
                "subject=CN=Amazon Root CA 3,O=Amazon,C=US",
                "subject=CN=Amazon Root CA 4,O=Amazon,C=US",
                "subject=CN=Starfield Services Root Certificate Authority - G2,O=Starfield Technologies\\, Inc.,L=Scottsdale,ST=Arizona,C=US",
            ]
        );
    }

    /// A TLS server (`openssl s_server`) on localhost whose certificate no public CA signed.
    struct SelfSigned {
        server: std::process::Child,
        port: u16,
        cert_pem: Vec<u8>,
        _dir: tempfile::TempDir,
    }

    impl Drop for SelfSigned {
        fn drop(&mut self) {
            let _ = self.server.kill();
            let _ = self.server.wait();
        }
    }

    fn self_signed_server() -> SelfSigned {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
                key_s,
                "-out",
                cert_s,
            ],
            None,
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &port.to_string(), "-cert", cert_s, "-key", key_s])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need the openssl command");
        let up = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "openssl s_server did not start listening on {port}");
        SelfSigned { server, port, cert_pem: std::fs::read(&cert).unwrap(), _dir: dir }
    }

    /// What a DynamoDB call through `http` to the server gets: Ok(()) when TLS was accepted
    /// (the server does not speak DynamoDB, so the call then times out waiting for an answer;
    /// anything but a dispatch failure counts), or the dispatch failure's description.
    async fn call(http: SharedHttpClient, port: u16) -> Result<(), String> {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"),
            ))
            .endpoint_url(format!("https://localhost:{port}"))
            .http_client(http)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            // `s_server -www` answers GETs only: after a handshake it accepted, the POST waits.
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_timeout(std::time::Duration::from_secs(1))
                    .build(),
            )
            .build();
        match aws_sdk_dynamodb::Client::new(&sdk).list_tables().send().await {
            Err(aws_sdk_dynamodb::error::SdkError::DispatchFailure(e)) => Err(format!("{e:?}")),
            _ => Ok(()),
        }
    }

    #[tokio::test]
    async fn the_aws_roots_refuse_a_server_no_aws_root_signed_and_accept_it_once_trusted() {
        let server = self_signed_server();
        let refused = call(aws_roots_client(), server.port).await;
        let e = refused.expect_err("a self-signed server must not pass the AWS roots");
        assert!(e.contains("UnknownIssuer"), "{e}");
        // The same server and client, with its certificate trusted as well: the handshake is
        // what failed above, nothing else.
        let trusting = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_ROOTS_PEM)
            .with_pem_certificate(server.cert_pem.clone());
        call(client_trusting(trusting), server.port).await.expect("trusted, the call reaches the server");
    }

    #[test]
    fn the_system_store_is_used_when_ssl_cert_file_or_dir_is_set() {
        let with = |vars: &'static [(&'static str, &'static str)]| {
            Roots::from_vars(|k| vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.into()))
        };
        assert_eq!(with(&[]), Roots::Aws);
        assert_eq!(with(&[("SSL_CERT_FILE", "")]), Roots::Aws);
        assert_eq!(with(&[("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")]), Roots::System);
        assert_eq!(with(&[("SSL_CERT_DIR", "/etc/ssl/certs")]), Roots::System);
    }
}
