//! The connections a server takes: Nagle's algorithm off (tonic sets TCP_NODELAY only on
//! listeners it binds itself, and without it a response of several TCP segments waits for the
//! client's delayed ACK, 40 ms on Linux), each one's writes [`gather`]ed; with TLS, the handshake
//! done here rather than by tonic, so that ALPN offers HTTP/1.1 beside h2 (tonic offers h2 alone,
//! which refuses the HTTP/1.1 clients Connect serves).
//!
//! Handshakes run each in a task of its own, at most [`HANDSHAKE`] long: a client that connects
//! and sends nothing holds no one else's connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;

use super::gather::{self, Gathered};

/// Longest a TLS handshake may take.
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// Connections waiting for the server to take them, past their handshake.
const WAITING: usize = 64;

/// The plaintext connections of `listener`.
pub fn plain(listener: TcpListener) -> impl Stream<Item = io::Result<Gathered<TcpStream>>> {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(gather::Gathered::new))
}

/// The TLS connections of `listener`, past their handshake with `config`. Connections whose
/// handshake fails or takes too long are dropped (and logged at debug level).
pub fn tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> impl Stream<Item = io::Result<TlsStream<Gathered<TcpStream>>>> {
    let (ready, taken) = tokio::sync::mpsc::channel(WAITING);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        let accepted = plain(listener);
        tokio::pin!(accepted);
        loop {
            let connection = tokio::select! {
                // The server stopped taking connections: the listener closes with this task.
                _ = ready.closed() => return,
                next = accepted.next() => match next {
                    Some(Ok(connection)) => connection,
                    Some(Err(e)) => {
                        // Out of file descriptors and the like: try again shortly.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    None => return,
                },
            };
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(connection)).await {
                    Ok(Ok(tls)) => {
                        let _ = ready.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake took too long"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(taken)
}
