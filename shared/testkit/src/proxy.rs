//! A TCP proxy in front of a database, that a test can cut and restore: how a test sees what
//! a service does while its database is unreachable, and that it recovers by itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every cut: open connections end.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpProxy {
    /// Forwards connections on a new port of 127.0.0.1 to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (accept_up, accept_cuts) = (up.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    // Refused: accepted, then closed at once, as a host whose database is down.
                    drop(client);
                    continue;
                }
                let mut cut = accept_cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            up,
            cuts,
            task,
        })
    }

    /// Ends every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Takes connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// A proxy in front of the server of `url` (`postgres://user@host:port/db?...`), and the
    /// URL that reaches the same database through it.
    pub async fn in_front_of(url: &str) -> std::io::Result<(Self, String)> {
        let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
        let rest = &url[scheme_end..];
        let host_start = rest.find('@').map(|i| i + 1).unwrap_or(0);
        let host_end = rest[host_start..]
            .find(['/', '?'])
            .map(|i| i + host_start)
            .unwrap_or(rest.len());
        let host = &rest[host_start..host_end];
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5432")
        };
        let target = tokio::net::lookup_host(host.as_str())
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} resolves to nothing")))?;
        let proxy = Self::start(target).await?;
        let proxied = format!(
            "{}{}{}{}",
            &url[..scheme_end],
            &rest[..host_start],
            proxy.addr,
            &rest[host_end..]
        );
        Ok((proxy, proxied))
    }
}
