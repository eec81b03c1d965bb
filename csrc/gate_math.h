/* gate_math.h -- exp, sigmoid and tanh for the recurrent gates, a template (no include guard: instantiated per
 * REAL by fastnn_real.h, like act_rows.h).
 *
 * Why not libm: a recurrent step is one small product plus up to 5 non-linearities per unit, and libm's tanh and
 * exp are scalar calls (glibc's tanhf goes through expm1f), each costing as much as dozens of the step's
 * multiply-adds, so they would outweigh the product. These are plain arithmetic, selects and bit moves that GCC
 * and Clang vectorise in a loop (without -ffast-math: every lane and position computes the same operations). Accuracy: about 1 ulp, like libm and NumPy (whose
 * SIMD float32 tanh is also not libm's); NaN propagates. exp gives 0 where its result would be below about the
 * smallest normal number (rather than a subnormal) and inf above e^88.37 (float) or e^709 (double), though a
 * finite number would still be 30% / 50% higher: neither changes a sigmoid or tanh (the only users) by more than
 * a subnormal.
 *
 * exp(y) = 2^k e^r with k = round(y / ln 2) (a shifter constant rounds, and its low bits give 2^k's exponent) and
 * r = y - k ln 2 (Cody-Waite, two parts of ln 2), |r| <= ln 2 / 2; e^r by its Taylor series (degree 7 for
 * float, 13 for double: truncation below 0.2 ulp). tanh(x) = x + x s Q(s), s = x^2, for |x| < 0.625 (Q: a
 * Chebyshev fit, relative error 2e-9 for float, 5e-18 for double), else sign(x) (1 - 2 / (e^{2|x|} + 1)), which
 * loses nothing to cancellation there. */

/* e^y for the sigmoid and tanh below (see the top of this file for the range). */
static inline REAL SFX(gm_exp)(REAL y)
{
    const int f32 = sizeof(REAL) == sizeof(float);
    const REAL hi = f32 ? (REAL)88.37f : (REAL)709.0;  /* k <= 127 / 1023: 2^k is a normal number */
    const REAL lo = f32 ? (REAL)-87.33f : (REAL)-708.0; /* k >= -126 / -1021 */
    const REAL shifter = f32 ? (REAL)12582912.0f : (REAL)6755399441055744.0; /* 1.5 2^23, 1.5 2^52 */
    const REAL ln2_hi = f32 ? (REAL)0.693359375f : (REAL)6.93147180369123816490e-01;
    const REAL ln2_lo = f32 ? (REAL)-2.12194440e-4f : (REAL)1.90821492927058770002e-10;
    REAL yc = y >= lo ? y : lo; /* NaN becomes lo here (no NaN reaches the integer bits) and NaN again below */
    yc = yc <= hi ? yc : hi;
    const REAL t = yc * (REAL)1.44269504088896340736 + shifter; /* shifter + k, exactly */
    const REAL k = t - shifter;
    const REAL r = (yc - k * ln2_hi) - k * ln2_lo;
    REAL p, scale;
    if (f32) {
        p = (REAL)(1.0 / 5040);
        p = p * r + (REAL)(1.0 / 720);
        p = p * r + (REAL)(1.0 / 120);
        p = p * r + (REAL)(1.0 / 24);
        p = p * r + (REAL)(1.0 / 6);
        p = p * r + (REAL)0.5;
        p = p * r + (REAL)1;
        p = p * r + (REAL)1;
        /* the low bits of t hold k: (k + 127) shifted into the exponent field is 2^k */
        float tf = (float)t, sf;
        uint32_t bits;
        memcpy(&bits, &tf, sizeof bits);
        bits = (bits + 127u) << 23;
        memcpy(&sf, &bits, sizeof sf);
        scale = (REAL)sf;
    } else {
        p = (REAL)(1.0 / 6227020800.0);
        p = p * r + (REAL)(1.0 / 479001600.0);
        p = p * r + (REAL)(1.0 / 39916800.0);
        p = p * r + (REAL)(1.0 / 3628800.0);
        p = p * r + (REAL)(1.0 / 362880.0);
        p = p * r + (REAL)(1.0 / 40320.0);
        p = p * r + (REAL)(1.0 / 5040.0);
        p = p * r + (REAL)(1.0 / 720.0);
        p = p * r + (REAL)(1.0 / 120.0);
        p = p * r + (REAL)(1.0 / 24.0);
        p = p * r + (REAL)(1.0 / 6.0);
        p = p * r + (REAL)0.5;
        p = p * r + (REAL)1;
        p = p * r + (REAL)1;
        double td = (double)t, sd;
        uint64_t bits;
        memcpy(&bits, &td, sizeof bits);
        bits = (bits + 1023u) << 52;
        memcpy(&sd, &bits, sizeof sd);
        scale = (REAL)sd;
    }
    const REAL e = p * scale;
    return y != y ? y : y > hi ? (REAL)HUGE_VAL : y < lo ? (REAL)0 : e;
}

/* 1 / (1 + e^-z), from e = e^{-|z|} <= 1 so that nothing overflows (the twin's formula) */
static inline REAL SFX(gm_sigmoid)(REAL z)
{
    const REAL e = SFX(gm_exp)(z < 0 ? z : -z);
    return (z >= 0 ? (REAL)1 : e) / ((REAL)1 + e);
}

static inline REAL SFX(gm_tanh)(REAL x)
{
    const REAL a = x < 0 ? -x : x, s = x * x;
    REAL q;
    if (sizeof(REAL) == sizeof(float)) {
        q = (REAL)0.00229274481617814234315;
        q = q * s + (REAL)-0.00834394551583915204801;
        q = q * s + (REAL)0.0217689186510282101515;
        q = q * s + (REAL)-0.0539592595772045427445;
        q = q * s + (REAL)0.133333035569157417657;
        q = q * s + (REAL)-0.333333331721403616383;
    } else {
        q = (REAL)0.00000648516348279311314997;
        q = q * s + (REAL)-0.0000312011014257974000326;
        q = q * s + (REAL)0.0000925711612955676827068;
        q = q * s + (REAL)-0.000237590649605556195509;
        q = q * s + (REAL)0.000589660657775704334703;
        q = q * s + (REAL)-0.00145577541204780551036;
        q = q * s + (REAL)0.00359212175115496226949;
        q = q * s + (REAL)-0.00886323510324087792496;
        q = q * s + (REAL)0.0218694885190083057558;
        q = q * s + (REAL)-0.0539682539678969916896;
        q = q * s + (REAL)0.133333333333330416022;
        q = q * s + (REAL)-0.333333333333333329379;
    }
    const REAL small = x + x * (s * q);
    const REAL big = (REAL)1 - (REAL)2 / (SFX(gm_exp)((REAL)2 * a) + (REAL)1);
    return a < (REAL)0.625 ? small : x < 0 ? -big : big;
}
