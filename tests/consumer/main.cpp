// The original notebook's asserts, as a user of the installed package writes them; and
// every installed header, each of which must compile on its own with nothing but the
// installed set (no internal header is installed or reachable).
#include <gpucredit/csv.hpp>
#include <gpucredit/engine.hpp>
#include <gpucredit/error.hpp>
#include <gpucredit/events.hpp>
#include <gpucredit/gpu_credit.hpp>
#include <gpucredit/ledger.hpp>
#include <gpucredit/types.hpp>
#include <gpucredit/version.hpp>

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                              \
    }                                                            \
  } while (0)

int main() {
  using std::nullopt;
  {
    gpucredit::GPUCredit gpuCredit;
    gpuCredit.addCredit("microsoft", 10, 10, 30);
    CHECK(gpuCredit.getBalance("microsoft", 0) == nullopt);
    CHECK(gpuCredit.getBalance("microsoft", 10) == 10);
    CHECK(gpuCredit.getBalance("microsoft", 40) == 10);
    CHECK(gpuCredit.getBalance("microsoft", 41) == nullopt);
  }
  {
    gpucredit::GPUCredit gpuCredit;
    gpuCredit.addCredit("amazon", 40, 10, 50);
    gpuCredit.useCredit("amazon", 30, 30);
    CHECK(gpuCredit.getBalance("amazon", 40) == 10);
    gpuCredit.addCredit("amazon", 20, 60, 10);
    CHECK(gpuCredit.getBalance("amazon", 60) == 30);
    CHECK(gpuCredit.getBalance("amazon", 61) == 20);
    CHECK(gpuCredit.getBalance("amazon", 70) == 20);
    CHECK(gpuCredit.getBalance("amazon", 71) == nullopt);
  }
  {
    gpucredit::GPUCredit gpuCredit;
    gpuCredit.addCredit("openai", 10, 10, 30);
    gpuCredit.useCredit("openai", 10, 100000000);
    CHECK(gpuCredit.getBalance("openai", 10) == nullopt);
    gpuCredit.addCredit("openai", 10, 20, 10);
    CHECK(gpuCredit.getBalance("openai", 20) == 10);
  }
  std::puts("consumer: seed asserts passed");
  return 0;
}
