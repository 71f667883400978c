//! One client connection: buffered reading of command lines and message data under
//! deadlines, and batched replies.
//!
//! Replies are collected and written when the server would otherwise wait for input, which is
//! what PIPELINING (RFC 2920) asks: a client that sends MAIL, RCPT and DATA in one packet gets
//! their replies in one packet. Deadlines cover a whole line or a whole message, not each read,
//! so a client trickling one byte at a time (slowloris) cannot hold a session open forever.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::budget::BodyBuffer;
use crate::data::BodyDecoder;
use crate::reply::Reply;

/// Anything a session can run over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

const READ_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("timeout")]
    Timeout,
    #[error("the client closed the connection")]
    Closed,
    #[error("bare <LF> received")]
    BareLf,
    #[error("bare <CR> received")]
    BareCr,
    #[error("line too long")]
    TooLong,
    #[error("the server is shutting down")]
    Shutdown,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct Connection {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    /// After a too-long line: drop input up to the next LF before reading a command.
    skip_line: bool,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    pub fn new(io: Box<dyn Io>, shutdown: watch::Receiver<bool>) -> Self {
        Connection {
            io,
            buf: Vec::with_capacity(4096),
            start: 0,
            out: Vec::with_capacity(1024),
            skip_line: false,
            shutdown,
        }
    }

    /// Queues a reply; it is written before the next wait for input, or by [`Self::flush`].
    pub fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.io.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Whether the client has sent more than has been read (pipelined input).
    pub fn has_buffered_input(&self) -> bool {
        self.start < self.buf.len()
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more input, writing pending replies first. `commands` makes the wait end early
    /// when the server shuts down: a session between commands can be told to go.
    async fn fill(&mut self, deadline: Instant, commands: bool) -> Result<(), ReadError> {
        tokio::time::timeout_at(deadline, self.flush()).await.map_err(|_| ReadError::Timeout)??;
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_SIZE, 0);
        let read = {
            let io = &mut self.io;
            let target = &mut self.buf[old..];
            if commands {
                let mut shutdown = self.shutdown.clone();
                if *shutdown.borrow() {
                    Err(ReadError::Shutdown)
                } else {
                    tokio::select! {
                        r = tokio::time::timeout_at(deadline, io.read(target)) => r.map_err(|_| ReadError::Timeout),
                        _ = shutdown.changed() => Err(ReadError::Shutdown),
                    }
                }
            } else {
                tokio::time::timeout_at(deadline, io.read(target)).await.map_err(|_| ReadError::Timeout)
            }
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.buf.truncate(old);
                return Err(e.into());
            }
            Err(e) => {
                self.buf.truncate(old);
                return Err(e);
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            return Err(ReadError::Closed);
        }
        Ok(())
    }

    /// Reads one command line, CRLF included, of at most `max` bytes. A bare CR or LF is an
    /// error (the caller ends the session); a line over `max` is an error after which the
    /// rest of that line is skipped.
    pub async fn read_line(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        loop {
            if self.skip_line {
                match self.buffered().iter().position(|&b| b == b'\n') {
                    Some(pos) => {
                        self.start += pos + 1;
                        self.skip_line = false;
                    }
                    None => {
                        self.start = self.buf.len();
                        self.fill(deadline, true).await?;
                        continue;
                    }
                }
            }
            let avail = self.buffered();
            if let Some(pos) = avail.iter().position(|&b| b == b'\n') {
                let line = avail[..=pos].to_vec();
                self.start += pos + 1;
                if pos == 0 || line[pos - 1] != b'\r' {
                    return Err(ReadError::BareLf);
                }
                if line[..pos - 1].contains(&b'\r') {
                    return Err(ReadError::BareCr);
                }
                if line.len() > max {
                    return Err(ReadError::TooLong);
                }
                return Ok(line);
            }
            if avail.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n') {
                return Err(ReadError::BareCr);
            }
            if avail.len() > max {
                self.start = self.buf.len();
                self.skip_line = true;
                return Err(ReadError::TooLong);
            }
            self.fill(deadline, true).await?;
        }
    }

    /// Reads DATA up to and including the end marker, feeding it through `decoder`. Stops
    /// early at a bare CR or LF: the message is refused and the session ends, so nothing more
    /// is worth waiting for (a client that ended with `\n.\n` would otherwise wait for the
    /// data timeout).
    pub async fn read_data(
        &mut self,
        decoder: &mut BodyDecoder,
        body: &mut BodyBuffer,
        deadline: Instant,
    ) -> Result<(), ReadError> {
        loop {
            body.make_room(self.buf.len() - self.start);
            let (used, done) = decoder.feed(&self.buf[self.start..], body.data());
            self.start += used;
            if done || decoder.saw_bare_line_end() {
                return Ok(());
            }
            self.fill(deadline, false).await?;
        }
    }

    /// Reads exactly `len` bytes of a BDAT chunk through `decoder`.
    pub async fn read_chunk(
        &mut self,
        mut len: u64,
        decoder: &mut BodyDecoder,
        body: &mut BodyBuffer,
        deadline: Instant,
    ) -> Result<(), ReadError> {
        loop {
            let avail = self.buf.len() - self.start;
            let take = usize::try_from(len).unwrap_or(usize::MAX).min(avail);
            let end = self.start + take;
            body.make_room(take);
            decoder.feed(&self.buf[self.start..end], body.data());
            self.start = end;
            len -= take as u64;
            if len == 0 {
                return Ok(());
            }
            self.fill(deadline, false).await?;
        }
    }

    /// Hands the transport over for a TLS handshake. Input the client pipelined after
    /// STARTTLS is thrown away (RFC 3207 section 4.2: it must not be taken as sent under TLS;
    /// this is the STARTTLS command injection of CVE-2011-0411). Returns how many bytes that was.
    pub async fn take_for_tls(&mut self) -> std::io::Result<(Box<dyn Io>, usize)> {
        self.flush().await?;
        let dropped = self.buf.len() - self.start;
        self.buf.clear();
        self.start = 0;
        let io = std::mem::replace(&mut self.io, Box::new(empty::EmptyDuplex));
        Ok((io, dropped))
    }

    pub fn set_io(&mut self, io: Box<dyn Io>) {
        self.io = io;
    }

    /// Writes pending replies and closes the write side.
    pub async fn close(&mut self, deadline: Instant) {
        let _ = tokio::time::timeout_at(deadline, async {
            let _ = self.flush().await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// A stand-in transport while the real one is inside a TLS handshake.
mod empty {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    pub struct EmptyDuplex;

    impl AsyncRead for EmptyDuplex {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for EmptyDuplex {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    fn pair() -> (Connection, tokio::io::DuplexStream, watch::Sender<bool>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (tx, rx) = watch::channel(false);
        (Connection::new(Box::new(a), rx), b, tx)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn lines_need_crlf() {
        let (mut c, mut client, _tx) = pair();
        client.write_all(b"EHLO a\r\nNOOP\nX\rY\r\n").await.unwrap();
        assert_eq!(c.read_line(512, soon()).await.unwrap(), b"EHLO a\r\n");
        assert!(matches!(c.read_line(512, soon()).await, Err(ReadError::BareLf)));
        assert!(matches!(c.read_line(512, soon()).await, Err(ReadError::BareCr)));
    }

    #[tokio::test]
    async fn long_lines_are_skipped_and_slow_lines_time_out() {
        let (mut c, mut client, _tx) = pair();
        client.write_all(&[b'a'; 600]).await.unwrap();
        client.write_all(b"\r\nNOOP\r\n").await.unwrap();
        assert!(matches!(c.read_line(512, soon()).await, Err(ReadError::TooLong)));
        assert_eq!(c.read_line(512, soon()).await.unwrap(), b"NOOP\r\n");
        client.write_all(b"NO").await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(c.read_line(512, deadline).await, Err(ReadError::Timeout)));
    }

    #[tokio::test]
    async fn data_ending_with_a_bare_lf_is_answered_without_waiting() {
        for payload in [&b"Subject: x\r\n\r\nbody\n.\n"[..], b"Subject: x\r\n\r\nbody\r.\rX"] {
            let (mut c, mut client, _tx) = pair();
            client.write_all(payload).await.unwrap();
            // Nothing more comes: the read must end on what was sent, long before the deadline.
            let mut decoder = BodyDecoder::data(1 << 20, 1000);
            let deadline = Instant::now() + Duration::from_secs(20);
            let budget = crate::DataBudget::new(1 << 20);
            let mut body = crate::budget::BodyBuffer::new(&budget, 0, 0, 1 << 20).expect("within the budget");
            c.read_data(&mut decoder, &mut body, deadline).await.unwrap();
            assert!(decoder.saw_bare_line_end(), "{payload:?}");
        }
    }

    #[tokio::test]
    async fn shutdown_interrupts_a_wait_for_a_command() {
        let (mut c, _client, tx) = pair();
        let wait = tokio::spawn(async move { c.read_line(512, soon()).await });
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        assert!(matches!(wait.await.unwrap(), Err(ReadError::Shutdown)));
    }
}
