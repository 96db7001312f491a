//! Register allocation: copy coalescing, then linear scan (Poletto and Sarkar) with
//! spilling to the scratchpad.
//!
//! Copies are coalesced first, at every level (Chaitin's rule: two registers joined by a copy
//! are merged when neither is written while the other holds a different value),
//! which removes the copies of block parameters, loop-carried values, `Int4Set` and
//! guarded results tied to their passthru whenever the old value dies there.
//!
//! Linear scan then walks live intervals (from the liveness of [`super::mir`], one
//! interval per register without holes) in order of start, giving each a free register
//! of its file: scalars `s1..s31` (from the top), `Int4`s four consecutive scalars
//! `sN..sN+3` with `N ≤ 28` (from the bottom, so they fragment the scalars less),
//! vectors `v0..v31`, masks `p1..p7`. A copy's source and destination hint each other.
//! When a file is full the interval that ends last is spilled; a spilled register gets
//! a slot after the kernel's own scratchpad bytes (4 bytes a scalar, 16 an `Int4`, 256
//! a vector), every use is preceded by a load into a fresh short-lived register and
//! every write followed by a store, and allocation starts again. The short-lived
//! registers are never spilled, so it ends.
//!
//! A spilled mask takes a vector's slot: it is stored as -1 in its set lanes and 0 in
//! the others (`vbcast` of zero, then a `vbcast` of -1 guarded by the mask), and
//! reloaded with an unsigned `0 < lane` compare. Left out: interval splitting and
//! lifetime holes (a spilled value is spilled everywhere).

use crate::fxhash::HashMap;

use sagrada_isa::{Opcode, SCRATCH_BYTES};

use super::BackError;
use super::mir::{Arg, Class, MFunc, MGuard, MInst, RegSet, VReg};

/// Where every virtual register went.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The physical register number of each virtual register (the first of four for
    /// [`Class::Q`]); `None` for registers no instruction names.
    pub phys: Vec<Option<u8>>,
    /// The scratchpad bytes used, spill slots included.
    pub scratch_bytes: u32,
    /// Registers spilled (statistics for listings and tests).
    pub spilled: usize,
}

/// Allocates registers for `mf`, rewriting it with spill code.
pub fn allocate(
    mf: &mut MFunc,
    scratch_base: u32,
    coalesce_copies: bool,
    name: &str,
) -> Result<Assignment, BackError> {
    if coalesce_copies {
        coalesce(mf);
    }
    let mut next_slot = scratch_base.next_multiple_of(4);
    let mut unspillable: Vec<bool> = vec![false; mf.classes.len()];
    let mut spilled_total = 0;
    // Each round spills at least one register that is not short-lived; the bound only
    // guards against a bug turning into a hang.
    for _ in 0..=mf.classes.len() + 1 {
        let iv = intervals(mf);
        match scan(mf, &iv, &unspillable, name)? {
            Scan::Done(phys) => {
                return Ok(Assignment {
                    phys,
                    scratch_bytes: next_slot,
                    spilled: spilled_total,
                });
            }
            Scan::Spill(regs) => {
                spilled_total += regs.len();
                spill(mf, &regs, &mut next_slot, &mut unspillable, name)?;
            }
        }
    }
    Err(BackError {
        message: format!("kernel {name}: register allocation did not converge"),
        span: None,
    })
}

/// Live intervals `[start, end]` per register (`start > end` for unused ones). An
/// instruction at index `j` reads at `2j` and writes at `2j + 1`.
struct Intervals {
    start: Vec<u32>,
    end: Vec<u32>,
    hint: Vec<Option<VReg>>,
}

fn intervals(mf: &MFunc) -> Intervals {
    let n = mf.classes.len();
    let live_in = mf.live_in();
    let mut iv = Intervals {
        start: vec![u32::MAX; n],
        end: vec![0; n],
        hint: vec![None; n],
    };
    let extend = |r: VReg, p: u32, iv: &mut Intervals| {
        let k = r.0 as usize;
        iv.start[k] = iv.start[k].min(p);
        iv.end[k] = iv.end[k].max(p);
    };
    let mut j = 0u32;
    for b in mf.rpo() {
        for r in live_in[b].iter() {
            extend(r, 2 * j, &mut iv);
        }
        for i in &mf.blocks[b].insts {
            let (uses, defs) = i.uses_defs();
            for u in uses {
                extend(u, 2 * j, &mut iv);
            }
            for d in defs {
                extend(d, 2 * j + 1, &mut iv);
            }
            if let MInst::Copy(moves) = i {
                for (d, s) in moves {
                    if let (Arg::Reg(d), Arg::Reg(s)) = (d, s) {
                        iv.hint[d.0 as usize].get_or_insert(*s);
                        iv.hint[s.0 as usize].get_or_insert(*d);
                    }
                }
            }
            j += 1;
        }
        for u in mf.blocks[b].term.uses() {
            extend(u, 2 * j, &mut iv);
        }
        for r in mf.live_out(b, &live_in).iter() {
            extend(r, 2 * j + 1, &mut iv);
        }
        j += 1;
    }
    iv
}

