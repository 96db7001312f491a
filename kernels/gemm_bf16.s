# GEMM in bf16: C = A * B, A and B bf16, C f32, accumulated in f32.
#
# A is (K, M), B is (N, K) and C is (N, M), as in gemm.s: dimension 0 runs along a
# row, so A's rows are its M rows of K elements, B's its K rows of N. Index space:
# (ceil(N / 128), ceil(M / 64), 1, 1); each point computes a tile of C of up to 64
# rows by 128 columns.
#
# The layout follows the bf16 packing. One ldt.b16 reads 128 consecutive elements
# of a row, two per lane, and vunpk.lo.bf16 / vunpk.hi.bf16 widen elements 0..63 and
# 64..127 to f32 lanes. So a point's 128 columns are two f32 vectors: the tile's rows
# of C are accumulated as a low half (columns c0..c0+63) and a high half
# (c0+64..c0+127). The tile works 8 rows of C at a time (16 accumulators, v0..v15),
# over K in blocks of 64: it reads the 8 rows' 64 elements of A (an ldt.b16 guarded to
# its first 32 lanes, widened with vunpk.lo.bf16) into v16..v23, then for each k of
# the block reads row k of B straight from the tensor (one ldt.b16, two unpacks) and
# adds B[k, :] * A[row, k] to each accumulator (vmadl.f32, lane k of the row's A
# vector broadcast). No scratchpad: each row of B is read once per group of 8 rows.
#
# Limits: M a multiple of 8, K a multiple of 64, N even (a lane of a packed load
# holds two columns, and both must exist: an odd N faults at its last column). The
# last column tile is masked, its high half possibly empty. Numerics: bf16 to f32 is
# exact; each product is rounded to f32 before its add (the SG1's multiply-add is not
# fused), summed in k order from +0.0.

.kernel gemm_bf16
.arg tensor a bf16
.arg tensor b bf16
.arg tensor c f32

        idx     s1, 0               # column tile
        idx     s2, 1               # row tile
        shli    s20, s1, 7          # c0: the tile's first column
        shli    s21, s2, 6          # r0: the tile's first row
        tdim    s22, a, 0           # K
        tdim    s23, a, 1           # M
        tdim    s24, b, 0           # N
        sub     s3, s24, s20        # the tile's columns that exist (at least 1)
        addi    s8, s3, 1
        shri    s8, s8, 1
        pfirst  p1, s8              # B's lanes: two columns each
        pfirst  p3, s3              # the low half's columns
        addi    s8, s3, -64
        max     s8, s8, s0
        pfirst  p4, s8              # the high half's (none if the tile is narrower)
        li      s8, 32
        pfirst  p2, s8              # A's lanes: 64 elements of a row
        mov     s4, s20             # B's coordinates (s4, s5, s6, s7) = (c0, k, 0, 0)
        addi    s26, s20, 64        # C's high half: (s26, s27, s28, s29) = (c0 + 64, row)

        addi    s25, s21, 64
        min     s25, s25, s23       # the tile's end row
        mov     s9, s21             # r: the first row of the group
group:
        vxor    v0, v0, v0
        vxor    v1, v1, v1
        vxor    v2, v2, v2
        vxor    v3, v3, v3
        vxor    v4, v4, v4
        vxor    v5, v5, v5
        vxor    v6, v6, v6
        vxor    v7, v7, v7
        vxor    v8, v8, v8
        vxor    v9, v9, v9
        vxor    v10, v10, v10
        vxor    v11, v11, v11
        vxor    v12, v12, v12
        vxor    v13, v13, v13
        vxor    v14, v14, v14
        vxor    v15, v15, v15
        li      s12, 0              # k0
kblock:
        mov     s14, s12            # A's coordinates (s14, s15, s16, s17) = (k0, row, 0, 0)
        mov     s15, s9
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v16, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v17, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v18, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v19, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v20, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v21, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v22, v27
        addi    s15, s15, 1
  @p2   ldt.b16 v27, a, s14
        vunpk.lo.bf16 v23, v27
        mov     s5, s12             # k = k0
  .rept 64 k
  @p1   ldt.b16 v24, b, s4
        vunpk.lo.bf16 v25, v24
        vunpk.hi.bf16 v26, v24
        vmadl.f32 v0, v25, v16, k
        vmadl.f32 v1, v25, v17, k
        vmadl.f32 v2, v25, v18, k
        vmadl.f32 v3, v25, v19, k
        vmadl.f32 v4, v25, v20, k
        vmadl.f32 v5, v25, v21, k
        vmadl.f32 v6, v25, v22, k
        vmadl.f32 v7, v25, v23, k
        vmadl.f32 v8, v26, v16, k
        vmadl.f32 v9, v26, v17, k
        vmadl.f32 v10, v26, v18, k
        vmadl.f32 v11, v26, v19, k
        vmadl.f32 v12, v26, v20, k
        vmadl.f32 v13, v26, v21, k
        vmadl.f32 v14, v26, v22, k
        vmadl.f32 v15, v26, v23, k
        addi    s5, s5, 1
  .endr
        addi    s12, s12, 64
        blt     s12, s22, kblock

        mov     s14, s20            # C's low half: (c0, row, 0, 0)
        mov     s15, s9
        mov     s27, s9
  @p3   stt.b32 v0, c, s14
  @p4   stt.b32 v8, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v1, c, s14
  @p4   stt.b32 v9, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v2, c, s14
  @p4   stt.b32 v10, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v3, c, s14
  @p4   stt.b32 v11, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v4, c, s14
  @p4   stt.b32 v12, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v5, c, s14
  @p4   stt.b32 v13, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v6, c, s14
  @p4   stt.b32 v14, c, s26
        addi    s15, s15, 1
        addi    s27, s27, 1
  @p3   stt.b32 v7, c, s14
  @p4   stt.b32 v15, c, s26
        addi    s9, s9, 8
        blt     s9, s25, group
        halt
