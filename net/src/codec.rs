//! The request-response codec: one request or response per stream, written whole and then
//! the stream closed, read up to a fixed cap. A response over its cap fails that stream only,
//! and so does an empty one (what a peer that gives no answer leaves). A request over its
//! cap is read as an empty request (libp2p reports no event for a request that fails to
//! read, so the transport could not charge its sender): the transport refuses it, charges
//! the peer and closes the stream.

use std::io;

use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// Bytes-in, bytes-out codec with caps on what it reads.
#[derive(Clone, Debug)]
pub struct BytesCodec {
    /// Largest request read.
    pub max_request: usize,
    /// Largest response read.
    pub max_response: usize,
}

/// A request past its cap, or none: stands for a broken request.
pub const BROKEN_REQUEST: Vec<u8> = Vec::new();

async fn read_capped<T: AsyncRead + Unpin + Send>(io: &mut T, cap: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(cap as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame over {cap} bytes"),
        ));
    }
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "empty frame (no answer)",
        ));
    }
    Ok(buf)
}

async fn write_all<T: AsyncWrite + Unpin + Send>(io: &mut T, data: Vec<u8>) -> io::Result<()> {
    io.write_all(&data).await?;
    io.close().await
}

impl libp2p::request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_capped(io, self.max_request).await {
            Ok(b) => Ok(b),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(BROKEN_REQUEST)
            }
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_capped(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all(io, res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::futures::executor::block_on;
    use libp2p::request_response::Codec;

    #[test]
    fn frames_up_to_the_cap_are_read_and_larger_ones_refused() {
        let mut c = BytesCodec {
            max_request: 8,
            max_response: 16,
        };
        let p = StreamProtocol::new("/t");
        let mut ok: &[u8] = &[1; 8];
        assert_eq!(block_on(c.read_request(&p, &mut ok)).unwrap(), vec![1; 8]);
        let mut big: &[u8] = &[1; 9];
        assert_eq!(
            block_on(c.read_request(&p, &mut big)).unwrap(),
            BROKEN_REQUEST
        );
        let mut resp: &[u8] = &[2; 16];
        assert_eq!(block_on(c.read_response(&p, &mut resp)).unwrap().len(), 16);
        let mut big: &[u8] = &[2; 17];
        let e = block_on(c.read_response(&p, &mut big)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut empty: &[u8] = &[];
        let e = block_on(c.read_response(&p, &mut empty)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
