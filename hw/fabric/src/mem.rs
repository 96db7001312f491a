//! Memory that backs host DRAM and memory BARs: a sparse, memfd-backed mapping.
//!
//! This is the only module of the fabric with `unsafe` code. A [`Memory`] is a `memfd`
//! of the given size, mapped shared into this process. It is sparse: a 1 GiB HBM costs
//! nothing until written, and [`Memory::discard`] gives pages back (they read as zero
//! again). The memfd can be passed to another process later, so a device's memory can
//! be shared with a daemon or a second emulator process.
//!
//! # Concurrency
//!
//! Devices, DMA engines and the CPU of the model run on different host threads and may
//! touch the same bytes at once, exactly as real bus masters may. Accesses therefore go
//! through raw pointers into the mapping, never through Rust references to it, and the
//! copy primitives are plain `memcpy`/`memmove`. (A read through the mapping of a page
//! never written allocates that page, a property of shmem; writes are what normally
//! populate a memory.) Concurrent overlapping accesses give
//! unspecified byte values (as on real hardware) but cannot break memory safety of the
//! program: no reference to the shared bytes ever exists, and every access is bounds
//! checked against the mapping's length, which never changes (the memfd is sealed
//! against shrinking and growing). This is the approach of rust-vmm's `vm-memory` for
//! guest memory.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use memmap2::MmapRaw;
use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};

/// An access beyond the end of a [`Memory`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("access of {len:#x} bytes at offset {offset:#x} is outside a memory of {size:#x} bytes")]
pub struct OutOfBounds {
    /// Offset of the access.
    pub offset: u64,
    /// Length of the access.
    pub len: u64,
    /// Size of the memory.
    pub size: u64,
}

/// A sparse, shareable block of memory (see the module documentation).
pub struct Memory {
    name: String,
    len: u64,
    file: File,
    map: MmapRaw,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("name", &self.name)
            .field("len", &format_args!("{:#x}", self.len))
            .finish()
    }
}

