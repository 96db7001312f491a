//! Scratchpad and tensor accesses: address computation and the checks, in the order the
//! instruction table gives them, and the accesses themselves.

use super::{FaultKind, GlobalMemory, TensorDesc};
use crate::{DIMS, LANES};

/// Bit `i` set for lanes `lo..lo + n` (n ≤ 64).
fn run_mask(lo: u32, n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        ((1u64 << n) - 1) << lo
    }
}

/// The active lanes of `m`, lowest first.
pub(super) fn lanes(m: u64) -> impl Iterator<Item = usize> {
    let mut rest = m;
    std::iter::from_fn(move || {
        (rest != 0).then(|| {
            let i = rest.trailing_zeros();
            rest &= rest - 1;
            i as usize
        })
    })
}

/// The runs of consecutive active lanes of `m`, lowest first, as `(first, count)`.
fn runs(m: u64) -> impl Iterator<Item = (u32, u32)> {
    let mut rest = m;
    std::iter::from_fn(move || {
        (rest != 0).then(|| {
            let lo = rest.trailing_zeros();
            let n = (!(rest >> lo)).trailing_zeros();
            rest &= !run_mask(lo, n);
            (lo, n)
        })
    })
}

// ---- scratchpad ----

/// The byte offset of the scratchpad word at `sa + imm`.
pub(super) fn scratch_word(len: usize, sa: u32, imm: i32) -> Result<usize, FaultKind> {
    let addr = i64::from(sa) + i64::from(imm);
    if addr & 3 != 0 {
        return Err(FaultKind::Misaligned { addr });
    }
    if addr < 0 || addr + 4 > len as i64 {
        return Err(FaultKind::ScratchRange { addr });
    }
    Ok(addr as usize)
}

/// Checks the active lanes of a vector access at `sa + imm + 4i`; gives the address of
/// lane 0 (which, if inactive, may be outside).
pub(super) fn scratch_vector(len: usize, sa: u32, imm: i32, m: u64) -> Result<i64, FaultKind> {
    let base = i64::from(sa) + i64::from(imm);
    if m == 0 {
        return Ok(base);
    }
    let first = base + 4 * i64::from(m.trailing_zeros());
    let last = base + 4 * i64::from(63 - m.leading_zeros());
    // Every lane's address has the alignment of the base.
    if first & 3 != 0 {
        return Err(FaultKind::Misaligned { addr: first });
    }
    if first >= 0 && last + 4 <= len as i64 {
        return Ok(base);
    }
    for i in lanes(m) {
        let addr = base + 4 * i as i64;
        if addr < 0 || addr + 4 > len as i64 {
            return Err(FaultKind::ScratchRange { addr });
        }
    }
    Ok(base)
}

pub(super) fn read_word(scratch: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(scratch[at..at + 4].try_into().unwrap())
}

