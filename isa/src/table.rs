//! The instruction table: the one place an SG1 instruction is described.
//!
//! Each entry gives the opcode byte, the variant name, the mnemonic, whether the
//! instruction takes a guard (`@p` prefix, per-lane masking), its operands in assembly
//! order with their kinds, and its documentation: a summary line, then the exact
//! semantics. Operand names follow one rule the documentation relies on: a name that
//! ends in `d` (`sd`, `vd`, `pd`) is written by the instruction; every other operand
//! is read.
//!
//! [`for_each_op!`] calls a macro with the whole table; the encoder, decoder, opcode
//! list, assembler mnemonics, disassembler and `docs/isa/` are all generated from it,
//! and the interpreter matches on the instruction enum it generates, so an instruction
//! added here and not executed is a compile error.
//!
//! Opcode ranges: `0x00`–`0x3f` scalar, `0x40`–`0x7f` vector arithmetic, `0x80`–`0x8f`
//! lane movement, `0x90`–`0x9f` predicates, `0xa0`–`0xaf` memory. Unlisted opcodes are
//! illegal.

/// Calls `$m! { ... }` with every instruction of the table.
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m! {
            // ---- scalar: control ----

            /// Does nothing.
            0x00 Nop "nop" false {};
            /// Ends the invocation.
            ///
            /// The core goes on with its next index-space point, or stops when it has
            /// none left.
            0x01 Halt "halt" false {};
            /// Jumps to `target`.
            0x20 J "j" false { target: Off };
            /// Branches to `target` if `sa == sb`.
            0x21 Beq "beq" false { sa: SReg, sb: SReg, target: Off };
            /// Branches to `target` if `sa != sb`.
            0x22 Bne "bne" false { sa: SReg, sb: SReg, target: Off };
            /// Branches to `target` if `sa < sb`, as signed integers.
            0x23 Blt "blt" false { sa: SReg, sb: SReg, target: Off };
            /// Branches to `target` if `sa >= sb`, as signed integers.
            0x24 Bge "bge" false { sa: SReg, sb: SReg, target: Off };
            /// Branches to `target` if `sa < sb`, as unsigned integers.
            0x25 Bltu "bltu" false { sa: SReg, sb: SReg, target: Off };
            /// Branches to `target` if `sa >= sb`, as unsigned integers.
            0x26 Bgeu "bgeu" false { sa: SReg, sb: SReg, target: Off };

            // ---- scalar: integer ----

            /// Loads 32 bits into `sd`.
            ///
            /// The assembler takes an integer (signed or unsigned, 32 bits) or a float
            /// literal, which it stores as its f32 bits.
            0x02 Li "li" false { sd: SReg, imm: Bits };
            /// Copies `sa` to `sd`.
            0x03 Mov "mov" false { sd: SReg, sa: SReg };
            /// `sd = sa + sb`, wrapping.
            0x04 Add "add" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa - sb`, wrapping.
            0x05 Sub "sub" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa * sb`, the low 32 bits.
            0x06 Mul "mul" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa / sb`, signed, rounding toward zero.
            ///
            /// `sb == 0` faults (`DivideByZero`). `i32::MIN / -1` is `i32::MIN`.
            0x07 Div "div" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa / sb`, unsigned.
            ///
            /// `sb == 0` faults (`DivideByZero`).
            0x08 Divu "divu" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa % sb`, signed; the result has the sign of `sa`.
            ///
            /// `sb == 0` faults (`DivideByZero`). `i32::MIN % -1` is 0.
            0x09 Rem "rem" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa % sb`, unsigned.
            ///
            /// `sb == 0` faults (`DivideByZero`).
            0x0a Remu "remu" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa & sb`.
            0x0b And "and" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa | sb`.
            0x0c Or "or" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa ^ sb`.
            0x0d Xor "xor" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa << (sb & 31)`.
            0x0e Shl "shl" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa >> (sb & 31)`, shifting in zeros.
            0x0f Shr "shr" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa >> (sb & 31)`, shifting in copies of the sign bit.
            0x10 Sra "sra" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = 1` if `sa < sb` as signed integers, else 0.
            0x11 Slt "slt" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = 1` if `sa < sb` as unsigned integers, else 0.
            0x12 Sltu "sltu" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = 1` if `sa == sb`, else 0.
            0x13 Seq "seq" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = min(sa, sb)`, signed.
            0x14 Min "min" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = max(sa, sb)`, signed.
            0x15 Max "max" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa + imm`, wrapping.
            0x16 Addi "addi" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa * imm`, the low 32 bits.
            0x17 Muli "muli" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa & imm`.
            0x18 Andi "andi" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa | imm`.
            0x19 Ori "ori" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa ^ imm`.
            0x1a Xori "xori" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa << (imm & 31)`.
            0x1b Shli "shli" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa >> (imm & 31)`, shifting in zeros.
            0x1c Shri "shri" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = sa >> (imm & 31)`, shifting in copies of the sign bit.
            0x1d Srai "srai" false { sd: SReg, sa: SReg, imm: Imm };
            /// `sd = 1` if `sa < imm` as signed integers, else 0.
            0x1e Slti "slti" false { sd: SReg, sa: SReg, imm: Imm };

            // ---- scalar: the launch ----

            /// `sd` = the invocation's coordinate along index-space dimension `dim`.
            0x28 Idx "idx" false { sd: SReg, dim: Dim };
            /// `sd` = the index space's size along dimension `dim`.
            0x29 Idxn "idxn" false { sd: SReg, dim: Dim };
            /// `sd` = the number of the core running the invocation (its hardware number,
            /// whichever cores the launch enabled).
            0x2a Coreid "coreid" false { sd: SReg };
            /// `sd` = scalar argument number `imm` (a 32-bit word).
            ///
            /// An index at or beyond the launch's scalar argument count faults
            /// (`ArgRange`).
            0x2b Ldarg "ldarg" false { sd: SReg, imm: Imm };
            /// `sd` = the size of tensor `t` along dimension `dim`.
            ///
            /// A slot the launch has no tensor for faults (`TensorSlot`).
            0x2c Tdim "tdim" false { sd: SReg, t: TReg, dim: Dim };

            // ---- scalar: memory ----

            /// Loads the 32-bit word at scratchpad byte address `sa + imm` into `sd`.
            ///
            /// The address must be 4-byte aligned (`Misaligned`) and inside the
            /// scratchpad (`ScratchRange`).
            0x2d Lds "lds" false { sd: SReg, sa: SReg, imm: Imm };
            /// Stores `sv` at scratchpad byte address `sa + imm`.
            ///
            /// Faults as `lds`.
            0x2e Sts "sts" false { sv: SReg, sa: SReg, imm: Imm };
            /// Loads the 32-bit element of tensor `t` at coordinates `c..c+3` into `sd`.
            ///
            /// Faults as `ldt.b32`.
            0xa6 LdtsB32 "ldts.b32" false { sd: SReg, t: TReg, c: CReg };
            /// Stores `sv` as the 32-bit element of tensor `t` at coordinates `c..c+3`.
            ///
            /// Faults as `ldt.b32`.
            0xa7 SttsB32 "stts.b32" false { sv: SReg, t: TReg, c: CReg };

            // ---- scalar: f32 ----

            /// `sd = sa + sb` in f32.
            0x30 Fadd "fadd" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa - sb` in f32.
            0x31 Fsub "fsub" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa * sb` in f32.
            0x32 Fmul "fmul" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa / sb` in f32.
            0x33 Fdiv "fdiv" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = min(sa, sb)` in f32; a NaN operand yields the other operand, and `-0`
            /// counts as less than `+0`.
            0x34 Fmin "fmin" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = max(sa, sb)` in f32; a NaN operand yields the other operand, and `-0`
            /// counts as less than `+0`.
            0x35 Fmax "fmax" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = sa * sb + sc` in f32, not fused: the product is rounded before
            /// the add.
            0x36 Mad "mad" false { sd: SReg, sa: SReg, sb: SReg, sc: SReg };
            /// `sd = sqrt(sa)` in f32, correctly rounded.
            0x37 Fsqrt "fsqrt" false { sd: SReg, sa: SReg };
            /// `sd = exp(sa)` in f32, approximated as `vexp.f32` does.
            0x38 Fexp "fexp" false { sd: SReg, sa: SReg };
            /// `sd = 1 / sqrt(sa)` in f32, as `vrsqrt.f32` does.
            0x39 Frsqrt "frsqrt" false { sd: SReg, sa: SReg };
            /// `sd = 1 / sa` in f32, correctly rounded.
            0x3a Frcp "frcp" false { sd: SReg, sa: SReg };
            /// `sd = 1` if `sa < sb` in f32, else 0 (0 if either is NaN).
            0x3b Flt "flt" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = 1` if `sa <= sb` in f32, else 0 (0 if either is NaN).
            0x3c Fle "fle" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd = 1` if `sa == sb` in f32, else 0 (0 if either is NaN).
            0x3d Feq "feq" false { sd: SReg, sa: SReg, sb: SReg };
            /// `sd` = the signed integer `sa` converted to f32, rounded to nearest even.
            0x3e CvtF32I32 "cvt.f32.i32" false { sd: SReg, sa: SReg };
            /// `sd` = the f32 `sa` converted to a signed integer: truncated toward
            /// zero, saturated at the `i32` bounds, NaN giving 0.
            0x3f CvtI32F32 "cvt.i32.f32" false { sd: SReg, sa: SReg };

            // ---- vector: f32 arithmetic ----

            /// `vd = va + vb` in f32, per lane.
            0x40 VaddF32 "vadd.f32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va - vb` in f32, per lane.
            0x41 VsubF32 "vsub.f32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va * vb` in f32, per lane.
            0x42 VmulF32 "vmul.f32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va / vb` in f32, per lane.
            0x43 VdivF32 "vdiv.f32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = min(va, vb)` in f32, per lane; a NaN operand yields the other, and
            /// `-0` counts as less than `+0`.
            0x44 VminF32 "vmin.f32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = max(va, vb)` in f32, per lane; a NaN operand yields the other, and
            /// `-0` counts as less than `+0`.
            0x45 VmaxF32 "vmax.f32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va * vb + vc` in f32, per lane, not fused (the product is rounded
            /// before the add).
            0x46 VmadF32 "vmad.f32" true { vd: VReg, va: VReg, vb: VReg, vc: VReg };
            /// `vd = |va|` in f32, per lane (clears the sign bit).
            0x47 VabsF32 "vabs.f32" true { vd: VReg, va: VReg };
            /// `vd = -va` in f32, per lane (flips the sign bit).
            0x48 VnegF32 "vneg.f32" true { vd: VReg, va: VReg };
            /// `vd = sqrt(va)` in f32, per lane, correctly rounded.
            0x49 VsqrtF32 "vsqrt.f32" true { vd: VReg, va: VReg };
            /// `vd = exp(va)` in f32, per lane: an approximation.
            ///
            /// Range reduction `x = n·ln2 + r` with `n = round(x·log2 e)` and `|r| ≤
            /// ln2/2`, a polynomial for `exp(r)`, and scaling by `2^n`. Inputs above
            /// `88.72` give `+inf`, inputs below `-87.33` give `+0`, NaN gives NaN. The
            /// documentation of the reference semantics gives the measured error.
            0x4a VexpF32 "vexp.f32" true { vd: VReg, va: VReg };
            /// `vd = 1 / sqrt(va)` in f32, per lane: the correctly rounded square root,
            /// then the correctly rounded reciprocal (within 1.5 ulp of the exact
            /// value, by an exhaustive check of the positive floats).
            0x4b VrsqrtF32 "vrsqrt.f32" true { vd: VReg, va: VReg };
            /// `vd = 1 / va` in f32, per lane, correctly rounded.
            0x4c VrcpF32 "vrcp.f32" true { vd: VReg, va: VReg };
            /// `vd = va + sb` in f32, per lane (`sb` broadcast).
            0x4d VaddsF32 "vadds.f32" true { vd: VReg, va: VReg, sb: SReg };
            /// `vd = va * sb` in f32, per lane (`sb` broadcast).
            0x4e VmulsF32 "vmuls.f32" true { vd: VReg, va: VReg, sb: SReg };
            /// `vd = va * sb + vd` in f32, per lane (`sb` broadcast), not fused.
            0x4f VmadsF32 "vmads.f32" true { vd: VReg, va: VReg, sb: SReg };
            /// `vd = va * vb[lane] + vd` in f32, per lane (lane `lane` of `vb`
            /// broadcast), not fused.
            ///
            /// The matrix-multiply step: a row of one operand times one element of the
            /// other, held in a vector register.
            0x50 VmadlF32 "vmadl.f32" true { vd: VReg, va: VReg, vb: VReg, lane: Lane };

            // ---- vector: f32 reductions and compares ----

            /// `sd` = the sum of the active lanes of `va`, in f32.
            ///
            /// The order is fixed: lanes outside the guard count as `-0.0`, then
            /// `a[i] += a[i + h]` for `i < h`, with `h` = 32, 16, 8, 4, 2, 1; the
            /// result is `a[0]`.
            0x51 VredsumF32 "vredsum.f32" true { sd: SReg, va: VReg };
            /// `sd` = the largest active lane of `va`, in f32 (`-inf` if none).
            ///
            /// NaN lanes are ignored unless every active lane is NaN.
            0x52 VredmaxF32 "vredmax.f32" true { sd: SReg, va: VReg };
            /// `sd` = the smallest active lane of `va`, in f32 (`+inf` if none).
            ///
            /// NaN lanes are ignored unless every active lane is NaN.
            0x53 VredminF32 "vredmin.f32" true { sd: SReg, va: VReg };
            /// Sets lane bits of `pd` where `va == vb` in f32 (false on NaN).
            0x54 VcmpEqF32 "vcmp.eq.f32" true { pd: PReg, va: VReg, vb: VReg };
            /// Sets lane bits of `pd` where `va != vb` in f32 (true on NaN).
            0x55 VcmpNeF32 "vcmp.ne.f32" true { pd: PReg, va: VReg, vb: VReg };
            /// Sets lane bits of `pd` where `va < vb` in f32 (false on NaN).
            0x56 VcmpLtF32 "vcmp.lt.f32" true { pd: PReg, va: VReg, vb: VReg };
            /// Sets lane bits of `pd` where `va <= vb` in f32 (false on NaN).
            0x57 VcmpLeF32 "vcmp.le.f32" true { pd: PReg, va: VReg, vb: VReg };

            // ---- vector: conversions ----

            /// `vd` = the signed integers of `va` converted to f32, per lane, rounded
            /// to nearest even.
            0x58 VcvtF32I32 "vcvt.f32.i32" true { vd: VReg, va: VReg };
            /// `vd` = the f32 lanes of `va` converted to signed integers, per lane:
            /// truncated toward zero, saturated, NaN giving 0.
            0x59 VcvtI32F32 "vcvt.i32.f32" true { vd: VReg, va: VReg };
            /// `vd` = the unsigned integers of `va` converted to f32, per lane, rounded
            /// to nearest even.
            0x5a VcvtF32U32 "vcvt.f32.u32" true { vd: VReg, va: VReg };
            /// `vd` = the f32 lanes of `va` converted to unsigned integers, per lane:
            /// truncated toward zero, saturated (negative giving 0), NaN giving 0.
            0x5b VcvtU32F32 "vcvt.u32.f32" true { vd: VReg, va: VReg };
            /// `vd` = bf16 elements 0..=63 of the packed `va`, widened to f32 (exact).
            ///
            /// A packed 16-bit vector holds 128 elements: element `2i` in the low half
            /// of lane `i`, element `2i + 1` in the high half. Lane `i` of `vd` gets
            /// element `i`.
            0x5c VunpkLoBf16 "vunpk.lo.bf16" true { vd: VReg, va: VReg };
            /// `vd` = bf16 elements 64..=127 of the packed `va`, widened to f32: lane
            /// `i` gets element `64 + i`.
            0x5d VunpkHiBf16 "vunpk.hi.bf16" true { vd: VReg, va: VReg };
            /// Packs 128 f32 values as bf16: elements 0..=63 from the lanes of `va`,
            /// 64..=127 from the lanes of `vb`, rounded to nearest even.
            ///
            /// NaN stays a quiet NaN with its sign. The guard selects destination
            /// lanes, each holding two elements.
            0x5e VpackBf16 "vpack.bf16" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd` = f16 elements 0..=63 of the packed `va`, widened to f32 (exact).
            0x5f VunpkLoF16 "vunpk.lo.f16" true { vd: VReg, va: VReg };
            /// `vd` = f16 elements 64..=127 of the packed `va`, widened to f32.
            0x60 VunpkHiF16 "vunpk.hi.f16" true { vd: VReg, va: VReg };
            /// Packs 128 f32 values as f16 like `vpack.bf16`: rounded to nearest even,
            /// overflowing to infinity, subnormals kept, NaN quiet.
            0x61 VpackF16 "vpack.f16" true { vd: VReg, va: VReg, vb: VReg };

            // ---- vector: integer ----

            /// `vd = va + vb`, per lane, wrapping.
            0x68 VaddI32 "vadd.i32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va - vb`, per lane, wrapping.
            0x69 VsubI32 "vsub.i32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va * vb`, per lane, the low 32 bits.
            0x6a VmulI32 "vmul.i32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = min(va, vb)`, per lane, signed.
            0x6b VminI32 "vmin.i32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = max(va, vb)`, per lane, signed.
            0x6c VmaxI32 "vmax.i32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = min(va, vb)`, per lane, unsigned.
            0x6d VminU32 "vmin.u32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = max(va, vb)`, per lane, unsigned.
            0x6e VmaxU32 "vmax.u32" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va & vb`, per lane.
            0x6f Vand "vand" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va | vb`, per lane.
            0x70 Vor "vor" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va ^ vb`, per lane.
            0x71 Vxor "vxor" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va << (vb & 31)`, per lane.
            0x72 Vshl "vshl" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va >> (vb & 31)`, per lane, shifting in zeros.
            0x73 Vshr "vshr" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va >> (vb & 31)`, per lane, shifting in copies of the sign bit.
            0x74 Vsra "vsra" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd = va + sb`, per lane (`sb` broadcast), wrapping.
            0x75 VaddsI32 "vadds.i32" true { vd: VReg, va: VReg, sb: SReg };
            /// `sd` = the wrapping sum of the active lanes of `va` (0 if none).
            0x76 VredsumI32 "vredsum.i32" true { sd: SReg, va: VReg };
            /// `sd` = the largest active lane of `va`, signed (`i32::MIN` if none).
            0x77 VredmaxI32 "vredmax.i32" true { sd: SReg, va: VReg };
            /// `sd` = the smallest active lane of `va`, signed (`i32::MAX` if none).
            0x78 VredminI32 "vredmin.i32" true { sd: SReg, va: VReg };
            /// Sets lane bits of `pd` where `va == vb`.
            0x79 VcmpEqI32 "vcmp.eq.i32" true { pd: PReg, va: VReg, vb: VReg };
            /// Sets lane bits of `pd` where `va < vb`, signed.
            0x7a VcmpLtI32 "vcmp.lt.i32" true { pd: PReg, va: VReg, vb: VReg };
            /// Sets lane bits of `pd` where `va <= vb`, signed.
            0x7b VcmpLeI32 "vcmp.le.i32" true { pd: PReg, va: VReg, vb: VReg };
            /// Sets lane bits of `pd` where `va < vb`, unsigned.
            0x7c VcmpLtU32 "vcmp.lt.u32" true { pd: PReg, va: VReg, vb: VReg };

            // ---- vector: lane movement ----

            /// `vd = va`, per lane.
            0x80 Vmov "vmov" true { vd: VReg, va: VReg };
            /// Every lane of `vd` = `sa`.
            0x81 Vbcast "vbcast" true { vd: VReg, sa: SReg };
            /// `sd = va[sb & 63]`.
            0x82 Vext "vext" false { sd: SReg, va: VReg, sb: SReg };
            /// `vd[sb & 63] = sa`; the other lanes keep their values.
            0x83 Vins "vins" false { vd: VReg, sa: SReg, sb: SReg };
            /// `vd[i] = va[vb[i] & 63]`, per lane.
            0x84 Vperm "vperm" true { vd: VReg, va: VReg, vb: VReg };
            /// `vd[i] = va[(i + sb) & 63]`, per lane: a rotation toward lane 0.
            0x85 Vrot "vrot" true { vd: VReg, va: VReg, sb: SReg };
            /// `vd[i] = i`, per lane.
            0x86 Viota "viota" true { vd: VReg };
            /// `vd[i] = pa[i] ? va[i] : vb[i]`, per lane.
            0x87 Vsel "vsel" true { vd: VReg, pa: PReg, va: VReg, vb: VReg };

            // ---- predicates ----

            /// `pd` = the first `sa` lanes (all 64 when `sa >= 64`, unsigned).
            ///
            /// The mask of a vector that runs past the end of a row.
            0x90 Pfirst "pfirst" false { pd: PReg, sa: SReg };
            /// `pd = pa & pb`.
            0x91 Pand "pand" false { pd: PReg, pa: PReg, pb: PReg };
            /// `pd = pa | pb`.
            0x92 Por "por" false { pd: PReg, pa: PReg, pb: PReg };
            /// `pd = pa ^ pb`.
            0x93 Pxor "pxor" false { pd: PReg, pa: PReg, pb: PReg };
            /// `pd = !pa`.
            0x94 Pnot "pnot" false { pd: PReg, pa: PReg };
            /// `sd` = the number of lanes set in `pa`.
            0x95 Pcnt "pcnt" false { sd: SReg, pa: PReg };

            // ---- vector: memory ----

            /// Loads lane `i` of `vd` from scratchpad byte address `sa + imm + 4i`.
            ///
            /// The address must be 4-byte aligned (`Misaligned`); every active lane's
            /// word must be inside the scratchpad (`ScratchRange`). Inactive lanes are
            /// neither read nor checked, and keep their values.
            0xa0 Ldv "ldv" true { vd: VReg, sa: SReg, imm: Imm };
            /// Stores lane `i` of `vv` at scratchpad byte address `sa + imm + 4i`.
            ///
            /// Faults as `ldv`; inactive lanes are not written.
            0xa1 Stv "stv" true { vv: VReg, sa: SReg, imm: Imm };
            /// Loads lane `i` of `vd` from the 32-bit element of tensor `t` at
            /// coordinates `(c + i, c+1, c+2, c+3)`.
            ///
            /// Faults: a slot the launch has no tensor for (`TensorSlot`), a tensor
            /// whose elements are not 4 bytes (`TensorType`), an active lane's
            /// coordinate outside the tensor's dimensions (`TensorRange`), and the
            /// MMU's faults on the element's address, or an address past 2^64
            /// (`Mmu`). Inactive lanes are neither read nor checked, and keep their
            /// values.
            0xa2 LdtB32 "ldt.b32" true { vd: VReg, t: TReg, c: CReg };
            /// Stores lane `i` of `vv` as the 32-bit element of tensor `t` at
            /// coordinates `(c + i, c+1, c+2, c+3)`.
            ///
            /// Faults as `ldt.b32`; inactive lanes are not written. The range checks
            /// come before any write, but an MMU fault part way leaves the elements
            /// before the refused one written.
            0xa3 SttB32 "stt.b32" true { vv: VReg, t: TReg, c: CReg };
            /// Loads 128 16-bit elements of tensor `t` into the packed `vd`: lane `i`
            /// gets the elements at `(c + 2i, ...)` (low half) and `(c + 2i + 1, ...)`
            /// (high half).
            ///
            /// Faults as `ldt.b32`, for tensors of 2-byte elements; both elements of
            /// an active lane must be inside the tensor.
            0xa4 LdtB16 "ldt.b16" true { vd: VReg, t: TReg, c: CReg };
            /// Stores the 128 packed 16-bit elements of `vv` into tensor `t`, laid out
            /// as `ldt.b16` reads them.
            ///
            /// Faults as `ldt.b16`; inactive lanes are not written.
            0xa5 SttB16 "stt.b16" true { vv: VReg, t: TReg, c: CReg };
        }
    };
}
