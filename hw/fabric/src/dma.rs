//! Moving data: device DMA routed through the tree, CPU access, counters and timing.
//!
//! A device request travels up from its initiator. At each switch it passes, it goes
//! straight down to a sibling downstream port whose window claims the address
//! (peer-to-peer: no IOMMU, the address is a bus address), unless ACS P2P Request
//! Redirect is set on the port it came in by. Whatever reaches the root port enters the
//! root complex, where the initiator's IOMMU domain translates it; the result is host
//! DRAM or, forwarded peer-to-peer by the root complex, a BAR below some root port.
//! Nothing else claims it: the request is refused (Unsupported Request).
//!
//! A transfer is cut into chunks over which route and translation stay the same
//! (mapping ends, window and BAR ends, the end of DRAM); each chunk is resolved to a
//! source and a destination and copied once, without locks held and without a bounce
//! buffer (only a device model's MMIO registers, which are not memory, go through
//! one). The first refused chunk ends the transfer: earlier chunks have landed, the
//! fault is logged for the initiator and returned.
//!
//! Counters count payload bytes per link and direction (the direction the data flows:
//! up for a device's writes, down for the completions of its reads). Timing is
//! computed from the same route: latency of every link, switch, root complex and DRAM
//! crossed (twice for reads: request and completion) plus bytes over the slowest
//! bandwidth on the path. Timing never changes what is copied.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::topology::{BarKind, FunctionKind};
use crate::{
    Access, BusAddr, DeviceId, Fabric, Fault, FaultReason, Iova, LinkId, Memory, OutOfBounds,
    PhysAddr,
};

/// Start of the window where a device's write is an interrupt message (MSI/MSI-X):
/// just below the 64-bit MMIO space, so it never overlaps host DRAM.
pub const MSI_BASE: u64 = crate::topology::MMIO_BASE - MSI_SIZE;
/// Size of the interrupt window.
pub const MSI_SIZE: u64 = 1 << 20;

/// Receives interrupt messages: the host's interrupt controller.
pub trait InterruptSink: Send + Sync {
    /// A device wrote `data` to interrupt address `addr` (inside the MSI window).
    fn msi(&self, addr: u64, data: u32);
}

/// The root complex's interrupt window, seen as a register file: each aligned dword
/// written is one message.
#[derive(Default)]
pub(crate) struct MsiPort {
    pub(crate) sink: std::sync::OnceLock<Arc<dyn InterruptSink>>,
}

impl MmioHandler for MsiPort {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        // Routing refuses reads of the window before they get here.
        data.fill(0xff);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let Some(sink) = self.sink.get() else { return };
        for (i, dword) in data.chunks_exact(4).enumerate() {
            let value = u32::from_le_bytes([dword[0], dword[1], dword[2], dword[3]]);
            sink.msi(MSI_BASE + offset + 4 * i as u64, value);
        }
    }
}

/// A device model's registers behind an MMIO BAR.
pub trait MmioHandler: Send + Sync {
    /// Serves a read of `data.len()` bytes at `offset` into the BAR.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Serves a write of `data` at `offset` into the BAR.
    fn write(&self, offset: u64, data: &[u8]);
}

/// Why a transfer failed. Bytes before the failing chunk were transferred.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DmaError {
    /// The request was refused (also recorded in the initiator's fault log).
    #[error(transparent)]
    Fault(#[from] Fault),
    /// The range wraps the 64-bit address space.
    #[error("transfer of {len:#x} bytes at {addr:#x} wraps the address space")]
    Wraps {
        /// Start address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// The initiator is a bridge.
    #[error("{0:?} is not an endpoint and cannot master DMA")]
    NotAnEndpoint(DeviceId),
    /// A device-local memory range is out of bounds.
    #[error(transparent)]
    Local(#[from] OutOfBounds),
    /// A CPU access reached neither host DRAM nor a BAR with memory or a device model
    /// behind it (the CPU is no device, so there is no fault log to record it in).
    #[error("CPU access of {len:#x} bytes at physical {addr} reaches no DRAM, BAR or device model")]
    CpuUnclaimed {
        /// The first address nothing claims.
        addr: PhysAddr,
        /// Bytes left from there.
        len: u64,
    },
}

/// What a transfer did and how long the hardware would have taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DmaReport {
    /// Bytes moved.
    pub bytes: u64,
    /// Modelled device time in nanoseconds: path latency plus bytes over the
    /// bottleneck bandwidth of the path (links, host DRAM, root-complex forwarding).
    pub device_time_ns: u64,
    /// Links the data crossed.
    pub links: Vec<LinkId>,
    /// The data went through a root complex (translation, DRAM or p2p forwarding).
    pub through_root_complex: bool,
    /// The data was read from or written to host DRAM.
    pub host_dram: bool,
}

/// Bytes that crossed one link, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// The link.
    pub link: LinkId,
    /// Bytes towards the root.
    pub up_bytes: u64,
    /// Bytes away from the root.
    pub down_bytes: u64,
}

