//go:build amd64 && !purego

#include "textflag.h"

// Packing: a block of up to 16 rows of a row-major matrix is transposed 16
// columns at a time in registers (four shuffle stages: 32-bit, 64-bit and
// twice 128-bit lanes), so that each column becomes one contiguous run of
// a packed panel; a last partial block of columns is read with masked
// loads. The variants read float32, float16 (converted with VCVTPH2PS) or
// bfloat16 (widened and shifted) rows.

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

// func packT16(dst []float32, src []float32, ld, rows, kc, stride int, mask uint16)
// Transposes rows 0..rows-1 (1 <= rows <= 16) of src (row stride ld) into
// dst: dst[k*stride+r] = src[r*ld+k] for k < kc. mask has the low rows bits
// set; lanes r >= rows of dst are not written.
TEXT ·packT16(SB), NOSPLIT, $0-82
	MOVQ  dst_base+0(FP), DI
	MOVQ  src_base+24(FP), SI
	MOVQ  ld+48(FP), R8
	SHLQ  $2, R8
	MOVQ  rows+56(FP), R10
	MOVQ  kc+64(FP), CX
	MOVQ  stride+72(FP), R12
	SHLQ  $2, R12
	KMOVW mask+80(FP), K1
	MOVQ  CX, R13
	ANDQ  $15, R13
	SHRQ  $4, CX
	JZ    packT16tail

packT16block:
	// Load the rows; registers of rows >= rows keep stale values, which
	// only reach the lanes the masked stores skip.
	MOVQ    SI, R9
	VMOVUPS (R9), Z0
	CMPQ    R10, $1
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z1
	CMPQ    R10, $2
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z2
	CMPQ    R10, $3
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z3
	CMPQ    R10, $4
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z4
	CMPQ    R10, $5
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z5
	CMPQ    R10, $6
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z6
	CMPQ    R10, $7
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z7
	CMPQ    R10, $8
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z8
	CMPQ    R10, $9
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z9
	CMPQ    R10, $10
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z10
	CMPQ    R10, $11
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z11
	CMPQ    R10, $12
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z12
	CMPQ    R10, $13
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z13
	CMPQ    R10, $14
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z14
	CMPQ    R10, $15
	JEQ     packT16loaded
	ADDQ    R8, R9
	VMOVUPS (R9), Z15

packT16loaded:
	TRANSPOSE16
	VMOVUPS Z0, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)
	ADDQ    R12, DI
	ADDQ $64, SI
	DECQ CX
	JNZ  packT16block

packT16tail:
	// The last kc%16 columns: loads masked to them (K2), stores of as
	// many columns.
	TESTQ R13, R13
	JZ    packT16done
	MOVL  $1, AX
	MOVQ  R13, CX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	MOVQ  SI, R9
	VMOVUPS.Z (R9), K2, Z0
	CMPQ    R10, $1
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z1
	CMPQ    R10, $2
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z2
	CMPQ    R10, $3
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z3
	CMPQ    R10, $4
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z4
	CMPQ    R10, $5
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z5
	CMPQ    R10, $6
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z6
	CMPQ    R10, $7
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z7
	CMPQ    R10, $8
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z8
	CMPQ    R10, $9
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z9
	CMPQ    R10, $10
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z10
	CMPQ    R10, $11
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z11
	CMPQ    R10, $12
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z12
	CMPQ    R10, $13
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z13
	CMPQ    R10, $14
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z14
	CMPQ    R10, $15
	JEQ     packT16tailloaded
	ADDQ    R8, R9
	VMOVUPS.Z (R9), K2, Z15

packT16tailloaded:
	TRANSPOSE16
	VMOVUPS Z0, K1, (DI)
	CMPQ    R13, $1
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	CMPQ    R13, $2
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	CMPQ    R13, $3
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	CMPQ    R13, $4
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	CMPQ    R13, $5
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	CMPQ    R13, $6
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	CMPQ    R13, $7
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	CMPQ    R13, $8
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	CMPQ    R13, $9
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	CMPQ    R13, $10
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	CMPQ    R13, $11
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	CMPQ    R13, $12
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	CMPQ    R13, $13
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	CMPQ    R13, $14
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	CMPQ    R13, $15
	JEQ     packT16done
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)

packT16done:
	VZEROUPPER
	RET

