.kernel gemm_bf16
.arg tensor a bf16
.arg tensor b bf16
.arg tensor c f32
.scratch 0
.entry L0

L0:
    idx s31, 0
    shli s31, s31, 7
    idx s30, 1
    shli s30, s30, 6
    tdim s29, a, 0
    tdim s28, a, 1
    tdim s27, b, 0
    sub s27, s27, s31
    addi s26, s27, 1
    srai s26, s26, 1
    max s26, s26, s0
    pfirst p7, s26
    max s26, s27, s0
    pfirst p6, s26
    addi s27, s27, -64
    max s27, s27, s0
    pfirst p5, s27
    li s27, 32
    pfirst p4, s27
    addi s27, s30, 64
    min s28, s27, s28
    mov s1, s31
    blt s30, s28, L24
L23:
    halt
L24:
    vmov v30, v31
    vbcast v29, s0
L26:
    blt s0, s29, L85
    vmov v28, v29
    vmov v27, v29
    vmov v26, v29
    vmov v25, v29
    vmov v24, v29
    vmov v23, v29
    vmov v22, v29
    vmov v21, v29
    vmov v20, v29
    vmov v19, v29
    vmov v18, v29
    vmov v17, v29
    vmov v16, v29
    vmov v15, v29
    vmov v14, v29
    vmov v13, v29
L43:
    mov s5, s31
    mov s6, s30
    li s7, 0
    li s8, 0
    addi s26, s31, 64
    mov s9, s26
    mov s10, s30
    li s11, 0
    li s12, 0
    @p6 stt.b32 v28, c, s5
    @p5 stt.b32 v20, c, s9
    addi s6, s30, 1
    mov s10, s6
    @p6 stt.b32 v27, c, s5
    @p5 stt.b32 v19, c, s9
    addi s6, s6, 1
    mov s10, s6
    @p6 stt.b32 v26, c, s5
    @p5 stt.b32 v18, c, s9
    addi s6, s6, 1
    mov s10, s6
    @p6 stt.b32 v25, c, s5
    @p5 stt.b32 v17, c, s9
    addi s6, s6, 1
    mov s10, s6
    @p6 stt.b32 v24, c, s5
    @p5 stt.b32 v16, c, s9
    addi s6, s6, 1
    mov s10, s6
    @p6 stt.b32 v23, c, s5
    @p5 stt.b32 v15, c, s9
    addi s6, s6, 1
    mov s10, s6
    @p6 stt.b32 v22, c, s5
    @p5 stt.b32 v14, c, s9
    addi s6, s6, 1
    mov s10, s6
    @p6 stt.b32 v21, c, s5
    @p5 stt.b32 v13, c, s9
    addi s30, s30, 8
    blt s30, s28, L26
    j L23
L85:
    vmov v28, v29
    vmov v27, v29
    vmov v26, v29
    vmov v25, v29
    vmov v24, v29
    vmov v23, v29
    vmov v22, v29
    vmov v21, v29
    vmov v20, v29
    vmov v19, v29
    vmov v18, v29
    vmov v17, v29
    vmov v16, v29
    vmov v15, v29
    vmov v14, v29
    vmov v13, v29
    li s27, 0