pub(super) fn write_word(scratch: &mut [u8], at: usize, x: u32) {
    scratch[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

/// `ldv`: lane `i` of `d` from `base + 4i` for the active lanes; `base` checked.
pub(super) fn load_vector(scratch: &[u8], base: i64, m: u64, d: &mut [u32; LANES]) {
    if m == u64::MAX {
        let span = &scratch[base as usize..base as usize + 4 * LANES];
        for (lane, b) in d.iter_mut().zip(span.chunks_exact(4)) {
            *lane = u32::from_le_bytes(b.try_into().unwrap());
        }
    } else {
        for i in lanes(m) {
            d[i] = read_word(scratch, (base + 4 * i as i64) as usize);
        }
    }
}

/// `stv`: lane `i` of `x` to `base + 4i` for the active lanes; `base` checked.
pub(super) fn store_vector(scratch: &mut [u8], base: i64, m: u64, x: &[u32; LANES]) {
    if m == u64::MAX {
        let span = &mut scratch[base as usize..base as usize + 4 * LANES];
        for (lane, b) in x.iter().zip(span.chunks_exact_mut(4)) {
            b.copy_from_slice(&lane.to_le_bytes());
        }
    } else {
        for i in lanes(m) {
            write_word(scratch, (base + 4 * i as i64) as usize, x[i]);
        }
    }
}

// ---- tensors ----

/// A checked tensor access: where its elements are.
pub(super) struct TensorAccess {
    /// Address of the element at the access's first coordinate (lane 0's first
    /// element), which may be out of range if lane 0 is inactive. Up to 2^66 + 2^64.
    first: u128,
    /// Bytes from one element to the next along dimension 0.
    step: u128,
    /// Bytes per element.
    elem: usize,
    /// Whether the elements along dimension 0 are adjacent (stride 1).
    adjacent: bool,
}

const ADDRESS_SPACE: u128 = 1 << 64;

/// The checks of `ldt.*`/`stt.*`/`ldts`/`stts` on tensor `slot` with elements of `elem`
/// bytes, `per_lane` elements per lane starting at coordinates `c` (dimension 0
/// advancing by one per element), for the active lanes `m`: `TensorSlot`, then
/// `TensorType`, then `TensorRange` (the first out-of-range element of the lowest
/// active lane, its lowest out-of-range dimension).
pub(super) fn tensor_access(
    tensors: &[TensorDesc],
    slot: u8,
    elem: u32,
    per_lane: u64,
    c: [u32; DIMS],
    m: u64,
) -> Result<TensorAccess, FaultKind> {
    let t = tensors
        .get(usize::from(slot))
        .ok_or(FaultKind::TensorSlot { slot })?;
    if t.elem_size != elem {
        return Err(FaultKind::TensorType {
            slot,
            elem_size: t.elem_size,
        });
    }
    if m != 0 {
        let range = |dim: usize, coord: u64| FaultKind::TensorRange {
            slot,
            dim: dim as u8,
            coord,
        };
        let c0 = u64::from(c[0]);
        let d0 = u64::from(t.dims[0]);
        // The first active lane's first element, dimension 0, then its other dimensions
        // (which every element shares), then dimension 0 of the remaining elements.
        let first = c0 + per_lane * u64::from(m.trailing_zeros());
        if first >= d0 {
            return Err(range(0, first));
        }
        for (d, (&cd, &dim)) in c.iter().zip(&t.dims).enumerate().skip(1) {
            if cd >= dim {
                return Err(range(d, u64::from(cd)));
            }
        }
        let last = c0 + per_lane * u64::from(63 - m.leading_zeros()) + per_lane - 1;
        if last >= d0 {
            for i in lanes(m) {
                let lo = c0 + per_lane * i as u64;
                if lo + per_lane > d0 {
                    return Err(range(0, lo.max(d0)));
                }
            }
        }
    }
    let offset: u128 = c
        .iter()
        .zip(&t.strides)
        .map(|(&cd, &stride)| u128::from(cd) * u128::from(stride))
        .sum();
    let elem = elem as usize;
    Ok(TensorAccess {
        first: u128::from(t.base) + elem as u128 * offset,
        step: elem as u128 * u128::from(t.strides[0]),
        elem,
        adjacent: t.strides[0] == 1,
    })
}

/// Reads `buf` at `addr`; a span running past the top of the address space is read
/// element by element so that the fault names the first element that does not fit,
/// after the accesses before it (as separate accesses would).
fn read_at(
    mem: &mut dyn GlobalMemory,
    addr: u128,
    buf: &mut [u8],
    elem: usize,
) -> Result<(), FaultKind> {
    let mmu = |va: u64| FaultKind::Mmu { va, write: false };
    if addr + buf.len() as u128 <= ADDRESS_SPACE {
        return mem.read(addr as u64, buf).map_err(|f| mmu(f.va));
    }
    for (j, chunk) in buf.chunks_mut(elem).enumerate() {
        let a = addr + (j * elem) as u128;
        if a + elem as u128 > ADDRESS_SPACE {
            return Err(mmu(a.min(u64::MAX.into()) as u64));
        }
        mem.read(a as u64, chunk).map_err(|f| mmu(f.va))?;
    }
    Ok(())
}

/// Writes `data` at `addr`, as [`read_at`] reads.
fn write_at(
    mem: &mut dyn GlobalMemory,
    addr: u128,
    data: &[u8],
    elem: usize,
) -> Result<(), FaultKind> {
    let mmu = |va: u64| FaultKind::Mmu { va, write: true };
    if addr + data.len() as u128 <= ADDRESS_SPACE {
        return mem.write(addr as u64, data).map_err(|f| mmu(f.va));
    }
    for (j, chunk) in data.chunks(elem).enumerate() {
        let a = addr + (j * elem) as u128;
        if a + elem as u128 > ADDRESS_SPACE {
            return Err(mmu(a.min(u64::MAX.into()) as u64));
        }
        mem.write(a as u64, chunk).map_err(|f| mmu(f.va))?;
    }
    Ok(())
}

/// Reads the 4 bytes of every active lane of a checked access into `d` (lane `i`'s
/// elements in order, little-endian), leaving the other lanes alone. Adjacent elements
/// are read one run of active lanes at a time.
pub(super) fn load_tensor(
    mem: &mut dyn GlobalMemory,
    a: &TensorAccess,
    m: u64,
    d: &mut [u32; LANES],
) -> Result<(), FaultKind> {
    let mut buf = [0u8; 4 * LANES];
    if a.adjacent {
        for (lo, n) in runs(m) {
            let (lo, n) = (lo as usize, n as usize);
            read_at(
                mem,
                a.first + 4 * lo as u128,
                &mut buf[4 * lo..4 * (lo + n)],
                a.elem,
            )?;
        }
    } else {
        let per_lane = 4 / a.elem;
        for i in lanes(m) {
            for j in 0..per_lane {
                let e = (per_lane * i + j) as u128;
                let at = 4 * i + j * a.elem;
                read_at(mem, a.first + a.step * e, &mut buf[at..at + a.elem], a.elem)?;
            }
        }
    }
    if m == u64::MAX {
        for (lane, b) in d.iter_mut().zip(buf.chunks_exact(4)) {
            *lane = u32::from_le_bytes(b.try_into().unwrap());
        }
    } else {
        for i in lanes(m) {
            d[i] = u32::from_le_bytes(buf[4 * i..4 * i + 4].try_into().unwrap());
        }
    }
    Ok(())
}

/// Writes the active lanes of `x` as [`load_tensor`] reads them.
pub(super) fn store_tensor(
    mem: &mut dyn GlobalMemory,
    a: &TensorAccess,
    m: u64,
    x: &[u32; LANES],
) -> Result<(), FaultKind> {
    let mut buf = [0u8; 4 * LANES];
    for (lane, b) in x.iter().zip(buf.chunks_exact_mut(4)) {
        b.copy_from_slice(&lane.to_le_bytes());
    }
    if a.adjacent {
        for (lo, n) in runs(m) {
            let (lo, n) = (lo as usize, n as usize);
            write_at(
                mem,
                a.first + 4 * lo as u128,
                &buf[4 * lo..4 * (lo + n)],
                a.elem,
            )?;
        }
    } else {
        let per_lane = 4 / a.elem;
        for i in lanes(m) {
            for j in 0..per_lane {
                let e = (per_lane * i + j) as u128;
                let at = 4 * i + j * a.elem;
                write_at(mem, a.first + a.step * e, &buf[at..at + a.elem], a.elem)?;
            }
        }
    }
    Ok(())
}

/// Reads one 4-byte element (`ldts.b32`).
pub(super) fn load_element(mem: &mut dyn GlobalMemory, a: &TensorAccess) -> Result<u32, FaultKind> {
    let mut b = [0u8; 4];
    read_at(mem, a.first, &mut b, a.elem)?;
    Ok(u32::from_le_bytes(b))
}

/// Writes one 4-byte element (`stts.b32`).
pub(super) fn store_element(
    mem: &mut dyn GlobalMemory,
    a: &TensorAccess,
    x: u32,
) -> Result<(), FaultKind> {
    write_at(mem, a.first, &x.to_le_bytes(), a.elem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_the_mask() {
        for m in [
            0u64,
            1,
            u64::MAX,
            0x8000_0000_0000_0000,
            0xf0f0,
            0x8000_0000_0000_0001,
            u64::MAX - 1,
        ] {
            let mut got = 0u64;
            for (lo, n) in runs(m) {
                let r = run_mask(lo, n);
                assert_eq!(got & r, 0);
                assert_eq!(m & r, r);
                got |= r;
            }
            assert_eq!(got, m);
            let l: Vec<_> = lanes(m).collect();
            assert_eq!(l.len() as u32, m.count_ones());
        }
    }
}
