//! One TCP or TLS connection to a next hop, as a task: it connects (and shakes hands),
//! writes what the driver hands it, and hands back what it reads, or how it ended. It
//! decides nothing: framing and what a loss means belong to the endpoint core.

use crate::engine::binding::Failure;
use crate::engine::transport::Target;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc as tmpsc;

/// How long a connection may take to open, TLS handshake included.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Queued messages written at most in one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// What a connection reports to its driver; `u64` is the connection's generation, so that
/// news of a connection replaced since is told apart.
#[derive(Debug)]
pub enum ConnEvent {
    /// Bytes read.
    Data(Target, u64, Vec<u8>),
    /// It could not open, or it closed: the failure to hand to the core.
    Lost(Target, u64, Failure),
}

/// The driver's end of a connection: dropping it closes the connection gracefully.
pub struct Connection {
    /// Generation.
    pub generation: u64,
    outgoing: tmpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::AbortHandle,
}

impl Connection {
    /// Starts a connection task on the current runtime. Bytes sent before it is open are
    /// written once it is.
    pub fn open(
        target: Target,
        generation: u64,
        tls: Option<Arc<ClientConfig>>,
        bind: Option<SocketAddr>,
        events: tmpsc::UnboundedSender<ConnEvent>,
    ) -> Connection {
        let (outgoing, receiver) = tmpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            if let Err(failure) = run(&target, tls, bind, receiver, &events, generation).await {
                let _ = events.send(ConnEvent::Lost(target, generation, failure));
            }
        });
        Connection {
            generation,
            outgoing,
            task: task.abort_handle(),
        }
    }

    /// Queues bytes to write; `false` if the connection has already ended (its loss is
    /// on its way to the driver).
    pub fn send(&self, bytes: Vec<u8>) -> bool {
        self.outgoing.send(bytes).is_ok()
    }

    /// Ends the task at once (the endpoint is closing).
    pub fn abort(&self) {
        self.task.abort();
    }
}

async fn run(
    target: &Target,
    tls: Option<Arc<ClientConfig>>,
    bind: Option<SocketAddr>,
    outgoing: tmpsc::UnboundedReceiver<Vec<u8>>,
    events: &tmpsc::UnboundedSender<ConnEvent>,
    generation: u64,
) -> Result<(), Failure> {
    let transport = |e: std::io::Error| Failure::Transport(e.to_string());
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(transport)?;
    if let Some(bind) = bind {
        socket.set_reuseaddr(true).map_err(transport)?;
        socket.bind(bind).map_err(transport)?;
    }
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target.addr))
        .await
        .map_err(|_| Failure::Transport("connecting timed out".into()))?
        .map_err(transport)?;
    let _ = tcp.set_nodelay(true);
    let Some(tls_target) = &target.tls else {
        return pump(tcp, target, outgoing, events, generation).await;
    };
    let config = tls.ok_or_else(|| Failure::Tls("no TLS settings for this target".into()))?;
    let name = ServerName::try_from(tls_target.server_name.clone())
        .map_err(|e| Failure::Tls(format!("{:?}: {e}", tls_target.server_name)))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| Failure::Tls("the handshake timed out".into()))?
        .map_err(|e| {
            tls_error(&e)
                .unwrap_or_else(|| Failure::Transport(format!("during the TLS handshake: {e}")))
        })?;
    pump(stream, target, outgoing, events, generation).await
}

async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    target: &Target,
    mut outgoing: tmpsc::UnboundedReceiver<Vec<u8>>,
    events: &tmpsc::UnboundedSender<ConnEvent>,
    generation: u64,
) -> Result<(), Failure> {
    // A TLS alert after the handshake (e.g. a TLS 1.3 server refusing our certificate)
    // shows up here, and is a TLS failure too.
    let transport =
        |e: std::io::Error| tls_error(&e).unwrap_or_else(|| Failure::Transport(e.to_string()));
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; 16 * 1024];
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            bytes = outgoing.recv() => match bytes {
                Some(bytes) => {
                    // What else is queued leaves in the same write (one system call, and
                    // over TLS one record, instead of one per message).
                    let mut next = outgoing.try_recv().ok();
                    if next.is_none() {
                        writer.write_all(&bytes).await.map_err(transport)?;
                    } else {
                        batch.clear();
                        batch.extend_from_slice(&bytes);
                        while let Some(more) = next {
                            batch.extend_from_slice(&more);
                            next = if batch.len() < WRITE_BATCH_BYTES {
                                outgoing.try_recv().ok()
                            } else {
                                None
                            };
                        }
                        writer.write_all(&batch).await.map_err(transport)?;
                        batch.clear();
                        batch.shrink_to(WRITE_BATCH_BYTES);
                    }
                    writer.flush().await.map_err(transport)?;
                }
                None => {
                    let _ = writer.shutdown().await;
                    return Ok(());
                }
            },
            read = reader.read(&mut buf) => match read {
                Ok(0) => return Err(Failure::Transport("closed by the peer".into())),
                Ok(n) => {
                    let _ = events.send(ConnEvent::Data(target.clone(), generation, buf[..n].to_vec()));
                }
                Err(e) => return Err(transport(e)),
            },
        }
    }
}

/// The TLS failure an I/O error carries, if it carries one.
fn tls_error(e: &std::io::Error) -> Option<Failure> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|tls| Failure::Tls(tls.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn queued_messages_arrive_whole_and_in_order_however_they_are_batched() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target {
            transport: crate::engine::transport::Transport::Tcp,
            addr: listener.local_addr().unwrap(),
            tls: None,
        };
        let (events, _reports) = tmpsc::unbounded_channel();
        let connection = Connection::open(target, 1, None, None, events);
        // Queued before the connection is open, then in bursts larger than one write.
        let messages: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("message {i} {}\r\n", "x".repeat(i % 200)).into_bytes())
            .collect();
        for message in &messages[..1000] {
            assert!(connection.send(message.clone()));
        }
        let (mut server, _) = listener.accept().await.unwrap();
        for message in &messages[1000..] {
            assert!(connection.send(message.clone()));
        }
        let expected = messages.concat();
        let mut received = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(10), server.read_exact(&mut received))
            .await
            .expect("everything arrives")
            .unwrap();
        assert!(received == expected, "bytes lost, reordered or repeated");
    }
}
