//! A thread that delivers events to user code, in order, with no internal lock held, so a
//! callback may call any API function (including the one that destroys its own engine).

use crate::runtime::service::join_unless_current;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Owns the delivery thread; closing it delivers what is queued, then joins the thread.
///
/// Events travel in batches (all those one wake-up of the I/O driver produced), so a burst
/// costs the delivery thread one wake-up rather than one per event.
pub struct Dispatcher<T: Send + 'static> {
    sender: Option<mpsc::Sender<Vec<T>>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Dispatcher<T> {
    /// Starts a thread that calls `deliver` for every event sent, in order.
    pub fn start(
        name: &str,
        mut deliver: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<Dispatcher<T>> {
        let (sender, receiver) = mpsc::channel::<Vec<T>>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for event in receiver.into_iter().flatten() {
                    // A panic in our own delivery code must not kill the thread or cross
                    // into C; user callbacks are C functions and cannot unwind.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deliver(event)));
                }
            })?;
        Ok(Dispatcher {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// A sender for the event producers: each message is a batch, delivered in order.
    pub fn sender(&self) -> mpsc::Sender<Vec<T>> {
        self.sender
            .clone()
            .expect("dispatcher is open until dropped")
    }

    /// Whether the caller runs on the delivery thread (i.e. inside a callback).
    pub fn is_current_thread(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|t| t.thread().id() == std::thread::current().id())
    }
}

impl<T: Send + 'static> Drop for Dispatcher<T> {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            join_unless_current(thread);
        }
    }
}