// func packT16h(dst []float32, src []byte, ld, rows, kc, stride int, mask uint16)
// packT16 reading IEEE float16 values (little-endian bytes, row stride ld
// values).
TEXT ·packT16h(SB), NOSPLIT, $0-82
	MOVQ  dst_base+0(FP), DI
	MOVQ  src_base+24(FP), SI
	MOVQ  ld+48(FP), R8
	SHLQ  $1, R8
	MOVQ  rows+56(FP), R10
	MOVQ  kc+64(FP), CX
	MOVQ  stride+72(FP), R12
	SHLQ  $2, R12
	KMOVW mask+80(FP), K1
	MOVQ  CX, R13
	ANDQ  $15, R13
	SHRQ  $4, CX
	JZ    packT16htail

packT16hblock:
	// Load the rows; registers of rows >= rows keep stale values, which
	// only reach the lanes the masked stores skip.
	MOVQ    SI, R9
	VCVTPH2PS (R9), Z0
	CMPQ    R10, $1
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z1
	CMPQ    R10, $2
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z2
	CMPQ    R10, $3
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z3
	CMPQ    R10, $4
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z4
	CMPQ    R10, $5
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z5
	CMPQ    R10, $6
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z6
	CMPQ    R10, $7
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z7
	CMPQ    R10, $8
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z8
	CMPQ    R10, $9
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z9
	CMPQ    R10, $10
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z10
	CMPQ    R10, $11
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z11
	CMPQ    R10, $12
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z12
	CMPQ    R10, $13
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z13
	CMPQ    R10, $14
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z14
	CMPQ    R10, $15
	JEQ     packT16hloaded
	ADDQ    R8, R9
	VCVTPH2PS (R9), Z15

packT16hloaded:
	TRANSPOSE16
	VMOVUPS Z0, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)
	ADDQ    R12, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  packT16hblock

packT16htail:
	// The last kc%16 columns: loads masked to them (K2), stores of as
	// many columns.
	TESTQ R13, R13
	JZ    packT16hdone
	MOVL  $1, AX
	MOVQ  R13, CX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	MOVQ  SI, R9
	VCVTPH2PS.Z (R9), K2, Z0
	CMPQ    R10, $1
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z1
	CMPQ    R10, $2
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z2
	CMPQ    R10, $3
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z3
	CMPQ    R10, $4
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z4
	CMPQ    R10, $5
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z5
	CMPQ    R10, $6
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z6
	CMPQ    R10, $7
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z7
	CMPQ    R10, $8
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z8
	CMPQ    R10, $9
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z9
	CMPQ    R10, $10
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z10
	CMPQ    R10, $11
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z11
	CMPQ    R10, $12
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z12
	CMPQ    R10, $13
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z13
	CMPQ    R10, $14
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z14
	CMPQ    R10, $15
	JEQ     packT16htailloaded
	ADDQ    R8, R9
	VCVTPH2PS.Z (R9), K2, Z15

packT16htailloaded:
	TRANSPOSE16
	VMOVUPS Z0, K1, (DI)
	CMPQ    R13, $1
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	CMPQ    R13, $2
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	CMPQ    R13, $3
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	CMPQ    R13, $4
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	CMPQ    R13, $5
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	CMPQ    R13, $6
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	CMPQ    R13, $7
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	CMPQ    R13, $8
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	CMPQ    R13, $9
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	CMPQ    R13, $10
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	CMPQ    R13, $11
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	CMPQ    R13, $12
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	CMPQ    R13, $13
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	CMPQ    R13, $14
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	CMPQ    R13, $15
	JEQ     packT16hdone
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)

packT16hdone:
	VZEROUPPER
	RET

// func packT16b(dst []float32, src []byte, ld, rows, kc, stride int, mask uint16)
// packT16 reading bfloat16 values (little-endian bytes, row stride ld
// values).
TEXT ·packT16b(SB), NOSPLIT, $0-82
	MOVQ  dst_base+0(FP), DI
	MOVQ  src_base+24(FP), SI
	MOVQ  ld+48(FP), R8
	SHLQ  $1, R8
	MOVQ  rows+56(FP), R10
	MOVQ  kc+64(FP), CX
	MOVQ  stride+72(FP), R12
	SHLQ  $2, R12
	KMOVW mask+80(FP), K1
	MOVQ  CX, R13
	ANDQ  $15, R13
	SHRQ  $4, CX
	JZ    packT16btail

