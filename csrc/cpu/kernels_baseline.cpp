// The CPU kernels for any x86-64 (or other) processor.
#include "prelude.h"

#define V2V_CPU_ISA cpu_baseline
#include "ops_impl.h"
