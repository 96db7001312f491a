.kernel saxpy
.arg f32 alpha
.arg tensor x f32
.arg tensor y f32
.scratch 0
.entry L0

L0:
    ldarg s31, alpha
    idx s30, 0
    shli s30, s30, 6
    mov s1, s30
    tdim s29, y, 0
    sub s30, s29, s30
    max s30, s30, s0
    pfirst p7, s30
    @p7 ldt.b32 v31, x, s1
    @p7 ldt.b32 v30, y, s1
    @p7 vmads.f32 v30, v31, s31
    @p7 stt.b32 v30, y, s1
    halt
