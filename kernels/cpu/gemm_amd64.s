//go:build amd64 && !purego

#include "textflag.h"

// GEMM micro-kernels. Each computes one tile
//
//	c[i*ldc+j] (+)= Σ_k a[k*MR+i] · b[k*W+j]   (i < MR, j < W)
//
// from a packed A panel (MR values per k) and a packed B panel (W values
// per k): per k it loads the W values of B into vector registers,
// broadcasts each of the MR values of A and accumulates with FMA into
// MR·W/lanes accumulator registers. With acc false the tile is
// overwritten, with acc true added to.
//
// func name(kc int, a, b, c []float32, ldc int, acc bool)

// ---- AVX-512: 14 x 32 (28 accumulators Z0-Z27, B in Z28-Z29) ----

#define FMA14x32(aoff, bc, c0, c1) \
	VBROADCASTSS aoff(SI), bc; \
	VFMADD231PS  Z28, bc, c0;  \
	VFMADD231PS  Z29, bc, c1

#define STEP14x32(boff, aoff) \
	VMOVUPS boff(BX), Z28;          \
	VMOVUPS boff+64(BX), Z29;       \
	FMA14x32(aoff+0, Z30, Z0, Z1);  \
	FMA14x32(aoff+4, Z31, Z2, Z3);  \
	FMA14x32(aoff+8, Z30, Z4, Z5);  \
	FMA14x32(aoff+12, Z31, Z6, Z7); \
	FMA14x32(aoff+16, Z30, Z8, Z9); \
	FMA14x32(aoff+20, Z31, Z10, Z11); \
	FMA14x32(aoff+24, Z30, Z12, Z13); \
	FMA14x32(aoff+28, Z31, Z14, Z15); \
	FMA14x32(aoff+32, Z30, Z16, Z17); \
	FMA14x32(aoff+36, Z31, Z18, Z19); \
	FMA14x32(aoff+40, Z30, Z20, Z21); \
	FMA14x32(aoff+44, Z31, Z22, Z23); \
	FMA14x32(aoff+48, Z30, Z24, Z25); \
	FMA14x32(aoff+52, Z31, Z26, Z27)

// ADDROW2 adds row DI of C to two accumulators and advances DI.
#define ADDROW2(c0, c1) \
	VADDPS (DI), c0, c0;   \
	VADDPS 64(DI), c1, c1; \
	ADDQ   DX, DI

#define STROW2(c0, c1) \
	VMOVUPS c0, (DI);   \
	VMOVUPS c1, 64(DI); \
	ADDQ    DX, DI

TEXT ·kern14x32(SB), NOSPLIT, $0-89
	MOVQ kc+0(FP), CX
	MOVQ a_base+8(FP), SI
	MOVQ b_base+32(FP), BX
	MOVQ c_base+56(FP), DI
	MOVQ ldc+80(FP), DX
	SHLQ $2, DX

	// Prefetch the C tile , so its cache misses overlap the
	// loop instead of stalling the stores.
	MOVQ DI, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)
	ADDQ DX, R8
	PREFETCHT0 (R8)
	PREFETCHT0 64(R8)

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27

	CMPQ CX, $4
	JLT  k14x32tail

k14x32loop4:
	STEP14x32(0, 0)
	STEP14x32(128, 56)
	STEP14x32(256, 112)
	STEP14x32(384, 168)
	ADDQ $224, SI
	ADDQ $512, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  k14x32loop4

k14x32tail:
	TESTQ CX, CX
	JZ    k14x32store

k14x32loop1:
	STEP14x32(0, 0)
	ADDQ $56, SI
	ADDQ $128, BX
	DECQ CX
	JNZ  k14x32loop1

k14x32store:
	MOVBLZX acc+88(FP), AX
	TESTQ   AX, AX
	JZ      k14x32write
	MOVQ    DI, R8
	ADDROW2(Z0, Z1)
	ADDROW2(Z2, Z3)
	ADDROW2(Z4, Z5)
	ADDROW2(Z6, Z7)
	ADDROW2(Z8, Z9)
	ADDROW2(Z10, Z11)
	ADDROW2(Z12, Z13)
	ADDROW2(Z14, Z15)
	ADDROW2(Z16, Z17)
	ADDROW2(Z18, Z19)
	ADDROW2(Z20, Z21)
	ADDROW2(Z22, Z23)
	ADDROW2(Z24, Z25)
	ADDROW2(Z26, Z27)
	MOVQ    R8, DI

