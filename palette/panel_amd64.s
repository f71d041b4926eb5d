//go:build amd64 && !purego

#include "textflag.h"

// Fused expansion of palettized rows into a transposed GEMM panel, 16 rows
// by 16 columns at a time: each row's 16 indices are cut out of the packed
// bit stream (a byte shuffle puts the two bytes holding each index into
// its 32-bit lane, a variable shift and a mask finish the job), looked up
// in the table (one permute for up to 16 entries, two and a blend for 64,
// a gather for 256) and staged in a scratch block; the block is then
// transposed in registers and stored as 16 panel columns.

// TRANSPOSE16 transposes the 16x16 block in Z0-Z15 (row r in Zr) so that
// Zc holds column c, using Z16-Z31.
#define TRANSPOSE16 \
	VUNPCKLPS Z1, Z0, Z16; \
	VUNPCKHPS Z1, Z0, Z17; \
	VUNPCKLPS Z3, Z2, Z18; \
	VUNPCKHPS Z3, Z2, Z19; \
	VUNPCKLPS Z5, Z4, Z20; \
	VUNPCKHPS Z5, Z4, Z21; \
	VUNPCKLPS Z7, Z6, Z22; \
	VUNPCKHPS Z7, Z6, Z23; \
	VUNPCKLPS Z9, Z8, Z24; \
	VUNPCKHPS Z9, Z8, Z25; \
	VUNPCKLPS Z11, Z10, Z26; \
	VUNPCKHPS Z11, Z10, Z27; \
	VUNPCKLPS Z13, Z12, Z28; \
	VUNPCKHPS Z13, Z12, Z29; \
	VUNPCKLPS Z15, Z14, Z30; \
	VUNPCKHPS Z15, Z14, Z31; \
	VUNPCKLPD Z18, Z16, Z0; \
	VUNPCKHPD Z18, Z16, Z1; \
	VUNPCKLPD Z19, Z17, Z2; \
	VUNPCKHPD Z19, Z17, Z3; \
	VUNPCKLPD Z22, Z20, Z4; \
	VUNPCKHPD Z22, Z20, Z5; \
	VUNPCKLPD Z23, Z21, Z6; \
	VUNPCKHPD Z23, Z21, Z7; \
	VUNPCKLPD Z26, Z24, Z8; \
	VUNPCKHPD Z26, Z24, Z9; \
	VUNPCKLPD Z27, Z25, Z10; \
	VUNPCKHPD Z27, Z25, Z11; \
	VUNPCKLPD Z30, Z28, Z12; \
	VUNPCKHPD Z30, Z28, Z13; \
	VUNPCKLPD Z31, Z29, Z14; \
	VUNPCKHPD Z31, Z29, Z15; \
	VSHUFF32X4 $0x88, Z4, Z0, Z16; \
	VSHUFF32X4 $0xdd, Z4, Z0, Z20; \
	VSHUFF32X4 $0x88, Z12, Z8, Z24; \
	VSHUFF32X4 $0xdd, Z12, Z8, Z28; \
	VSHUFF32X4 $0x88, Z5, Z1, Z17; \
	VSHUFF32X4 $0xdd, Z5, Z1, Z21; \
	VSHUFF32X4 $0x88, Z13, Z9, Z25; \
	VSHUFF32X4 $0xdd, Z13, Z9, Z29; \
	VSHUFF32X4 $0x88, Z6, Z2, Z18; \
	VSHUFF32X4 $0xdd, Z6, Z2, Z22; \
	VSHUFF32X4 $0x88, Z14, Z10, Z26; \
	VSHUFF32X4 $0xdd, Z14, Z10, Z30; \
	VSHUFF32X4 $0x88, Z7, Z3, Z19; \
	VSHUFF32X4 $0xdd, Z7, Z3, Z23; \
	VSHUFF32X4 $0x88, Z15, Z11, Z27; \
	VSHUFF32X4 $0xdd, Z15, Z11, Z31; \
	VSHUFF32X4 $0x88, Z24, Z16, Z0; \
	VSHUFF32X4 $0xdd, Z24, Z16, Z8; \
	VSHUFF32X4 $0x88, Z28, Z20, Z4; \
	VSHUFF32X4 $0xdd, Z28, Z20, Z12; \
	VSHUFF32X4 $0x88, Z25, Z17, Z1; \
	VSHUFF32X4 $0xdd, Z25, Z17, Z9; \
	VSHUFF32X4 $0x88, Z29, Z21, Z5; \
	VSHUFF32X4 $0xdd, Z29, Z21, Z13; \
	VSHUFF32X4 $0x88, Z26, Z18, Z2; \
	VSHUFF32X4 $0xdd, Z26, Z18, Z10; \
	VSHUFF32X4 $0x88, Z30, Z22, Z6; \
	VSHUFF32X4 $0xdd, Z30, Z22, Z14; \
	VSHUFF32X4 $0x88, Z27, Z19, Z3; \
	VSHUFF32X4 $0xdd, Z27, Z19, Z11; \
	VSHUFF32X4 $0x88, Z31, Z23, Z7; \
	VSHUFF32X4 $0xdd, Z31, Z23, Z15

// The layout of panelConsts (panel_amd64.go).
#define C_CTL 0
#define C_SHIFT 64
#define C_AND 128
#define C_BIT5 132
#define C_KIND 136
#define C_FULL 140
#define C_TAIL 144
#define C_STEP 148
#define C_ROWS 152
#define C_LUT 192