enum Scan {
    Done(Vec<Option<u8>>),
    Spill(Vec<VReg>),
}

/// The physical registers of one file and who holds them.
struct File {
    owner: Vec<Option<VReg>>,
}

impl File {
    fn new(n: usize) -> File {
        File {
            owner: vec![None; n],
        }
    }
}

fn scan(mf: &MFunc, iv: &Intervals, unspillable: &[bool], name: &str) -> Result<Scan, BackError> {
    let n = mf.classes.len();
    let mut order: Vec<VReg> = (0..n as u32)
        .map(VReg)
        .filter(|r| iv.start[r.0 as usize] <= iv.end[r.0 as usize])
        .collect();
    order.sort_by_key(|r| (iv.start[r.0 as usize], r.0));
    let mut phys: Vec<Option<u8>> = vec![None; n];
    let mut spilled: Vec<VReg> = Vec::new();
    let mut active: Vec<VReg> = Vec::new();
    // Scalars and Int4s share the scalar file; s0 and p0 are never handed out.
    let mut sfile = File::new(32);
    let mut vfile = File::new(32);
    let mut pfile = File::new(8);
    let end = |r: VReg| iv.end[r.0 as usize];
    let regs_of = |r: VReg, p: u8| -> Vec<usize> {
        if mf.class(r) == Class::Q {
            (p as usize..p as usize + 4).collect()
        } else {
            vec![p as usize]
        }
    };
    for r in order {
        let start = iv.start[r.0 as usize];
        active.retain(|&a| {
            if end(a) >= start {
                return true;
            }
            if let Some(p) = phys[a.0 as usize] {
                let file = match mf.class(a) {
                    Class::S | Class::Q => &mut sfile,
                    Class::V => &mut vfile,
                    Class::P => &mut pfile,
                };
                for k in regs_of(a, p) {
                    file.owner[k] = None;
                }
            }
            false
        });
        let class = mf.class(r);
        let hint = iv.hint[r.0 as usize].and_then(|h| phys[h.0 as usize]);
        let file = match class {
            Class::S | Class::Q => &mut sfile,
            Class::V => &mut vfile,
            Class::P => &mut pfile,
        };
        let lo = if class == Class::V { 0 } else { 1 };
        let width = if class == Class::Q { 4 } else { 1 };
        let top = if class == Class::Q {
            28
        } else {
            file.owner.len() - 1
        };
        let free = |file: &File, p: usize| (p..p + width).all(|k| file.owner[k].is_none());
        let mut pick = hint
            .map(usize::from)
            .filter(|&h| (lo..=top).contains(&h) && free(file, h));
        if pick.is_none() {
            pick = if class == Class::Q {
                (lo..=top).find(|&p| free(file, p))
            } else {
                (lo..=top).rev().find(|&p| free(file, p))
            };
        }
        if pick.is_none() {
            // Choose the registers to take back: the window whose holders are all
            // spillable, fewest first, then those that end last.
            let mut best: Option<(usize, Vec<VReg>)> = None;
            for p in lo..=top {
                let mut holders: Vec<VReg> = (p..p + width).filter_map(|k| file.owner[k]).collect();
                holders.sort();
                holders.dedup();
                if holders.iter().any(|h| unspillable[h.0 as usize]) {
                    continue;
                }
                let key = |hs: &[VReg]| {
                    (
                        hs.len(),
                        std::cmp::Reverse(hs.iter().map(|&h| end(h)).min().unwrap_or(0)),
                    )
                };
                if best.as_ref().is_none_or(|(_, b)| key(&holders) < key(b)) {
                    best = Some((p, holders));
                }
            }
            let current_last = best
                .as_ref()
                .is_none_or(|(_, hs)| hs.iter().all(|&h| end(h) <= end(r)));
            if !unspillable[r.0 as usize] && current_last {
                spilled.push(r);
                continue;
            }
            let Some((p, holders)) = best else {
                return Err(pressure(name, class));
            };
            for h in holders {
                let hp = phys[h.0 as usize].take().unwrap_or(0);
                for k in regs_of(h, hp) {
                    file.owner[k] = None;
                }
                active.retain(|&a| a != h);
                spilled.push(h);
            }
            pick = Some(p);
        }
        let Some(p) = pick else {
            return Err(pressure(name, class));
        };
        for k in p..p + width {
            file.owner[k] = Some(r);
        }
        phys[r.0 as usize] = Some(p as u8);
        active.push(r);
    }
    if spilled.is_empty() {
        Ok(Scan::Done(phys))
    } else {
        Ok(Scan::Spill(spilled))
    }
}