packT16bblock:
	// Load the rows; registers of rows >= rows keep stale values, which
	// only reach the lanes the masked stores skip.
	MOVQ    SI, R9
	VPMOVZXWD (R9), Z0
	VPSLLD    $16, Z0, Z0
	CMPQ    R10, $1
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z1
	VPSLLD    $16, Z1, Z1
	CMPQ    R10, $2
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z2
	VPSLLD    $16, Z2, Z2
	CMPQ    R10, $3
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z3
	VPSLLD    $16, Z3, Z3
	CMPQ    R10, $4
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z4
	VPSLLD    $16, Z4, Z4
	CMPQ    R10, $5
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z5
	VPSLLD    $16, Z5, Z5
	CMPQ    R10, $6
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z6
	VPSLLD    $16, Z6, Z6
	CMPQ    R10, $7
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z7
	VPSLLD    $16, Z7, Z7
	CMPQ    R10, $8
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z8
	VPSLLD    $16, Z8, Z8
	CMPQ    R10, $9
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z9
	VPSLLD    $16, Z9, Z9
	CMPQ    R10, $10
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z10
	VPSLLD    $16, Z10, Z10
	CMPQ    R10, $11
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z11
	VPSLLD    $16, Z11, Z11
	CMPQ    R10, $12
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z12
	VPSLLD    $16, Z12, Z12
	CMPQ    R10, $13
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z13
	VPSLLD    $16, Z13, Z13
	CMPQ    R10, $14
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z14
	VPSLLD    $16, Z14, Z14
	CMPQ    R10, $15
	JEQ     packT16bloaded
	ADDQ    R8, R9
	VPMOVZXWD (R9), Z15
	VPSLLD    $16, Z15, Z15

packT16bloaded:
	TRANSPOSE16
	VMOVUPS Z0, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)
	ADDQ    R12, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  packT16bblock

packT16btail:
	// The last kc%16 columns: loads masked to them (K2), stores of as
	// many columns.
	TESTQ R13, R13
	JZ    packT16bdone
	MOVL  $1, AX
	MOVQ  R13, CX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	MOVQ  SI, R9
	VPMOVZXWD.Z (R9), K2, Z0
	VPSLLD    $16, Z0, Z0
	CMPQ    R10, $1
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z1
	VPSLLD    $16, Z1, Z1
	CMPQ    R10, $2
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z2
	VPSLLD    $16, Z2, Z2
	CMPQ    R10, $3
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z3
	VPSLLD    $16, Z3, Z3
	CMPQ    R10, $4
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z4
	VPSLLD    $16, Z4, Z4
	CMPQ    R10, $5
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z5
	VPSLLD    $16, Z5, Z5
	CMPQ    R10, $6
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z6
	VPSLLD    $16, Z6, Z6
	CMPQ    R10, $7
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z7
	VPSLLD    $16, Z7, Z7
	CMPQ    R10, $8
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z8
	VPSLLD    $16, Z8, Z8
	CMPQ    R10, $9
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z9
	VPSLLD    $16, Z9, Z9
	CMPQ    R10, $10
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z10
	VPSLLD    $16, Z10, Z10
	CMPQ    R10, $11
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z11
	VPSLLD    $16, Z11, Z11
	CMPQ    R10, $12
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z12
	VPSLLD    $16, Z12, Z12
	CMPQ    R10, $13
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z13
	VPSLLD    $16, Z13, Z13
	CMPQ    R10, $14
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z14
	VPSLLD    $16, Z14, Z14
	CMPQ    R10, $15
	JEQ     packT16btailloaded
	ADDQ    R8, R9
	VPMOVZXWD.Z (R9), K2, Z15
	VPSLLD    $16, Z15, Z15

packT16btailloaded:
	TRANSPOSE16
	VMOVUPS Z0, K1, (DI)
	CMPQ    R13, $1
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z1, K1, (DI)
	CMPQ    R13, $2
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z2, K1, (DI)
	CMPQ    R13, $3
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z3, K1, (DI)
	CMPQ    R13, $4
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z4, K1, (DI)
	CMPQ    R13, $5
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z5, K1, (DI)
	CMPQ    R13, $6
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z6, K1, (DI)
	CMPQ    R13, $7
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z7, K1, (DI)
	CMPQ    R13, $8
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z8, K1, (DI)
	CMPQ    R13, $9
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z9, K1, (DI)
	CMPQ    R13, $10
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z10, K1, (DI)
	CMPQ    R13, $11
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z11, K1, (DI)
	CMPQ    R13, $12
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z12, K1, (DI)
	CMPQ    R13, $13
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z13, K1, (DI)
	CMPQ    R13, $14
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z14, K1, (DI)
	CMPQ    R13, $15
	JEQ     packT16bdone
	ADDQ    R12, DI
	VMOVUPS Z15, K1, (DI)

packT16bdone:
	VZEROUPPER
	RET
