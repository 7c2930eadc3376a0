//! Smoke tests of the test harness itself: the servers start, mail flows SMTP → LMTP → IMAP,
//! TLS works with the throw-away CA, and the outage helpers keep ports and mail.

use std::time::Instant;

use futures::TryStreamExt;
use lettre::message::Message;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::support::{MailServers, fetch_all, tls};

fn message(to: &str, subject: &str) -> Message {
    Message::builder()
        .from("Lin Wei <probe@localhost>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .body(format!(
            "Body of {subject}\r\n.line starting with a dot\r\n"
        ))
        .unwrap()
}

fn plain_transport(servers: &MailServers) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(servers.smtp_port())
        .credentials(Credentials::new(
            MailServers::USER.into(),
            MailServers::PASSWORD.into(),
        ))
        .build()
}

fn tls_parameters(servers: &MailServers) -> TlsParameters {
    let pem = std::fs::read(servers.ca_pem()).unwrap();
    TlsParameters::builder("localhost".into())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
        .build_rustls()
        .unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(haystack).contains(needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_mail_arrives_over_imap_including_plus_addresses() {
    let t = Instant::now();
    let servers = MailServers::start().await;
    eprintln!("MailServers::start took {:?}", t.elapsed());

    let smtp = plain_transport(&servers);
    smtp.send(message("probe@localhost", "plain address"))
        .await
        .unwrap();
    smtp.send(message("probe+kucoin-42@localhost", "plus address"))
        .await
        .unwrap();

    // SMTP answered 250, so both messages are stored already.
    let messages = servers.wait_for_messages("probe", "INBOX", 2).await;
    assert_eq!(messages.len(), 2);
    assert!(contains(&messages[0], "Subject: plain address"));
    assert!(contains(&messages[1], "Subject: plus address"));
    assert!(contains(&messages[1], "To: probe+kucoin-42@localhost"));
    // Dot-stuffing survived the SMTP → LMTP relay.
    assert!(contains(&messages[0], "\r\n.line starting with a dot\r\n"));
    // The support desk's mailbox is separate.
    assert!(
        servers
            .wait_for_messages("support", "INBOX", 0)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_starttls_and_implicit_tls_trust_the_test_ca() {
    let servers = MailServers::start().await;
    let credentials = Credentials::new(MailServers::SUPPORT.into(), MailServers::PASSWORD.into());

    let starttls = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(servers.smtp_port())
        .tls(Tls::Required(tls_parameters(&servers)))
        .credentials(credentials.clone())
        .build();
    starttls
        .send(message("support@localhost", "via starttls"))
        .await
        .unwrap();

    let smtps = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(servers.smtps_port())
        .tls(Tls::Wrapper(tls_parameters(&servers)))
        .credentials(credentials)
        .build();
    smtps
        .send(message("support@localhost", "via smtps"))
        .await
        .unwrap();

    let messages = servers.wait_for_messages("support", "INBOX", 2).await;
    assert!(contains(&messages[0], "Subject: via starttls"));
    assert!(contains(&messages[1], "Subject: via smtps"));
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_relays_the_lmtp_refusal_of_an_unknown_user() {
    let servers = MailServers::start().await;
    let err = plain_transport(&servers)
        .send(message("nobody-here@localhost", "lost"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(550), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn append_keeps_the_internaldate_instant() {
    let servers = MailServers::start().await;
    let raw = b"From: KuCoin Support <support@localhost>\r\n\
        To: probe@localhost\r\n\
        Subject: Re: Withdrawal still pending\r\n\
        In-Reply-To: <probe-1@localhost>\r\n\
        \r\n\
        We are checking.\r\n";
    servers
        .append(
            "probe",
            "Support Replies",
            raw,
            "15-Jan-2026 09:31:07 +0800",
        )
        .await;

    let mut session = servers.imap("probe").await;
    session.select("Support Replies").await.unwrap();
    let fetched: Vec<_> = session
        .uid_fetch("1:*", "INTERNALDATE")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    let got = fetched[0].internal_date().expect("INTERNALDATE");
    let want =
        chrono::DateTime::parse_from_str("15-Jan-2026 09:31:07 +0800", "%d-%b-%Y %H:%M:%S %z")
            .unwrap();
    // Dovecot keeps the instant, not the offset.
    assert_eq!(got.timestamp(), want.timestamp(), "got {got}, want {want}");
    session.logout().await.unwrap();

    let bodies = servers
        .wait_for_messages("probe", "Support Replies", 1)
        .await;
    assert_eq!(bodies, vec![raw.to_vec()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn imaps_accepts_a_client_that_trusts_only_the_test_ca() {
    let servers = MailServers::start().await;
    tls::install_crypto_provider();
    let ca = CertificateDer::from_pem_file(servers.ca_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));

    for name in ["localhost", "127.0.0.1"] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", servers.imaps_port()))
            .await
            .unwrap();
        let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
        let tls = connector.connect(server_name, tcp).await.unwrap();
        let mut client = async_imap::Client::new(tls);
        client.read_response().await.unwrap().unwrap();
        let mut session = client
            .login(MailServers::USER, MailServers::PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        let inbox = session.select("INBOX").await.unwrap();
        assert_eq!(inbox.exists, 0);
        session.logout().await.unwrap();
    }

    // And a client without the CA refuses the server.
    let empty = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", servers.imaps_port()))
        .await
        .unwrap();
    let refused = tokio_rustls::TlsConnector::from(std::sync::Arc::new(empty))
        .connect(tls::localhost(), tcp)
        .await;
    assert!(refused.is_err());

    // The helper does the same.
    let mut session = servers.imaps("support").await;
    session.select("INBOX").await.unwrap();
    session.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_folder_changes_uidvalidity() {
    let servers = MailServers::start().await;
    let raw = b"Subject: one\r\n\r\nx\r\n";
    servers
        .append("probe", "Junk", raw, "01-Feb-2026 10:00:00 +0000")
        .await;
    let mut session = servers.imap("probe").await;
    let before = session.select("Junk").await.unwrap();
    session.logout().await.unwrap();

    servers.recreate_folder("probe", "Junk").await;
    // Creating an existing folder is a no-op.
    servers.create_folder("probe", "Junk").await;

    let mut session = servers.imap("probe").await;
    let after = session.select("Junk").await.unwrap();
    assert_eq!(after.exists, 0);
    assert!(before.uid_validity.is_some());
    assert_ne!(before.uid_validity, after.uid_validity);
    session.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_restart_keeps_ports_and_mail() {
    let mut servers = MailServers::start().await;
    plain_transport(&servers)
        .send(message("probe@localhost", "before outage"))
        .await
        .unwrap();
    servers.wait_for_messages("probe", "INBOX", 1).await;
    let mut session = servers.imap("probe").await;
    let validity = session.select("INBOX").await.unwrap().uid_validity;
    let (imap, imaps) = (servers.imap_port(), servers.imaps_port());

    servers.stop_imap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", imap))
            .await
            .is_err()
    );
    // A session open during the outage is dead.
    assert!(session.noop().await.is_err());
    // SMTP still answers but cannot deliver: temporary failure.
    let err = plain_transport(&servers)
        .send(message("probe@localhost", "during outage"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");

    let t = Instant::now();
    servers.start_imap().await;
    eprintln!("start_imap took {:?}", t.elapsed());
    assert_eq!((servers.imap_port(), servers.imaps_port()), (imap, imaps));
    plain_transport(&servers)
        .send(message("probe@localhost", "after outage"))
        .await
        .unwrap();
    let messages = servers.wait_for_messages("probe", "INBOX", 2).await;
    assert_eq!(messages.len(), 2);
    assert!(contains(&messages[0], "Subject: before outage"));
    assert!(contains(&messages[1], "Subject: after outage"));
    let mut session = servers.imap("probe").await;
    assert_eq!(
        session.select("INBOX").await.unwrap().uid_validity,
        validity
    );
    let uids: Vec<_> = fetch_all(&mut session, "UID")
        .await
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(uids, vec![Some(1), Some(2)]);
    session.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_restart_keeps_ports() {
    let mut servers = MailServers::start().await;
    let port = servers.smtp_port();
    servers.stop_smtp();
    let err = plain_transport(&servers)
        .send(message("probe@localhost", "refused"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("onnection"), "{err}");

    servers.start_smtp().await;
    assert_eq!(servers.smtp_port(), port);
    plain_transport(&servers)
        .send(message("probe@localhost", "after restart"))
        .await
        .unwrap();
    let messages = servers.wait_for_messages("probe", "INBOX", 1).await;
    assert!(contains(&messages[0], "Subject: after restart"));
}