k14x32write:
	STROW2(Z0, Z1)
	STROW2(Z2, Z3)
	STROW2(Z4, Z5)
	STROW2(Z6, Z7)
	STROW2(Z8, Z9)
	STROW2(Z10, Z11)
	STROW2(Z12, Z13)
	STROW2(Z14, Z15)
	STROW2(Z16, Z17)
	STROW2(Z18, Z19)
	STROW2(Z20, Z21)
	STROW2(Z22, Z23)
	STROW2(Z24, Z25)
	STROW2(Z26, Z27)
	VZEROUPPER
	RET

// ---- AVX-512: 14 x 16 (14 accumulators Z0-Z13, B in Z28) ----

#define FMA14x16(aoff, bc, c0) \
	VBROADCASTSS aoff(SI), bc; \
	VFMADD231PS  Z28, bc, c0

#define STEP14x16(boff, aoff) \
	VMOVUPS boff(BX), Z28;      \
	FMA14x16(aoff+0, Z30, Z0);  \
	FMA14x16(aoff+4, Z31, Z1);  \
	FMA14x16(aoff+8, Z30, Z2);  \
	FMA14x16(aoff+12, Z31, Z3); \
	FMA14x16(aoff+16, Z30, Z4); \
	FMA14x16(aoff+20, Z31, Z5); \
	FMA14x16(aoff+24, Z30, Z6); \
	FMA14x16(aoff+28, Z31, Z7); \
	FMA14x16(aoff+32, Z30, Z8); \
	FMA14x16(aoff+36, Z31, Z9); \
	FMA14x16(aoff+40, Z30, Z10); \
	FMA14x16(aoff+44, Z31, Z11); \
	FMA14x16(aoff+48, Z30, Z12); \
	FMA14x16(aoff+52, Z31, Z13)

#define ADDROW1(c0) \
	VADDPS (DI), c0, c0; \
	ADDQ   DX, DI

#define STROW1(c0) \
	VMOVUPS c0, (DI); \
	ADDQ    DX, DI

TEXT ·kern14x16(SB), NOSPLIT, $0-89
	MOVQ kc+0(FP), CX
	MOVQ a_base+8(FP), SI
	MOVQ b_base+32(FP), BX
	MOVQ c_base+56(FP), DI
	MOVQ ldc+80(FP), DX
	SHLQ $2, DX

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13

	CMPQ CX, $2
	JLT  k14x16tail

k14x16loop2:
	STEP14x16(0, 0)
	STEP14x16(64, 56)
	ADDQ $112, SI
	ADDQ $128, BX
	SUBQ $2, CX
	CMPQ CX, $2
	JGE  k14x16loop2

k14x16tail:
	TESTQ CX, CX
	JZ    k14x16store
	STEP14x16(0, 0)

k14x16store:
	MOVBLZX acc+88(FP), AX
	TESTQ   AX, AX
	JZ      k14x16write
	MOVQ    DI, R8
	ADDROW1(Z0)
	ADDROW1(Z1)
	ADDROW1(Z2)
	ADDROW1(Z3)
	ADDROW1(Z4)
	ADDROW1(Z5)
	ADDROW1(Z6)
	ADDROW1(Z7)
	ADDROW1(Z8)
	ADDROW1(Z9)
	ADDROW1(Z10)
	ADDROW1(Z11)
	ADDROW1(Z12)
	ADDROW1(Z13)
	MOVQ    R8, DI

k14x16write:
	STROW1(Z0)
	STROW1(Z1)
	STROW1(Z2)
	STROW1(Z3)
	STROW1(Z4)
	STROW1(Z5)
	STROW1(Z6)
	STROW1(Z7)
	STROW1(Z8)
	STROW1(Z9)
	STROW1(Z10)
	STROW1(Z11)
	STROW1(Z12)
	STROW1(Z13)
	VZEROUPPER
	RET

// ---- AVX2/FMA: 6 x 16 (12 accumulators Y0-Y11, B in Y12-Y13) ----

#define FMA6x16(aoff, bc, c0, c1) \
	VBROADCASTSS aoff(SI), bc; \
	VFMADD231PS  Y12, bc, c0;  \
	VFMADD231PS  Y13, bc, c1

