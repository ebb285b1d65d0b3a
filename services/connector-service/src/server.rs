//! The HTTP server: our own accept loop over hyper, so that every connection
//! is bounded. A client must send its request headers within the header
//! timeout (hyper's `header_read_timeout`, started whenever a connection
//! waits for a request head), a connection with no traffic for the idle
//! timeout is closed (after the response in progress, if any), and at most
//! `max_connections` connections are served at once: further ones wait in
//! the listen backlog until one closes. The limits come from
//! [`crate::limits::Limits`].
//!
//! Both timeouts run on one timer per connection (`HeaderClock`), re-armed
//! only when it fires, instead of a runtime timer set and cancelled for every
//! request head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::limits::Limits;

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open connections finish their current request (for at most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: crate::app::App,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            () = &mut shutdown => break,
        };
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let limits = limits.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(tcp, router, &limits, stop).await;
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(30), slots.acquire_many(all)).await;
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    router: crate::app::App,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = Tracked {
        inner: tcp,
        start,
        last: last.clone(),
    };
    let service = TowerToHyperService::new(router);
    let header = limits.header_timeout;
    let clock = HeaderClock {
        start,
        deadline: Arc::new(AtomicU64::new(0)),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(clock.clone())
        .header_read_timeout(header)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let idle = limits.idle_timeout;
    let mut closing = false;
    loop {
        // Wake at the idle deadline, at the pending header deadline, and at
        // least once per header timeout: a head wait that starts after this
        // point ends no earlier than that, so no header deadline is missed.
        let now = start.elapsed();
        let mut wake = now + header;
        if !closing {
            let idle_at = Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            wake = wake.min(idle_at);
        }
        let header_at = Duration::from_millis(clock.deadline.load(Ordering::Relaxed));
        if header_at > now {
            wake = wake.min(header_at);
        }
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            // Polling the connection again (the next turn of the loop) lets
            // hyper see its header sleep expired.
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(start + wake)) => {
                let since = Duration::from_millis(last.load(Ordering::Relaxed));
                if !closing && start.elapsed() >= since + idle {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// hyper's timer for the header read timeout, on the connection's clock:
/// a sleep records its deadline (in ms since the connection started) for the
/// connection loop, which wakes the connection's task by then; the sleep
/// itself only compares the time when it is polled. hyper asks for one sleep
/// per request head, and a runtime timer would be registered and cancelled
/// for each of them.
#[derive(Clone)]
struct HeaderClock {
    start: Instant,
    deadline: Arc<AtomicU64>,
}

impl hyper::rt::Timer for HeaderClock {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // Rounded up: the loop never wakes before the sleep is over.
        let ms = deadline
            .saturating_duration_since(self.start)
            .as_micros()
            .div_ceil(1000);
        self.deadline
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
        Box::pin(HeaderSleep { deadline })
    }
}

/// Ready once its deadline has passed. It registers no waker: only the
/// connection polls it, in the task whose loop wakes by the deadline.
struct HeaderSleep {
    deadline: Instant,
}

impl Future for HeaderSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl hyper::rt::Sleep for HeaderSleep {}

/// A TCP stream that records when it last moved a byte, for the idle timeout.
struct Tracked {
    inner: TcpStream,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
