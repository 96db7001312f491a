.kernel softmax
.arg tensor x f32
.arg tensor y f32
.scratch 0
.entry L0

L0:
    tdim s31, x, 0
    idx s30, 0
    mov s2, s30
    li s30, 0xff800000               # -inf
    vbcast v31, s30
    blt s0, s31, L16
L6:
    vredmax.f32 s30, v31
    xori s30, s30, -2147483648
    vbcast v30, s0
    li s1, 0
    blt s0, s31, L24
L11:
    vredsum.f32 s29, v30
    frcp s29, s29
    li s1, 0
    blt s0, s31, L35
L15:
    halt
L16:
    sub s30, s31, s1
    max s30, s30, s0
    pfirst p7, s30
    @p7 ldt.b32 v30, x, s1
    @p7 vmax.f32 v31, v31, v30
    addi s1, s1, 64
    blt s1, s31, L16
    j L6
L24:
    sub s29, s31, s1
    max s29, s29, s0
    pfirst p7, s29
    @p7 ldt.b32 v29, x, s1
    @p7 vadds.f32 v29, v29, s30
    @p7 vexp.f32 v29, v29
    @p7 vadd.f32 v30, v30, v29
    @p7 stt.b32 v29, y, s1
    addi s1, s1, 64
    blt s1, s31, L24
    j L11
L35:
    sub s28, s31, s1
    max s28, s28, s0
    pfirst p7, s28
    @p7 ldt.b32 v29, y, s1
    @p7 vmuls.f32 v29, v29, s29
    @p7 stt.b32 v29, y, s1
    addi s1, s1, 64
    blt s1, s31, L35
    j L15
