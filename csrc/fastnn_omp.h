/* fastnn_omp.h -- OpenMP when the compiler has it, serial stubs when it does not (scikit-learn's shim, in C).
 * Kernels use plain pragmas, which a compiler without OpenMP ignores, so one source builds both ways. */
#ifndef FASTNN_OMP_H
#define FASTNN_OMP_H

#ifdef _OPENMP
#include <omp.h>
#define FASTNN_HAVE_OPENMP 1
#else
#define FASTNN_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#endif /* FASTNN_OMP_H */
