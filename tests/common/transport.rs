//! A transport wrapper for client tests: it reshapes the byte stream
//! between the client and the real socket (split reads, merged reads,
//! partial writes) and records what went over it, parsed into MQTT packets.
//!
//! Every client scenario runs once per [`Mode`]: a client that is correct
//! over a plain socket must behave identically when packets arrive one
//! byte at a time, cut at random places, several per read, or when the
//! socket accepts only part of each write.
//!
//! The reshaping is deterministic for a given seed (a xorshift generator),
//! so a failure can be replayed. Bytes held back by the wrapper live in the
//! wrapper, not in a future, so a read dropped by the client (it races the
//! socket against its timers) never loses data.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use embedded_io_async::{ErrorType, Read, Write};
use minimqtt::codec::{FixedHeader, PacketType};

/// How long [`Mode::Merge`] holds back bytes waiting for more packets.
pub const MERGE_LINGER: Duration = Duration::from_millis(15);
/// [`Mode::Merge`] releases its bytes early once it holds this many whole
/// packets.
pub const MERGE_PACKETS: usize = 3;

/// How the wrapper reshapes the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads and writes go straight to the socket.
    Passthrough,
    /// Every read returns exactly one byte.
    OneByte,
    /// Every read returns a random number of the available bytes
    /// (1..=available), so packets are cut at random places.
    RandomSplit,
    /// Reads wait until several packets are buffered (or
    /// [`MERGE_LINGER`] passed), then return everything at once: one read
    /// carries several packets, often with a partial one at the end.
    Merge,
    /// Every write accepts only a random prefix (1..=len) of its buffer.
    PartialWrites,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Passthrough,
        Mode::OneByte,
        Mode::RandomSplit,
        Mode::Merge,
        Mode::PartialWrites,
    ];
}

/// One packet the client wrote, as the wrapper saw it complete.
#[derive(Debug, Clone)]
pub struct Written {
    pub packet_type: PacketType,
    /// When its last byte was written.
    pub at: Instant,
    pub bytes: Vec<u8>,
}

/// Splits a byte stream into MQTT packets by their fixed headers.
#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Adds bytes; returns the packets they completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        let mut packets = Vec::new();
        while let Ok(header) = FixedHeader::decode(&self.buf) {
            let len = header.packet_len();
            if self.buf.len() < len {
                break;
            }
            packets.push(self.buf.drain(..len).collect());
        }
        packets
    }

    /// Bytes still needed to finish the current partial packet: `Some(0)`
    /// at a packet boundary, `None` while its fixed header is incomplete.
    fn missing(&self) -> Option<usize> {
        if self.buf.is_empty() {
            return Some(0);
        }
        FixedHeader::decode(&self.buf)
            .ok()
            .map(|h| h.packet_len().saturating_sub(self.buf.len()))
    }
}

/// What went over the wrapper; shared with the test through [`StatsHandle`].
#[derive(Debug, Default)]
pub struct Stats {
    /// Packets written by the client, complete ones only, in order.
    pub written: Vec<Written>,
    /// Types of the packets the client read, complete ones only, in order.
    pub read: Vec<PacketType>,
    pub bytes_written: usize,
    pub bytes_read: usize,
    /// Calls to `read` that returned data.
    pub reads: usize,
    /// Calls to `write`.
    pub writes: usize,
    /// The most packets completed by a single read.
    pub max_packets_per_read: usize,
    /// Reads that ended inside a packet.
    pub split_reads: usize,
    tx: Framer,
    rx: Framer,
}

impl Stats {
    pub fn count_written(&self, t: PacketType) -> usize {
        self.written.iter().filter(|w| w.packet_type == t).count()
    }

    pub fn count_read(&self, t: PacketType) -> usize {
        self.read.iter().filter(|&&r| r == t).count()
    }

    pub fn written_types(&self) -> Vec<PacketType> {
        self.written.iter().map(|w| w.packet_type).collect()
    }

    fn record_write(&mut self, bytes: &[u8]) {
        self.bytes_written += bytes.len();
        let now = Instant::now();
        for packet in self.tx.push(bytes) {
            let packet_type = FixedHeader::decode(&packet)
                .expect("framed packet has a header")
                .packet_type;
            self.written.push(Written {
                packet_type,
                at: now,
                bytes: packet,
            });
        }
    }

    fn record_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.reads += 1;
        self.bytes_read += bytes.len();
        let packets = self.rx.push(bytes);
        self.max_packets_per_read = self.max_packets_per_read.max(packets.len());
        if self.rx.missing() != Some(0) {
            self.split_reads += 1;
        }
        for packet in packets {
            if let Ok(h) = FixedHeader::decode(&packet) {
                self.read.push(h.packet_type);
            }
        }
    }
}

