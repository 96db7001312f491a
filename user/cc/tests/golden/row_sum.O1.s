.kernel row_sum
.arg tensor x f32
.arg tensor out f32
.scratch 0
.entry L0

L0:
    tdim s31, x, 0
    idx s30, 0
    mov s2, s30
    blt s0, s31, L11
L4:
    mov s5, s30
    li s6, 0
    li s7, 0
    li s8, 0
    vredsum.f32 s29, v31
    stts.b32 s29, out, s5
    halt
L11:
    sub s29, s31, s1
    max s29, s29, s0
    pfirst p7, s29
    @p7 ldt.b32 v30, x, s1
    @p7 vadd.f32 v31, v31, v30
    addi s1, s1, 64
    blt s1, s31, L11
    j L4
