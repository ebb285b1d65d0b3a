//! Bounded body reads: the only places a response body is read.

/// Why a bounded read stopped.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is longer than the limit (announced or actual).
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads a body chunk by chunk, refusing more than `limit` bytes: a declared
/// `Content-Length` over the limit fails before anything is read.
pub(crate) async fn read_bounded(
    resp: &mut reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The first `n` bytes of a body; the rest is not read. A transport failure
/// ends the prefix where it happened.
pub(crate) async fn read_prefix(resp: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < n {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(n - buf.len())]),
            _ => break,
        }
    }
    buf
}
