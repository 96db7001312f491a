# Row softmax: y[r, i] = exp(x[r, i] - max_r) / sum_j exp(x[r, j] - max_r).
#
# x and y are (cols, rows); index space (rows, 1, 1, 1), one row per point. Three
# passes over the row: its maximum; exp(x - max) written to y and summed; y scaled by
# the reciprocal of the sum. Subtracting the maximum keeps exp from overflowing.

.kernel softmax
.arg tensor x f32
.arg tensor y f32

        idx     s5, 0               # row: coordinates (s4, s5) = (column, row)
        tdim    s2, x, 0            # columns

        li      s9, -inf
        vbcast  v0, s9              # running maxima
        li      s4, 0
max_loop:
        sub     s3, s2, s4
        pfirst  p1, s3
  @p1   ldt.b32 v1, x, s4
  @p1   vmax.f32 v0, v0, v1
        addi    s4, s4, 64
        blt     s4, s2, max_loop
        vredmax.f32 s10, v0
        xori    s11, s10, -0x80000000 # -max: flip the sign bit

        li      s4, 0               # v2: running sums (registers start at zero)
exp_loop:
        sub     s3, s2, s4
        pfirst  p1, s3
  @p1   ldt.b32 v1, x, s4
  @p1   vadds.f32 v1, v1, s11
  @p1   vexp.f32 v1, v1
  @p1   vadd.f32 v2, v2, v1
  @p1   stt.b32 v1, y, s4
        addi    s4, s4, 64
        blt     s4, s2, exp_loop
        vredsum.f32 s12, v2
        frcp    s13, s12

        li      s4, 0
scale_loop:
        sub     s3, s2, s4
        pfirst  p1, s3
  @p1   ldt.b32 v1, y, s4
  @p1   vmuls.f32 v1, v1, s13
  @p1   stt.b32 v1, y, s4
        addi    s4, s4, 64
        blt     s4, s2, scale_loop
        halt
