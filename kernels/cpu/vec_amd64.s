//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 vector routines. Each processes whole vectors only (the length
// is a multiple of 16 or 8, as its comment says); the Go wrappers in
// vec_amd64.go do the remaining elements. The reference loops are the
// doc comments of vecOps in isa.go.

// exp constants: clamp range, Cody-Waite ln 2, and the Cephes expf
// polynomial (relative error within 2 ulp of the rounded exact value).
DATA expc<>+0(SB)/4, $0xc2d00000  // -104: exp underflows to 0 below
DATA expc<>+4(SB)/4, $0x42b20000  // 89: exp overflows to +Inf above
DATA expc<>+8(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+12(SB)/4, $0x3f318000 // ln 2, high part 0.693359375
DATA expc<>+16(SB)/4, $0xb95e8083 // ln 2, low part -2.12194440e-4
DATA expc<>+20(SB)/4, $0x39506967 // 1.9875691500e-4
DATA expc<>+24(SB)/4, $0x3ab743ce // 1.3981999507e-3
DATA expc<>+28(SB)/4, $0x3c088908 // 8.3334519073e-3
DATA expc<>+32(SB)/4, $0x3d2aa9c1 // 4.1665795894e-2
DATA expc<>+36(SB)/4, $0x3e2aaaaa // 1.6666665459e-1
DATA expc<>+40(SB)/4, $0x3f000000 // 5.0000001201e-1
DATA expc<>+44(SB)/4, $0x3f800000 // 1
GLOBL expc<>(SB), RODATA|NOPTR, $48

// LOADEXPC broadcasts the exp constants into Z16-Z27.
#define LOADEXPC \
	VBROADCASTSS expc<>+0(SB), Z16;  \
	VBROADCASTSS expc<>+4(SB), Z17;  \
	VBROADCASTSS expc<>+8(SB), Z18;  \
	VBROADCASTSS expc<>+12(SB), Z19; \
	VBROADCASTSS expc<>+16(SB), Z20; \
	VBROADCASTSS expc<>+20(SB), Z21; \
	VBROADCASTSS expc<>+24(SB), Z22; \
	VBROADCASTSS expc<>+28(SB), Z23; \
	VBROADCASTSS expc<>+32(SB), Z24; \
	VBROADCASTSS expc<>+36(SB), Z25; \
	VBROADCASTSS expc<>+40(SB), Z26; \
	VBROADCASTSS expc<>+44(SB), Z27

// EXP replaces x by exp(x), using n, r and t as temporaries: with
// n = round(x·log2 e) and r = x - n·ln 2, exp(x) = 2ⁿ·(1 + r + r²·P(r)).
// NaN stays NaN (it is the second operand of the clamps).
#define EXP(x, n, r, t) \
	VMAXPS      x, Z16, x;   \
	VMINPS      x, Z17, x;   \
	VMULPS      Z18, x, n;   \
	VRNDSCALEPS $0, n, n;    \
	VMOVAPS     x, r;        \
	VFNMADD231PS Z19, n, r;  \
	VFNMADD231PS Z20, n, r;  \
	VMOVAPS     Z21, x;      \
	VFMADD213PS Z22, r, x;   \
	VFMADD213PS Z23, r, x;   \
	VFMADD213PS Z24, r, x;   \
	VFMADD213PS Z25, r, x;   \
	VFMADD213PS Z26, r, x;   \
	VMULPS      r, r, t;     \
	VFMADD213PS r, t, x;     \
	VADDPS      Z27, x, x;   \
	VSCALEFPS   n, x, x

// func vmax16(x []float32) float32
// len(x) is a positive multiple of 16.
TEXT ·vmax16(SB), NOSPLIT, $0-28
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), CX
	VMOVUPS (SI), Z0
	ADDQ    $64, SI
	SUBQ    $16, CX
	JZ      vmaxreduce

vmaxloop:
	VMAXPS (SI), Z0, Z0
	ADDQ   $64, SI
	SUBQ   $16, CX
	JNZ    vmaxloop