/// A snapshot of every counter of the fabric (DMA and CPU traffic on links; DMA
/// traffic at host DRAM and through root complexes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// One entry per link, by link id.
    pub links: Vec<LinkCounters>,
    /// Bytes devices read from host DRAM.
    pub host_dram_read_bytes: u64,
    /// Bytes devices wrote to host DRAM.
    pub host_dram_write_bytes: u64,
    /// Bytes forwarded peer-to-peer by root complexes.
    pub root_complex_p2p_bytes: u64,
}

impl Counters {
    /// The counters of one link.
    pub fn link(&self, id: LinkId) -> LinkCounters {
        self.links
            .iter()
            .copied()
            .find(|l| l.link == id)
            .unwrap_or(LinkCounters {
                link: id,
                ..Default::default()
            })
    }

    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            links: self
                .links
                .iter()
                .map(|l| {
                    let e = earlier.link(l.link);
                    LinkCounters {
                        link: l.link,
                        up_bytes: l.up_bytes.saturating_sub(e.up_bytes),
                        down_bytes: l.down_bytes.saturating_sub(e.down_bytes),
                    }
                })
                .collect(),
            host_dram_read_bytes: self
                .host_dram_read_bytes
                .saturating_sub(earlier.host_dram_read_bytes),
            host_dram_write_bytes: self
                .host_dram_write_bytes
                .saturating_sub(earlier.host_dram_write_bytes),
            root_complex_p2p_bytes: self
                .root_complex_p2p_bytes
                .saturating_sub(earlier.root_complex_p2p_bytes),
        }
    }

    /// Total bytes over all links, both directions.
    pub fn total_link_bytes(&self) -> u64 {
        self.links.iter().map(|l| l.up_bytes + l.down_bytes).sum()
    }
}

/// Where a chunk's bytes live.
#[derive(Clone, Copy)]
enum Sink<'a> {
    Mem(&'a Memory, u64),
    Mmio(&'a dyn MmioHandler, u64),
}

impl Sink<'_> {
    /// Reads `buf.len()` bytes at the sink's position.
    fn read(self, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        match self {
            Sink::Mem(m, o) => m.read(o, buf),
            Sink::Mmio(h, o) => {
                h.read(o, buf);
                Ok(())
            }
        }
    }

    /// Writes `buf` at the sink's position.
    fn write(self, buf: &[u8]) -> Result<(), OutOfBounds> {
        match self {
            Sink::Mem(m, o) => m.write(o, buf),
            Sink::Mmio(h, o) => {
                h.write(o, buf);
                Ok(())
            }
        }
    }

    /// The sink `n` bytes further on.
    fn advance(self, n: u64) -> Self {
        match self {
            Sink::Mem(m, o) => Sink::Mem(m, o + n),
            Sink::Mmio(h, o) => Sink::Mmio(h, o + n),
        }
    }
}

/// A BAR found by walking down the tree.
struct Hit<'a> {
    sink: Sink<'a>,
    /// Bytes from the address to the end of the BAR.
    avail: u64,
    dev: DeviceId,
    /// Links walked down.
    links: usize,
    /// Latency of the switches crossed on the way down.
    switch_ns: u64,
}

/// One chunk's path, fixed for `len` bytes.
struct Route<'a> {
    sink: Sink<'a>,
    len: u64,
    /// Links climbed from the initiator (a prefix of its `links_to_root`).
    up: usize,
    /// The target endpoint and the links descended to it (a prefix of its chain).
    down_dev: DeviceId,
    down: usize,
    switch_ns: u64,
    /// The host bridge whose root complex the chunk went through.
    rc: Option<usize>,
    rc_p2p: bool,
    dram: bool,
}