fn pressure(name: &str, class: Class) -> BackError {
    let message = match class {
        Class::P => format!("kernel {name} needs more than 7 masks (p1-p7) in one instruction"),
        Class::V => format!("kernel {name} needs more than 32 vector registers in one instruction"),
        _ => {
            format!("kernel {name} needs more scalar registers in one instruction than s1-s31 hold")
        }
    };
    BackError {
        message,
        span: None,
    }
}

/// A short-lived register standing for a spilled one (or one of its parts) in one
/// instruction: `((spilled, part), temporary, read, written)`.
type SpillTemp = ((VReg, Option<u8>), VReg, bool, bool);

/// Gives each register of `regs` a scratchpad slot and rewrites its uses and writes
/// through short-lived registers.
fn spill(
    mf: &mut MFunc,
    regs: &[VReg],
    next_slot: &mut u32,
    unspillable: &mut Vec<bool>,
    name: &str,
) -> Result<(), BackError> {
    let mut slot: HashMap<VReg, u32> = HashMap::default();
    for &r in regs {
        let size = match mf.class(r) {
            Class::S => 4,
            Class::Q => 16,
            // A mask is kept as a vector of -1 (set) and 0 (clear) lanes.
            Class::V | Class::P => 256,
        };
        let end = next_slot
            .checked_add(size)
            .filter(|&e| e as usize <= SCRATCH_BYTES);
        let Some(end) = end else {
            return Err(BackError {
                message: format!(
                    "kernel {name}: its spill slots need scratchpad beyond the {SCRATCH_BYTES} \
                     bytes of a core (at byte {next_slot}, {size} more)"
                ),
                span: None,
            });
        };
        slot.insert(r, *next_slot);
        *next_slot = end;
    }
    let mut blocks = std::mem::take(&mut mf.blocks);
    for b in &mut blocks {
        let mut out = Vec::with_capacity(b.insts.len());
        for mut inst in std::mem::take(&mut b.insts) {
            if let MInst::Def(r) = inst
                && slot.contains_key(&r)
            {
                continue;
            }
            // (register, part) -> (temporary, read, written)
            let mut temps: Vec<SpillTemp> = Vec::new();
            inst.for_each_reg(|arg, acc| {
                let Some(r) = arg.vreg() else { return };
                if !slot.contains_key(&r) {
                    return;
                }
                let key = match *arg {
                    Arg::Part(_, k) => (r, Some(k)),
                    _ => (r, None),
                };
                let t = match temps.iter_mut().find(|t| t.0 == key) {
                    Some(t) => {
                        t.2 |= acc.read;
                        t.3 |= acc.write;
                        t.1
                    }
                    None => {
                        let class = if key.1.is_some() {
                            Class::S
                        } else {
                            mf.classes[r.0 as usize]
                        };
                        mf.classes.push(class);
                        let t = VReg(mf.classes.len() as u32 - 1);
                        temps.push((key, t, acc.read, acc.write));
                        t
                    }
                };
                *arg = Arg::Reg(t);
            });
            let mut after = Vec::new();
            for &((r, part), t, read, write) in &temps {
                let addr = slot[&r] + 4 * u32::from(part.unwrap_or(0));
                if read {
                    load(mf, &mut out, t, addr);
                }
                if write {
                    store(mf, &mut after, t, addr);
                }
            }
            out.push(inst);
            out.extend(after);
        }
        let mut term_temps = Vec::new();
        b.term.for_each_reg(|arg| {
            let Some(r) = arg.vreg() else { return };
            let Some(&addr) = slot.get(&r) else { return };
            let addr = addr + 4 * u32::from(if let Arg::Part(_, k) = *arg { k } else { 0 });
            let class = if matches!(arg, Arg::Part(..)) {
                Class::S
            } else {
                mf.classes[r.0 as usize]
            };
            mf.classes.push(class);
            let t = VReg(mf.classes.len() as u32 - 1);
            term_temps.push((t, addr));
            *arg = Arg::Reg(t);
        });
        for (t, addr) in term_temps {
            load(mf, &mut out, t, addr);
        }
        b.insts = out;
    }
    mf.blocks = blocks;
    unspillable.resize(mf.classes.len(), true);
    Ok(())
}