/// A cheap, cloneable view of a transport's [`Stats`].
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<Mutex<Stats>>);

impl StatsHandle {
    pub fn get(&self) -> MutexGuard<'_, Stats> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts over, for a new connection recorded through the same handle.
    pub fn reset(&self) {
        *self.get() = Stats::default();
    }
}

/// The wrapper: an `embedded_io_async` stream over another one.
pub struct Transport<T> {
    inner: T,
    mode: Mode,
    rng: u64,
    /// Bytes read from `inner` and not yet handed to the client.
    pending: VecDeque<u8>,
    /// When the oldest byte of `pending` arrived (for `Merge`).
    pending_since: Option<tokio::time::Instant>,
    stats: StatsHandle,
}

impl<T> Transport<T> {
    /// Wraps `inner`; `seed` drives every random choice.
    pub fn new(inner: T, mode: Mode, seed: u64) -> Self {
        Self::with_stats(inner, mode, seed, StatsHandle::default())
    }

    /// [`new`](Self::new), recording into `stats`.
    pub fn with_stats(inner: T, mode: Mode, seed: u64, stats: StatsHandle) -> Self {
        Self {
            inner,
            mode,
            // xorshift must not start at 0.
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            pending: VecDeque::new(),
            pending_since: None,
            stats,
        }
    }

    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// A random number in `1..=max` (`max >= 1`).
    fn random_len(&mut self, max: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        1 + (self.rng % max as u64) as usize
    }

    /// Whole packets in `pending`, counted from the first boundary.
    fn pending_packets(&self) -> usize {
        let Some(skip) = self.stats.get().rx.missing() else {
            return 0;
        };
        let bytes: Vec<u8> = self.pending.iter().skip(skip).copied().collect();
        let mut framer = Framer::default();
        framer.push(&bytes).len()
    }

    /// Hands up to `n` pending bytes to the client.
    fn deliver(&mut self, buf: &mut [u8], n: usize) -> usize {
        let n = n.min(buf.len()).min(self.pending.len());
        for (slot, byte) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = byte;
        }
        if self.pending.is_empty() {
            self.pending_since = None;
        }
        self.stats.get().record_read(&buf[..n]);
        n
    }
}

impl<T: ErrorType> ErrorType for Transport<T> {
    type Error = T::Error;
}

impl<T: Read> Transport<T> {
    /// Reads once from the socket into `pending`; `Ok(false)` at EOF.
    async fn fill(&mut self) -> Result<bool, T::Error> {
        let mut chunk = [0u8; 2048];
        let n = self.inner.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        if self.pending.is_empty() {
            self.pending_since = Some(tokio::time::Instant::now());
        }
        self.pending.extend(&chunk[..n]);
        Ok(true)
    }
}

impl<T: Read> Read for Transport<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.mode {
            Mode::Passthrough | Mode::PartialWrites => {
                let n = self.inner.read(buf).await?;
                self.stats.get().record_read(&buf[..n]);
                Ok(n)
            }
            Mode::OneByte | Mode::RandomSplit => {
                if self.pending.is_empty() && !self.fill().await? {
                    return Ok(0);
                }
                let n = if self.mode == Mode::OneByte {
                    1
                } else {
                    let max = self.pending.len().min(buf.len());
                    self.random_len(max)
                };
                Ok(self.deliver(buf, n))
            }
            Mode::Merge => {
                loop {
                    if self.pending.is_empty() {
                        if !self.fill().await? {
                            return Ok(0);
                        }
                        continue;
                    }
                    let since = self.pending_since.unwrap_or_else(tokio::time::Instant::now);
                    let enough =
                        self.pending.len() >= buf.len() || self.pending_packets() >= MERGE_PACKETS;
                    if enough || since.elapsed() >= MERGE_LINGER {
                        break;
                    }
                    // Wait for more bytes until the linger ends. Bytes read
                    // meanwhile are kept in `pending`, so cancelling this
                    // future (or timing out here) loses nothing.
                    match tokio::time::timeout_at(since + MERGE_LINGER, self.fill()).await {
                        Ok(Ok(true)) => {}
                        // EOF or an error after some bytes: deliver those
                        // first; the next read sees the end again.
                        Ok(Ok(false)) | Ok(Err(_)) => break,
                        Err(_elapsed) => break,
                    }
                }
                let n = self.pending.len();
                Ok(self.deliver(buf, n))
            }
        }
    }
}

impl<T: Write> Write for Transport<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = if self.mode == Mode::PartialWrites {
            self.random_len(buf.len())
        } else {
            buf.len()
        };
        let n = self.inner.write(&buf[..len]).await?;
        let mut stats = self.stats.get();
        stats.writes += 1;
        stats.record_write(&buf[..n]);
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().await
    }
}
