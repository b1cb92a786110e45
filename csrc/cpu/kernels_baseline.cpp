// The CPU kernels for any x86-64 (or other) processor.
#include "kernels.h"

#define V2V_CPU_ISA cpu_baseline
#include "kernels_impl.h"