fn fresh(mf: &mut MFunc, class: Class) -> VReg {
    mf.classes.push(class);
    VReg(mf.classes.len() as u32 - 1)
}

fn load(mf: &mut MFunc, out: &mut Vec<MInst>, t: VReg, addr: u32) {
    let op = |opc, args| MInst::Op {
        opc,
        args,
        guard: None,
        tied: false,
    };
    match mf.class(t) {
        Class::S => out.push(op(
            Opcode::Lds,
            vec![Arg::Reg(t), Arg::Zero, Arg::Imm(addr)],
        )),
        Class::V => out.push(op(
            Opcode::Ldv,
            vec![Arg::Reg(t), Arg::Zero, Arg::Imm(addr)],
        )),
        Class::Q => {
            out.push(MInst::Def(t));
            for k in 0..4u8 {
                out.push(op(
                    Opcode::Lds,
                    vec![
                        Arg::Part(t, k),
                        Arg::Zero,
                        Arg::Imm(addr + 4 * u32::from(k)),
                    ],
                ));
            }
        }
        Class::P => {
            // The slot holds -1 where the mask is set: the mask is `0 < lane` unsigned.
            let (lanes, zero) = (fresh(mf, Class::V), fresh(mf, Class::V));
            out.push(op(
                Opcode::Ldv,
                vec![Arg::Reg(lanes), Arg::Zero, Arg::Imm(addr)],
            ));
            out.push(op(Opcode::Vbcast, vec![Arg::Reg(zero), Arg::Zero]));
            out.push(op(
                Opcode::VcmpLtU32,
                vec![Arg::Reg(t), Arg::Reg(zero), Arg::Reg(lanes)],
            ));
        }
    }
}

fn store(mf: &mut MFunc, out: &mut Vec<MInst>, t: VReg, addr: u32) {
    let op = |opc, args| MInst::Op {
        opc,
        args,
        guard: None,
        tied: false,
    };
    match mf.class(t) {
        Class::S => out.push(op(
            Opcode::Sts,
            vec![Arg::Reg(t), Arg::Zero, Arg::Imm(addr)],
        )),
        Class::V => out.push(op(
            Opcode::Stv,
            vec![Arg::Reg(t), Arg::Zero, Arg::Imm(addr)],
        )),
        Class::Q => {
            for k in 0..4u8 {
                out.push(op(
                    Opcode::Sts,
                    vec![
                        Arg::Part(t, k),
                        Arg::Zero,
                        Arg::Imm(addr + 4 * u32::from(k)),
                    ],
                ));
            }
        }
        Class::P => {
            // -1 in the lanes the mask sets, 0 elsewhere, as one vector.
            let (lanes, ones) = (fresh(mf, Class::V), fresh(mf, Class::S));
            out.push(op(Opcode::Vbcast, vec![Arg::Reg(lanes), Arg::Zero]));
            out.push(op(Opcode::Li, vec![Arg::Reg(ones), Arg::Imm(u32::MAX)]));
            out.push(MInst::Op {
                opc: Opcode::Vbcast,
                args: vec![Arg::Reg(lanes), Arg::Reg(ones)],
                guard: Some(MGuard {
                    pred: Arg::Reg(t),
                    negate: false,
                }),
                tied: true,
            });
            out.push(op(
                Opcode::Stv,
                vec![Arg::Reg(lanes), Arg::Zero, Arg::Imm(addr)],
            ));
        }
    }
}

