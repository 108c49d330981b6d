//! `RequestBody`: what every request sends, a complete body in one frame, or an upload handed to
//! the connection in chunks that says when its last chunk was taken, so the time to send a
//! large body (an audio file) can be stamped.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

/// Bytes of an upload handed to the connection at a time.
pub const UPLOAD_CHUNK: usize = 64 * 1024;

/// A request body with a known length (sent with `Content-Length`).
#[derive(Debug)]
pub(crate) struct RequestBody {
    data: Bytes,
    /// `Some` for an upload: chunks of [`UPLOAD_CHUNK`], and a signal when the last is taken.
    uploaded: Option<oneshot::Sender<()>>,
}

impl RequestBody {
    /// The whole body as one frame.
    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            data,
            uploaded: None,
        }
    }

    /// `data` in chunks; the receiver resolves when the connection took the last one.
    pub(crate) fn upload(data: Bytes) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let body = Self {
            data,
            uploaded: Some(tx),
        };
        (body, rx)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            if let Some(tx) = this.uploaded.take() {
                let _ = tx.send(());
            }
            return Poll::Ready(None);
        }
        let n = match this.uploaded {
            None => this.data.len(),
            Some(_) => this.data.len().min(UPLOAD_CHUNK),
        };
        let frame = this.data.split_to(n);
        if this.data.is_empty() {
            // The connection will not poll an ended body again.
            if let Some(tx) = this.uploaded.take() {
                let _ = tx.send(());
            }
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn an_upload_comes_in_chunks_and_signals_its_last() {
        let (body, mut done) = RequestBody::upload(Bytes::from(vec![7u8; UPLOAD_CHUNK * 2 + 5]));
        let mut body = std::pin::pin!(body);
        let mut sizes = Vec::new();
        let mut signalled_after = None;
        while let Some(frame) = body.frame().await {
            sizes.push(frame.unwrap().into_data().unwrap().len());
            if signalled_after.is_none() && done.try_recv().is_ok() {
                signalled_after = Some(sizes.len());
            }
        }
        assert_eq!(sizes, [UPLOAD_CHUNK, UPLOAD_CHUNK, 5]);
        assert_eq!(
            signalled_after,
            Some(3),
            "signalled with the last chunk, not before"
        );
        let full = RequestBody::full(Bytes::from_static(b"abc"));
        assert_eq!(full.size_hint().exact(), Some(3));
    }
}
