//! The HTTP server: our own accept loop over hyper, so that every connection
//! is bounded. A new connection must send its first request head within the
//! header timeout; on a kept-alive connection, the header timeout starts at
//! the first byte of the next request head, and until that byte comes the
//! connection is idle. A connection with no traffic for the idle timeout is
//! closed (after the response in progress, if any), and at most
//! `max_connections` connections are served at once: further ones wait in
//! the listen backlog until one closes. The limits come from
//! [`crate::limits::Limits`].
//!
//! hyper's `header_read_timeout` starts whenever a connection waits for a
//! request head, so on its own it would close every idle keep-alive
//! connection at the header timeout (10 s), long before the idle timeout
//! (75 s), and a client's pooled connection would meet a closed socket on its
//! next request. The timer we give hyper (`HeaderClock`) therefore starts the
//! waits after the first one at the first byte read for them
//! (`HeaderSleep::Lazy`).
//!
//! Both timeouts run on one timer per connection, the connection loop's,
//! re-armed only when it fires, instead of a runtime timer set and cancelled
//! for every request head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    let times = Arc::new(Times {
        start: Instant::now(),
        last: AtomicU64::new(0),
        head_deadline: AtomicU64::new(0),
        head_from: AtomicU64::new(NO_BYTE),
        armed: AtomicBool::new(false),
    });
    let io = Tracked {
        inner: tcp,
        times: times.clone(),
    };
    let service = TowerToHyperService::new(router);
    let header = limits.header_timeout;
    let clock = HeaderClock {
        times: times.clone(),
        header,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(clock)
        .header_read_timeout(header)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let idle = limits.idle_timeout;
    let start = times.start;
    let mut closing = false;
    loop {
        // Wake at the idle deadline, at the pending header deadline, and at
        // least once per header timeout: a head wait (or its first byte) that
        // comes after this point ends no earlier than that, so no header
        // deadline is missed.
        let now = start.elapsed();
        let mut wake = now + header;
        if !closing {
            wake = wake.min(times.last() + idle);
        }
        let header_at = Duration::from_millis(times.head_deadline.load(Ordering::Relaxed));
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
                // An idle connection (waiting for a head that has not begun)
                // closes at once; one with a request in progress closes after
                // its response.
                if !closing && start.elapsed() >= times.last() + idle {
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

/// `Times::head_from` before the first byte of the awaited head.
const NO_BYTE: u64 = u64::MAX;

/// A connection's clock, in ms since it was accepted, shared by the
/// connection loop, the stream and hyper's header timer (all in the
/// connection's task, hence the relaxed atomics).
struct Times {
    start: Instant,
    /// When the connection last moved a byte (the idle timeout).
    last: AtomicU64,
    /// The deadline of the head being read, once known (0: none), for the
    /// connection loop to wake by.
    head_deadline: AtomicU64,
    /// When the first byte since the current head wait began was read
    /// ([`NO_BYTE`]: none yet).
    head_from: AtomicU64,
    /// Whether the first head wait (the one timed from its start) has begun.
    armed: AtomicBool,
}

impl Times {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn last(&self) -> Duration {
        Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// A read brought bytes.
    fn read(&self) {
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if self.head_from.load(Ordering::Relaxed) == NO_BYTE {
            self.head_from.store(now, Ordering::Relaxed);
        }
    }

    /// `deadline` as ms since the connection started, rounded up: the loop
    /// never wakes before the sleep is over.
    fn ms(&self, deadline: Instant) -> u64 {
        let ms = deadline
            .saturating_duration_since(self.start)
            .as_micros()
            .div_ceil(1000);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

/// hyper's timer for the header read timeout, on the connection's clock.
/// hyper asks for one sleep per request head, from the moment it waits for
/// that head. The first one (a new connection's first request) runs from
/// then; every later one is [`HeaderSleep::Lazy`]: it runs from the first
/// byte read after the wait began, so a kept-alive connection with no byte
/// of a next request is idle, bounded by the idle timeout, not the header
/// timeout. A sleep records its deadline for the connection loop, which
/// wakes the connection's task by then; the sleep itself only compares the
/// time when it is polled (a runtime timer would be registered and
/// cancelled for each request head).
struct HeaderClock {
    times: Arc<Times>,
    header: Duration,
}

impl hyper::rt::Timer for HeaderClock {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        if self.times.armed.swap(true, Ordering::Relaxed) {
            // Bytes hyper already holds (a pipelined head that came with the
            // previous request) start no clock here: the connection is then
            // bounded as an idle one, and any byte that arrives starts it.
            self.times.head_from.store(NO_BYTE, Ordering::Relaxed);
            self.times.head_deadline.store(0, Ordering::Relaxed);
            Box::pin(HeaderSleep::Lazy {
                times: self.times.clone(),
                header: self.header,
            })
        } else {
            self.times
                .head_deadline
                .store(self.times.ms(deadline), Ordering::Relaxed);
            Box::pin(HeaderSleep::From { deadline })
        }
    }
}

/// Ready once its deadline has passed. It registers no waker: only the
/// connection polls it, in the task whose loop wakes by the deadline.
enum HeaderSleep {
    /// Runs to a fixed deadline.
    From { deadline: Instant },
    /// Runs for `header` from the first byte read since it was made; never
    /// ready before that byte.
    Lazy { times: Arc<Times>, header: Duration },
}

impl Future for HeaderSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let deadline = match &*self {
            HeaderSleep::From { deadline } => *deadline,
            HeaderSleep::Lazy { times, header } => {
                let from = times.head_from.load(Ordering::Relaxed);
                if from == NO_BYTE {
                    return Poll::Pending;
                }
                let deadline = times.start + Duration::from_millis(from) + *header;
                times
                    .head_deadline
                    .store(times.ms(deadline), Ordering::Relaxed);
                deadline
            }
        };
        if Instant::now() >= deadline {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl hyper::rt::Sleep for HeaderSleep {}

/// A TCP stream that records when it last moved a byte (the idle timeout)
/// and when a request head's first byte came (the header timeout).
struct Tracked {
    inner: TcpStream,
    times: Arc<Times>,
}

impl Tracked {
    fn wrote(&self) {
        self.times
            .last
            .store(self.times.now_ms(), Ordering::Relaxed);
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
            self.times.read();
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
            self.wrote();
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
            self.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