/// Merges the registers joined by copies when they do not interfere, and drops the
/// copies that become moves of a register to itself.
pub fn coalesce(mf: &mut MFunc) {
    let n = mf.classes.len();
    // Only registers joined by a copy can be merged, and a merged class holds only
    // such registers: interference between them is all the merging needs. They get
    // dense numbers, and interference is a bit matrix over those numbers, so that an
    // unrolled GEMM (thousands of registers, a few hundred copies) stays fast.
    let mut dense: Vec<u32> = vec![u32::MAX; n];
    let mut members: Vec<VReg> = Vec::new();
    for b in &mf.blocks {
        for i in &b.insts {
            if let MInst::Copy(moves) = i {
                for (d, s) in moves {
                    if let (Arg::Reg(d), Arg::Reg(s)) = (d, s)
                        && mf.class(*d) == mf.class(*s)
                    {
                        for r in [*d, *s] {
                            if dense[r.0 as usize] == u32::MAX {
                                dense[r.0 as usize] = members.len() as u32;
                                members.push(r);
                            }
                        }
                    }
                }
            }
        }
    }
    let m = members.len();
    let words = m.div_ceil(64);
    // Row k: the related registers that interfere with related register k.
    let mut rows: Vec<u64> = vec![0; m * words];
    let set = |rows: &mut Vec<u64>, a: usize, b: usize| {
        rows[a * words + b / 64] |= 1 << (b % 64);
        rows[b * words + a / 64] |= 1 << (a % 64);
    };
    let related = |r: VReg| dense.get(r.0 as usize).is_some_and(|&k| k != u32::MAX);
    let live_in = mf.live_in();
    let mut copies: Vec<(VReg, VReg)> = Vec::new();
    for b in mf.rpo() {
        let mut live: RegSet = mf.live_out(b, &live_in);
        for u in mf.blocks[b].term.uses() {
            live.insert(u);
        }
        // The related registers among `live`, by dense number.
        let mut live_rel: Vec<u32> = live
            .iter()
            .filter(|&r| related(r))
            .map(|r| dense[r.0 as usize])
            .collect();
        for i in mf.blocks[b].insts.iter().rev() {
            let (uses, defs) = i.uses_defs();
            let mut source: HashMap<VReg, VReg> = HashMap::default();
            if let MInst::Copy(moves) = i {
                for (d, s) in moves {
                    if let (Arg::Reg(d), Arg::Reg(s)) = (d, s)
                        && mf.class(*d) == mf.class(*s)
                    {
                        source.insert(*d, *s);
                        copies.push((*d, *s));
                    }
                }
            }
            for &d in defs.iter().filter(|&&d| related(d)) {
                let dk = dense[d.0 as usize] as usize;
                let others = live_rel
                    .iter()
                    .map(|&k| members[k as usize])
                    .chain(defs.iter().copied().filter(|&x| related(x)));
                for x in others {
                    if x != d && source.get(&d) != Some(&x) && mf.class(x) == mf.class(d) {
                        set(&mut rows, dk, dense[x.0 as usize] as usize);
                    }
                }
            }
            for &d in &defs {
                live.remove(d);
                if related(d) {
                    let k = dense[d.0 as usize];
                    live_rel.retain(|&x| x != k);
                }
            }
            for &u in &uses {
                if live.insert(u) && related(u) {
                    live_rel.push(dense[u.0 as usize]);
                }
            }
        }
    }
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    // Per class root (by dense number): its members, and the registers interfering
    // with any of them.
    let mut class_members: Vec<u64> = vec![0; m * words];
    for k in 0..m {
        class_members[k * words + k / 64] |= 1 << (k % 64);
    }
    // Copies in program order: block parameters and ties first come first.
    copies.reverse();
    for (d, s) in copies {
        let (a, b) = (find(&mut parent, d.0), find(&mut parent, s.0));
        if a == b {
            continue;
        }
        let (ka, kb) = (dense[a as usize] as usize, dense[b as usize] as usize);
        let interferes =
            (0..words).any(|w| rows[ka * words + w] & class_members[kb * words + w] != 0);
        if interferes {
            continue;
        }
        parent[b as usize] = a;
        for w in 0..words {
            rows[ka * words + w] |= rows[kb * words + w];
            class_members[ka * words + w] |= class_members[kb * words + w];
        }
    }
    let mut rename = |arg: &mut Arg| match arg {
        Arg::Reg(r) | Arg::Part(r, _) => *r = VReg(find(&mut parent, r.0)),
        _ => {}
    };
    for b in &mut mf.blocks {
        for i in &mut b.insts {
            i.for_each_reg(|a, _| rename(a));
        }
        b.term.for_each_reg(&mut rename);
        b.insts.retain_mut(|i| {
            if let MInst::Copy(moves) = i {
                moves.retain(|(d, s)| d != s);
                !moves.is_empty()
            } else {
                true
            }
        });
    }
}
