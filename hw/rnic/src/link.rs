//! Carriers: what takes a frame from one NIC's port to another's. The packet layer
//! ([`crate::wire`]) never sees them, so the in-memory link here and a UDP carrier
//! between machines are interchangeable.
//!
//! A frame is the UDP payload of a RoCEv2 datagram (BTH to ICRC) with the addresses
//! the IP and UDP headers would carry; the ICRC covers those headers, so a receiver
//! rebuilds them from the addresses to check it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// One RoCEv2 datagram on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Source GID (the IP source address).
    pub sgid: [u8; 16],
    /// Destination GID.
    pub dgid: [u8; 16],
    /// UDP source port (the flow: one per QP).
    pub udp_sport: u16,
    /// The UDP payload: BTH, extension headers, payload, pad, ICRC.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("udp_sport", &self.udp_sport)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Where a port's frames go.
pub trait Carrier: Send + Sync + fmt::Debug {
    /// Sends one frame. A carrier may drop it (a link that is down, a full queue):
    /// RoCE leaves recovery to the transport.
    fn transmit(&self, frame: Frame);

    /// Sends frames in order (a NIC's burst); by default one by one.
    fn transmit_all(&self, frames: Vec<Frame>) {
        for f in frames {
            self.transmit(f);
        }
    }
}

/// The receiving side of a port: a NIC.
pub trait Receiver: Send + Sync {
    /// Frames arrived, in order.
    fn receive(&self, frames: Vec<Frame>);
}

/// Fault injection on an in-memory link, per direction: tests use it to lose packets
/// and watch the transport recover (or give up).
#[derive(Debug, Default)]
pub struct LinkFaults {
    /// Frames are dropped while the link is down.
    down: AtomicBool,
    /// Drop the frame whose sequence number (counted from 1 on this direction) is a
    /// multiple of this (0: never).
    drop_every: AtomicU64,
    /// Frames carried so far.
    seq: AtomicU64,
    /// Frames dropped so far.
    dropped: AtomicU64,
}

impl LinkFaults {
    /// Takes the link down (every frame is lost) or up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Loses every `n`-th frame (0: none).
    pub fn drop_every(&self, n: u64) {
        self.drop_every.store(n, Ordering::SeqCst);
    }

    /// Frames lost so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }

    fn keep(&self) -> bool {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.drop_every.load(Ordering::SeqCst);
        let lose = self.down.load(Ordering::SeqCst) || (every != 0 && seq.is_multiple_of(every));
        if lose {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        !lose
    }
}

/// One direction of an in-memory cable: hands each frame to the peer's receive queue
/// (the peer's engine processes it on its own thread).
pub struct InMemoryLink {
    peer: Mutex<Option<Weak<dyn Receiver>>>,
    faults: Arc<LinkFaults>,
}

impl fmt::Debug for InMemoryLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLink")
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl InMemoryLink {
    /// A direction towards `peer`.
    pub fn new(peer: Weak<dyn Receiver>) -> Self {
        Self {
            peer: Mutex::new(Some(peer)),
            faults: Arc::new(LinkFaults::default()),
        }
    }

    /// This direction's fault injection.
    pub fn faults(&self) -> &Arc<LinkFaults> {
        &self.faults
    }

    /// Unplugs the cable: later frames go nowhere.
    pub fn unplug(&self) {
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Carrier for InMemoryLink {
    fn transmit(&self, frame: Frame) {
        self.transmit_all(vec![frame]);
    }

    fn transmit_all(&self, mut frames: Vec<Frame>) {
        frames.retain(|_| self.faults.keep());
        if frames.is_empty() {
            return;
        }
        let peer = self
            .peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade);
        if let Some(peer) = peer {
            peer.receive(frames);
        }
    }
}
