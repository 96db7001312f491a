# Reduction: the sum of each row of a matrix.
#
# x is (cols, rows) -- dimension 0 runs along a row -- and out is (rows). Index space:
# (rows, 1, 1, 1), one row per point. Each row is summed 64 columns at a time into a
# vector of partial sums (the last step masked), then across the lanes in the fixed
# order of vredsum.f32.

.kernel row_sum
.arg tensor x f32
.arg tensor out f32

        idx     s5, 0               # row: coordinates (s4, s5) = (column, row) of x
        tdim    s2, x, 0            # columns
        li      s4, 0
loop:
        sub     s3, s2, s4
        pfirst  p1, s3
  @p1   ldt.b32 v1, x, s4
  @p1   vadd.f32 v0, v0, v1         # partial sums (registers start at zero)
        addi    s4, s4, 64
        blt     s4, s2, loop
        vredsum.f32 s10, v0
        mov     s12, s5             # coordinates (s12, s13, s14, s15) = (row, 0, 0, 0)
        stts.b32 s10, out, s12
        halt
