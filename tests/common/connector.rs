//! Connectors for the tests: the client opens every transport through one.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use minimqtt::Connector;

/// Hands out the transports queued in it, one per connection attempt, and
/// fails when none is queued. Clones share the queue, so a test keeps one
/// to queue the next connection while the client owns the other.
#[derive(Debug)]
pub struct Queue<T> {
    queue: Arc<Mutex<VecDeque<T>>>,
    opened: Arc<AtomicUsize>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            opened: self.opened.clone(),
        }
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            queue: Arc::default(),
            opened: Arc::default(),
        }
    }
}

impl<T> Queue<T> {
    /// A queue holding `first`.
    pub fn with(first: T) -> Self {
        let queue = Self::default();
        queue.push(first);
        queue
    }

    /// Queues the transport of the next connection.
    pub fn push(&self, transport: T) {
        self.queue.lock().unwrap().push_back(transport);
    }

    /// Transports handed out so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// Transports queued and not yet handed out.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    /// Drops every queued transport.
    pub fn clear(&self) {
        self.queue.lock().unwrap().clear();
    }
}

/// The error of a [`Queue`] with nothing queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NothingQueued;

impl<T: embedded_io_async::Read + embedded_io_async::Write> Connector for Queue<T> {
    type Transport = T;
    type Error = NothingQueued;

    async fn connect(&mut self) -> Result<T, NothingQueued> {
        let next = self.queue.lock().unwrap().pop_front();
        if next.is_some() {
            self.opened.fetch_add(1, Ordering::SeqCst);
        }
        next.ok_or(NothingQueued)
    }
}
