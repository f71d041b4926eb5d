//go:build amd64 && !purego

#include "textflag.h"

// GELU in float64 lanes. erfc uses the Chebyshev fit of Numerical Recipes
// (erfcc, fractional error below 1.2e-7 for every argument):
//
//	erfc(a) = t·exp(-a² + P(t)),  t = 1/(1 + a/2),  a >= 0
//
// and GELU(x) = x/2 · erfc(-x/√2), with erfc(-a) = 2 - erfc(a). Computing
// erfc rather than 1 + erf keeps the relative accuracy for negative x,
// where 1 + erf cancels. exp is a degree-9 Taylor polynomial after
// Cody-Waite reduction (relative error below 1e-11), scaled by VSCALEFPD.

DATA gelc<>+0(SB)/8, $0xbfe6a09e667f3bcc // -1/sqrt(2)
DATA gelc<>+8(SB)/8, $0x7fffffffffffffff // abs mask
DATA gelc<>+16(SB)/8, $0x402c000000000000 // 14: erfc(14) underflows float32 results
DATA gelc<>+24(SB)/8, $0x3fe0000000000000 // 0.5
DATA gelc<>+32(SB)/8, $0x3ff0000000000000 // 1
DATA gelc<>+40(SB)/8, $0x4000000000000000 // 2
DATA gelc<>+48(SB)/8, $0x3ff71547652b82fe // log2(e)
DATA gelc<>+56(SB)/8, $0x3fe62e42fee00000 // ln 2 high
DATA gelc<>+64(SB)/8, $0x3dea39ef35793c76 // ln 2 low
DATA gelc<>+72(SB)/8, $0xbff43f89c0889bc5 // erfc c0
DATA gelc<>+80(SB)/8, $0x3ff00018d48d3588 // erfc c1
DATA gelc<>+88(SB)/8, $0x3fd7f11f677960ea // erfc c2
DATA gelc<>+96(SB)/8, $0x3fb8c6d917dec3f0 // erfc c3
DATA gelc<>+104(SB)/8, $0xbfc7d84982aaeaa5 // erfc c4
DATA gelc<>+112(SB)/8, $0x3fd1d8f976231ce6 // erfc c5
DATA gelc<>+120(SB)/8, $0xbff229cba6063980 // erfc c6
DATA gelc<>+128(SB)/8, $0x3ff7d0f60453a1be // erfc c7
DATA gelc<>+136(SB)/8, $0xbfea4f123185defd // erfc c8
DATA gelc<>+144(SB)/8, $0x3fc5df28af76a5a4 // erfc c9
DATA gelc<>+152(SB)/8, $0x3fe0000000000000 // 1/2!
DATA gelc<>+160(SB)/8, $0x3fc5555555555555 // 1/3!
DATA gelc<>+168(SB)/8, $0x3fa5555555555555 // 1/4!
DATA gelc<>+176(SB)/8, $0x3f81111111111111 // 1/5!
DATA gelc<>+184(SB)/8, $0x3f56c16c16c16c17 // 1/6!
DATA gelc<>+192(SB)/8, $0x3f2a01a01a01a01a // 1/7!
DATA gelc<>+200(SB)/8, $0x3efa01a01a01a01a // 1/8!
DATA gelc<>+208(SB)/8, $0x3ec71de3a556c734 // 1/9!
GLOBL gelc<>(SB), RODATA|NOPTR, $216

// LOADGELC loads the constants used in every lane operation into
// Z20-Z28 and zeroes Z19.
#define LOADGELC \
	VBROADCASTSD gelc<>+0(SB), Z28; \
	VBROADCASTSD gelc<>+8(SB), Z27; \
	VBROADCASTSD gelc<>+16(SB), Z26; \
	VBROADCASTSD gelc<>+24(SB), Z25; \
	VBROADCASTSD gelc<>+32(SB), Z24; \
	VBROADCASTSD gelc<>+40(SB), Z23; \
	VBROADCASTSD gelc<>+48(SB), Z22; \
	VBROADCASTSD gelc<>+56(SB), Z21; \
	VBROADCASTSD gelc<>+64(SB), Z20; \
	VPXORQ Z19, Z19, Z19

