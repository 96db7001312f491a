.kernel gemm
.arg tensor a f32
.arg tensor b f32
.arg tensor c f32
.scratch 262144
.entry L0

L0:
    idx s31, 0
    shli s31, s31, 6
    idx s30, 1
    shli s30, s30, 6
    tdim s29, a, 0
    tdim s28, a, 1
    tdim s27, b, 0
    sub s27, s27, s31
    max s27, s27, s0
    pfirst p7, s27
    mov s1, s31
    blt s0, s29, L16
L12:
    addi s25, s30, 64
    min s25, s25, s28
    blt s30, s25, L25
L15:
    halt
L16:
    li s27, 0
    shli s26, s27, 8
L18:
    @p7 ldt.b32 v31, b, s1
    @p7 stv v31, s26, 0
    addi s2, s2, 1
    addi s27, s27, 1
    addi s26, s26, 256
    blt s27, s29, L18
    j L12
L25:
    vbcast v31, s0
L26:
    blt s0, s29, L57
    vmov v30, v31
    vmov v29, v31
    vmov v28, v31
    vmov v27, v31
    vmov v26, v31
    vmov v25, v31
    vmov v24, v31
    vmov v23, v31
L35:
    mov s5, s31
    mov s6, s30
    li s7, 0
    li s8, 0
    @p7 stt.b32 v30, c, s5
    addi s6, s30, 1
    @p7 stt.b32 v29, c, s5
    addi s6, s6, 1
    @p7 stt.b32 v28, c, s5
    addi s6, s6, 1
    @p7 stt.b32 v27, c, s5
    addi s6, s6, 1
    @p7 stt.b32 v26, c, s5
    addi s6, s6, 1
    @p7 stt.b32 v25, c, s5
    addi s6, s6, 1
    @p7 stt.b32 v24, c, s5
    addi s6, s6, 1
    @p7 stt.b32 v23, c, s5
    addi s30, s30, 8
    blt s30, s25, L26
    j L15
L57:
    vmov v30, v31
    vmov v29, v31
    vmov v28, v31
    vmov v27, v31
    vmov v26, v31
    vmov v25, v31
    vmov v24, v31
    vmov v23, v31
    li s24, 0
    shli s23, s24, 8
