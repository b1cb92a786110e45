// Runs the CUDA kernels' launches on the CPU (shim.h) and the emulated library's test hooks.
//
// Each block's threads run as fibers (ucontext) of the calling OS thread, in a shuffled order; a thread runs
// until it exits or reaches __syncthreads(), where it yields. When every thread of the block has yielded or
// exited, the ones waiting at the barrier resume, in a new shuffled order. So a kernel sees a barrier as on a
// GPU (no thread passes it before all have reached it), and a result that depends on the order of the threads
// (a race, a missing barrier) changes with the seed. A barrier that some threads of a block reach while others
// have exited is an error, as it is undefined behaviour on a GPU. Blocks run one after another, in a shuffled
// order too.
#include <c10/util/Exception.h>
#include <torch/library.h>
#include <ucontext.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "shim.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define V2V_ASAN_FIBERS 1
#endif

namespace cuda_emulation {

thread_local ThreadCoordinates current;

namespace {

// Test hooks (set through the ops at the end of this file).
std::mt19937_64 thread_order(0);
bool force_64bit = false;
bool honour_barriers = true;
int64_t launches = 0, threads_run = 0;

// Generous for the kernels' frames, also under AddressSanitizer; only the pages touched are committed.
constexpr size_t kStackSize = 256 * 1024;

enum class FiberState { kRunnable, kAtBarrier, kDone };

struct Fiber {
  ucontext_t context;
  FiberState state;
  unsigned int thread;
  void* fake_stack = nullptr;  // AddressSanitizer's bookkeeping across switches
};

struct Block {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  char* stacks;
  const std::function<void()>* body;
  Fiber* running = nullptr;
  std::exception_ptr error;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
};

thread_local Block* active = nullptr;

void enter_fiber(Block& block, Fiber& fiber) {
  block.running = &fiber;
  current.thread_idx = dim3{fiber.thread, 0, 0};
#ifdef V2V_ASAN_FIBERS
  void* fake_stack = nullptr;
  const size_t index = static_cast<size_t>(&fiber - block.fibers.data());
  __sanitizer_start_switch_fiber(&fake_stack, block.stacks + index * kStackSize, kStackSize);
  swapcontext(&block.scheduler, &fiber.context);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
  swapcontext(&block.scheduler, &fiber.context);
#endif
}

void fiber_main() {
  Block& block = *active;
  Fiber& self = *block.running;
#ifdef V2V_ASAN_FIBERS
  __sanitizer_finish_switch_fiber(nullptr, &block.scheduler_stack_bottom, &block.scheduler_stack_size);
#endif
  try {
    (*block.body)();
  } catch (...) {
    if (!block.error) block.error = std::current_exception();
  }
  self.state = FiberState::kDone;
#ifdef V2V_ASAN_FIBERS
  __sanitizer_start_switch_fiber(nullptr, block.scheduler_stack_bottom, block.scheduler_stack_size);
#endif
  // Returning resumes uc_link, the scheduler.
}

void run_block(Block& block) {
  for (size_t t = 0; t < block.fibers.size(); ++t) {
    Fiber& fiber = block.fibers[t];
    fiber.state = FiberState::kRunnable;
    fiber.thread = static_cast<unsigned int>(t);
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = block.stacks + t * kStackSize;
    fiber.context.uc_stack.ss_size = kStackSize;
    fiber.context.uc_link = &block.scheduler;
    makecontext(&fiber.context, fiber_main, 0);
  }
  std::vector<size_t> order;
  while (true) {
    order.clear();
    for (size_t t = 0; t < block.fibers.size(); ++t) {
      if (block.fibers[t].state == FiberState::kRunnable) order.push_back(t);
    }
    if (order.empty()) break;
    std::shuffle(order.begin(), order.end(), thread_order);
    for (const size_t t : order) enter_fiber(block, block.fibers[t]);
    if (block.error) std::rethrow_exception(block.error);
    size_t waiting = 0, done = 0;
    for (Fiber& fiber : block.fibers) {
      waiting += fiber.state == FiberState::kAtBarrier;
      done += fiber.state == FiberState::kDone;
    }
    TORCH_CHECK(waiting == 0 || done == 0, "emulated CUDA kernel: block ", current.block_idx.x, " has ", waiting,
                " threads waiting at __syncthreads() and ", done,
                " that exited without reaching it (undefined behaviour on a GPU)");
    for (Fiber& fiber : block.fibers) {
      if (fiber.state == FiberState::kAtBarrier) fiber.state = FiberState::kRunnable;
    }
  }
}

}  // namespace

void run_grid(int64_t blocks, int64_t threads, const std::function<void()>& thread_body) {
  TORCH_CHECK(active == nullptr, "emulated CUDA kernel launched from inside a kernel");
  std::unique_ptr<char[]> stacks(new char[static_cast<size_t>(threads) * kStackSize]);
  Block block;
  block.fibers.resize(static_cast<size_t>(threads));
  block.stacks = stacks.get();
  block.body = &thread_body;
  std::vector<int64_t> block_order(static_cast<size_t>(blocks));
  std::iota(block_order.begin(), block_order.end(), int64_t{0});
  std::shuffle(block_order.begin(), block_order.end(), thread_order);
  current.block_dim = dim3{static_cast<unsigned int>(threads), 1, 1};
  current.grid_dim = dim3{static_cast<unsigned int>(blocks), 1, 1};
  active = &block;
  try {
    for (const int64_t b : block_order) {
      current.block_idx = dim3{static_cast<unsigned int>(b), 0, 0};
      run_block(block);
    }
  } catch (...) {
    active = nullptr;
    throw;
  }
  active = nullptr;
  ++launches;
  threads_run += blocks * threads;
}

void sync_threads() {
  TORCH_CHECK(active != nullptr && active->running != nullptr, "__syncthreads() outside an emulated kernel");
  if (!honour_barriers) return;
  Block& block = *active;
  Fiber& self = *block.running;
  self.state = FiberState::kAtBarrier;
#ifdef V2V_ASAN_FIBERS
  __sanitizer_start_switch_fiber(&self.fake_stack, block.scheduler_stack_bottom, block.scheduler_stack_size);
  swapcontext(&self.context, &block.scheduler);
  __sanitizer_finish_switch_fiber(self.fake_stack, &block.scheduler_stack_bottom, &block.scheduler_stack_size);
#else
  swapcontext(&self.context, &block.scheduler);
#endif
}

bool force_64bit_offsets() { return force_64bit; }

}  // namespace cuda_emulation

// The test hooks, in the emulated op namespace.
TORCH_LIBRARY_FRAGMENT(vid2vid_fast_cuda_emulated, m) {
  // The seed of the thread order of the launches that follow.
  m.def("emulation_seed(int seed) -> ()", [](int64_t seed) { cuda_emulation::thread_order.seed(seed); });
  // Sends every launch down the 64-bit offset path, however small its tensors.
  m.def("emulation_force_64bit_offsets(bool force) -> ()", [](bool force) { cuda_emulation::force_64bit = force; });
  // false: __syncthreads() does nothing, as if the kernels had no barrier (to show the tests would catch it).
  m.def("emulation_honour_barriers(bool honour) -> ()", [](bool honour) { cuda_emulation::honour_barriers = honour; });
  // (launches, threads run) since the library was loaded.
  m.def("emulation_counts() -> int[]", []() {
    return std::vector<int64_t>{cuda_emulation::launches, cuda_emulation::threads_run};
  });
}
