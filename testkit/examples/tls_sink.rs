//! A TLS-only SMTP sink for bench/outbound-tls.sh: the next hop that carepost and Postfix
//! must both reach over verified TLS. Offers STARTTLS with the given certificate, refuses
//! mail before it (530 5.7.0), takes pipelined MAIL/RCPT/DATA, discards each message and
//! keeps the count in COUNT_FILE (rewritten every 100 ms).
//!
//!     cargo run --release -p carepost-testkit --example tls_sink -- 127.0.0.1:2700 cert.pem key.pem count

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Longest command or data line taken; a longer one ends the session.
const MAX_LINE: usize = 64 * 1024;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key, count_file] = args.as_slice() else {
        eprintln!("usage: tls_sink ADDR CERT_PEM KEY_PEM COUNT_FILE");
        std::process::exit(2);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("a PEM certificate file")
        .map(|c| c.expect("a certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("a PEM private key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the certificate and its key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(addr.as_str()).await.expect("the listening address");
    let count = Arc::new(AtomicU64::new(0));
    {
        let (count, path) = (count.clone(), count_file.clone());
        tokio::spawn(async move {
            let mut written = u64::MAX;
            loop {
                let now = count.load(Ordering::Relaxed);
                if now != written {
                    let _ = tokio::fs::write(&path, format!("{now}\n")).await;
                    written = now;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
    }
    println!("listening on {addr}");
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let (acceptor, count) = (acceptor.clone(), count.clone());
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let mut plain = BufReader::new(socket);
            if send(&mut plain, b"220 sink ESMTP\r\n").await.is_err() {
                return;
            }
            if session(&mut plain, false, &count).await != Next::StartTls {
                return;
            }
            let Ok(tls) = acceptor.accept(plain.into_inner()).await else { return };
            let mut tls = BufReader::new(tls);
            session(&mut tls, true, &count).await;
        });
    }
}

#[derive(PartialEq)]
enum Next {
    Close,
    StartTls,
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufReader<S>, tls: bool, count: &AtomicU64) -> Next {
    let mut line = Vec::new();
    let mut out = Vec::new();
    loop {
        line.clear();
        match read_line(stream, &mut line).await {
            Some(()) => {}
            None => return Next::Close,
        }
        let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" | "HELO" if tls => out.extend_from_slice(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
            "EHLO" | "HELO" => out.extend_from_slice(b"250-sink\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
            "STARTTLS" if !tls => {
                let _ = send(stream, b"220 2.0.0 go ahead\r\n").await;
                return Next::StartTls;
            }
            "MAIL" | "RCPT" | "DATA" if !tls => out.extend_from_slice(b"530 5.7.0 STARTTLS first\r\n"),
            "MAIL" | "RCPT" | "RSET" | "NOOP" => out.extend_from_slice(b"250 2.0.0 ok\r\n"),
            "DATA" => {
                out.extend_from_slice(b"354 go ahead\r\n");
                if send(stream, &std::mem::take(&mut out)).await.is_err() {
                    return Next::Close;
                }
                loop {
                    line.clear();
                    if read_line(stream, &mut line).await.is_none() {
                        return Next::Close;
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                out.extend_from_slice(b"250 2.0.0 discarded\r\n");
            }
            "QUIT" => {
                out.extend_from_slice(b"221 2.0.0 bye\r\n");
                let _ = send(stream, &out).await;
                return Next::Close;
            }
            _ => out.extend_from_slice(b"502 5.5.2 not here\r\n"),
        }
        // Answers to pipelined commands go out together, once the client has sent no more.
        if stream.buffer().is_empty() && send(stream, &std::mem::take(&mut out)).await.is_err() {
            return Next::Close;
        }
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufReader<S>, bytes: &[u8]) -> std::io::Result<()> {
    stream.get_mut().write_all(bytes).await?;
    stream.get_mut().flush().await
}

/// One line with its ending into `line`; `None` at the end of the stream, on an error or on
/// a line longer than [`MAX_LINE`].
async fn read_line<S: AsyncRead + Unpin>(stream: &mut BufReader<S>, line: &mut Vec<u8>) -> Option<()> {
    loop {
        let buf = stream.fill_buf().await.ok()?;
        if buf.is_empty() {
            return None;
        }
        let (taken, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..taken]);
        stream.consume(taken);
        if done {
            return Some(());
        }
        if line.len() > MAX_LINE {
            return None;
        }
    }
}