// GELU8 computes GELU of the 8 doubles in x into x, with temporaries
// a, t, p, n.
#define GELU8(x, a, t, p, n) \
	VMULPD       Z28, x, a;  \
	VCMPPD       $0x1e, Z19, x, K1; \
	VANDPD       Z27, a, a;  \
	VMINPD       Z26, a, a;  \
	VMOVAPD      Z24, t;     \
	VFMADD231PD  Z25, a, t;  \
	VDIVPD       t, Z24, t;  \
	VBROADCASTSD gelc<>+144(SB), p; \
	VFMADD213PD.BCST gelc<>+136(SB), t, p; \
	VFMADD213PD.BCST gelc<>+128(SB), t, p; \
	VFMADD213PD.BCST gelc<>+120(SB), t, p; \
	VFMADD213PD.BCST gelc<>+112(SB), t, p; \
	VFMADD213PD.BCST gelc<>+104(SB), t, p; \
	VFMADD213PD.BCST gelc<>+96(SB), t, p; \
	VFMADD213PD.BCST gelc<>+88(SB), t, p; \
	VFMADD213PD.BCST gelc<>+80(SB), t, p; \
	VFMADD213PD.BCST gelc<>+72(SB), t, p; \
	VFNMADD231PD a, a, p;    \
	VMULPD       Z22, p, n;  \
	VRNDSCALEPD  $0, n, n;   \
	VFNMADD231PD Z21, n, p;  \
	VFNMADD231PD Z20, n, p;  \
	VBROADCASTSD gelc<>+208(SB), a; \
	VFMADD213PD.BCST gelc<>+200(SB), p, a; \
	VFMADD213PD.BCST gelc<>+192(SB), p, a; \
	VFMADD213PD.BCST gelc<>+184(SB), p, a; \
	VFMADD213PD.BCST gelc<>+176(SB), p, a; \
	VFMADD213PD.BCST gelc<>+168(SB), p, a; \
	VFMADD213PD.BCST gelc<>+160(SB), p, a; \
	VFMADD213PD.BCST gelc<>+152(SB), p, a; \
	VFMADD213PD  Z24, p, a;  \
	VFMADD213PD  Z24, p, a;  \
	VSCALEFPD    n, a, a;    \
	VMULPD       t, a, a;    \
	VSUBPD       a, Z23, p;  \
	VMOVAPD      p, K1, a;   \
	VMULPD       Z25, x, x;  \
	VMULPD       a, x, x

// func vgelu8(dst, x []float32)
// dst[i] = GELU(x[i]); len(x) is a multiple of 8.
TEXT ·vgelu8(SB), NOSPLIT, $0-48
	MOVQ  dst_base+0(FP), DI
	MOVQ  x_base+24(FP), SI
	MOVQ  x_len+32(FP), CX
	LOADGELC
	TESTQ CX, CX
	JZ    vgeludone

vgeluloop:
	VCVTPS2PD (SI), Z0
	GELU8(Z0, Z1, Z2, Z3, Z4)
	VCVTPD2PS Z0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       vgeluloop

vgeludone:
	VZEROUPPER
	RET

// func vgeglu8(dst, val, gate []float32)
// dst[i] = val[i]·GELU(gate[i]); len(dst) is a multiple of 8.
TEXT ·vgeglu8(SB), NOSPLIT, $0-72
	MOVQ  dst_base+0(FP), DI
	MOVQ  dst_len+8(FP), CX
	MOVQ  val_base+24(FP), DX
	MOVQ  gate_base+48(FP), SI
	LOADGELC
	TESTQ CX, CX
	JZ    vgegludone

vgegluloop:
	VCVTPS2PD (SI), Z0
	GELU8(Z0, Z1, Z2, Z3, Z4)
	VCVTPD2PS Z0, Y0
	VMULPS    (DX), Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DX
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       vgegluloop

vgegludone:
	VZEROUPPER
	RET