// STORECOL stores column register zc of a transposed block to the next
// panel column, in the lanes of the valid rows only.
#define STORECOL(zc) \
	VMOVUPS zc, K1, (DI); \
	ADDQ    R12, DI

// func expandT16(dst []float32, src []byte, rowBytes, rows, kc, stride int, c *panelConsts, scratch *[256]float32)
// Expands columns 0..kc-1 of rows 0..rows-1 (1 <= rows <= 16) of a packed
// index stream into dst[k*stride+r]; row r starts at byte r*rowBytes of
// src, at the bit offset the shuffle and shift constants of c encode.
// Lanes r >= rows of dst are not written.
TEXT ·expandT16(SB), NOSPLIT, $0-96
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ rowBytes+48(FP), R8
	MOVQ rows+56(FP), R10
	MOVQ kc+64(FP), CX
	MOVQ stride+72(FP), R12
	SHLQ $2, R12
	MOVQ c+80(FP), DX
	MOVQ scratch+88(FP), BX
	MOVL C_KIND(DX), AX
	MOVL C_ROWS(DX), R11
	KMOVW R11, K1
	MOVL C_FULL(DX), R11
	KMOVW R11, K3
	MOVQ CX, R13
	ANDQ $15, R13
	SHRQ $4, CX

block:
	// CX full blocks of 16 columns remain, then R13 columns.
	TESTQ CX, CX
	JNZ   decode
	TESTQ R13, R13
	JZ    done
	MOVL  C_TAIL(DX), R11
	KMOVW R11, K3

decode:
	// The transposition overwrites Z16-Z31: load the constants again.
	VMOVDQU32    C_CTL(DX), Z24
	VMOVDQU32    C_SHIFT(DX), Z25
	VPBROADCASTD C_AND(DX), Z26
	VPBROADCASTD C_BIT5(DX), Z27
	VMOVUPS      C_LUT(DX), Z28
	VMOVUPS      C_LUT+64(DX), Z29
	VMOVUPS      C_LUT+128(DX), Z30
	VMOVUPS      C_LUT+192(DX), Z31
	MOVQ         SI, R9
	MOVQ         BX, R14
	MOVQ         R10, R11

row:
	VMOVDQU8.Z (R9), K3, X16
	VSHUFI32X4 $0, Z16, Z16, Z16
	VPSHUFB    Z24, Z16, Z16
	VPSRLVD    Z25, Z16, Z16
	VPANDD     Z26, Z16, Z16
	CMPL       AX, $1
	JEQ        lut64
	JGT        lut256
	VPERMPS    Z28, Z16, Z17
	JMP        looked

lut64:
	VMOVDQA32 Z16, Z17
	VPERMI2PS Z29, Z28, Z17
	VMOVDQA32 Z16, Z18
	VPERMI2PS Z31, Z30, Z18
	VPTESTMD  Z27, Z16, K2
	VMOVAPS   Z18, K2, Z17
	JMP       looked

lut256:
	KXNORW     K2, K2, K2
	VGATHERDPS C_LUT(DX)(Z16*4), K2, Z17

looked:
	VMOVUPS Z17, (R14)
	ADDQ    $64, R14
	ADDQ    R8, R9
	DECQ    R11
	JNZ     row

	// Rows >= R10 of the block hold stale values, which only reach the
	// lanes the masked stores skip.
	VMOVUPS 0(BX), Z0
	VMOVUPS 64(BX), Z1
	VMOVUPS 128(BX), Z2
	VMOVUPS 192(BX), Z3
	VMOVUPS 256(BX), Z4
	VMOVUPS 320(BX), Z5
	VMOVUPS 384(BX), Z6
	VMOVUPS 448(BX), Z7
	VMOVUPS 512(BX), Z8
	VMOVUPS 576(BX), Z9
	VMOVUPS 640(BX), Z10
	VMOVUPS 704(BX), Z11
	VMOVUPS 768(BX), Z12
	VMOVUPS 832(BX), Z13
	VMOVUPS 896(BX), Z14
	VMOVUPS 960(BX), Z15
	TRANSPOSE16
	TESTQ CX, CX
	JZ    tail
	STORECOL(Z0)
	STORECOL(Z1)
	STORECOL(Z2)
	STORECOL(Z3)
	STORECOL(Z4)
	STORECOL(Z5)
	STORECOL(Z6)
	STORECOL(Z7)
	STORECOL(Z8)
	STORECOL(Z9)
	STORECOL(Z10)
	STORECOL(Z11)
	STORECOL(Z12)
	STORECOL(Z13)
	STORECOL(Z14)
	STORECOL(Z15)
	MOVL C_STEP(DX), R11
	ADDQ R11, SI
	DECQ CX
	JMP  block

tail:
	// The last R13 columns.
	VMOVUPS Z0, K1, (DI)
	CMPQ    R13, $1
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	CMPQ    R13, $2
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	CMPQ    R13, $3
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	CMPQ    R13, $4
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	CMPQ    R13, $5
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	CMPQ    R13, $6
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	CMPQ    R13, $7
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	CMPQ    R13, $8
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	CMPQ    R13, $9
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	CMPQ    R13, $10
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	CMPQ    R13, $11
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	CMPQ    R13, $12
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	CMPQ    R13, $13
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	CMPQ    R13, $14
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	CMPQ    R13, $15
	JEQ     done
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)

done:
	VZEROUPPER
	RET