impl Memory {
    /// Creates a zero-filled memory of `len` bytes. Nothing is allocated until written.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero length or one that does not fit the address space, or
    /// the error of `memfd_create`, `ftruncate` or `mmap`.
    pub fn new(name: &str, len: u64) -> io::Result<Self> {
        if len == 0 || usize::try_from(len).is_err() || i64::try_from(len).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("memory \"{name}\" cannot have a size of {len:#x} bytes"),
            ));
        }
        let fd = rustix::fs::memfd_create(
            format!("sagrada:{name}"),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&fd, len)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let file = File::from(fd);
        let map = MmapRaw::map_raw(&file)?;
        debug_assert_eq!(map.len() as u64, len);
        Ok(Self { name: name.to_owned(), len, file, map })
    }

    /// The name given at creation (used in diagnostics and in `/proc/self/maps`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a memory has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The memfd, for sharing the memory with another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Bytes of host RAM the memory occupies now (it is sparse, so this starts at 0).
    pub fn allocated_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::fstat(&self.file)?;
        Ok(u64::try_from(st.st_blocks).unwrap_or(0) * 512)
    }

    /// Checks `offset..offset+len` and returns the start as a `usize` index.
    fn check(&self, offset: u64, len: u64) -> Result<usize, OutOfBounds> {
        let oob = OutOfBounds { offset, len, size: self.len };
        let end = offset.checked_add(len).ok_or(oob)?;
        if end > self.len {
            return Err(oob);
        }
        // The whole mapping fits in usize (checked in `new`), so this cannot truncate.
        Ok(offset as usize)
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the memory.
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        let start = self.check(offset, dst.len() as u64)?;
        // SAFETY: `check` proved `start..start + dst.len()` lies inside the mapping, which
        // lives as long as `self`; `dst` is an exclusive Rust buffer that cannot overlap
        // the mapping's raw bytes (no reference into the mapping is ever handed out).
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().wrapping_add(start), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies `src` into the memory at `offset`.
    pub fn write(&self, offset: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        let start = self.check(offset, src.len() as u64)?;
        // SAFETY: as in `read`, the destination range is inside the live mapping and the
        // source is a Rust slice that cannot alias the mapping.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.map.as_mut_ptr().wrapping_add(start), src.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte`.
    pub fn fill(&self, offset: u64, len: u64, byte: u8) -> Result<(), OutOfBounds> {
        let start = self.check(offset, len)?;
        // SAFETY: the range is inside the live mapping (checked above); `len` fits in
        // usize because the whole mapping does.
        unsafe { std::ptr::write_bytes(self.map.as_mut_ptr().wrapping_add(start), byte, len as usize) };
        Ok(())
    }

    /// Copies `len` bytes from `src` at `src_offset` to `dst` at `dst_offset`, once and
    /// without an intermediate buffer. Overlapping ranges of the same memory are copied
    /// as `memmove` does.
    pub fn copy(
        src: &Memory,
        src_offset: u64,
        dst: &Memory,
        dst_offset: u64,
        len: u64,
    ) -> Result<(), OutOfBounds> {
        let s = src.check(src_offset, len)?;
        let d = dst.check(dst_offset, len)?;
        let len = len as usize;
        let from = src.map.as_ptr().wrapping_add(s);
        let to = dst.map.as_mut_ptr().wrapping_add(d);
        if std::ptr::eq(src, dst) {
            // SAFETY: both ranges are inside the same live mapping (checked above);
            // `ptr::copy` permits them to overlap.
            unsafe { std::ptr::copy(from, to, len) };
        } else {
            // SAFETY: both ranges are inside their live mappings (checked above), and two
            // different `Memory` objects are two different memfd mappings, so the ranges
            // cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(from, to, len) };
        }
        Ok(())
    }

    /// Zeroes `len` bytes at `offset` and, for whole pages inside the range, returns the
    /// host RAM behind them (the pages read as zero afterwards, as a fresh memory does).
    pub fn discard(&self, offset: u64, len: u64) -> Result<(), OutOfBounds> {
        self.check(offset, len)?;
        let page = crate::PAGE_SIZE;
        let first = offset.div_ceil(page) * page;
        let last = (offset + len) / page * page;
        if last > first {
            // Zero the unaligned head and tail by hand; punch the whole pages.
            self.fill(offset, first - offset, 0)?;
            self.fill(last, offset + len - last, 0)?;
            let punched = rustix::fs::fallocate(
                &self.file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                first,
                last - first,
            );
            if punched.is_err() {
                // A filesystem without hole punching still gets the semantics right.
                self.fill(first, last - first, 0)?;
            }
        } else {
            self.fill(offset, len, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_memory_is_zero_and_sparse() {
        let mem = Memory::new("t", 1 << 30).unwrap();
        let mut buf = [0xffu8; 16];
        mem.read((1 << 30) - 16, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        assert!(mem.allocated_bytes().unwrap() < 1 << 20);
    }

    #[test]
    fn writes_read_back() {
        let mem = Memory::new("t", 8192).unwrap();
        mem.write(4000, b"hello, dma").unwrap();
        let mut buf = [0u8; 10];
        mem.read(4000, &mut buf).unwrap();
        assert_eq!(&buf, b"hello, dma");
    }

    #[test]
    fn out_of_bounds_access_is_refused_with_its_range() {
        let mem = Memory::new("t", 4096).unwrap();
        let err = mem.write(4090, &[0; 7]).unwrap_err();
        assert_eq!(err, OutOfBounds { offset: 4090, len: 7, size: 4096 });
        assert!(mem.read(u64::MAX, &mut [0; 2]).is_err());
        assert!(mem.fill(1, u64::MAX, 0).is_err());
    }

    #[test]
    fn zero_size_is_refused() {
        assert_eq!(Memory::new("t", 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn copy_between_memories_and_within_one() {
        let a = Memory::new("a", 8192).unwrap();
        let b = Memory::new("b", 8192).unwrap();
        a.write(0, b"abcdefgh").unwrap();
        Memory::copy(&a, 0, &b, 100, 8).unwrap();
        let mut buf = [0u8; 8];
        b.read(100, &mut buf).unwrap();
        assert_eq!(&buf, b"abcdefgh");
        // Overlapping move within one memory behaves like memmove.
        Memory::copy(&a, 0, &a, 2, 8).unwrap();
        let mut buf = [0u8; 10];
        a.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"ababcdefgh");
        assert!(Memory::copy(&a, 8190, &b, 0, 4).is_err());
    }

    #[test]
    fn discard_zeroes_and_releases_pages() {
        let mem = Memory::new("t", 1 << 20).unwrap();
        mem.fill(0, 1 << 20, 0xaa).unwrap();
        let before = mem.allocated_bytes().unwrap();
        mem.discard(10, (1 << 20) - 20).unwrap();
        let after = mem.allocated_bytes().unwrap();
        assert!(after < before, "{after} bytes allocated after discard, {before} before");
        let mut buf = vec![0u8; 1 << 20];
        mem.read(0, &mut buf).unwrap();
        assert_eq!(&buf[..10], &[0xaa; 10]);
        assert!(buf[10..(1 << 20) - 10].iter().all(|&b| b == 0));
        assert_eq!(&buf[(1 << 20) - 10..], &[0xaa; 10]);
    }
}
