//! Accepted connections whose writes between two flushes reach the socket together.
//!
//! h2 (under tonic) encodes a response's frames into a buffer of its own and flushes at the end
//! of each pass over the connection. A DATA frame of 256 bytes or more, though, it does not copy
//! into that buffer when the socket takes vectored writes: it keeps the payload aside, and must
//! write it out before it can take another frame. So a unary response of a few hundred bytes (a
//! referral is about 600) went to the socket as two writes, its HEADERS and DATA, then its
//! trailers; and every write to a socket costs the sender a system call and, on loopback, the
//! receiver's network stack too. Told that the socket takes no vectored writes, h2 copies DATA
//! frames under 1 KiB into its buffer, and such a response is one write. Bigger payloads are
//! still written on their own, right after the buffer: [`Gathered`] holds such writes until the
//! next flush or until [`GATHER`] bytes wait, and sends them in one vectored write.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes held at most before they are written: h2's own buffer is 16 KiB.
pub const GATHER: usize = 16 * 1024;

/// A connection whose writes wait for the next flush, up to [`GATHER`] bytes.
pub struct Gathered<T> {
    inner: T,
    /// Bytes accepted and not yet written, from `sent` on.
    held: Vec<u8>,
    sent: usize,
}

impl<T> Gathered<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            held: Vec::new(),
            sent: 0,
        }
    }

    fn waiting(&self) -> &[u8] {
        &self.held[self.sent..]
    }

    fn written(&mut self) {
        self.held.clear();
        self.sent = 0;
    }
}

impl<T: AsyncWrite + Unpin> Gathered<T> {
    /// Writes what is held, however many writes the socket needs.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.written();
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gathered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.waiting().len() + buf.len() <= GATHER {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        // Too much to hold: what waits and `buf` go together. A write that takes only part of
        // what waits keeps the rest for the next try, which comes with the same `buf`.
        loop {
            if this.waiting().is_empty() {
                this.written();
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
            let waiting = &this.held[this.sent..];
            let waited = waiting.len();
            let both = [IoSlice::new(waiting), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n <= waited {
                this.sent += n;
                continue;
            }
            this.written();
            return Poll::Ready(Ok(n - waited));
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    /// No: see the module's comment.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Gathered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl Connected for Gathered<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A socket that records each write it takes, at most `most` bytes of each.
    struct Socket {
        writes: Vec<Vec<u8>>,
        most: usize,
        flushed: usize,
    }

    impl Socket {
        fn new(most: usize) -> Self {
            Self {
                writes: Vec::new(),
                most,
                flushed: 0,
            }
        }

        fn bytes(&self) -> Vec<u8> {
            self.writes.concat()
        }

        fn take(&mut self, all: Vec<u8>) -> usize {
            let taken = all.len().min(self.most);
            self.writes.push(all[..taken].to_vec());
            taken
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let most = self.most;
            Poll::Ready(Ok(self.get_mut().take(buf[..buf.len().min(most)].to_vec())))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let most = self.most;
            let all = bufs
                .iter()
                .flat_map(|b| b.iter().copied())
                .take(most)
                .collect();
            Poll::Ready(Ok(self.get_mut().take(all)))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushed += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[tokio::test]
    async fn small_writes_go_as_one_at_the_flush() {
        let mut g = Gathered::new(Socket::new(usize::MAX));
        let (a, b, c) = (pattern(120, 1), pattern(600, 2), pattern(40, 3));
        for part in [&a, &b, &c] {
            g.write_all(part).await.unwrap();
        }
        assert!(
            g.inner.writes.is_empty(),
            "nothing written before the flush"
        );
        g.flush().await.unwrap();
        assert_eq!(g.inner.writes, vec![[a, b, c].concat()]);
        assert_eq!(g.inner.flushed, 1);
    }

    #[tokio::test]
    async fn a_large_write_takes_what_waits_with_it() {
        let mut g = Gathered::new(Socket::new(usize::MAX));
        let (head, payload) = (pattern(1033, 4), pattern(30_000, 5));
        g.write_all(&head).await.unwrap();
        g.write_all(&payload).await.unwrap();
        assert_eq!(g.inner.writes, vec![[head, payload].concat()]);
        g.flush().await.unwrap();
        assert_eq!(g.inner.writes.len(), 1, "nothing was left to write");
    }

    /// A socket that takes a few bytes at a time gets every byte once, in order, whatever
    /// the sizes of the writes around the limit.
    #[tokio::test]
    async fn partial_writes_lose_and_repeat_nothing() {
        for most in [1, 7, 1000, GATHER - 1, GATHER + 3] {
            let mut g = Gathered::new(Socket::new(most));
            let mut sent = Vec::new();
            for (i, len) in [10, GATHER - 5, 3, GATHER + 100, 1, 2 * GATHER, 500]
                .into_iter()
                .enumerate()
            {
                let part = pattern(len, i as u8);
                g.write_all(&part).await.unwrap();
                sent.extend_from_slice(&part);
            }
            g.shutdown().await.unwrap();
            assert_eq!(g.inner.bytes(), sent, "at most {most} bytes a write");
            assert!(g.waiting().is_empty());
        }
    }

    #[test]
    fn it_asks_for_plain_writes() {
        assert!(!Gathered::new(Socket::new(1)).is_write_vectored());
    }
}
