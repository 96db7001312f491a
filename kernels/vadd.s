# Vector add: c = a + b, element by element, over f32 tensors of n elements.
#
# Index space: (ceil(n / 64), 1, 1, 1). Each point adds one vector of 64 elements;
# the last one is masked to the elements that exist.

.kernel vadd
.arg tensor a f32
.arg tensor b f32
.arg tensor c f32

        idx     s1, 0               # which vector
        shli    s4, s1, 6           # its first element: coordinates (s4, s5, s6, s7)
        tdim    s2, c, 0            # n
        sub     s3, s2, s4          # elements from here to the end
        pfirst  p1, s3              # lanes that hold elements
  @p1   ldt.b32 v0, a, s4
  @p1   ldt.b32 v1, b, s4
  @p1   vadd.f32 v2, v0, v1
  @p1   stt.b32 v2, c, s4
        halt