L102:
    mov s5, s27
    mov s6, s30
    li s7, 0
    li s8, 0
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v12, v30
    addi s6, s30, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v11, v30
    addi s6, s6, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v10, v30
    addi s6, s6, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v9, v30
    addi s6, s6, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v8, v30
    addi s6, s6, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v7, v30
    addi s6, s6, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v6, v30
    addi s6, s6, 1
    @p4 ldt.b16 v30, a, s5
    vunpk.lo.bf16 v5, v30
    mov s2, s27
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 0
    vmadl.f32 v27, v4, v11, 0
    vmadl.f32 v26, v4, v10, 0
    vmadl.f32 v25, v4, v9, 0
    vmadl.f32 v24, v4, v8, 0
    vmadl.f32 v23, v4, v7, 0
    vmadl.f32 v22, v4, v6, 0
    vmadl.f32 v21, v4, v5, 0
    vmadl.f32 v20, v3, v12, 0
    vmadl.f32 v19, v3, v11, 0
    vmadl.f32 v18, v3, v10, 0
    vmadl.f32 v17, v3, v9, 0
    vmadl.f32 v16, v3, v8, 0
    vmadl.f32 v15, v3, v7, 0
    vmadl.f32 v14, v3, v6, 0
    vmadl.f32 v13, v3, v5, 0
    addi s2, s27, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 1
    vmadl.f32 v27, v4, v11, 1
    vmadl.f32 v26, v4, v10, 1
    vmadl.f32 v25, v4, v9, 1
    vmadl.f32 v24, v4, v8, 1
    vmadl.f32 v23, v4, v7, 1
    vmadl.f32 v22, v4, v6, 1
    vmadl.f32 v21, v4, v5, 1
    vmadl.f32 v20, v3, v12, 1
    vmadl.f32 v19, v3, v11, 1
    vmadl.f32 v18, v3, v10, 1
    vmadl.f32 v17, v3, v9, 1
    vmadl.f32 v16, v3, v8, 1
    vmadl.f32 v15, v3, v7, 1
    vmadl.f32 v14, v3, v6, 1
    vmadl.f32 v13, v3, v5, 1
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 2
    vmadl.f32 v27, v4, v11, 2
    vmadl.f32 v26, v4, v10, 2
    vmadl.f32 v25, v4, v9, 2
    vmadl.f32 v24, v4, v8, 2
    vmadl.f32 v23, v4, v7, 2
    vmadl.f32 v22, v4, v6, 2
    vmadl.f32 v21, v4, v5, 2
    vmadl.f32 v20, v3, v12, 2
    vmadl.f32 v19, v3, v11, 2
    vmadl.f32 v18, v3, v10, 2
    vmadl.f32 v17, v3, v9, 2
    vmadl.f32 v16, v3, v8, 2
    vmadl.f32 v15, v3, v7, 2
    vmadl.f32 v14, v3, v6, 2
    vmadl.f32 v13, v3, v5, 2
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 3
    vmadl.f32 v27, v4, v11, 3
    vmadl.f32 v26, v4, v10, 3
    vmadl.f32 v25, v4, v9, 3
    vmadl.f32 v24, v4, v8, 3
    vmadl.f32 v23, v4, v7, 3
    vmadl.f32 v22, v4, v6, 3
    vmadl.f32 v21, v4, v5, 3
    vmadl.f32 v20, v3, v12, 3
    vmadl.f32 v19, v3, v11, 3
    vmadl.f32 v18, v3, v10, 3
    vmadl.f32 v17, v3, v9, 3
    vmadl.f32 v16, v3, v8, 3
    vmadl.f32 v15, v3, v7, 3
    vmadl.f32 v14, v3, v6, 3
    vmadl.f32 v13, v3, v5, 3
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 4
    vmadl.f32 v27, v4, v11, 4
    vmadl.f32 v26, v4, v10, 4
    vmadl.f32 v25, v4, v9, 4
    vmadl.f32 v24, v4, v8, 4
    vmadl.f32 v23, v4, v7, 4
    vmadl.f32 v22, v4, v6, 4
    vmadl.f32 v21, v4, v5, 4
    vmadl.f32 v20, v3, v12, 4
    vmadl.f32 v19, v3, v11, 4
    vmadl.f32 v18, v3, v10, 4
    vmadl.f32 v17, v3, v9, 4
    vmadl.f32 v16, v3, v8, 4
    vmadl.f32 v15, v3, v7, 4
    vmadl.f32 v14, v3, v6, 4
    vmadl.f32 v13, v3, v5, 4
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 5
    vmadl.f32 v27, v4, v11, 5
    vmadl.f32 v26, v4, v10, 5
    vmadl.f32 v25, v4, v9, 5
    vmadl.f32 v24, v4, v8, 5
    vmadl.f32 v23, v4, v7, 5
    vmadl.f32 v22, v4, v6, 5
    vmadl.f32 v21, v4, v5, 5
    vmadl.f32 v20, v3, v12, 5
    vmadl.f32 v19, v3, v11, 5
    vmadl.f32 v18, v3, v10, 5
    vmadl.f32 v17, v3, v9, 5
    vmadl.f32 v16, v3, v8, 5
    vmadl.f32 v15, v3, v7, 5
    vmadl.f32 v14, v3, v6, 5
    vmadl.f32 v13, v3, v5, 5
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 6
    vmadl.f32 v27, v4, v11, 6
    vmadl.f32 v26, v4, v10, 6
    vmadl.f32 v25, v4, v9, 6
    vmadl.f32 v24, v4, v8, 6
    vmadl.f32 v23, v4, v7, 6
    vmadl.f32 v22, v4, v6, 6
    vmadl.f32 v21, v4, v5, 6
    vmadl.f32 v20, v3, v12, 6
    vmadl.f32 v19, v3, v11, 6
    vmadl.f32 v18, v3, v10, 6
    vmadl.f32 v17, v3, v9, 6
    vmadl.f32 v16, v3, v8, 6
    vmadl.f32 v15, v3, v7, 6
    vmadl.f32 v14, v3, v6, 6
    vmadl.f32 v13, v3, v5, 6
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 7
    vmadl.f32 v27, v4, v11, 7
    vmadl.f32 v26, v4, v10, 7
    vmadl.f32 v25, v4, v9, 7
    vmadl.f32 v24, v4, v8, 7
    vmadl.f32 v23, v4, v7, 7
    vmadl.f32 v22, v4, v6, 7
    vmadl.f32 v21, v4, v5, 7
    vmadl.f32 v20, v3, v12, 7
    vmadl.f32 v19, v3, v11, 7
    vmadl.f32 v18, v3, v10, 7
    vmadl.f32 v17, v3, v9, 7
    vmadl.f32 v16, v3, v8, 7
    vmadl.f32 v15, v3, v7, 7
    vmadl.f32 v14, v3, v6, 7
    vmadl.f32 v13, v3, v5, 7
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 8
    vmadl.f32 v27, v4, v11, 8
    vmadl.f32 v26, v4, v10, 8
    vmadl.f32 v25, v4, v9, 8
    vmadl.f32 v24, v4, v8, 8
    vmadl.f32 v23, v4, v7, 8
    vmadl.f32 v22, v4, v6, 8
    vmadl.f32 v21, v4, v5, 8
    vmadl.f32 v20, v3, v12, 8
    vmadl.f32 v19, v3, v11, 8
    vmadl.f32 v18, v3, v10, 8
    vmadl.f32 v17, v3, v9, 8
    vmadl.f32 v16, v3, v8, 8
    vmadl.f32 v15, v3, v7, 8
    vmadl.f32 v14, v3, v6, 8
    vmadl.f32 v13, v3, v5, 8
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 9
    vmadl.f32 v27, v4, v11, 9
    vmadl.f32 v26, v4, v10, 9
    vmadl.f32 v25, v4, v9, 9
    vmadl.f32 v24, v4, v8, 9
    vmadl.f32 v23, v4, v7, 9
    vmadl.f32 v22, v4, v6, 9
    vmadl.f32 v21, v4, v5, 9
    vmadl.f32 v20, v3, v12, 9
    vmadl.f32 v19, v3, v11, 9
    vmadl.f32 v18, v3, v10, 9
    vmadl.f32 v17, v3, v9, 9
    vmadl.f32 v16, v3, v8, 9
    vmadl.f32 v15, v3, v7, 9
    vmadl.f32 v14, v3, v6, 9
    vmadl.f32 v13, v3, v5, 9
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 10
    vmadl.f32 v27, v4, v11, 10
    vmadl.f32 v26, v4, v10, 10
    vmadl.f32 v25, v4, v9, 10
    vmadl.f32 v24, v4, v8, 10
    vmadl.f32 v23, v4, v7, 10
    vmadl.f32 v22, v4, v6, 10
    vmadl.f32 v21, v4, v5, 10
    vmadl.f32 v20, v3, v12, 10
    vmadl.f32 v19, v3, v11, 10
    vmadl.f32 v18, v3, v10, 10
    vmadl.f32 v17, v3, v9, 10
    vmadl.f32 v16, v3, v8, 10
    vmadl.f32 v15, v3, v7, 10
    vmadl.f32 v14, v3, v6, 10
    vmadl.f32 v13, v3, v5, 10
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 11
    vmadl.f32 v27, v4, v11, 11
    vmadl.f32 v26, v4, v10, 11
    vmadl.f32 v25, v4, v9, 11
    vmadl.f32 v24, v4, v8, 11
    vmadl.f32 v23, v4, v7, 11
    vmadl.f32 v22, v4, v6, 11
    vmadl.f32 v21, v4, v5, 11
    vmadl.f32 v20, v3, v12, 11
    vmadl.f32 v19, v3, v11, 11
    vmadl.f32 v18, v3, v10, 11
    vmadl.f32 v17, v3, v9, 11
    vmadl.f32 v16, v3, v8, 11
    vmadl.f32 v15, v3, v7, 11
    vmadl.f32 v14, v3, v6, 11
    vmadl.f32 v13, v3, v5, 11
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 12
    vmadl.f32 v27, v4, v11, 12
    vmadl.f32 v26, v4, v10, 12
    vmadl.f32 v25, v4, v9, 12
    vmadl.f32 v24, v4, v8, 12
    vmadl.f32 v23, v4, v7, 12
    vmadl.f32 v22, v4, v6, 12
    vmadl.f32 v21, v4, v5, 12
    vmadl.f32 v20, v3, v12, 12
    vmadl.f32 v19, v3, v11, 12
    vmadl.f32 v18, v3, v10, 12
    vmadl.f32 v17, v3, v9, 12
    vmadl.f32 v16, v3, v8, 12
    vmadl.f32 v15, v3, v7, 12
    vmadl.f32 v14, v3, v6, 12
    vmadl.f32 v13, v3, v5, 12
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 13
    vmadl.f32 v27, v4, v11, 13
    vmadl.f32 v26, v4, v10, 13
    vmadl.f32 v25, v4, v9, 13
    vmadl.f32 v24, v4, v8, 13
    vmadl.f32 v23, v4, v7, 13
    vmadl.f32 v22, v4, v6, 13
    vmadl.f32 v21, v4, v5, 13
    vmadl.f32 v20, v3, v12, 13
    vmadl.f32 v19, v3, v11, 13
    vmadl.f32 v18, v3, v10, 13
    vmadl.f32 v17, v3, v9, 13
    vmadl.f32 v16, v3, v8, 13
    vmadl.f32 v15, v3, v7, 13
    vmadl.f32 v14, v3, v6, 13
    vmadl.f32 v13, v3, v5, 13
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 14
    vmadl.f32 v27, v4, v11, 14
    vmadl.f32 v26, v4, v10, 14
    vmadl.f32 v25, v4, v9, 14
    vmadl.f32 v24, v4, v8, 14
    vmadl.f32 v23, v4, v7, 14
    vmadl.f32 v22, v4, v6, 14
    vmadl.f32 v21, v4, v5, 14
    vmadl.f32 v20, v3, v12, 14
    vmadl.f32 v19, v3, v11, 14
    vmadl.f32 v18, v3, v10, 14
    vmadl.f32 v17, v3, v9, 14
    vmadl.f32 v16, v3, v8, 14
    vmadl.f32 v15, v3, v7, 14
    vmadl.f32 v14, v3, v6, 14
    vmadl.f32 v13, v3, v5, 14
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 15
    vmadl.f32 v27, v4, v11, 15
    vmadl.f32 v26, v4, v10, 15
    vmadl.f32 v25, v4, v9, 15
    vmadl.f32 v24, v4, v8, 15
    vmadl.f32 v23, v4, v7, 15
    vmadl.f32 v22, v4, v6, 15
    vmadl.f32 v21, v4, v5, 15
    vmadl.f32 v20, v3, v12, 15
    vmadl.f32 v19, v3, v11, 15
    vmadl.f32 v18, v3, v10, 15
    vmadl.f32 v17, v3, v9, 15
    vmadl.f32 v16, v3, v8, 15
    vmadl.f32 v15, v3, v7, 15
    vmadl.f32 v14, v3, v6, 15
    vmadl.f32 v13, v3, v5, 15
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 16
    vmadl.f32 v27, v4, v11, 16
    vmadl.f32 v26, v4, v10, 16
    vmadl.f32 v25, v4, v9, 16
    vmadl.f32 v24, v4, v8, 16
    vmadl.f32 v23, v4, v7, 16
    vmadl.f32 v22, v4, v6, 16
    vmadl.f32 v21, v4, v5, 16
    vmadl.f32 v20, v3, v12, 16
    vmadl.f32 v19, v3, v11, 16
    vmadl.f32 v18, v3, v10, 16
    vmadl.f32 v17, v3, v9, 16
    vmadl.f32 v16, v3, v8, 16
    vmadl.f32 v15, v3, v7, 16
    vmadl.f32 v14, v3, v6, 16
    vmadl.f32 v13, v3, v5, 16
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 17
    vmadl.f32 v27, v4, v11, 17
    vmadl.f32 v26, v4, v10, 17
    vmadl.f32 v25, v4, v9, 17
    vmadl.f32 v24, v4, v8, 17
    vmadl.f32 v23, v4, v7, 17
    vmadl.f32 v22, v4, v6, 17
    vmadl.f32 v21, v4, v5, 17
    vmadl.f32 v20, v3, v12, 17
    vmadl.f32 v19, v3, v11, 17
    vmadl.f32 v18, v3, v10, 17
    vmadl.f32 v17, v3, v9, 17
    vmadl.f32 v16, v3, v8, 17
    vmadl.f32 v15, v3, v7, 17
    vmadl.f32 v14, v3, v6, 17
    vmadl.f32 v13, v3, v5, 17
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 18
    vmadl.f32 v27, v4, v11, 18
    vmadl.f32 v26, v4, v10, 18
    vmadl.f32 v25, v4, v9, 18
    vmadl.f32 v24, v4, v8, 18
    vmadl.f32 v23, v4, v7, 18
    vmadl.f32 v22, v4, v6, 18
    vmadl.f32 v21, v4, v5, 18
    vmadl.f32 v20, v3, v12, 18
    vmadl.f32 v19, v3, v11, 18
    vmadl.f32 v18, v3, v10, 18
    vmadl.f32 v17, v3, v9, 18
    vmadl.f32 v16, v3, v8, 18
    vmadl.f32 v15, v3, v7, 18
    vmadl.f32 v14, v3, v6, 18
    vmadl.f32 v13, v3, v5, 18
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 19
    vmadl.f32 v27, v4, v11, 19
    vmadl.f32 v26, v4, v10, 19
    vmadl.f32 v25, v4, v9, 19
    vmadl.f32 v24, v4, v8, 19
    vmadl.f32 v23, v4, v7, 19
    vmadl.f32 v22, v4, v6, 19
    vmadl.f32 v21, v4, v5, 19
    vmadl.f32 v20, v3, v12, 19
    vmadl.f32 v19, v3, v11, 19
    vmadl.f32 v18, v3, v10, 19
    vmadl.f32 v17, v3, v9, 19
    vmadl.f32 v16, v3, v8, 19
    vmadl.f32 v15, v3, v7, 19
    vmadl.f32 v14, v3, v6, 19
    vmadl.f32 v13, v3, v5, 19
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 20
    vmadl.f32 v27, v4, v11, 20
    vmadl.f32 v26, v4, v10, 20
    vmadl.f32 v25, v4, v9, 20
    vmadl.f32 v24, v4, v8, 20
    vmadl.f32 v23, v4, v7, 20
    vmadl.f32 v22, v4, v6, 20
    vmadl.f32 v21, v4, v5, 20
    vmadl.f32 v20, v3, v12, 20
    vmadl.f32 v19, v3, v11, 20
    vmadl.f32 v18, v3, v10, 20
    vmadl.f32 v17, v3, v9, 20
    vmadl.f32 v16, v3, v8, 20
    vmadl.f32 v15, v3, v7, 20
    vmadl.f32 v14, v3, v6, 20
    vmadl.f32 v13, v3, v5, 20
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 21
    vmadl.f32 v27, v4, v11, 21
    vmadl.f32 v26, v4, v10, 21
    vmadl.f32 v25, v4, v9, 21
    vmadl.f32 v24, v4, v8, 21
    vmadl.f32 v23, v4, v7, 21
    vmadl.f32 v22, v4, v6, 21
    vmadl.f32 v21, v4, v5, 21
    vmadl.f32 v20, v3, v12, 21
    vmadl.f32 v19, v3, v11, 21
    vmadl.f32 v18, v3, v10, 21
    vmadl.f32 v17, v3, v9, 21
    vmadl.f32 v16, v3, v8, 21
    vmadl.f32 v15, v3, v7, 21
    vmadl.f32 v14, v3, v6, 21
    vmadl.f32 v13, v3, v5, 21
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 22
    vmadl.f32 v27, v4, v11, 22
    vmadl.f32 v26, v4, v10, 22
    vmadl.f32 v25, v4, v9, 22
    vmadl.f32 v24, v4, v8, 22
    vmadl.f32 v23, v4, v7, 22
    vmadl.f32 v22, v4, v6, 22
    vmadl.f32 v21, v4, v5, 22
    vmadl.f32 v20, v3, v12, 22
    vmadl.f32 v19, v3, v11, 22
    vmadl.f32 v18, v3, v10, 22
    vmadl.f32 v17, v3, v9, 22
    vmadl.f32 v16, v3, v8, 22
    vmadl.f32 v15, v3, v7, 22
    vmadl.f32 v14, v3, v6, 22
    vmadl.f32 v13, v3, v5, 22
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 23
    vmadl.f32 v27, v4, v11, 23
    vmadl.f32 v26, v4, v10, 23
    vmadl.f32 v25, v4, v9, 23
    vmadl.f32 v24, v4, v8, 23
    vmadl.f32 v23, v4, v7, 23
    vmadl.f32 v22, v4, v6, 23
    vmadl.f32 v21, v4, v5, 23
    vmadl.f32 v20, v3, v12, 23
    vmadl.f32 v19, v3, v11, 23
    vmadl.f32 v18, v3, v10, 23
    vmadl.f32 v17, v3, v9, 23
    vmadl.f32 v16, v3, v8, 23
    vmadl.f32 v15, v3, v7, 23
    vmadl.f32 v14, v3, v6, 23
    vmadl.f32 v13, v3, v5, 23
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 24
    vmadl.f32 v27, v4, v11, 24
    vmadl.f32 v26, v4, v10, 24
    vmadl.f32 v25, v4, v9, 24
    vmadl.f32 v24, v4, v8, 24
    vmadl.f32 v23, v4, v7, 24
    vmadl.f32 v22, v4, v6, 24
    vmadl.f32 v21, v4, v5, 24
    vmadl.f32 v20, v3, v12, 24
    vmadl.f32 v19, v3, v11, 24
    vmadl.f32 v18, v3, v10, 24
    vmadl.f32 v17, v3, v9, 24
    vmadl.f32 v16, v3, v8, 24
    vmadl.f32 v15, v3, v7, 24
    vmadl.f32 v14, v3, v6, 24
    vmadl.f32 v13, v3, v5, 24
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 25
    vmadl.f32 v27, v4, v11, 25
    vmadl.f32 v26, v4, v10, 25
    vmadl.f32 v25, v4, v9, 25
    vmadl.f32 v24, v4, v8, 25
    vmadl.f32 v23, v4, v7, 25
    vmadl.f32 v22, v4, v6, 25
    vmadl.f32 v21, v4, v5, 25
    vmadl.f32 v20, v3, v12, 25
    vmadl.f32 v19, v3, v11, 25
    vmadl.f32 v18, v3, v10, 25
    vmadl.f32 v17, v3, v9, 25
    vmadl.f32 v16, v3, v8, 25
    vmadl.f32 v15, v3, v7, 25
    vmadl.f32 v14, v3, v6, 25
    vmadl.f32 v13, v3, v5, 25
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 26
    vmadl.f32 v27, v4, v11, 26
    vmadl.f32 v26, v4, v10, 26
    vmadl.f32 v25, v4, v9, 26
    vmadl.f32 v24, v4, v8, 26
    vmadl.f32 v23, v4, v7, 26
    vmadl.f32 v22, v4, v6, 26
    vmadl.f32 v21, v4, v5, 26
    vmadl.f32 v20, v3, v12, 26
    vmadl.f32 v19, v3, v11, 26
    vmadl.f32 v18, v3, v10, 26
    vmadl.f32 v17, v3, v9, 26
    vmadl.f32 v16, v3, v8, 26
    vmadl.f32 v15, v3, v7, 26
    vmadl.f32 v14, v3, v6, 26
    vmadl.f32 v13, v3, v5, 26
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 27
    vmadl.f32 v27, v4, v11, 27
    vmadl.f32 v26, v4, v10, 27
    vmadl.f32 v25, v4, v9, 27
    vmadl.f32 v24, v4, v8, 27
    vmadl.f32 v23, v4, v7, 27
    vmadl.f32 v22, v4, v6, 27
    vmadl.f32 v21, v4, v5, 27
    vmadl.f32 v20, v3, v12, 27
    vmadl.f32 v19, v3, v11, 27
    vmadl.f32 v18, v3, v10, 27
    vmadl.f32 v17, v3, v9, 27
    vmadl.f32 v16, v3, v8, 27
    vmadl.f32 v15, v3, v7, 27
    vmadl.f32 v14, v3, v6, 27
    vmadl.f32 v13, v3, v5, 27
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 28
    vmadl.f32 v27, v4, v11, 28
    vmadl.f32 v26, v4, v10, 28
    vmadl.f32 v25, v4, v9, 28
    vmadl.f32 v24, v4, v8, 28
    vmadl.f32 v23, v4, v7, 28
    vmadl.f32 v22, v4, v6, 28
    vmadl.f32 v21, v4, v5, 28
    vmadl.f32 v20, v3, v12, 28
    vmadl.f32 v19, v3, v11, 28
    vmadl.f32 v18, v3, v10, 28
    vmadl.f32 v17, v3, v9, 28
    vmadl.f32 v16, v3, v8, 28
    vmadl.f32 v15, v3, v7, 28
    vmadl.f32 v14, v3, v6, 28
    vmadl.f32 v13, v3, v5, 28
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 29
    vmadl.f32 v27, v4, v11, 29
    vmadl.f32 v26, v4, v10, 29
    vmadl.f32 v25, v4, v9, 29
    vmadl.f32 v24, v4, v8, 29
    vmadl.f32 v23, v4, v7, 29
    vmadl.f32 v22, v4, v6, 29
    vmadl.f32 v21, v4, v5, 29
    vmadl.f32 v20, v3, v12, 29
    vmadl.f32 v19, v3, v11, 29
    vmadl.f32 v18, v3, v10, 29
    vmadl.f32 v17, v3, v9, 29
    vmadl.f32 v16, v3, v8, 29
    vmadl.f32 v15, v3, v7, 29
    vmadl.f32 v14, v3, v6, 29
    vmadl.f32 v13, v3, v5, 29
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 30
    vmadl.f32 v27, v4, v11, 30
    vmadl.f32 v26, v4, v10, 30
    vmadl.f32 v25, v4, v9, 30
    vmadl.f32 v24, v4, v8, 30
    vmadl.f32 v23, v4, v7, 30
    vmadl.f32 v22, v4, v6, 30
    vmadl.f32 v21, v4, v5, 30
    vmadl.f32 v20, v3, v12, 30
    vmadl.f32 v19, v3, v11, 30
    vmadl.f32 v18, v3, v10, 30
    vmadl.f32 v17, v3, v9, 30
    vmadl.f32 v16, v3, v8, 30
    vmadl.f32 v15, v3, v7, 30
    vmadl.f32 v14, v3, v6, 30
    vmadl.f32 v13, v3, v5, 30
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 31
    vmadl.f32 v27, v4, v11, 31
    vmadl.f32 v26, v4, v10, 31
    vmadl.f32 v25, v4, v9, 31
    vmadl.f32 v24, v4, v8, 31
    vmadl.f32 v23, v4, v7, 31
    vmadl.f32 v22, v4, v6, 31
    vmadl.f32 v21, v4, v5, 31
    vmadl.f32 v20, v3, v12, 31
    vmadl.f32 v19, v3, v11, 31
    vmadl.f32 v18, v3, v10, 31
    vmadl.f32 v17, v3, v9, 31
    vmadl.f32 v16, v3, v8, 31
    vmadl.f32 v15, v3, v7, 31
    vmadl.f32 v14, v3, v6, 31
    vmadl.f32 v13, v3, v5, 31
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 32
    vmadl.f32 v27, v4, v11, 32
    vmadl.f32 v26, v4, v10, 32
    vmadl.f32 v25, v4, v9, 32
    vmadl.f32 v24, v4, v8, 32
    vmadl.f32 v23, v4, v7, 32
    vmadl.f32 v22, v4, v6, 32
    vmadl.f32 v21, v4, v5, 32
    vmadl.f32 v20, v3, v12, 32
    vmadl.f32 v19, v3, v11, 32
    vmadl.f32 v18, v3, v10, 32
    vmadl.f32 v17, v3, v9, 32
    vmadl.f32 v16, v3, v8, 32
    vmadl.f32 v15, v3, v7, 32
    vmadl.f32 v14, v3, v6, 32
    vmadl.f32 v13, v3, v5, 32
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 33
    vmadl.f32 v27, v4, v11, 33
    vmadl.f32 v26, v4, v10, 33
    vmadl.f32 v25, v4, v9, 33
    vmadl.f32 v24, v4, v8, 33
    vmadl.f32 v23, v4, v7, 33
    vmadl.f32 v22, v4, v6, 33
    vmadl.f32 v21, v4, v5, 33
    vmadl.f32 v20, v3, v12, 33
    vmadl.f32 v19, v3, v11, 33
    vmadl.f32 v18, v3, v10, 33
    vmadl.f32 v17, v3, v9, 33
    vmadl.f32 v16, v3, v8, 33
    vmadl.f32 v15, v3, v7, 33
    vmadl.f32 v14, v3, v6, 33
    vmadl.f32 v13, v3, v5, 33
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 34
    vmadl.f32 v27, v4, v11, 34
    vmadl.f32 v26, v4, v10, 34
    vmadl.f32 v25, v4, v9, 34
    vmadl.f32 v24, v4, v8, 34
    vmadl.f32 v23, v4, v7, 34
    vmadl.f32 v22, v4, v6, 34
    vmadl.f32 v21, v4, v5, 34
    vmadl.f32 v20, v3, v12, 34
    vmadl.f32 v19, v3, v11, 34
    vmadl.f32 v18, v3, v10, 34
    vmadl.f32 v17, v3, v9, 34
    vmadl.f32 v16, v3, v8, 34
    vmadl.f32 v15, v3, v7, 34
    vmadl.f32 v14, v3, v6, 34
    vmadl.f32 v13, v3, v5, 34
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 35
    vmadl.f32 v27, v4, v11, 35
    vmadl.f32 v26, v4, v10, 35
    vmadl.f32 v25, v4, v9, 35
    vmadl.f32 v24, v4, v8, 35
    vmadl.f32 v23, v4, v7, 35
    vmadl.f32 v22, v4, v6, 35
    vmadl.f32 v21, v4, v5, 35
    vmadl.f32 v20, v3, v12, 35
    vmadl.f32 v19, v3, v11, 35
    vmadl.f32 v18, v3, v10, 35
    vmadl.f32 v17, v3, v9, 35
    vmadl.f32 v16, v3, v8, 35
    vmadl.f32 v15, v3, v7, 35
    vmadl.f32 v14, v3, v6, 35
    vmadl.f32 v13, v3, v5, 35
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 36
    vmadl.f32 v27, v4, v11, 36
    vmadl.f32 v26, v4, v10, 36
    vmadl.f32 v25, v4, v9, 36
    vmadl.f32 v24, v4, v8, 36
    vmadl.f32 v23, v4, v7, 36
    vmadl.f32 v22, v4, v6, 36
    vmadl.f32 v21, v4, v5, 36
    vmadl.f32 v20, v3, v12, 36
    vmadl.f32 v19, v3, v11, 36
    vmadl.f32 v18, v3, v10, 36
    vmadl.f32 v17, v3, v9, 36
    vmadl.f32 v16, v3, v8, 36
    vmadl.f32 v15, v3, v7, 36
    vmadl.f32 v14, v3, v6, 36
    vmadl.f32 v13, v3, v5, 36
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 37
    vmadl.f32 v27, v4, v11, 37
    vmadl.f32 v26, v4, v10, 37
    vmadl.f32 v25, v4, v9, 37
    vmadl.f32 v24, v4, v8, 37
    vmadl.f32 v23, v4, v7, 37
    vmadl.f32 v22, v4, v6, 37
    vmadl.f32 v21, v4, v5, 37
    vmadl.f32 v20, v3, v12, 37
    vmadl.f32 v19, v3, v11, 37
    vmadl.f32 v18, v3, v10, 37
    vmadl.f32 v17, v3, v9, 37
    vmadl.f32 v16, v3, v8, 37
    vmadl.f32 v15, v3, v7, 37
    vmadl.f32 v14, v3, v6, 37
    vmadl.f32 v13, v3, v5, 37
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 38
    vmadl.f32 v27, v4, v11, 38
    vmadl.f32 v26, v4, v10, 38
    vmadl.f32 v25, v4, v9, 38
    vmadl.f32 v24, v4, v8, 38
    vmadl.f32 v23, v4, v7, 38
    vmadl.f32 v22, v4, v6, 38
    vmadl.f32 v21, v4, v5, 38
    vmadl.f32 v20, v3, v12, 38
    vmadl.f32 v19, v3, v11, 38
    vmadl.f32 v18, v3, v10, 38
    vmadl.f32 v17, v3, v9, 38
    vmadl.f32 v16, v3, v8, 38
    vmadl.f32 v15, v3, v7, 38
    vmadl.f32 v14, v3, v6, 38
    vmadl.f32 v13, v3, v5, 38
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 39
    vmadl.f32 v27, v4, v11, 39
    vmadl.f32 v26, v4, v10, 39
    vmadl.f32 v25, v4, v9, 39
    vmadl.f32 v24, v4, v8, 39
    vmadl.f32 v23, v4, v7, 39
    vmadl.f32 v22, v4, v6, 39
    vmadl.f32 v21, v4, v5, 39
    vmadl.f32 v20, v3, v12, 39
    vmadl.f32 v19, v3, v11, 39
    vmadl.f32 v18, v3, v10, 39
    vmadl.f32 v17, v3, v9, 39
    vmadl.f32 v16, v3, v8, 39
    vmadl.f32 v15, v3, v7, 39
    vmadl.f32 v14, v3, v6, 39
    vmadl.f32 v13, v3, v5, 39
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 40
    vmadl.f32 v27, v4, v11, 40
    vmadl.f32 v26, v4, v10, 40
    vmadl.f32 v25, v4, v9, 40
    vmadl.f32 v24, v4, v8, 40
    vmadl.f32 v23, v4, v7, 40
    vmadl.f32 v22, v4, v6, 40
    vmadl.f32 v21, v4, v5, 40
    vmadl.f32 v20, v3, v12, 40
    vmadl.f32 v19, v3, v11, 40
    vmadl.f32 v18, v3, v10, 40
    vmadl.f32 v17, v3, v9, 40
    vmadl.f32 v16, v3, v8, 40
    vmadl.f32 v15, v3, v7, 40
    vmadl.f32 v14, v3, v6, 40
    vmadl.f32 v13, v3, v5, 40
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 41
    vmadl.f32 v27, v4, v11, 41
    vmadl.f32 v26, v4, v10, 41
    vmadl.f32 v25, v4, v9, 41
    vmadl.f32 v24, v4, v8, 41
    vmadl.f32 v23, v4, v7, 41
    vmadl.f32 v22, v4, v6, 41
    vmadl.f32 v21, v4, v5, 41
    vmadl.f32 v20, v3, v12, 41
    vmadl.f32 v19, v3, v11, 41
    vmadl.f32 v18, v3, v10, 41
    vmadl.f32 v17, v3, v9, 41
    vmadl.f32 v16, v3, v8, 41
    vmadl.f32 v15, v3, v7, 41
    vmadl.f32 v14, v3, v6, 41
    vmadl.f32 v13, v3, v5, 41
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 42
    vmadl.f32 v27, v4, v11, 42
    vmadl.f32 v26, v4, v10, 42
    vmadl.f32 v25, v4, v9, 42
    vmadl.f32 v24, v4, v8, 42
    vmadl.f32 v23, v4, v7, 42
    vmadl.f32 v22, v4, v6, 42
    vmadl.f32 v21, v4, v5, 42
    vmadl.f32 v20, v3, v12, 42
    vmadl.f32 v19, v3, v11, 42
    vmadl.f32 v18, v3, v10, 42
    vmadl.f32 v17, v3, v9, 42
    vmadl.f32 v16, v3, v8, 42
    vmadl.f32 v15, v3, v7, 42
    vmadl.f32 v14, v3, v6, 42
    vmadl.f32 v13, v3, v5, 42
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 43
    vmadl.f32 v27, v4, v11, 43
    vmadl.f32 v26, v4, v10, 43
    vmadl.f32 v25, v4, v9, 43
    vmadl.f32 v24, v4, v8, 43
    vmadl.f32 v23, v4, v7, 43
    vmadl.f32 v22, v4, v6, 43
    vmadl.f32 v21, v4, v5, 43
    vmadl.f32 v20, v3, v12, 43
    vmadl.f32 v19, v3, v11, 43
    vmadl.f32 v18, v3, v10, 43
    vmadl.f32 v17, v3, v9, 43
    vmadl.f32 v16, v3, v8, 43
    vmadl.f32 v15, v3, v7, 43
    vmadl.f32 v14, v3, v6, 43
    vmadl.f32 v13, v3, v5, 43
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 44
    vmadl.f32 v27, v4, v11, 44
    vmadl.f32 v26, v4, v10, 44
    vmadl.f32 v25, v4, v9, 44
    vmadl.f32 v24, v4, v8, 44
    vmadl.f32 v23, v4, v7, 44
    vmadl.f32 v22, v4, v6, 44
    vmadl.f32 v21, v4, v5, 44
    vmadl.f32 v20, v3, v12, 44
    vmadl.f32 v19, v3, v11, 44
    vmadl.f32 v18, v3, v10, 44
    vmadl.f32 v17, v3, v9, 44
    vmadl.f32 v16, v3, v8, 44
    vmadl.f32 v15, v3, v7, 44
    vmadl.f32 v14, v3, v6, 44
    vmadl.f32 v13, v3, v5, 44
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 45
    vmadl.f32 v27, v4, v11, 45
    vmadl.f32 v26, v4, v10, 45
    vmadl.f32 v25, v4, v9, 45
    vmadl.f32 v24, v4, v8, 45
    vmadl.f32 v23, v4, v7, 45
    vmadl.f32 v22, v4, v6, 45
    vmadl.f32 v21, v4, v5, 45
    vmadl.f32 v20, v3, v12, 45
    vmadl.f32 v19, v3, v11, 45
    vmadl.f32 v18, v3, v10, 45
    vmadl.f32 v17, v3, v9, 45
    vmadl.f32 v16, v3, v8, 45
    vmadl.f32 v15, v3, v7, 45
    vmadl.f32 v14, v3, v6, 45
    vmadl.f32 v13, v3, v5, 45
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 46
    vmadl.f32 v27, v4, v11, 46
    vmadl.f32 v26, v4, v10, 46
    vmadl.f32 v25, v4, v9, 46
    vmadl.f32 v24, v4, v8, 46
    vmadl.f32 v23, v4, v7, 46
    vmadl.f32 v22, v4, v6, 46
    vmadl.f32 v21, v4, v5, 46
    vmadl.f32 v20, v3, v12, 46
    vmadl.f32 v19, v3, v11, 46
    vmadl.f32 v18, v3, v10, 46
    vmadl.f32 v17, v3, v9, 46
    vmadl.f32 v16, v3, v8, 46
    vmadl.f32 v15, v3, v7, 46
    vmadl.f32 v14, v3, v6, 46
    vmadl.f32 v13, v3, v5, 46
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 47
    vmadl.f32 v27, v4, v11, 47
    vmadl.f32 v26, v4, v10, 47
    vmadl.f32 v25, v4, v9, 47
    vmadl.f32 v24, v4, v8, 47
    vmadl.f32 v23, v4, v7, 47
    vmadl.f32 v22, v4, v6, 47
    vmadl.f32 v21, v4, v5, 47
    vmadl.f32 v20, v3, v12, 47
    vmadl.f32 v19, v3, v11, 47
    vmadl.f32 v18, v3, v10, 47
    vmadl.f32 v17, v3, v9, 47
    vmadl.f32 v16, v3, v8, 47
    vmadl.f32 v15, v3, v7, 47
    vmadl.f32 v14, v3, v6, 47
    vmadl.f32 v13, v3, v5, 47
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 48
    vmadl.f32 v27, v4, v11, 48
    vmadl.f32 v26, v4, v10, 48
    vmadl.f32 v25, v4, v9, 48
    vmadl.f32 v24, v4, v8, 48
    vmadl.f32 v23, v4, v7, 48
    vmadl.f32 v22, v4, v6, 48
    vmadl.f32 v21, v4, v5, 48
    vmadl.f32 v20, v3, v12, 48
    vmadl.f32 v19, v3, v11, 48
    vmadl.f32 v18, v3, v10, 48
    vmadl.f32 v17, v3, v9, 48
    vmadl.f32 v16, v3, v8, 48
    vmadl.f32 v15, v3, v7, 48
    vmadl.f32 v14, v3, v6, 48
    vmadl.f32 v13, v3, v5, 48
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 49
    vmadl.f32 v27, v4, v11, 49
    vmadl.f32 v26, v4, v10, 49
    vmadl.f32 v25, v4, v9, 49
    vmadl.f32 v24, v4, v8, 49
    vmadl.f32 v23, v4, v7, 49
    vmadl.f32 v22, v4, v6, 49
    vmadl.f32 v21, v4, v5, 49
    vmadl.f32 v20, v3, v12, 49
    vmadl.f32 v19, v3, v11, 49
    vmadl.f32 v18, v3, v10, 49
    vmadl.f32 v17, v3, v9, 49
    vmadl.f32 v16, v3, v8, 49
    vmadl.f32 v15, v3, v7, 49
    vmadl.f32 v14, v3, v6, 49
    vmadl.f32 v13, v3, v5, 49
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 50
    vmadl.f32 v27, v4, v11, 50
    vmadl.f32 v26, v4, v10, 50
    vmadl.f32 v25, v4, v9, 50
    vmadl.f32 v24, v4, v8, 50
    vmadl.f32 v23, v4, v7, 50
    vmadl.f32 v22, v4, v6, 50
    vmadl.f32 v21, v4, v5, 50
    vmadl.f32 v20, v3, v12, 50
    vmadl.f32 v19, v3, v11, 50
    vmadl.f32 v18, v3, v10, 50
    vmadl.f32 v17, v3, v9, 50
    vmadl.f32 v16, v3, v8, 50
    vmadl.f32 v15, v3, v7, 50
    vmadl.f32 v14, v3, v6, 50
    vmadl.f32 v13, v3, v5, 50
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 51
    vmadl.f32 v27, v4, v11, 51
    vmadl.f32 v26, v4, v10, 51
    vmadl.f32 v25, v4, v9, 51
    vmadl.f32 v24, v4, v8, 51
    vmadl.f32 v23, v4, v7, 51
    vmadl.f32 v22, v4, v6, 51
    vmadl.f32 v21, v4, v5, 51
    vmadl.f32 v20, v3, v12, 51
    vmadl.f32 v19, v3, v11, 51
    vmadl.f32 v18, v3, v10, 51
    vmadl.f32 v17, v3, v9, 51
    vmadl.f32 v16, v3, v8, 51
    vmadl.f32 v15, v3, v7, 51
    vmadl.f32 v14, v3, v6, 51
    vmadl.f32 v13, v3, v5, 51
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 52
    vmadl.f32 v27, v4, v11, 52
    vmadl.f32 v26, v4, v10, 52
    vmadl.f32 v25, v4, v9, 52
    vmadl.f32 v24, v4, v8, 52
    vmadl.f32 v23, v4, v7, 52
    vmadl.f32 v22, v4, v6, 52
    vmadl.f32 v21, v4, v5, 52
    vmadl.f32 v20, v3, v12, 52
    vmadl.f32 v19, v3, v11, 52
    vmadl.f32 v18, v3, v10, 52
    vmadl.f32 v17, v3, v9, 52
    vmadl.f32 v16, v3, v8, 52
    vmadl.f32 v15, v3, v7, 52
    vmadl.f32 v14, v3, v6, 52
    vmadl.f32 v13, v3, v5, 52
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 53
    vmadl.f32 v27, v4, v11, 53
    vmadl.f32 v26, v4, v10, 53
    vmadl.f32 v25, v4, v9, 53
    vmadl.f32 v24, v4, v8, 53
    vmadl.f32 v23, v4, v7, 53
    vmadl.f32 v22, v4, v6, 53
    vmadl.f32 v21, v4, v5, 53
    vmadl.f32 v20, v3, v12, 53
    vmadl.f32 v19, v3, v11, 53
    vmadl.f32 v18, v3, v10, 53
    vmadl.f32 v17, v3, v9, 53
    vmadl.f32 v16, v3, v8, 53
    vmadl.f32 v15, v3, v7, 53
    vmadl.f32 v14, v3, v6, 53
    vmadl.f32 v13, v3, v5, 53
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 54
    vmadl.f32 v27, v4, v11, 54
    vmadl.f32 v26, v4, v10, 54
    vmadl.f32 v25, v4, v9, 54
    vmadl.f32 v24, v4, v8, 54
    vmadl.f32 v23, v4, v7, 54
    vmadl.f32 v22, v4, v6, 54
    vmadl.f32 v21, v4, v5, 54
    vmadl.f32 v20, v3, v12, 54
    vmadl.f32 v19, v3, v11, 54
    vmadl.f32 v18, v3, v10, 54
    vmadl.f32 v17, v3, v9, 54
    vmadl.f32 v16, v3, v8, 54
    vmadl.f32 v15, v3, v7, 54
    vmadl.f32 v14, v3, v6, 54
    vmadl.f32 v13, v3, v5, 54
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 55
    vmadl.f32 v27, v4, v11, 55
    vmadl.f32 v26, v4, v10, 55
    vmadl.f32 v25, v4, v9, 55
    vmadl.f32 v24, v4, v8, 55
    vmadl.f32 v23, v4, v7, 55
    vmadl.f32 v22, v4, v6, 55
    vmadl.f32 v21, v4, v5, 55
    vmadl.f32 v20, v3, v12, 55
    vmadl.f32 v19, v3, v11, 55
    vmadl.f32 v18, v3, v10, 55
    vmadl.f32 v17, v3, v9, 55
    vmadl.f32 v16, v3, v8, 55
    vmadl.f32 v15, v3, v7, 55
    vmadl.f32 v14, v3, v6, 55
    vmadl.f32 v13, v3, v5, 55
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 56
    vmadl.f32 v27, v4, v11, 56
    vmadl.f32 v26, v4, v10, 56
    vmadl.f32 v25, v4, v9, 56
    vmadl.f32 v24, v4, v8, 56
    vmadl.f32 v23, v4, v7, 56
    vmadl.f32 v22, v4, v6, 56
    vmadl.f32 v21, v4, v5, 56
    vmadl.f32 v20, v3, v12, 56
    vmadl.f32 v19, v3, v11, 56
    vmadl.f32 v18, v3, v10, 56
    vmadl.f32 v17, v3, v9, 56
    vmadl.f32 v16, v3, v8, 56
    vmadl.f32 v15, v3, v7, 56
    vmadl.f32 v14, v3, v6, 56
    vmadl.f32 v13, v3, v5, 56
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 57
    vmadl.f32 v27, v4, v11, 57
    vmadl.f32 v26, v4, v10, 57
    vmadl.f32 v25, v4, v9, 57
    vmadl.f32 v24, v4, v8, 57
    vmadl.f32 v23, v4, v7, 57
    vmadl.f32 v22, v4, v6, 57
    vmadl.f32 v21, v4, v5, 57
    vmadl.f32 v20, v3, v12, 57
    vmadl.f32 v19, v3, v11, 57
    vmadl.f32 v18, v3, v10, 57
    vmadl.f32 v17, v3, v9, 57
    vmadl.f32 v16, v3, v8, 57
    vmadl.f32 v15, v3, v7, 57
    vmadl.f32 v14, v3, v6, 57
    vmadl.f32 v13, v3, v5, 57
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 58
    vmadl.f32 v27, v4, v11, 58
    vmadl.f32 v26, v4, v10, 58
    vmadl.f32 v25, v4, v9, 58
    vmadl.f32 v24, v4, v8, 58
    vmadl.f32 v23, v4, v7, 58
    vmadl.f32 v22, v4, v6, 58
    vmadl.f32 v21, v4, v5, 58
    vmadl.f32 v20, v3, v12, 58
    vmadl.f32 v19, v3, v11, 58
    vmadl.f32 v18, v3, v10, 58
    vmadl.f32 v17, v3, v9, 58
    vmadl.f32 v16, v3, v8, 58
    vmadl.f32 v15, v3, v7, 58
    vmadl.f32 v14, v3, v6, 58
    vmadl.f32 v13, v3, v5, 58
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 59
    vmadl.f32 v27, v4, v11, 59
    vmadl.f32 v26, v4, v10, 59
    vmadl.f32 v25, v4, v9, 59
    vmadl.f32 v24, v4, v8, 59
    vmadl.f32 v23, v4, v7, 59
    vmadl.f32 v22, v4, v6, 59
    vmadl.f32 v21, v4, v5, 59
    vmadl.f32 v20, v3, v12, 59
    vmadl.f32 v19, v3, v11, 59
    vmadl.f32 v18, v3, v10, 59
    vmadl.f32 v17, v3, v9, 59
    vmadl.f32 v16, v3, v8, 59
    vmadl.f32 v15, v3, v7, 59
    vmadl.f32 v14, v3, v6, 59
    vmadl.f32 v13, v3, v5, 59
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 60
    vmadl.f32 v27, v4, v11, 60
    vmadl.f32 v26, v4, v10, 60
    vmadl.f32 v25, v4, v9, 60
    vmadl.f32 v24, v4, v8, 60
    vmadl.f32 v23, v4, v7, 60
    vmadl.f32 v22, v4, v6, 60
    vmadl.f32 v21, v4, v5, 60
    vmadl.f32 v20, v3, v12, 60
    vmadl.f32 v19, v3, v11, 60
    vmadl.f32 v18, v3, v10, 60
    vmadl.f32 v17, v3, v9, 60
    vmadl.f32 v16, v3, v8, 60
    vmadl.f32 v15, v3, v7, 60
    vmadl.f32 v14, v3, v6, 60
    vmadl.f32 v13, v3, v5, 60
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 61
    vmadl.f32 v27, v4, v11, 61
    vmadl.f32 v26, v4, v10, 61
    vmadl.f32 v25, v4, v9, 61
    vmadl.f32 v24, v4, v8, 61
    vmadl.f32 v23, v4, v7, 61
    vmadl.f32 v22, v4, v6, 61
    vmadl.f32 v21, v4, v5, 61
    vmadl.f32 v20, v3, v12, 61
    vmadl.f32 v19, v3, v11, 61
    vmadl.f32 v18, v3, v10, 61
    vmadl.f32 v17, v3, v9, 61
    vmadl.f32 v16, v3, v8, 61
    vmadl.f32 v15, v3, v7, 61
    vmadl.f32 v14, v3, v6, 61
    vmadl.f32 v13, v3, v5, 61
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 62
    vmadl.f32 v27, v4, v11, 62
    vmadl.f32 v26, v4, v10, 62
    vmadl.f32 v25, v4, v9, 62
    vmadl.f32 v24, v4, v8, 62
    vmadl.f32 v23, v4, v7, 62
    vmadl.f32 v22, v4, v6, 62
    vmadl.f32 v21, v4, v5, 62
    vmadl.f32 v20, v3, v12, 62
    vmadl.f32 v19, v3, v11, 62
    vmadl.f32 v18, v3, v10, 62
    vmadl.f32 v17, v3, v9, 62
    vmadl.f32 v16, v3, v8, 62
    vmadl.f32 v15, v3, v7, 62
    vmadl.f32 v14, v3, v6, 62
    vmadl.f32 v13, v3, v5, 62
    addi s2, s2, 1
    @p7 ldt.b16 v31, b, s1
    vunpk.lo.bf16 v4, v31
    vunpk.hi.bf16 v3, v31
    vmadl.f32 v28, v4, v12, 63
    vmadl.f32 v27, v4, v11, 63
    vmadl.f32 v26, v4, v10, 63
    vmadl.f32 v25, v4, v9, 63
    vmadl.f32 v24, v4, v8, 63
    vmadl.f32 v23, v4, v7, 63
    vmadl.f32 v22, v4, v6, 63
    vmadl.f32 v21, v4, v5, 63
    vmadl.f32 v20, v3, v12, 63
    vmadl.f32 v19, v3, v11, 63
    vmadl.f32 v18, v3, v10, 63
    vmadl.f32 v17, v3, v9, 63
    vmadl.f32 v16, v3, v8, 63
    vmadl.f32 v15, v3, v7, 63
    vmadl.f32 v14, v3, v6, 63
    vmadl.f32 v13, v3, v5, 63
    addi s2, s2, 1
    addi s27, s27, 64
    blt s27, s29, L102
    j L43
