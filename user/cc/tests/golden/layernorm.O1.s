.kernel layernorm
.arg tensor x f32
.arg tensor gamma f32
.arg tensor beta f32
.arg tensor y f32
.arg f32 eps
.scratch 0
.entry L0

L0:
    ldarg s31, eps
    tdim s30, x, 0
    cvt.f32.i32 s29, s30
    idx s28, 0
    mov s2, s28
    blt s0, s30, L18
    vmov v30, v31
L7:
    vredsum.f32 s28, v30
    fdiv s28, s28, s29
    li s1, 0
    blt s0, s30, L27
L11:
    vredsum.f32 s27, v31
    fdiv s27, s27, s29
    fadd s27, s27, s31
    frsqrt s27, s27
    li s1, 0
    blt s0, s30, L37
L17:
    halt
L18:
    vmov v30, v31
L19:
    sub s28, s30, s1
    max s28, s28, s0
    pfirst p7, s28
    @p7 ldt.b32 v29, x, s1
    @p7 vadd.f32 v30, v30, v29
    addi s1, s1, 64
    blt s1, s30, L19
    j L7
L27:
    sub s27, s30, s1
    max s27, s27, s0
    pfirst p7, s27
    @p7 ldt.b32 v29, x, s1
    @p7 vbcast v28, s28
    @p7 vsub.f32 v29, v29, v28
    @p7 vmad.f32 v31, v29, v29, v31
    addi s1, s1, 64
    blt s1, s30, L27
    j L11
L37:
    sub s26, s30, s1
    max s26, s26, s0
    pfirst p7, s26
    mov s5, s1
    li s6, 0
    li s7, 0
    li s8, 0
    @p7 ldt.b32 v29, x, s1
    @p7 vbcast v28, s28
    @p7 vsub.f32 v29, v29, v28
    @p7 vmuls.f32 v29, v29, s27
    @p7 ldt.b32 v28, gamma, s5
    @p7 ldt.b32 v27, beta, s5
    @p7 vmad.f32 v29, v29, v28, v27
    @p7 stt.b32 v29, y, s1
    addi s1, s1, 64
    blt s1, s30, L37
    j L17
