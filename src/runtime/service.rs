//! The one registration service of the process: a tokio runtime on a thread of its own,
//! started by the first user and stopped — its thread joined — when the last user goes, so
//! that a host can `dlclose` the library and load it again.

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::thread::{JoinHandle, ThreadId};

struct Running {
    users: usize,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

static SERVICE: Lazy<Mutex<Option<Running>>> = Lazy::new(|| Mutex::new(None));

/// Threads that could not be joined where they ended (a callback thread that destroyed its
/// own engine); joined by the next release from another thread.
static ORPHANS: Lazy<Mutex<Vec<JoinHandle<()>>>> = Lazy::new(|| Mutex::new(Vec::new()));

/// A counted reference to the running service; dropping the last one stops it.
pub struct ServiceGuard {
    handle: tokio::runtime::Handle,
}

impl ServiceGuard {
    /// Takes a reference, starting the service if it is not running.
    pub fn acquire() -> std::io::Result<ServiceGuard> {
        let mut service = SERVICE.lock();
        if let Some(running) = service.as_mut() {
            running.users += 1;
            return Ok(ServiceGuard {
                handle: running.handle.clone(),
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("lanscape-sip-blocking")
            .build()?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lanscape-sip-io".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime cancels the remaining tasks and joins its blocking pool.
                drop(runtime);
            })?;
        *service = Some(Running {
            users: 1,
            handle: handle.clone(),
            stop: Some(stop_tx),
            thread: Some(thread),
        });
        Ok(ServiceGuard { handle })
    }

    /// The runtime handle, to spawn tasks and create sockets.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let finished = {
            let mut service = SERVICE.lock();
            let Some(running) = service.as_mut() else {
                return;
            };
            running.users -= 1;
            if running.users > 0 {
                None
            } else {
                service.take()
            }
        };
        if let Some(mut running) = finished {
            if let Some(stop) = running.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = running.thread.take() {
                join_unless_current(thread);
            }
        }
        reap_orphans();
    }
}

/// Joins `thread`, or leaves it to a later release when it is the calling thread.
pub fn join_unless_current(thread: JoinHandle<()>) {
    if thread.thread().id() == std::thread::current().id() {
        ORPHANS.lock().push(thread);
    } else {
        let _ = thread.join();
    }
}

fn reap_orphans() {
    let me: ThreadId = std::thread::current().id();
    let ready: Vec<JoinHandle<()>> = {
        let mut orphans = ORPHANS.lock();
        let (mine, others): (Vec<_>, Vec<_>) =
            orphans.drain(..).partition(|t| t.thread().id() == me);
        *orphans = mine;
        others
    };
    for thread in ready {
        let _ = thread.join();
    }
}

/// Whether the service is running (for tests of the start/stop rule).
#[cfg(feature = "testkit")]
pub fn is_running() -> bool {
    SERVICE.lock().is_some()
}

/// Threads of this library still alive: the service thread and unjoined orphans.
#[cfg(feature = "testkit")]
pub fn live_threads() -> usize {
    usize::from(is_running()) + ORPHANS.lock().len()
}
