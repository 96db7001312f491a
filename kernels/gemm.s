# GEMM: C = A * B in f32, tiled through the scratchpad.
#
# A is (K, M), B is (N, K) and C is (N, M): dimension 0 runs along a row, so A's rows
# are its M rows of K elements. Index space: (ceil(N / 64), ceil(M / 64), 1, 1); each
# point computes a tile of C of up to 64 rows by 64 columns.
#
# A point first copies the 64-column panel of B it needs, all K rows of it, into the
# scratchpad (row k at byte k * 256). Then, 8 rows of C at a time, it runs over K in
# blocks of 64: it loads the 8 rows' 64 elements of A into v8..v15 and, for each k
# of the block, reads row k of the panel from the scratchpad into v16 and adds
# v16 * A[row, k] to the row's accumulator (vmadl.f32, one per row, lane k of the row's
# A vector broadcast).
#
# Limits: M a multiple of 8, K a multiple of 64 and at most 1024 (the panel fills the
# 256 KiB scratchpad at K = 1024). N is free: the last column tile is masked.
# Products are rounded before each add (the SG1's multiply-add is not fused), summed
# in k order.

.kernel gemm
.arg tensor a f32
.arg tensor b f32
.arg tensor c f32
.scratch 262144

        idx     s1, 0               # column tile
        idx     s2, 1               # row tile
        shli    s20, s1, 6          # c0: the tile's first column
        shli    s21, s2, 6          # r0: the tile's first row
        tdim    s22, a, 0           # K
        tdim    s23, a, 1           # M
        tdim    s24, b, 0           # N
        sub     s3, s24, s20
        pfirst  p1, s3              # the tile's columns that exist

        # The panel B[0..K, c0..c0+64] into the scratchpad.
        mov     s4, s20             # coordinates (s4, s5, s6, s7) = (c0, k, 0, 0)
        li      s5, 0
        li      s10, 0              # scratchpad address of row k
stage:
  @p1   ldt.b32 v16, b, s4
  @p1   stv     v16, s10, 0
        addi    s5, s5, 1
        addi    s10, s10, 256
        blt     s5, s22, stage

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
        li      s12, 0              # k0
        li      s13, 0              # scratchpad address of row k0
kblock:
        mov     s14, s12            # coordinates (s14, s15, s16, s17) = (k0, row, 0, 0)
        mov     s15, s9
        ldt.b32 v8, a, s14
        addi    s15, s15, 1
        ldt.b32 v9, a, s14
        addi    s15, s15, 1
        ldt.b32 v10, a, s14
        addi    s15, s15, 1
        ldt.b32 v11, a, s14
        addi    s15, s15, 1
        ldt.b32 v12, a, s14
        addi    s15, s15, 1
        ldt.b32 v13, a, s14
        addi    s15, s15, 1
        ldt.b32 v14, a, s14
        addi    s15, s15, 1
        ldt.b32 v15, a, s14
  .rept 64 k
        ldv     v16, s13, k * 256
        vmadl.f32 v0, v16, v8, k
        vmadl.f32 v1, v16, v9, k
        vmadl.f32 v2, v16, v10, k
        vmadl.f32 v3, v16, v11, k
        vmadl.f32 v4, v16, v12, k
        vmadl.f32 v5, v16, v13, k
        vmadl.f32 v6, v16, v14, k
        vmadl.f32 v7, v16, v15, k
  .endr
        addi    s12, s12, 64
        addi    s13, s13, 64 * 256
        blt     s12, s22, kblock

        mov     s14, s20            # coordinates (c0, row, 0, 0)
        mov     s15, s9
  @p1   stt.b32 v0, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v1, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v2, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v3, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v4, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v5, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v6, c, s14
        addi    s15, s15, 1
  @p1   stt.b32 v7, c, s14
        addi    s9, s9, 8
        blt     s9, s25, group
        halt