/// Accumulates a transfer's report chunk by chunk.
#[derive(Default)]
struct Tally {
    bytes: u64,
    latency_ns: u64,
    transfer_ns: f64,
    links: Vec<LinkId>,
    rc: bool,
    dram: bool,
}

impl Tally {
    fn add(
        &mut self,
        n: u64,
        latency_ns: u64,
        bandwidth: f64,
        links: impl Iterator<Item = LinkId>,
    ) {
        self.bytes += n;
        // The pipeline fills once; later chunks stream behind the first.
        self.latency_ns = self.latency_ns.max(latency_ns);
        if bandwidth.is_finite() && bandwidth > 0.0 {
            self.transfer_ns += n as f64 / bandwidth * 1e9;
        }
        for l in links {
            if !self.links.contains(&l) {
                self.links.push(l);
            }
        }
    }

    fn report(self) -> DmaReport {
        DmaReport {
            bytes: self.bytes,
            device_time_ns: self.latency_ns + self.transfer_ns.round() as u64,
            links: self.links,
            through_root_complex: self.rc,
            host_dram: self.dram,
        }
    }
}

/// Copies `n` bytes between two sinks: once, memory to memory; MMIO registers through
/// a small buffer, as a device model serves them in pieces anyway.
fn copy(from: Sink<'_>, to: Sink<'_>, n: u64) -> Result<(), OutOfBounds> {
    const PIECE: u64 = 4096;
    match (from, to) {
        (Sink::Mem(src, so), Sink::Mem(dst, d)) => Memory::copy(src, so, dst, d, n),
        (from, to) => {
            let mut buf = [0u8; PIECE as usize];
            let mut done = 0;
            while done < n {
                let k = (n - done).min(PIECE);
                let piece = &mut buf[..k as usize];
                from.advance(done).read(piece)?;
                to.advance(done).write(piece)?;
                done += k;
            }
            Ok(())
        }
    }
}

fn check_wrap(addr: u64, len: u64) -> Result<(), DmaError> {
    match addr.checked_add(len) {
        Some(_) => Ok(()),
        None => Err(DmaError::Wraps { addr, len }),
    }
}

fn check_local(mem: &Memory, offset: u64, len: u64) -> Result<(), DmaError> {
    match offset.checked_add(len) {
        Some(end) if end <= mem.len() => Ok(()),
        _ => Err(DmaError::Local(OutOfBounds {
            offset,
            len,
            size: mem.len(),
        })),
    }
}

impl Fabric {
    fn window_of(&self, dev: DeviceId) -> Option<(u64, u64)> {
        let (base, size) = self.functions[dev.0 as usize].window.as_ref()?.memory?;
        Some((base.raw(), size))
    }

    fn window_contains(&self, dev: DeviceId, addr: u64) -> bool {
        self.window_of(dev)
            .is_some_and(|(base, size)| addr >= base && addr - base < size)
    }

