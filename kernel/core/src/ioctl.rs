//! ioctl command numbers, encoded as Linux `asm-generic/ioctl.h` does.
//!
//! A command packs a direction, a type (the driver's magic character), a number and
//! the size of the argument structure. Drivers match the whole value, so a caller
//! using the wrong structure size gets `ENOTTY`, as on Linux.

/// No data transfer.
pub const IOC_NONE: u32 = 0;
/// User space writes the argument (the kernel reads it).
pub const IOC_WRITE: u32 = 1;
/// User space reads the argument (the kernel writes it).
pub const IOC_READ: u32 = 2;

const NRSHIFT: u32 = 0;
const TYPESHIFT: u32 = 8;
const SIZESHIFT: u32 = 16;
const DIRSHIFT: u32 = 30;
const SIZEMASK: u32 = (1 << 14) - 1;

/// `_IOC(dir, type, nr, size)`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(
        size as u32 <= SIZEMASK,
        "ioctl argument too large to encode"
    );
    (dir << DIRSHIFT)
        | ((ty as u32) << TYPESHIFT)
        | ((nr as u32) << NRSHIFT)
        | ((size as u32) << SIZESHIFT)
}

/// `_IO(type, nr)`: no argument.
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}

/// `_IOW(type, nr, T)`: the kernel reads a `T` from user memory.
pub const fn iow<T>(ty: u8, nr: u8) -> u32 {
    ioc(IOC_WRITE, ty, nr, size_of::<T>())
}

/// `_IOR(type, nr, T)`: the kernel writes a `T` to user memory.
pub const fn ior<T>(ty: u8, nr: u8) -> u32 {
    ioc(IOC_READ, ty, nr, size_of::<T>())
}

/// `_IOWR(type, nr, T)`: both.
pub const fn iowr<T>(ty: u8, nr: u8) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size_of::<T>())
}

/// `_IOC_DIR(cmd)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    cmd >> DIRSHIFT
}

/// `_IOC_TYPE(cmd)`.
pub const fn ioc_type(cmd: u32) -> u8 {
    (cmd >> TYPESHIFT) as u8
}

/// `_IOC_NR(cmd)`.
pub const fn ioc_nr(cmd: u32) -> u8 {
    (cmd >> NRSHIFT) as u8
}

/// `_IOC_SIZE(cmd)`.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> SIZESHIFT) & SIZEMASK) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_linux_headers() {
        // DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync) = 0x40086200.
        assert_eq!(iow::<u64>(b'b', 0), 0x4008_6200);
        // SW_SYNC_IOC_INC = _IOW('W', 1, __u32) = 0x40045701.
        assert_eq!(iow::<u32>(b'W', 1), 0x4004_5701);
        // SYNC_IOC_MERGE = _IOWR('>', 3, struct sync_merge_data /* 48 bytes */).
        assert_eq!(iowr::<[u8; 48]>(b'>', 3), 0xc030_3e03);
    }

    #[test]
    fn fields_decode_back() {
        let cmd = iowr::<[u8; 56]>(b'>', 4);
        assert_eq!(ioc_dir(cmd), IOC_READ | IOC_WRITE);
        assert_eq!(ioc_type(cmd), b'>');
        assert_eq!(ioc_nr(cmd), 4);
        assert_eq!(ioc_size(cmd), 56);
        assert_eq!(io(b'x', 7), 0x7807);
    }
}
