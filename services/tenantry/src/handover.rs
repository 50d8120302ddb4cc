//! The gRPC port's connections, handed from the server that answers while
//! the process starts (health only: NOT_SERVING) to the server of its
//! services once they are built.
//!
//! Two servers instead of one whose routes arrive later: a call on the
//! check path then passes no extra dispatch once the process serves (the
//! hand-over costs one channel send per connection, not per call).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// The connections one server receives.
pub type Incoming = ReceiverStream<std::io::Result<TcpStream>>;

/// Switches new connections from the starting server to the serving one.
#[derive(Debug, Clone)]
pub struct Handover(Arc<AtomicBool>);

impl Handover {
    /// From now on, new connections go to the serving server.
    pub fn hand_over(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Accepts on `listener` until `stop`: each connection (with Nagle off:
/// RPCs are small request/response pairs) goes to the starting server
/// until [`Handover::hand_over`], to the serving one after.
pub fn accept(listener: TcpListener, stop: CancellationToken) -> (Handover, Incoming, Incoming) {
    let (starting_tx, starting_rx) = mpsc::channel(64);
    let (serving_tx, serving_rx) = mpsc::channel(64);
    let handover = Handover(Arc::default());
    let switched = handover.0.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, not spin.
                    tracing::warn!(%error, "accepting a gRPC connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let target = if switched.load(Ordering::Acquire) {
                &serving_tx
            } else {
                &starting_tx
            };
            // A server that stopped drops its receiver; the connection
            // closes and the client connects again.
            let _ = target.send(Ok(stream)).await;
        }
    });
    (
        handover,
        ReceiverStream::new(starting_rx),
        ReceiverStream::new(serving_rx),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn connections_go_to_the_serving_side_after_the_hand_over() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (handover, mut starting, mut serving) = accept(listener, stop.clone());
        let _first = TcpStream::connect(addr).await.unwrap();
        assert!(starting.next().await.unwrap().is_ok());
        handover.hand_over();
        let _second = TcpStream::connect(addr).await.unwrap();
        assert!(serving.next().await.unwrap().is_ok());
        stop.cancel();
        assert!(
            serving.next().await.is_none(),
            "the acceptor ends with stop"
        );
    }
}
