//! Line-protocol helpers: bounded line reads and writes that give up on slow readers.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// The outcome of [`read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A complete line is in the buffer (with its `\n`, unless the peer closed after it).
    Line,
    /// The peer closed the connection with nothing pending.
    Eof,
    /// The line grew past the limit; the connection should be closed.
    TooLong,
}

/// Reads one line into `buf` (appending), holding at most `max` bytes of it. Cancel-safe in
/// the sense that bytes already read stay in `buf`: call again with the same buffer to go on.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > max + usize::from(done) {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take);
        if done {
            return Ok(LineRead::Line);
        }
    }
}

/// Writes all of `bytes`, failing with `TimedOut` when the peer has not taken them within
/// `timeout` (a client that never reads its replies must not pin memory).
pub async fn write_deadline<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(timeout, w.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer does not read its replies (slow reader)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_and_refuses_long_ones() {
        let data: &[u8] = b"abc\nde";
        let mut r = tokio::io::BufReader::with_capacity(2, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut buf, 4).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"abc\n");
        buf.clear();
        assert_eq!(
            read_line(&mut r, &mut buf, 4).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"de");
        buf.clear();
        assert_eq!(read_line(&mut r, &mut buf, 4).await.unwrap(), LineRead::Eof);

        let long: &[u8] = b"abcdef\n";
        let mut r = tokio::io::BufReader::with_capacity(2, long);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut buf, 4).await.unwrap(),
            LineRead::TooLong
        );
        assert!(buf.len() <= 4);
    }
}
