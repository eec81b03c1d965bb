/* fastnn_real.h -- instantiates the template file FASTNN_TEMPLATE once for float and once for double.
 * In the template, REAL is the element type, SFX(name) appends _f32 / _f64, and R_EXP etc. are the
 * libm functions of that precision. */
#ifndef FASTNN_TEMPLATE
#error "define FASTNN_TEMPLATE before including fastnn_real.h"
#endif
#include <math.h>

#define REAL float
#define SFX(name) name##_f32
#define R_EXP expf
#define R_LOG logf
#define R_LOG1P log1pf
#define R_TANH tanhf
#define R_SQRT sqrtf
#include FASTNN_TEMPLATE
#undef REAL
#undef SFX
#undef R_EXP
#undef R_LOG
#undef R_LOG1P
#undef R_TANH
#undef R_SQRT

#define REAL double
#define SFX(name) name##_f64
#define R_EXP exp
#define R_LOG log
#define R_LOG1P log1p
#define R_TANH tanh
#define R_SQRT sqrt
#include FASTNN_TEMPLATE
#undef REAL
#undef SFX
#undef R_EXP
#undef R_LOG
#undef R_LOG1P
#undef R_TANH
#undef R_SQRT
