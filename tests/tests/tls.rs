//! TLS and mTLS (rustls) between the services and for clients, with certificates
//! made at test time (rcgen): a CA, one server/peer certificate, one client certificate.

use std::time::Duration;

use lift_cli::stack::{Databases, Stack, StackOptions};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{self, ClientOptions, Credentials};
use lift_runtime::tls::{ClientTls, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn issue(
    names: &[&str],
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    p.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    p.extended_key_usages = usages;
    let cert = p.signed_by(&key, ca, ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn make_pki() -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key)?;
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    // The services' certificate serves and also identifies them to each other.
    let server = issue(&["localhost"], &ca, &ca_key, vec![ServerAuth, ClientAuth])?;
    let client = issue(&["client"], &ca, &ca_key, vec![ClientAuth])?;
    Ok(Pki { ca: ca.pem(), server, client })
}

fn client_tls(pki: &Pki, identity: Option<&(String, String)>) -> ClientTls {
    ClientTls::from_pem(
        pki.ca.clone().into_bytes(),
        identity.map(|(c, k)| (c.clone().into_bytes(), k.clone().into_bytes())),
        Some("localhost".into()),
    )
}

/// Pins mTLS end to end: the services call each other over mutually authenticated
/// TLS (scoring consumes the ledger through it), a client with a CA-signed
/// certificate and a key is served, and a client without a certificate, one that
/// trusts another CA, and a plaintext client are all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_between_services_and_for_clients() -> anyhow::Result<()> {
    let pki = make_pki()?;
    let server = ServerTls::from_pem(
        pki.server.0.clone().into_bytes(),
        pki.server.1.clone().into_bytes(),
        Some(pki.ca.clone().into_bytes()),
    );
    let peers = client_tls(&pki, Some(&pki.server));
    let opts = StackOptions { tls: Some((server, peers)), ..Default::default() };
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(20), ..Default::default() };
    let stack = Stack::start_loopback_with(&Databases::in_memory(), cfg, opts).await?;
    let r = async {
        assert!(stack.ingest_url().starts_with("https://"));
        let key = stack.client_key.clone();
        let with = |tls: Option<ClientTls>| -> anyhow::Result<_> {
            let o = ClientOptions {
                credentials: Credentials::from_option(key.as_deref())?,
                tls,
                timeout: Some(Duration::from_secs(10)),
                ..Default::default()
            };
            Ok(o)
        };
        // A client with its own certificate: served, and scoring works through mTLS.
        let good = with(Some(client_tls(&pki, Some(&pki.client))))?;
        let mut ingest = IngestServiceClient::new(client::connect_lazy(&stack.ingest_url(), &good)?);
        let mut scoring = ScoringServiceClient::new(client::connect_lazy(&stack.scoring_url(), &good)?);
        let events = lift_tests::scripted_events();
        let n = events.len() as u64;
        lift_cli::demo::stream_events(&mut ingest, events, 100).await?;
        let m = lift_cli::demo::wait_scored(&mut ingest, &mut scoring, Duration::from_secs(60)).await?;
        assert_eq!(m.as_of_offset, n);

        // No client certificate: the handshake fails.
        let no_cert = with(Some(client_tls(&pki, None)))?;
        let mut c = IngestServiceClient::new(client::connect_lazy(&stack.ingest_url(), &no_cert)?);
        // TLS 1.3 reports the refusal after the client's handshake: as the server's
        // CertificateRequired alert, or as the connection closing under the call.
        let refused = c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await;
        assert!(refused.is_err(), "a client without a certificate was served");

        // Trusting another CA: the server is not believed.
        let other = make_pki()?;
        let wrong_ca = with(Some(client_tls(&other, Some(&other.client))))?;
        let mut c = IngestServiceClient::new(client::connect_lazy(&stack.ingest_url(), &wrong_ca)?);
        assert!(c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await.is_err(), "a foreign CA must not be trusted");

        // Plaintext to a TLS port.
        let plain = with(None)?;
        let url = stack.ingest_url().replacen("https://", "http://", 1);
        let mut c = IngestServiceClient::new(client::connect_lazy(&url, &plain)?);
        assert!(c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await.is_err(), "plaintext must be refused");
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}