L67:
    mov s5, s24
    mov s6, s30
    li s7, 0
    li s8, 0
    ldt.b32 v22, a, s5
    addi s6, s30, 1
    ldt.b32 v21, a, s5
    addi s6, s6, 1
    ldt.b32 v20, a, s5
    addi s6, s6, 1
    ldt.b32 v19, a, s5
    addi s6, s6, 1
    ldt.b32 v18, a, s5
    addi s6, s6, 1
    ldt.b32 v17, a, s5
    addi s6, s6, 1
    ldt.b32 v16, a, s5
    addi s6, s6, 1
    ldt.b32 v15, a, s5
    ldv v14, s23, 0
    vmadl.f32 v30, v14, v22, 0
    vmadl.f32 v29, v14, v21, 0
    vmadl.f32 v28, v14, v20, 0
    vmadl.f32 v27, v14, v19, 0
    vmadl.f32 v26, v14, v18, 0
    vmadl.f32 v25, v14, v17, 0
    vmadl.f32 v24, v14, v16, 0
    vmadl.f32 v23, v14, v15, 0
    ldv v14, s23, 256
    vmadl.f32 v30, v14, v22, 1
    vmadl.f32 v29, v14, v21, 1
    vmadl.f32 v28, v14, v20, 1
    vmadl.f32 v27, v14, v19, 1
    vmadl.f32 v26, v14, v18, 1
    vmadl.f32 v25, v14, v17, 1
    vmadl.f32 v24, v14, v16, 1
    vmadl.f32 v23, v14, v15, 1
    ldv v14, s23, 512
    vmadl.f32 v30, v14, v22, 2
    vmadl.f32 v29, v14, v21, 2
    vmadl.f32 v28, v14, v20, 2
    vmadl.f32 v27, v14, v19, 2
    vmadl.f32 v26, v14, v18, 2
    vmadl.f32 v25, v14, v17, 2
    vmadl.f32 v24, v14, v16, 2
    vmadl.f32 v23, v14, v15, 2
    ldv v14, s23, 768
    vmadl.f32 v30, v14, v22, 3
    vmadl.f32 v29, v14, v21, 3
    vmadl.f32 v28, v14, v20, 3
    vmadl.f32 v27, v14, v19, 3
    vmadl.f32 v26, v14, v18, 3
    vmadl.f32 v25, v14, v17, 3
    vmadl.f32 v24, v14, v16, 3
    vmadl.f32 v23, v14, v15, 3
    ldv v14, s23, 1024
    vmadl.f32 v30, v14, v22, 4
    vmadl.f32 v29, v14, v21, 4
    vmadl.f32 v28, v14, v20, 4
    vmadl.f32 v27, v14, v19, 4
    vmadl.f32 v26, v14, v18, 4
    vmadl.f32 v25, v14, v17, 4
    vmadl.f32 v24, v14, v16, 4
    vmadl.f32 v23, v14, v15, 4
    ldv v14, s23, 1280
    vmadl.f32 v30, v14, v22, 5
    vmadl.f32 v29, v14, v21, 5
    vmadl.f32 v28, v14, v20, 5
    vmadl.f32 v27, v14, v19, 5
    vmadl.f32 v26, v14, v18, 5
    vmadl.f32 v25, v14, v17, 5
    vmadl.f32 v24, v14, v16, 5
    vmadl.f32 v23, v14, v15, 5
    ldv v14, s23, 1536
    vmadl.f32 v30, v14, v22, 6
    vmadl.f32 v29, v14, v21, 6
    vmadl.f32 v28, v14, v20, 6
    vmadl.f32 v27, v14, v19, 6
    vmadl.f32 v26, v14, v18, 6
    vmadl.f32 v25, v14, v17, 6
    vmadl.f32 v24, v14, v16, 6
    vmadl.f32 v23, v14, v15, 6
    ldv v14, s23, 1792
    vmadl.f32 v30, v14, v22, 7
    vmadl.f32 v29, v14, v21, 7
    vmadl.f32 v28, v14, v20, 7
    vmadl.f32 v27, v14, v19, 7
    vmadl.f32 v26, v14, v18, 7
    vmadl.f32 v25, v14, v17, 7
    vmadl.f32 v24, v14, v16, 7
    vmadl.f32 v23, v14, v15, 7
    ldv v14, s23, 2048
    vmadl.f32 v30, v14, v22, 8
    vmadl.f32 v29, v14, v21, 8
    vmadl.f32 v28, v14, v20, 8
    vmadl.f32 v27, v14, v19, 8
    vmadl.f32 v26, v14, v18, 8
    vmadl.f32 v25, v14, v17, 8
    vmadl.f32 v24, v14, v16, 8
    vmadl.f32 v23, v14, v15, 8
    ldv v14, s23, 2304
    vmadl.f32 v30, v14, v22, 9
    vmadl.f32 v29, v14, v21, 9
    vmadl.f32 v28, v14, v20, 9
    vmadl.f32 v27, v14, v19, 9
    vmadl.f32 v26, v14, v18, 9
    vmadl.f32 v25, v14, v17, 9
    vmadl.f32 v24, v14, v16, 9
    vmadl.f32 v23, v14, v15, 9
    ldv v14, s23, 2560
    vmadl.f32 v30, v14, v22, 10
    vmadl.f32 v29, v14, v21, 10
    vmadl.f32 v28, v14, v20, 10
    vmadl.f32 v27, v14, v19, 10
    vmadl.f32 v26, v14, v18, 10
    vmadl.f32 v25, v14, v17, 10
    vmadl.f32 v24, v14, v16, 10
    vmadl.f32 v23, v14, v15, 10
    ldv v14, s23, 2816
    vmadl.f32 v30, v14, v22, 11
    vmadl.f32 v29, v14, v21, 11
    vmadl.f32 v28, v14, v20, 11
    vmadl.f32 v27, v14, v19, 11
    vmadl.f32 v26, v14, v18, 11
    vmadl.f32 v25, v14, v17, 11
    vmadl.f32 v24, v14, v16, 11
    vmadl.f32 v23, v14, v15, 11
    ldv v14, s23, 3072
    vmadl.f32 v30, v14, v22, 12
    vmadl.f32 v29, v14, v21, 12
    vmadl.f32 v28, v14, v20, 12
    vmadl.f32 v27, v14, v19, 12
    vmadl.f32 v26, v14, v18, 12
    vmadl.f32 v25, v14, v17, 12
    vmadl.f32 v24, v14, v16, 12
    vmadl.f32 v23, v14, v15, 12
    ldv v14, s23, 3328
    vmadl.f32 v30, v14, v22, 13
    vmadl.f32 v29, v14, v21, 13
    vmadl.f32 v28, v14, v20, 13
    vmadl.f32 v27, v14, v19, 13
    vmadl.f32 v26, v14, v18, 13
    vmadl.f32 v25, v14, v17, 13
    vmadl.f32 v24, v14, v16, 13
    vmadl.f32 v23, v14, v15, 13
    ldv v14, s23, 3584
    vmadl.f32 v30, v14, v22, 14
    vmadl.f32 v29, v14, v21, 14
    vmadl.f32 v28, v14, v20, 14
    vmadl.f32 v27, v14, v19, 14
    vmadl.f32 v26, v14, v18, 14
    vmadl.f32 v25, v14, v17, 14
    vmadl.f32 v24, v14, v16, 14
    vmadl.f32 v23, v14, v15, 14
    ldv v14, s23, 3840
    vmadl.f32 v30, v14, v22, 15
    vmadl.f32 v29, v14, v21, 15
    vmadl.f32 v28, v14, v20, 15
    vmadl.f32 v27, v14, v19, 15
    vmadl.f32 v26, v14, v18, 15
    vmadl.f32 v25, v14, v17, 15
    vmadl.f32 v24, v14, v16, 15
    vmadl.f32 v23, v14, v15, 15
    ldv v14, s23, 4096
    vmadl.f32 v30, v14, v22, 16
    vmadl.f32 v29, v14, v21, 16
    vmadl.f32 v28, v14, v20, 16
    vmadl.f32 v27, v14, v19, 16
    vmadl.f32 v26, v14, v18, 16
    vmadl.f32 v25, v14, v17, 16
    vmadl.f32 v24, v14, v16, 16
    vmadl.f32 v23, v14, v15, 16
    ldv v14, s23, 4352
    vmadl.f32 v30, v14, v22, 17
    vmadl.f32 v29, v14, v21, 17
    vmadl.f32 v28, v14, v20, 17
    vmadl.f32 v27, v14, v19, 17
    vmadl.f32 v26, v14, v18, 17
    vmadl.f32 v25, v14, v17, 17
    vmadl.f32 v24, v14, v16, 17
    vmadl.f32 v23, v14, v15, 17
    ldv v14, s23, 4608
    vmadl.f32 v30, v14, v22, 18
    vmadl.f32 v29, v14, v21, 18
    vmadl.f32 v28, v14, v20, 18
    vmadl.f32 v27, v14, v19, 18
    vmadl.f32 v26, v14, v18, 18
    vmadl.f32 v25, v14, v17, 18
    vmadl.f32 v24, v14, v16, 18
    vmadl.f32 v23, v14, v15, 18
    ldv v14, s23, 4864
    vmadl.f32 v30, v14, v22, 19
    vmadl.f32 v29, v14, v21, 19
    vmadl.f32 v28, v14, v20, 19
    vmadl.f32 v27, v14, v19, 19
    vmadl.f32 v26, v14, v18, 19
    vmadl.f32 v25, v14, v17, 19
    vmadl.f32 v24, v14, v16, 19
    vmadl.f32 v23, v14, v15, 19
    ldv v14, s23, 5120
    vmadl.f32 v30, v14, v22, 20
    vmadl.f32 v29, v14, v21, 20
    vmadl.f32 v28, v14, v20, 20
    vmadl.f32 v27, v14, v19, 20
    vmadl.f32 v26, v14, v18, 20
    vmadl.f32 v25, v14, v17, 20
    vmadl.f32 v24, v14, v16, 20
    vmadl.f32 v23, v14, v15, 20
    ldv v14, s23, 5376
    vmadl.f32 v30, v14, v22, 21
    vmadl.f32 v29, v14, v21, 21
    vmadl.f32 v28, v14, v20, 21
    vmadl.f32 v27, v14, v19, 21
    vmadl.f32 v26, v14, v18, 21
    vmadl.f32 v25, v14, v17, 21
    vmadl.f32 v24, v14, v16, 21
    vmadl.f32 v23, v14, v15, 21
    ldv v14, s23, 5632
    vmadl.f32 v30, v14, v22, 22
    vmadl.f32 v29, v14, v21, 22
    vmadl.f32 v28, v14, v20, 22
    vmadl.f32 v27, v14, v19, 22
    vmadl.f32 v26, v14, v18, 22
    vmadl.f32 v25, v14, v17, 22
    vmadl.f32 v24, v14, v16, 22
    vmadl.f32 v23, v14, v15, 22
    ldv v14, s23, 5888
    vmadl.f32 v30, v14, v22, 23
    vmadl.f32 v29, v14, v21, 23
    vmadl.f32 v28, v14, v20, 23
    vmadl.f32 v27, v14, v19, 23
    vmadl.f32 v26, v14, v18, 23
    vmadl.f32 v25, v14, v17, 23
    vmadl.f32 v24, v14, v16, 23
    vmadl.f32 v23, v14, v15, 23
    ldv v14, s23, 6144
    vmadl.f32 v30, v14, v22, 24
    vmadl.f32 v29, v14, v21, 24
    vmadl.f32 v28, v14, v20, 24
    vmadl.f32 v27, v14, v19, 24
    vmadl.f32 v26, v14, v18, 24
    vmadl.f32 v25, v14, v17, 24
    vmadl.f32 v24, v14, v16, 24
    vmadl.f32 v23, v14, v15, 24
    ldv v14, s23, 6400
    vmadl.f32 v30, v14, v22, 25
    vmadl.f32 v29, v14, v21, 25
    vmadl.f32 v28, v14, v20, 25
    vmadl.f32 v27, v14, v19, 25
    vmadl.f32 v26, v14, v18, 25
    vmadl.f32 v25, v14, v17, 25
    vmadl.f32 v24, v14, v16, 25
    vmadl.f32 v23, v14, v15, 25
    ldv v14, s23, 6656
    vmadl.f32 v30, v14, v22, 26
    vmadl.f32 v29, v14, v21, 26
    vmadl.f32 v28, v14, v20, 26
    vmadl.f32 v27, v14, v19, 26
    vmadl.f32 v26, v14, v18, 26
    vmadl.f32 v25, v14, v17, 26
    vmadl.f32 v24, v14, v16, 26
    vmadl.f32 v23, v14, v15, 26
    ldv v14, s23, 6912
    vmadl.f32 v30, v14, v22, 27
    vmadl.f32 v29, v14, v21, 27
    vmadl.f32 v28, v14, v20, 27
    vmadl.f32 v27, v14, v19, 27
    vmadl.f32 v26, v14, v18, 27
    vmadl.f32 v25, v14, v17, 27
    vmadl.f32 v24, v14, v16, 27
    vmadl.f32 v23, v14, v15, 27
    ldv v14, s23, 7168
    vmadl.f32 v30, v14, v22, 28
    vmadl.f32 v29, v14, v21, 28
    vmadl.f32 v28, v14, v20, 28
    vmadl.f32 v27, v14, v19, 28
    vmadl.f32 v26, v14, v18, 28
    vmadl.f32 v25, v14, v17, 28
    vmadl.f32 v24, v14, v16, 28
    vmadl.f32 v23, v14, v15, 28
    ldv v14, s23, 7424
    vmadl.f32 v30, v14, v22, 29
    vmadl.f32 v29, v14, v21, 29
    vmadl.f32 v28, v14, v20, 29
    vmadl.f32 v27, v14, v19, 29
    vmadl.f32 v26, v14, v18, 29
    vmadl.f32 v25, v14, v17, 29
    vmadl.f32 v24, v14, v16, 29
    vmadl.f32 v23, v14, v15, 29
    ldv v14, s23, 7680
    vmadl.f32 v30, v14, v22, 30
    vmadl.f32 v29, v14, v21, 30
    vmadl.f32 v28, v14, v20, 30
    vmadl.f32 v27, v14, v19, 30
    vmadl.f32 v26, v14, v18, 30
    vmadl.f32 v25, v14, v17, 30
    vmadl.f32 v24, v14, v16, 30
    vmadl.f32 v23, v14, v15, 30
    ldv v14, s23, 7936
    vmadl.f32 v30, v14, v22, 31
    vmadl.f32 v29, v14, v21, 31
    vmadl.f32 v28, v14, v20, 31
    vmadl.f32 v27, v14, v19, 31
    vmadl.f32 v26, v14, v18, 31
    vmadl.f32 v25, v14, v17, 31
    vmadl.f32 v24, v14, v16, 31
    vmadl.f32 v23, v14, v15, 31
    ldv v14, s23, 8192
    vmadl.f32 v30, v14, v22, 32
    vmadl.f32 v29, v14, v21, 32
    vmadl.f32 v28, v14, v20, 32
    vmadl.f32 v27, v14, v19, 32
    vmadl.f32 v26, v14, v18, 32
    vmadl.f32 v25, v14, v17, 32
    vmadl.f32 v24, v14, v16, 32
    vmadl.f32 v23, v14, v15, 32
    ldv v14, s23, 8448
    vmadl.f32 v30, v14, v22, 33
    vmadl.f32 v29, v14, v21, 33
    vmadl.f32 v28, v14, v20, 33
    vmadl.f32 v27, v14, v19, 33
    vmadl.f32 v26, v14, v18, 33
    vmadl.f32 v25, v14, v17, 33
    vmadl.f32 v24, v14, v16, 33
    vmadl.f32 v23, v14, v15, 33
    ldv v14, s23, 8704
    vmadl.f32 v30, v14, v22, 34
    vmadl.f32 v29, v14, v21, 34
    vmadl.f32 v28, v14, v20, 34
    vmadl.f32 v27, v14, v19, 34
    vmadl.f32 v26, v14, v18, 34
    vmadl.f32 v25, v14, v17, 34
    vmadl.f32 v24, v14, v16, 34
    vmadl.f32 v23, v14, v15, 34
    ldv v14, s23, 8960
    vmadl.f32 v30, v14, v22, 35
    vmadl.f32 v29, v14, v21, 35
    vmadl.f32 v28, v14, v20, 35
    vmadl.f32 v27, v14, v19, 35
    vmadl.f32 v26, v14, v18, 35
    vmadl.f32 v25, v14, v17, 35
    vmadl.f32 v24, v14, v16, 35
    vmadl.f32 v23, v14, v15, 35
    ldv v14, s23, 9216
    vmadl.f32 v30, v14, v22, 36
    vmadl.f32 v29, v14, v21, 36
    vmadl.f32 v28, v14, v20, 36
    vmadl.f32 v27, v14, v19, 36
    vmadl.f32 v26, v14, v18, 36
    vmadl.f32 v25, v14, v17, 36
    vmadl.f32 v24, v14, v16, 36
    vmadl.f32 v23, v14, v15, 36
    ldv v14, s23, 9472
    vmadl.f32 v30, v14, v22, 37
    vmadl.f32 v29, v14, v21, 37
    vmadl.f32 v28, v14, v20, 37
    vmadl.f32 v27, v14, v19, 37
    vmadl.f32 v26, v14, v18, 37
    vmadl.f32 v25, v14, v17, 37
    vmadl.f32 v24, v14, v16, 37
    vmadl.f32 v23, v14, v15, 37
    ldv v14, s23, 9728
    vmadl.f32 v30, v14, v22, 38
    vmadl.f32 v29, v14, v21, 38
    vmadl.f32 v28, v14, v20, 38
    vmadl.f32 v27, v14, v19, 38
    vmadl.f32 v26, v14, v18, 38
    vmadl.f32 v25, v14, v17, 38
    vmadl.f32 v24, v14, v16, 38
    vmadl.f32 v23, v14, v15, 38
    ldv v14, s23, 9984
    vmadl.f32 v30, v14, v22, 39
    vmadl.f32 v29, v14, v21, 39
    vmadl.f32 v28, v14, v20, 39
    vmadl.f32 v27, v14, v19, 39
    vmadl.f32 v26, v14, v18, 39
    vmadl.f32 v25, v14, v17, 39
    vmadl.f32 v24, v14, v16, 39
    vmadl.f32 v23, v14, v15, 39
    ldv v14, s23, 10240
    vmadl.f32 v30, v14, v22, 40
    vmadl.f32 v29, v14, v21, 40
    vmadl.f32 v28, v14, v20, 40
    vmadl.f32 v27, v14, v19, 40
    vmadl.f32 v26, v14, v18, 40
    vmadl.f32 v25, v14, v17, 40
    vmadl.f32 v24, v14, v16, 40
    vmadl.f32 v23, v14, v15, 40
    ldv v14, s23, 10496
    vmadl.f32 v30, v14, v22, 41
    vmadl.f32 v29, v14, v21, 41
    vmadl.f32 v28, v14, v20, 41
    vmadl.f32 v27, v14, v19, 41
    vmadl.f32 v26, v14, v18, 41
    vmadl.f32 v25, v14, v17, 41
    vmadl.f32 v24, v14, v16, 41
    vmadl.f32 v23, v14, v15, 41
    ldv v14, s23, 10752
    vmadl.f32 v30, v14, v22, 42
    vmadl.f32 v29, v14, v21, 42
    vmadl.f32 v28, v14, v20, 42
    vmadl.f32 v27, v14, v19, 42
    vmadl.f32 v26, v14, v18, 42
    vmadl.f32 v25, v14, v17, 42
    vmadl.f32 v24, v14, v16, 42
    vmadl.f32 v23, v14, v15, 42
    ldv v14, s23, 11008
    vmadl.f32 v30, v14, v22, 43
    vmadl.f32 v29, v14, v21, 43
    vmadl.f32 v28, v14, v20, 43
    vmadl.f32 v27, v14, v19, 43
    vmadl.f32 v26, v14, v18, 43
    vmadl.f32 v25, v14, v17, 43
    vmadl.f32 v24, v14, v16, 43
    vmadl.f32 v23, v14, v15, 43
    ldv v14, s23, 11264
    vmadl.f32 v30, v14, v22, 44
    vmadl.f32 v29, v14, v21, 44
    vmadl.f32 v28, v14, v20, 44
    vmadl.f32 v27, v14, v19, 44
    vmadl.f32 v26, v14, v18, 44
    vmadl.f32 v25, v14, v17, 44
    vmadl.f32 v24, v14, v16, 44
    vmadl.f32 v23, v14, v15, 44
    ldv v14, s23, 11520
    vmadl.f32 v30, v14, v22, 45
    vmadl.f32 v29, v14, v21, 45
    vmadl.f32 v28, v14, v20, 45
    vmadl.f32 v27, v14, v19, 45
    vmadl.f32 v26, v14, v18, 45
    vmadl.f32 v25, v14, v17, 45
    vmadl.f32 v24, v14, v16, 45
    vmadl.f32 v23, v14, v15, 45
    ldv v14, s23, 11776
    vmadl.f32 v30, v14, v22, 46
    vmadl.f32 v29, v14, v21, 46
    vmadl.f32 v28, v14, v20, 46
    vmadl.f32 v27, v14, v19, 46
    vmadl.f32 v26, v14, v18, 46
    vmadl.f32 v25, v14, v17, 46
    vmadl.f32 v24, v14, v16, 46
    vmadl.f32 v23, v14, v15, 46
    ldv v14, s23, 12032
    vmadl.f32 v30, v14, v22, 47
    vmadl.f32 v29, v14, v21, 47
    vmadl.f32 v28, v14, v20, 47
    vmadl.f32 v27, v14, v19, 47
    vmadl.f32 v26, v14, v18, 47
    vmadl.f32 v25, v14, v17, 47
    vmadl.f32 v24, v14, v16, 47
    vmadl.f32 v23, v14, v15, 47
    ldv v14, s23, 12288
    vmadl.f32 v30, v14, v22, 48
    vmadl.f32 v29, v14, v21, 48
    vmadl.f32 v28, v14, v20, 48
    vmadl.f32 v27, v14, v19, 48
    vmadl.f32 v26, v14, v18, 48
    vmadl.f32 v25, v14, v17, 48
    vmadl.f32 v24, v14, v16, 48
    vmadl.f32 v23, v14, v15, 48
    ldv v14, s23, 12544
    vmadl.f32 v30, v14, v22, 49
    vmadl.f32 v29, v14, v21, 49
    vmadl.f32 v28, v14, v20, 49
    vmadl.f32 v27, v14, v19, 49
    vmadl.f32 v26, v14, v18, 49
    vmadl.f32 v25, v14, v17, 49
    vmadl.f32 v24, v14, v16, 49
    vmadl.f32 v23, v14, v15, 49
    ldv v14, s23, 12800
    vmadl.f32 v30, v14, v22, 50
    vmadl.f32 v29, v14, v21, 50
    vmadl.f32 v28, v14, v20, 50
    vmadl.f32 v27, v14, v19, 50
    vmadl.f32 v26, v14, v18, 50
    vmadl.f32 v25, v14, v17, 50
    vmadl.f32 v24, v14, v16, 50
    vmadl.f32 v23, v14, v15, 50
    ldv v14, s23, 13056
    vmadl.f32 v30, v14, v22, 51
    vmadl.f32 v29, v14, v21, 51
    vmadl.f32 v28, v14, v20, 51
    vmadl.f32 v27, v14, v19, 51
    vmadl.f32 v26, v14, v18, 51
    vmadl.f32 v25, v14, v17, 51
    vmadl.f32 v24, v14, v16, 51
    vmadl.f32 v23, v14, v15, 51
    ldv v14, s23, 13312
    vmadl.f32 v30, v14, v22, 52
    vmadl.f32 v29, v14, v21, 52
    vmadl.f32 v28, v14, v20, 52
    vmadl.f32 v27, v14, v19, 52
    vmadl.f32 v26, v14, v18, 52
    vmadl.f32 v25, v14, v17, 52
    vmadl.f32 v24, v14, v16, 52
    vmadl.f32 v23, v14, v15, 52
    ldv v14, s23, 13568
    vmadl.f32 v30, v14, v22, 53
    vmadl.f32 v29, v14, v21, 53
    vmadl.f32 v28, v14, v20, 53
    vmadl.f32 v27, v14, v19, 53
    vmadl.f32 v26, v14, v18, 53
    vmadl.f32 v25, v14, v17, 53
    vmadl.f32 v24, v14, v16, 53
    vmadl.f32 v23, v14, v15, 53
    ldv v14, s23, 13824
    vmadl.f32 v30, v14, v22, 54
    vmadl.f32 v29, v14, v21, 54
    vmadl.f32 v28, v14, v20, 54
    vmadl.f32 v27, v14, v19, 54
    vmadl.f32 v26, v14, v18, 54
    vmadl.f32 v25, v14, v17, 54
    vmadl.f32 v24, v14, v16, 54
    vmadl.f32 v23, v14, v15, 54
    ldv v14, s23, 14080
    vmadl.f32 v30, v14, v22, 55
    vmadl.f32 v29, v14, v21, 55
    vmadl.f32 v28, v14, v20, 55
    vmadl.f32 v27, v14, v19, 55
    vmadl.f32 v26, v14, v18, 55
    vmadl.f32 v25, v14, v17, 55
    vmadl.f32 v24, v14, v16, 55
    vmadl.f32 v23, v14, v15, 55
    ldv v14, s23, 14336
    vmadl.f32 v30, v14, v22, 56
    vmadl.f32 v29, v14, v21, 56
    vmadl.f32 v28, v14, v20, 56
    vmadl.f32 v27, v14, v19, 56
    vmadl.f32 v26, v14, v18, 56
    vmadl.f32 v25, v14, v17, 56
    vmadl.f32 v24, v14, v16, 56
    vmadl.f32 v23, v14, v15, 56
    ldv v14, s23, 14592
    vmadl.f32 v30, v14, v22, 57
    vmadl.f32 v29, v14, v21, 57
    vmadl.f32 v28, v14, v20, 57
    vmadl.f32 v27, v14, v19, 57
    vmadl.f32 v26, v14, v18, 57
    vmadl.f32 v25, v14, v17, 57
    vmadl.f32 v24, v14, v16, 57
    vmadl.f32 v23, v14, v15, 57
    ldv v14, s23, 14848
    vmadl.f32 v30, v14, v22, 58
    vmadl.f32 v29, v14, v21, 58
    vmadl.f32 v28, v14, v20, 58
    vmadl.f32 v27, v14, v19, 58
    vmadl.f32 v26, v14, v18, 58
    vmadl.f32 v25, v14, v17, 58
    vmadl.f32 v24, v14, v16, 58
    vmadl.f32 v23, v14, v15, 58
    ldv v14, s23, 15104
    vmadl.f32 v30, v14, v22, 59
    vmadl.f32 v29, v14, v21, 59
    vmadl.f32 v28, v14, v20, 59
    vmadl.f32 v27, v14, v19, 59
    vmadl.f32 v26, v14, v18, 59
    vmadl.f32 v25, v14, v17, 59
    vmadl.f32 v24, v14, v16, 59
    vmadl.f32 v23, v14, v15, 59
    ldv v14, s23, 15360
    vmadl.f32 v30, v14, v22, 60
    vmadl.f32 v29, v14, v21, 60
    vmadl.f32 v28, v14, v20, 60
    vmadl.f32 v27, v14, v19, 60
    vmadl.f32 v26, v14, v18, 60
    vmadl.f32 v25, v14, v17, 60
    vmadl.f32 v24, v14, v16, 60
    vmadl.f32 v23, v14, v15, 60
    ldv v14, s23, 15616
    vmadl.f32 v30, v14, v22, 61
    vmadl.f32 v29, v14, v21, 61
    vmadl.f32 v28, v14, v20, 61
    vmadl.f32 v27, v14, v19, 61
    vmadl.f32 v26, v14, v18, 61
    vmadl.f32 v25, v14, v17, 61
    vmadl.f32 v24, v14, v16, 61
    vmadl.f32 v23, v14, v15, 61
    ldv v14, s23, 15872
    vmadl.f32 v30, v14, v22, 62
    vmadl.f32 v29, v14, v21, 62
    vmadl.f32 v28, v14, v20, 62
    vmadl.f32 v27, v14, v19, 62
    vmadl.f32 v26, v14, v18, 62
    vmadl.f32 v25, v14, v17, 62
    vmadl.f32 v24, v14, v16, 62
    vmadl.f32 v23, v14, v15, 62
    ldv v14, s23, 16128
    vmadl.f32 v30, v14, v22, 63
    vmadl.f32 v29, v14, v21, 63
    vmadl.f32 v28, v14, v20, 63
    vmadl.f32 v27, v14, v19, 63
    vmadl.f32 v26, v14, v18, 63
    vmadl.f32 v25, v14, v17, 63
    vmadl.f32 v24, v14, v16, 63
    vmadl.f32 v23, v14, v15, 63
    addi s24, s24, 64
    addi s23, s23, 16384
    blt s24, s29, L67
    j L35
