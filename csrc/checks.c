/* checks.c -- whole-array checks on the inputs, run before any kernel touches a network (twin:
 * fastnn/_py/checks.py). Threaded and without temporaries: a large training set is checked once per fit and
 * every batch given to predict is checked, so this runs at memory speed rather than at NumPy's isfinite speed. */
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "checks_impl.h"
#include "fastnn_real.h"
