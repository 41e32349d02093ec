// A host vector copied into a new buffer of a backend's memory: the tests' one way to put their
// inputs on a backend.
#pragma once
#include <vector>

#include "backend/backend.h"

namespace skillrun::testing {

template <class T>
Buffer<T> on(Backend& backend, const std::vector<T>& host) {
  Buffer<T> b(backend, host.size());
  b.upload(host);
  return b;
}

}  // namespace skillrun::testing
