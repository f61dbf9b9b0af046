// FFTW 3, single (fftwf_*) and double (fftw_*) precision, from Debian's libfftw3-dev.
#include <fftw3.h>
