// MPI for wallsim: the world of ranks when wallsim runs under `mpirun` (Open MPI), one rank
// otherwise, and work items spread over the ranks with dynamic load balancing.
//
// Every rank runs the whole command; the work of search (plans), sweep (points), reliability
// (Monte Carlo trials) and validate (cases) is split: rank 0 hands out chunks of item indices
// as ranks ask for them (between its own items, so it works too), and the results come back
// to every rank in index order. Output is therefore byte-identical for any number of ranks,
// and rank 0 alone prints and writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <functional>
#include <string>
#include <vector>

#include "collectives/flow_model.hpp"

namespace wallsim::engine {

/// The MPI world. MPI is initialized only when the process was started by an MPI launcher
/// (Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMIx/PMI variables are accepted too), so a
/// plain `wallsim` runs without it.
class World {
 public:
  /// Initializes MPI if launched by mpirun; one per process (main owns it).
  World(int* argc, char*** argv);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  /// The process's world (rank 0 of 1 when there is no World or no MPI).
  static const World& get();
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] bool root() const { return rank_ == 0; }
  /// Ends every rank of the job at once (MPI_Abort) with `code`; plain exit without MPI.
  [[noreturn]] void abort(int code) const;

 private:
  World() = default;  // the world of one rank, for processes without a World
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

/// Runs work(i) for i in [0, n) over the world's ranks, `chunk` items per request, and
/// returns every result in index order on every rank. `work` must be deterministic in i.
/// `progress` (optional) is told the fraction of items handed out. `order` (optional, a
/// permutation of 0..n-1) is the order items are handed out in (costliest first balances best);
/// it changes nothing in the results.
std::vector<std::string> distribute(std::size_t n, const std::function<std::string(std::size_t)>& work,
                                    std::size_t chunk = 1, const std::function<void(double)>& progress = {},
                                    const std::vector<std::size_t>& order = {});

/// The flow model's view of the other ranks (MPI collectives on the world), for one step's
/// flows partitioned over ranks; null when the world has one rank.
const collectives::FlowExchange* flow_exchange();

/// Appends plain values to a byte string and reads them back in the same order: results
/// crossing ranks travel as bytes.
class Packer {
 public:
  template <class T>
  Packer& put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Packer& put(const std::string& s);
  template <class T>
  Packer& put(const std::vector<T>& v) {
    put(static_cast<std::uint64_t>(v.size()));
    for (const auto& x : v) put(x);
    return *this;
  }
  [[nodiscard]] std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

class Unpacker {
 public:
  explicit Unpacker(const std::string& bytes) : bytes_(bytes) {}
  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    need(sizeof v);
    std::memcpy(&v, bytes_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string get_string();
  template <class T>
  void get(T& v) {
    v = get<T>();
  }
  void get(std::string& s) { s = get_string(); }
  template <class T>
  void get(std::vector<T>& v) {
    v.resize(get<std::uint64_t>());
    for (auto& x : v) get(x);
  }

 private:
  void need(std::size_t n) const;
  const std::string& bytes_;
  std::size_t at_ = 0;
};

}  // namespace wallsim::engine
