"""Import time of fastnn in a fresh interpreter (includes building the NetHandle machinery and the BLAS
self-test of the C backend)."""


def timeraw_import_fastnn():
    return "import fastnn"
