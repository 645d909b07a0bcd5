// The CUDA engine's source, compiled by the host compiler with Thrust's OpenMP device
// system, so that the device logic runs (and is tested) on machines without a GPU.
#include "../../cuda/engine.cu"
