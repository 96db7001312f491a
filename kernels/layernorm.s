# Layer normalisation of each row: y = (x - mean) * rsqrt(var + eps) * gamma + beta.
#
# x and y are (cols, rows) -- dimension 0 runs along a row -- and gamma and beta are
# (cols). eps is an f32 scalar. Index space (rows, 1, 1, 1), one row per point.
#
# Three passes over the row, 64 columns at a time, the last step masked (pfirst):
#   1. the sum, into per-lane partial sums; mean = sum / cols;
#   2. the squared deviations (x - mean)^2, likewise; var = that sum / cols (the
#      two-pass variance: it does not lose the small variance of rows far from zero
#      the way E[x^2] - mean^2 does);
#   3. y = ((x - mean) * rstd) * gamma + beta with rstd = rsqrt(var + eps).
#
# Numerics: each lane sums its columns in order (registers start at +0.0), the lanes
# are combined in vredsum.f32's fixed tree order; the means are correctly rounded
# divisions; var + eps is rounded, then rsqrt is frsqrt's (square root, then
# reciprocal, each rounded); every multiply and add of pass 3 is rounded on its own
# (vmad.f32 is not fused). Limits: none on the shape; a row of one column has
# var = 0, so y = beta when eps > 0.

.kernel layernorm
.arg tensor x f32
.arg tensor gamma f32
.arg tensor beta f32
.arg tensor y f32
.arg f32 eps

        idx     s5, 0               # row: coordinates (s4, s5, s6, s7) = (column, row)
        tdim    s2, x, 0            # cols
        cvt.f32.i32 s20, s2         # cols as f32 (exact up to 2^24)

        li      s4, 0               # v0: partial sums (registers start at zero)
sum_loop:
        sub     s3, s2, s4
        pfirst  p1, s3
  @p1   ldt.b32 v1, x, s4
  @p1   vadd.f32 v0, v0, v1
        addi    s4, s4, 64
        blt     s4, s2, sum_loop
        vredsum.f32 s10, v0
        fdiv    s11, s10, s20       # mean
        xori    s12, s11, -0x80000000 # -mean: flip the sign bit

        li      s4, 0               # v2: partial sums of squares
var_loop:
        sub     s3, s2, s4
        pfirst  p1, s3
  @p1   ldt.b32 v1, x, s4
  @p1   vadds.f32 v1, v1, s12       # x - mean
  @p1   vmad.f32 v2, v1, v1, v2     # + (x - mean)^2, the square rounded first
        addi    s4, s4, 64
        blt     s4, s2, var_loop
        vredsum.f32 s13, v2
        fdiv    s14, s13, s20       # var
        ldarg   s15, eps
        fadd    s14, s14, s15
        frsqrt  s16, s14            # rstd

        li      s4, 0
norm_loop:
        sub     s3, s2, s4
        pfirst  p1, s3
        mov     s24, s4             # coordinates (s24, s25, s26, s27) = (column, 0, 0, 0)
  @p1   ldt.b32 v1, x, s4
  @p1   ldt.b32 v3, gamma, s24
  @p1   ldt.b32 v4, beta, s24
  @p1   vadds.f32 v1, v1, s12       # x - mean
  @p1   vmuls.f32 v1, v1, s16       # * rstd
  @p1   vmad.f32 v1, v1, v3, v4     # * gamma + beta
  @p1   stt.b32 v1, y, s4
        addi    s4, s4, 64
        blt     s4, s2, norm_loop
        halt