    /// Walks down from a bridge by windows to the BAR that claims `addr`: one with
    /// memory behind it or a device model attached.
    fn descend(&self, port: DeviceId, addr: u64) -> Option<Hit<'_>> {
        let mut at = port;
        let mut links = 0;
        let mut switch_ns = 0;
        loop {
            let child = *self.children[at.0 as usize].first()?;
            links += 1;
            let f = &self.functions[child.0 as usize];
            match f.kind {
                FunctionKind::Endpoint(_) => {
                    let slot = f
                        .bars
                        .iter()
                        .position(|b| addr >= b.bus.raw() && addr - b.bus.raw() < b.size)?;
                    let bar = &f.bars[slot];
                    let offset = addr - bar.bus.raw();
                    let backing = &self.backings[child.0 as usize][slot];
                    let sink = match (bar.kind, &backing.memory) {
                        (BarKind::Memory, Some(mem)) => Sink::Mem(mem, offset),
                        _ => Sink::Mmio(backing.handler.get()?.as_ref(), offset),
                    };
                    return Some(Hit {
                        sink,
                        avail: bar.size - offset,
                        dev: child,
                        links,
                        switch_ns,
                    });
                }
                FunctionKind::SwitchUpstream => {
                    switch_ns += self.switch_latency_ns[child.0 as usize];
                    at = self.children[child.0 as usize]
                        .iter()
                        .copied()
                        .find(|&q| self.window_contains(q, addr))?;
                }
                FunctionKind::RootPort | FunctionKind::SwitchDownstream => return None,
            }
        }
    }

    /// What a root complex (or the CPU) reaches at a bus address above DRAM.
    fn claim_below_root(&self, bus: u64) -> Option<Hit<'_>> {
        let &(_, _, port) = self
            .rc_windows
            .iter()
            .find(|&&(start, end, _)| bus >= start && bus < end)?;
        self.descend(port, bus)
    }

    /// The path of the first chunk of a request of `len` bytes at `addr` by `initiator`.
    fn route(
        &self,
        initiator: DeviceId,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<Route<'_>, Fault> {
        let fault = |reason, bus: Option<u64>, len| Fault {
            device: initiator,
            addr: Iova(addr),
            bus: bus.map(BusAddr),
            access,
            len,
            reason,
        };
        let mut limit = len;
        let mut node = initiator;
        let mut up = 0;
        let mut switch_ns = 0;
        let root_port = loop {
            let Some(link) = self.functions[node.0 as usize].link else {
                return Err(fault(FaultReason::Unclaimed, None, len));
            };
            up += 1;
            let port = self.links[link.0 as usize].upstream;
            let pf = &self.functions[port.0 as usize];
            match (pf.kind, pf.upstream_bridge) {
                (FunctionKind::RootPort, _) => break port,
                (FunctionKind::SwitchDownstream, Some(switch)) => {
                    switch_ns += self.switch_latency_ns[port.0 as usize];
                    if !pf.acs_redirect {
                        // A request back into the window of the port it came in by has
                        // nowhere legal to go: Unsupported Request.
                        if self.window_contains(port, addr) {
                            return Err(fault(FaultReason::Unclaimed, Some(addr), len));
                        }
                        for &peer in &self.children[switch.0 as usize] {
                            let Some((base, size)) = self.window_of(peer) else {
                                continue;
                            };
                            if addr >= base && addr - base < size {
                                let Some(hit) = self.descend(peer, addr) else {
                                    return Err(fault(FaultReason::Unclaimed, Some(addr), len));
                                };
                                return Ok(Route {
                                    sink: hit.sink,
                                    len: limit.min(hit.avail),
                                    up,
                                    down_dev: hit.dev,
                                    down: hit.links,
                                    switch_ns: switch_ns + hit.switch_ns,
                                    rc: None,
                                    rc_p2p: false,
                                    dram: false,
                                });
                            }
                            if base > addr {
                                // The chunk must stop where a peer's window begins.
                                limit = limit.min(base - addr);
                            }
                        }
                    }
                    node = switch;
                }
                _ => return Err(fault(FaultReason::Unclaimed, None, len)),
            }
        };

        let host_bridge = self.functions[root_port.0 as usize].host_bridge.0 as usize;
        if (MSI_BASE..MSI_BASE + MSI_SIZE).contains(&addr) {
            // Interrupt messages are claimed by the root complex before any DMA
            // remapping, as x86 does with its 0xFEEx_xxxx window.
            return match (access, self.msi.sink.get()) {
                (Access::Write, Some(_)) => Ok(Route {
                    sink: Sink::Mmio(&self.msi, addr - MSI_BASE),
                    len: limit.min(MSI_BASE + MSI_SIZE - addr),
                    up,
                    down_dev: initiator,
                    down: 0,
                    switch_ns,
                    rc: Some(host_bridge),
                    rc_p2p: false,
                    dram: false,
                }),
                _ => Err(fault(
                    FaultReason::Unclaimed,
                    Some(addr),
                    limit.min(MSI_SIZE),
                )),
            };
        }
        let (bus, covered) = self
            .translate(initiator, addr, limit, access)
            .map_err(|(reason, len)| fault(reason, None, len))?;
        limit = limit.min(covered);
        let dram_start = self.dram.start.raw();
        let dram_end = dram_start + self.dram.len;
        if bus >= dram_start && bus < dram_end {
            let phys = self.bus_to_phys(BusAddr(bus)).raw();
            return Ok(Route {
                sink: Sink::Mem(&self.host, phys - dram_start),
                len: limit.min(dram_end - bus),
                up,
                down_dev: initiator,
                down: 0,
                switch_ns,
                rc: Some(host_bridge),
                rc_p2p: false,
                dram: true,
            });
        }
        let Some(hit) = self.claim_below_root(bus) else {
            return Err(fault(FaultReason::Unclaimed, Some(bus), limit));
        };
        Ok(Route {
            sink: hit.sink,
            len: limit.min(hit.avail),
            up,
            down_dev: hit.dev,
            down: hit.links,
            switch_ns: switch_ns + hit.switch_ns,
            rc: Some(host_bridge),
            rc_p2p: true,
            dram: false,
        })
    }

    /// [`Fabric::route`], with a refusal logged and turned into the error.
    fn route_or_fault(
        &self,
        initiator: DeviceId,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<Route<'_>, DmaError> {
        self.route(initiator, addr, len, access).map_err(|fault| {
            self.record_fault(fault);
            DmaError::Fault(fault)
        })
    }

    fn check_initiator(&self, dev: DeviceId) -> Result<(), DmaError> {
        match self.try_function(dev) {
            Some(f) if matches!(f.kind, FunctionKind::Endpoint(_)) => Ok(()),
            _ => Err(DmaError::NotAnEndpoint(dev)),
        }
    }

    fn route_links<'r>(
        &'r self,
        initiator: DeviceId,
        r: &'r Route<'_>,
    ) -> impl Iterator<Item = LinkId> + 'r {
        let up = &self.up_links[initiator.0 as usize][..r.up];
        let down = &self.up_links[r.down_dev.0 as usize][..r.down];
        up.iter().chain(down.iter().rev()).copied()
    }

    fn add_link_bytes(&self, link: LinkId, upward: bool, n: u64) {
        if let Some(t) = self.link_traffic.get(link.0 as usize) {
            if upward {
                t.up.fetch_add(n, Relaxed);
            } else {
                t.down.fetch_add(n, Relaxed);
            }
        }
    }

    /// Counts `n` bytes of a chunk: on the initiator's side the data flows up for a
    /// write and down for a read, on the target's side the other way round.
    fn count(&self, initiator: DeviceId, r: &Route<'_>, n: u64, access: Access) {
        let initiator_up = access == Access::Write;
        for &l in &self.up_links[initiator.0 as usize][..r.up] {
            self.add_link_bytes(l, initiator_up, n);
        }
        for &l in &self.up_links[r.down_dev.0 as usize][..r.down] {
            self.add_link_bytes(l, !initiator_up, n);
        }
        if r.dram {
            match access {
                Access::Read => self.dram_read.fetch_add(n, Relaxed),
                Access::Write => self.dram_write.fetch_add(n, Relaxed),
            };
        }
        if r.rc_p2p {
            self.rc_p2p.fetch_add(n, Relaxed);
        }
    }

    /// One-way latency and bottleneck bandwidth of a route.
    fn cost(&self, initiator: DeviceId, r: &Route<'_>) -> (u64, f64) {
        let mut latency = r.switch_ns;
        let mut bandwidth = f64::INFINITY;
        for l in self.route_links(initiator, r) {
            latency += self.links[l.0 as usize].spec.latency_ns;
            bandwidth = bandwidth.min(self.link_bandwidth[l.0 as usize]);
        }
        if let Some(rc) = r.rc.and_then(|h| self.rc_timing.get(h)) {
            latency += rc.latency_ns;
            if r.rc_p2p {
                bandwidth = bandwidth.min(rc.p2p_bandwidth);
            }
        }
        if r.dram {
            latency += self.dram_latency_ns;
            bandwidth = bandwidth.min(self.dram_bandwidth);
        }
        (latency, bandwidth)
    }

    fn tally(&self, tally: &mut Tally, initiator: DeviceId, r: &Route<'_>, n: u64, access: Access) {
        let (latency, bandwidth) = self.cost(initiator, r);
        // A read's request goes out and its completion comes back.
        let latency = if access == Access::Read {
            2 * latency
        } else {
            latency
        };
        tally.add(n, latency, bandwidth, self.route_links(initiator, r));
        tally.rc |= r.rc.is_some();
        tally.dram |= r.dram;
    }

    /// Runs a one-sided transfer chunk by chunk; `op` moves the bytes of one chunk
    /// (at `pos` into the transfer) to or from its sink.
    fn transfer(
        &self,
        initiator: DeviceId,
        addr: u64,
        len: u64,
        access: Access,
        mut op: impl FnMut(Sink<'_>, u64, u64) -> Result<(), OutOfBounds>,
    ) -> Result<DmaReport, DmaError> {
        self.check_initiator(initiator)?;
        check_wrap(addr, len)?;
        let mut tally = Tally::default();
        let mut pos = 0;
        while pos < len {
            let r = self.route_or_fault(initiator, addr + pos, len - pos, access)?;
            let n = r.len;
            op(r.sink, pos, n)?;
            self.count(initiator, &r, n, access);
            self.tally(&mut tally, initiator, &r, n, access);
            pos += n;
        }
        Ok(tally.report())
    }

    /// Device `initiator` writes `src` at DMA address `dst`.
    pub fn dma_write(
        &self,
        initiator: DeviceId,
        dst: Iova,
        src: &[u8],
    ) -> Result<DmaReport, DmaError> {
        self.transfer(
            initiator,
            dst.raw(),
            src.len() as u64,
            Access::Write,
            |sink, pos, n| {
                let chunk = &src[pos as usize..(pos + n) as usize];
                sink.write(chunk)
            },
        )
    }

    /// Device `initiator` reads `dst.len()` bytes from DMA address `src`.
    pub fn dma_read(
        &self,
        initiator: DeviceId,
        src: Iova,
        dst: &mut [u8],
    ) -> Result<DmaReport, DmaError> {
        self.transfer(
            initiator,
            src.raw(),
            dst.len() as u64,
            Access::Read,
            |sink, pos, n| {
                let chunk = &mut dst[pos as usize..(pos + n) as usize];
                sink.read(chunk)
            },
        )
    }

    /// Device `initiator` writes `len` bytes of its own memory (`src` at `src_offset`,
    /// e.g. its HBM) to DMA address `dst`; the local side crosses no link.
    pub fn dma_write_from(
        &self,
        initiator: DeviceId,
        dst: Iova,
        src: &Memory,
        src_offset: u64,
        len: u64,
    ) -> Result<DmaReport, DmaError> {
        check_local(src, src_offset, len)?;
        self.transfer(initiator, dst.raw(), len, Access::Write, |sink, pos, n| {
            copy(Sink::Mem(src, src_offset + pos), sink, n)
        })
    }

    /// Device `initiator` reads `len` bytes at DMA address `src` into its own memory.
    pub fn dma_read_into(
        &self,
        initiator: DeviceId,
        src: Iova,
        dst: &Memory,
        dst_offset: u64,
        len: u64,
    ) -> Result<DmaReport, DmaError> {
        check_local(dst, dst_offset, len)?;
        self.transfer(initiator, src.raw(), len, Access::Read, |sink, pos, n| {
            copy(sink, Sink::Mem(dst, dst_offset + pos), n)
        })
    }

    /// Device `initiator` copies `len` bytes from DMA address `src` to DMA address
    /// `dst` (a DMA engine doing memory-to-memory over the bus), once.
    ///
    /// The data comes in over the initiator's link and goes out again, so both paths
    /// are counted; the modelled time is both latencies plus the bytes over the slower
    /// of the two paths (a link is full duplex, so the two directions do not share).
    pub fn dma_copy(
        &self,
        initiator: DeviceId,
        src: Iova,
        dst: Iova,
        len: u64,
    ) -> Result<DmaReport, DmaError> {
        self.check_initiator(initiator)?;
        check_wrap(src.raw(), len)?;
        check_wrap(dst.raw(), len)?;
        let mut tally = Tally::default();
        let mut pos = 0;
        while pos < len {
            let r = self.route_or_fault(initiator, src.raw() + pos, len - pos, Access::Read)?;
            let w = self.route_or_fault(initiator, dst.raw() + pos, r.len, Access::Write)?;
            let n = w.len;
            copy(r.sink, w.sink, n)?;
            self.count(initiator, &r, n, Access::Read);
            self.count(initiator, &w, n, Access::Write);
            let (read_latency, read_bw) = self.cost(initiator, &r);
            let (write_latency, write_bw) = self.cost(initiator, &w);
            let links: Vec<LinkId> = self
                .route_links(initiator, &r)
                .chain(self.route_links(initiator, &w))
                .collect();
            tally.add(
                n,
                2 * read_latency + write_latency,
                read_bw.min(write_bw),
                links.into_iter(),
            );
            tally.rc |= r.rc.is_some() || w.rc.is_some();
            tally.dram |= r.dram || w.dram;
            pos += n;
        }
        Ok(tally.report())
    }

    /// CPU access, chunk by chunk: host DRAM directly (not counted: it is not on the
    /// PCIe fabric), BARs through the root complex down the tree (counted on links).
    fn cpu_access(
        &self,
        addr: PhysAddr,
        len: u64,
        access: Access,
        mut op: impl FnMut(Sink<'_>, u64, u64) -> Result<(), OutOfBounds>,
    ) -> Result<(), DmaError> {
        check_wrap(addr.raw(), len)?;
        let dram_start = self.dram.start.raw();
        let dram_end = dram_start + self.dram.len;
        let mut pos = 0;
        while pos < len {
            let at = addr.raw() + pos;
            let left = len - pos;
            if at >= dram_start && at < dram_end {
                let n = left.min(dram_end - at);
                op(Sink::Mem(&self.host, at - dram_start), pos, n)?;
                pos += n;
                continue;
            }
            let bus = self.phys_to_bus(PhysAddr(at)).raw();
            let Some(hit) = self.claim_below_root(bus) else {
                return Err(DmaError::CpuUnclaimed {
                    addr: PhysAddr(at),
                    len: left,
                });
            };
            let n = left.min(hit.avail);
            op(hit.sink, pos, n)?;
            for &l in &self.up_links[hit.dev.0 as usize][..hit.links] {
                self.add_link_bytes(l, access == Access::Read, n);
            }
            pos += n;
        }
        Ok(())
    }

    /// The CPU reads physical memory: host DRAM directly, BARs through the root
    /// complex and down the tree (counted on links).
    pub fn cpu_read(&self, addr: PhysAddr, dst: &mut [u8]) -> Result<(), DmaError> {
        self.cpu_access(addr, dst.len() as u64, Access::Read, |sink, pos, n| {
            let chunk = &mut dst[pos as usize..(pos + n) as usize];
            sink.read(chunk)
        })
    }

    /// The CPU writes physical memory (see [`Fabric::cpu_read`]).
    pub fn cpu_write(&self, addr: PhysAddr, src: &[u8]) -> Result<(), DmaError> {
        self.cpu_access(addr, src.len() as u64, Access::Write, |sink, pos, n| {
            let chunk = &src[pos as usize..(pos + n) as usize];
            sink.write(chunk)
        })
    }

    /// Attaches the device model that serves an MMIO BAR (once per BAR).
    pub fn set_mmio_handler(
        &self,
        dev: DeviceId,
        bar: u8,
        handler: Arc<dyn MmioHandler>,
    ) -> Result<(), String> {
        let f = self
            .try_function(dev)
            .ok_or_else(|| format!("{dev:?} is not a function of this fabric"))?;
        let slot = f
            .bars
            .iter()
            .position(|b| b.index == bar)
            .ok_or_else(|| format!("{} has no BAR{bar}", f.name))?;
        if f.bars[slot].kind != BarKind::Mmio {
            return Err(format!(
                "BAR{bar} of {} is memory, which the fabric serves itself",
                f.name
            ));
        }
        self.backings[dev.0 as usize][slot]
            .handler
            .set(handler)
            .map_err(|_| format!("BAR{bar} of {} already has a device model attached", f.name))
    }

    /// Connects the host's interrupt controller (once); until then a device's interrupt
    /// message is an Unsupported Request.
    pub fn set_interrupt_sink(&self, sink: Arc<dyn InterruptSink>) -> Result<(), String> {
        self.msi
            .sink
            .set(sink)
            .map_err(|_| "the interrupt controller is already connected".to_owned())
    }

    /// A snapshot of all counters.
    pub fn counters(&self) -> Counters {
        Counters {
            links: self
                .link_traffic
                .iter()
                .enumerate()
                .map(|(i, t)| LinkCounters {
                    link: LinkId(i as u32),
                    up_bytes: t.up.load(Relaxed),
                    down_bytes: t.down.load(Relaxed),
                })
                .collect(),
            host_dram_read_bytes: self.dram_read.load(Relaxed),
            host_dram_write_bytes: self.dram_write.load(Relaxed),
            root_complex_p2p_bytes: self.rc_p2p.load(Relaxed),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        for t in &self.link_traffic {
            t.up.store(0, Relaxed);
            t.down.store(0, Relaxed);
        }
        self.dram_read.store(0, Relaxed);
        self.dram_write.store(0, Relaxed);
        self.rc_p2p.store(0, Relaxed);
    }
}
