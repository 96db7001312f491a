.kernel vadd
.arg tensor a f32
.arg tensor b f32
.arg tensor c f32
.scratch 0
.entry L0

L0:
    idx s31, 0
    shli s31, s31, 6
    mov s1, s31
    tdim s30, c, 0
    sub s31, s30, s31
    max s31, s31, s0
    pfirst p7, s31
    @p7 ldt.b32 v31, a, s1
    @p7 ldt.b32 v30, b, s1
    @p7 vadd.f32 v31, v31, v30
    @p7 stt.b32 v31, c, s1
    halt