vmaxreduce:
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0x4e, X0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0xb1, X0, X1
	VMAXPS        X1, X0, X0
	MOVSS         X0, ret+24(FP)
	VZEROUPPER
	RET

// REDUCEPD sums the 8 doubles of z into the low double of x (z's low
// ymm), using y as a temporary.
#define REDUCEPD(z, zy, zx, y, yx) \
	VEXTRACTF64X4 $1, z, y;   \
	VADDPD        y, zy, zy;  \
	VEXTRACTF128  $1, zy, yx; \
	VADDPD        yx, zx, zx; \
	VUNPCKHPD     zx, zx, yx; \
	VADDSD        yx, zx, zx

// func vexpsub16(x []float32, m float32) float64
// len(x) is a multiple of 16.
TEXT ·vexpsub16(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Z15
	LOADEXPC
	VPXORQ       Z12, Z12, Z12
	VPXORQ       Z13, Z13, Z13
	TESTQ        CX, CX
	JZ           vexpsubdone

vexpsubloop:
	VMOVUPS       (SI), Z0
	VSUBPS        Z15, Z0, Z0
	EXP(Z0, Z1, Z2, Z3)
	VMOVUPS       Z0, (SI)
	VCVTPS2PD     Y0, Z4
	VEXTRACTF32X8 $1, Z0, Y5
	VCVTPS2PD     Y5, Z5
	VADDPD        Z4, Z12, Z12
	VADDPD        Z5, Z13, Z13
	ADDQ          $64, SI
	SUBQ          $16, CX
	JNZ           vexpsubloop

vexpsubdone:
	VADDPD Z13, Z12, Z12
	REDUCEPD(Z12, Y12, X12, Y13, X13)
	MOVSD  X12, ret+32(FP)
	VZEROUPPER
	RET

// func vsigmul16(dst, x []float32, negAlpha float32)
// dst[i] = x[i] / (1 + exp(negAlpha·x[i])); len(x) is a multiple of 16.
TEXT ·vsigmul16(SB), NOSPLIT, $0-52
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	VBROADCASTSS negAlpha+48(FP), Z15
	LOADEXPC
	TESTQ        CX, CX
	JZ           vsigmuldone

vsigmulloop:
	VMOVUPS (SI), Z0
	VMULPS  Z15, Z0, Z1
	EXP(Z1, Z2, Z3, Z4)
	VADDPS  Z27, Z1, Z1
	VDIVPS  Z1, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     vsigmulloop

vsigmuldone:
	VZEROUPPER
	RET

// func vsum8(x []float32) float64
// len(x) is a multiple of 8.
TEXT ·vsum8(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	CMPQ   CX, $32
	JLT    vsum8tail

vsum8loop4:
	VCVTPS2PD (SI), Z4
	VCVTPS2PD 32(SI), Z5
	VCVTPS2PD 64(SI), Z6
	VCVTPS2PD 96(SI), Z7
	VADDPD    Z4, Z0, Z0
	VADDPD    Z5, Z1, Z1
	VADDPD    Z6, Z2, Z2
	VADDPD    Z7, Z3, Z3
	ADDQ      $128, SI
	SUBQ      $32, CX
	CMPQ      CX, $32
	JGE       vsum8loop4

vsum8tail:
	TESTQ CX, CX
	JZ    vsum8done

vsum8loop1:
	VCVTPS2PD (SI), Z4
	VADDPD    Z4, Z0, Z0
	ADDQ      $32, SI
	SUBQ      $8, CX
	JNZ       vsum8loop1

vsum8done:
	VADDPD Z1, Z0, Z0
	VADDPD Z3, Z2, Z2
	VADDPD Z2, Z0, Z0
	REDUCEPD(Z0, Y0, X0, Y1, X1)
	MOVSD  X0, ret+24(FP)
	VZEROUPPER
	RET

// func vsqdev8(x []float32, mean float64) float64
// Σ (x[i]-mean)²; len(x) is a multiple of 8.
TEXT ·vsqdev8(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSD mean+24(FP), Z15
	VPXORQ       Z0, Z0, Z0
	VPXORQ       Z1, Z1, Z1
	VPXORQ       Z2, Z2, Z2
	VPXORQ       Z3, Z3, Z3
	CMPQ         CX, $32
	JLT          vsqdevtail

vsqdevloop4:
	VCVTPS2PD   (SI), Z4
	VCVTPS2PD   32(SI), Z5
	VCVTPS2PD   64(SI), Z6
	VCVTPS2PD   96(SI), Z7
	VSUBPD      Z15, Z4, Z4
	VSUBPD      Z15, Z5, Z5
	VSUBPD      Z15, Z6, Z6
	VSUBPD      Z15, Z7, Z7
	VFMADD231PD Z4, Z4, Z0
	VFMADD231PD Z5, Z5, Z1
	VFMADD231PD Z6, Z6, Z2
	VFMADD231PD Z7, Z7, Z3
	ADDQ        $128, SI
	SUBQ        $32, CX
	CMPQ        CX, $32
	JGE         vsqdevloop4

vsqdevtail:
	TESTQ CX, CX
	JZ    vsqdevdone

vsqdevloop1:
	VCVTPS2PD   (SI), Z4
	VSUBPD      Z15, Z4, Z4
	VFMADD231PD Z4, Z4, Z0
	ADDQ        $32, SI
	SUBQ        $8, CX
	JNZ         vsqdevloop1

vsqdevdone:
	VADDPD Z1, Z0, Z0
	VADDPD Z3, Z2, Z2
	VADDPD Z2, Z0, Z0
	REDUCEPD(Z0, Y0, X0, Y1, X1)
	MOVSD  X0, ret+32(FP)
	VZEROUPPER
	RET

// func vnorms8(dst, x []float32, mean, inv float64, gamma, beta float32)
// dst[i] = float32((x[i]-mean)·inv)·g + b; len(x) is a multiple of 8.
TEXT ·vnorms8(SB), NOSPLIT, $0-72
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	VBROADCASTSD mean+48(FP), Z15
	VBROADCASTSD inv+56(FP), Z14
	VBROADCASTSS gamma+64(FP), Y13
	VBROADCASTSS beta+68(FP), Y12
	TESTQ        CX, CX
	JZ           vnormsdone

vnormsloop:
	VCVTPS2PD (SI), Z0
	VSUBPD    Z15, Z0, Z0
	VMULPD    Z14, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMULPS    Y13, Y0, Y0
	VADDPS    Y12, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       vnormsloop

vnormsdone:
	VZEROUPPER
	RET

// func vnormv8(dst, x []float32, mean, inv float64, gamma, beta []float32)
// dst[i] = float32((x[i]-mean)·inv)·g[i] + b[i]; len(x) is a multiple of 8.
TEXT ·vnormv8(SB), NOSPLIT, $0-112
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	VBROADCASTSD mean+48(FP), Z15
	VBROADCASTSD inv+56(FP), Z14
	MOVQ         gamma_base+64(FP), R8
	MOVQ         beta_base+88(FP), R9
	TESTQ        CX, CX
	JZ           vnormvdone

vnormvloop:
	VCVTPS2PD (SI), Z0
	VSUBPD    Z15, Z0, Z0
	VMULPD    Z14, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMULPS    (R8), Y0, Y0
	VADDPS    (R9), Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	ADDQ      $32, R8
	ADDQ      $32, R9
	SUBQ      $8, CX
	JNZ       vnormvloop

vnormvdone:
	VZEROUPPER
	RET

// func vscale(dst, x []float32, s float32)
// dst[i] = x[i]·s for any length: the last partial vector is masked.
TEXT ·vscale(SB), NOSPLIT, $0-52
	MOVQ         dst_base+0(FP), DI
	MOVQ         x_base+24(FP), SI
	MOVQ         x_len+32(FP), CX
	VBROADCASTSS s+48(FP), Z1
	CMPQ         CX, $16
	JLT          vscaletail

vscaleloop:
	VMULPS  (SI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	CMPQ    CX, $16
	JGE     vscaleloop

vscaletail:
	TESTQ   CX, CX
	JZ      vscaledone
	MOVL    $1, AX
	SHLL    CX, AX
	DECL    AX
	KMOVW   AX, K1
	VMOVUPS.Z (SI), K1, Z0
	VMULPS  Z0, Z1, Z0
	VMOVUPS Z0, K1, (DI)

vscaledone:
	VZEROUPPER
	RET

// func vadd16(dst, a, b []float32)
// len(dst) is a multiple of 16.
TEXT ·vadd16(SB), NOSPLIT, $0-72
	MOVQ  dst_base+0(FP), DI
	MOVQ  dst_len+8(FP), CX
	MOVQ  a_base+24(FP), SI
	MOVQ  b_base+48(FP), DX
	TESTQ CX, CX
	JZ    vadddone

vaddloop:
	VMOVUPS (SI), Z0
	VADDPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     vaddloop

vadddone:
	VZEROUPPER
	RET

// func colmax32(s []float32, rows int, sc float32, m []float32)
// Scales each 32-wide row of s by sc in place and folds it into m[0:32].
TEXT ·colmax32(SB), NOSPLIT, $0-64
	MOVQ         s_base+0(FP), SI
	MOVQ         rows+24(FP), CX
	VBROADCASTSS sc+32(FP), Z15
	MOVQ         m_base+40(FP), DI
	VMOVUPS      (DI), Z0
	VMOVUPS      64(DI), Z1
	TESTQ        CX, CX
	JZ           colmaxdone

colmaxloop:
	VMULPS  (SI), Z15, Z2
	VMULPS  64(SI), Z15, Z3
	VMOVUPS Z2, (SI)
	VMOVUPS Z3, 64(SI)
	VMAXPS  Z2, Z0, Z0
	VMAXPS  Z3, Z1, Z1
	ADDQ    $128, SI
	DECQ    CX
	JNZ     colmaxloop

colmaxdone:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VZEROUPPER
	RET

// func colexp32(s []float32, rows int, m []float32, sum []float64)
// s[r*32+j] = exp(s[r*32+j]-m[j]); sum[j] += the new values (float64).
TEXT ·colexp32(SB), NOSPLIT, $0-80
	MOVQ    s_base+0(FP), SI
	MOVQ    rows+24(FP), CX
	MOVQ    m_base+32(FP), DI
	MOVQ    sum_base+56(FP), DX
	LOADEXPC
	VMOVUPS (DI), Z8
	VMOVUPS 64(DI), Z9
	VMOVUPD (DX), Z10
	VMOVUPD 64(DX), Z11
	VMOVUPD 128(DX), Z12
	VMOVUPD 192(DX), Z13
	TESTQ   CX, CX
	JZ      colexpdone

colexploop:
	VMOVUPS       (SI), Z0
	VMOVUPS       64(SI), Z4
	VSUBPS        Z8, Z0, Z0
	VSUBPS        Z9, Z4, Z4
	EXP(Z0, Z1, Z2, Z3)
	EXP(Z4, Z5, Z6, Z7)
	VMOVUPS       Z0, (SI)
	VMOVUPS       Z4, 64(SI)
	VCVTPS2PD     Y0, Z1
	VEXTRACTF32X8 $1, Z0, Y2
	VCVTPS2PD     Y2, Z2
	VCVTPS2PD     Y4, Z5
	VEXTRACTF32X8 $1, Z4, Y6
	VCVTPS2PD     Y6, Z6
	VADDPD        Z1, Z10, Z10
	VADDPD        Z2, Z11, Z11
	VADDPD        Z5, Z12, Z12
	VADDPD        Z6, Z13, Z13
	ADDQ          $128, SI
	DECQ          CX
	JNZ           colexploop

colexpdone:
	VMOVUPD Z10, (DX)
	VMOVUPD Z11, 64(DX)
	VMOVUPD Z12, 128(DX)
	VMOVUPD Z13, 192(DX)
	VZEROUPPER
	RET