#define STEP6x16(boff, aoff) \
	VMOVUPS boff(BX), Y12;           \
	VMOVUPS boff+32(BX), Y13;        \
	FMA6x16(aoff+0, Y14, Y0, Y1);    \
	FMA6x16(aoff+4, Y15, Y2, Y3);    \
	FMA6x16(aoff+8, Y14, Y4, Y5);    \
	FMA6x16(aoff+12, Y15, Y6, Y7);   \
	FMA6x16(aoff+16, Y14, Y8, Y9);   \
	FMA6x16(aoff+20, Y15, Y10, Y11)

#define ADDROWY2(c0, c1) \
	VADDPS (DI), c0, c0;   \
	VADDPS 32(DI), c1, c1; \
	ADDQ   DX, DI

#define STROWY2(c0, c1) \
	VMOVUPS c0, (DI);   \
	VMOVUPS c1, 32(DI); \
	ADDQ    DX, DI

TEXT ·kern6x16(SB), NOSPLIT, $0-89
	MOVQ kc+0(FP), CX
	MOVQ a_base+8(FP), SI
	MOVQ b_base+32(FP), BX
	MOVQ c_base+56(FP), DI
	MOVQ ldc+80(FP), DX
	SHLQ $2, DX

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	CMPQ CX, $4
	JLT  k6x16tail

k6x16loop4:
	STEP6x16(0, 0)
	STEP6x16(64, 24)
	STEP6x16(128, 48)
	STEP6x16(192, 72)
	ADDQ $96, SI
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  k6x16loop4

k6x16tail:
	TESTQ CX, CX
	JZ    k6x16store

k6x16loop1:
	STEP6x16(0, 0)
	ADDQ $24, SI
	ADDQ $64, BX
	DECQ CX
	JNZ  k6x16loop1

k6x16store:
	MOVBLZX acc+88(FP), AX
	TESTQ   AX, AX
	JZ      k6x16write
	MOVQ    DI, R8
	ADDROWY2(Y0, Y1)
	ADDROWY2(Y2, Y3)
	ADDROWY2(Y4, Y5)
	ADDROWY2(Y6, Y7)
	ADDROWY2(Y8, Y9)
	ADDROWY2(Y10, Y11)
	MOVQ    R8, DI

k6x16write:
	STROWY2(Y0, Y1)
	STROWY2(Y2, Y3)
	STROWY2(Y4, Y5)
	STROWY2(Y6, Y7)
	STROWY2(Y8, Y9)
	STROWY2(Y10, Y11)
	VZEROUPPER
	RET

// ---- AVX2/FMA: 6 x 8 (6 accumulators Y0-Y5, B in Y12) ----

#define FMA6x8(aoff, bc, c0) \
	VBROADCASTSS aoff(SI), bc; \
	VFMADD231PS  Y12, bc, c0

#define STEP6x8(boff, aoff) \
	VMOVUPS boff(BX), Y12;     \
	FMA6x8(aoff+0, Y14, Y0);   \
	FMA6x8(aoff+4, Y15, Y1);   \
	FMA6x8(aoff+8, Y14, Y2);   \
	FMA6x8(aoff+12, Y15, Y3);  \
	FMA6x8(aoff+16, Y14, Y4);  \
	FMA6x8(aoff+20, Y15, Y5)

TEXT ·kern6x8(SB), NOSPLIT, $0-89
	MOVQ kc+0(FP), CX
	MOVQ a_base+8(FP), SI
	MOVQ b_base+32(FP), BX
	MOVQ c_base+56(FP), DI
	MOVQ ldc+80(FP), DX
	SHLQ $2, DX

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5

	TESTQ CX, CX
	JZ    k6x8store

k6x8loop1:
	STEP6x8(0, 0)
	ADDQ $24, SI
	ADDQ $32, BX
	DECQ CX
	JNZ  k6x8loop1

k6x8store:
	MOVBLZX acc+88(FP), AX
	TESTQ   AX, AX
	JZ      k6x8write
	MOVQ    DI, R8
	ADDROW1(Y0)
	ADDROW1(Y1)
	ADDROW1(Y2)
	ADDROW1(Y3)
	ADDROW1(Y4)
	ADDROW1(Y5)
	MOVQ    R8, DI

k6x8write:
	STROW1(Y0)
	STROW1(Y1)
	STROW1(Y2)
	STROW1(Y3)
	STROW1(Y4)
	STROW1(Y5)
	VZEROUPPER
	RET
