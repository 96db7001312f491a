# SAXPY: y = alpha * x + y over f32 tensors of n elements (BLAS's saxpy, unit strides).
#
# Index space: (ceil(n / 64), 1, 1, 1); one vector of 64 elements per point, the last
# one masked. The multiply-add is not fused: alpha * x is rounded before the add.

.kernel saxpy
.arg f32 alpha
.arg tensor x f32
.arg tensor y f32

        idx     s1, 0
        shli    s4, s1, 6           # first element: coordinates (s4, s5, s6, s7)
        tdim    s2, y, 0
        sub     s3, s2, s4
        pfirst  p1, s3
        ldarg   s10, alpha
  @p1   ldt.b32 v0, x, s4
  @p1   ldt.b32 v1, y, s4
  @p1   vmads.f32 v1, v0, s10       # v1 = x * alpha + y
  @p1   stt.b32 v1, y, s4
        halt
