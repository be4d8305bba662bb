// Distributed GEMM on a wafer mesh: C = A B with n x n bf16 matrices on a p x p grid of cores
// (tiles), each holding a b x b block of A, B and C (b = ceil(n / p)), in p steps:
//
//  * SUMMA: at step k the cores of column k multicast their A block along their rows and the
//    cores of row k their B block along their columns; a step's latency is the distance to
//    the farthest receiver, max(k, p-1-k) hops.
//  * Cannon: after the initial skew, every step shifts A one core west and B one core north,
//    cyclically: the wrap-around message crosses the whole row (p-1 hops) every step.
//  * MeshGEMM (WaferLLM's interleaved cyclic shift): the cyclic order is embedded in the row
//    as the folded ring 0,2,4,...,5,3,1, so every shift is at most 2 hops.
//
// Steps are double-buffered: a step costs max(compute, communication). Cannon and MeshGEMM
// start with the skew (row i moves its A block i places, column j its B block j places; the
// p-1 messages of the farthest row share its links: (p-1) h + (p-1) block / B). Each
// algorithm picks the grid size p (up to the mesh's smaller side) that minimises its time,
// among those whose blocks fit in a core's SRAM.
//
// Routing (PLMR's R): routes one router must hold, by construction. A multicast whose root
// moves each step is one route per dimension when the router switches between its
// configurations (Cerebras fabric switches: up to four positions per color, csl-examples
// tutorial 16): SUMMA needs 2. A uniform shift needs two routes per dimension (a router both
// receives on one and sends on the other, alternating by parity); Cannon adds the wrap-around
// route through every router of the row and column: 6. MeshGEMM's 2-hop shifts go both ways
// along a row (even positions east, odd positions west), two routes each (a router relays the
// message between its neighbours on one and sends its own on the other): 8. An algorithm
// needing more routes than a router holds is invalid and says so.
#pragma once

#include <string>
#include <vector>

#include "wafer/mesh.hpp"

namespace wallsim::wafer {

enum class GemmAlgo { kSumma, kCannon, kMeshGemm };
std::string to_string(GemmAlgo a);
const std::vector<GemmAlgo>& gemm_algos();

struct GemmResult {
  GemmAlgo algo = GemmAlgo::kMeshGemm;
  bool valid = false;
  std::string why;    ///< when not valid
  int grid = 0;       ///< p: the p x p cores (tiles) used
  long long block = 0;
  Seconds time, compute, comm;  ///< comm: the communication not hidden by compute
  Seconds hop_latency;          ///< of all steps' critical messages: the distance part
  Bytes sram_per_core;
  int routes = 0;               ///< per router
  double tflops = 0;            ///< 2 n^3 / time
  /// Bytes times the links they cross on the mesh (each link counted per crossing): the
  /// mesh's share of the energy is this times its energy per bit.
  Bytes link_bytes;
};

/// Routes per router the algorithm needs (see above).
int gemm_routes(GemmAlgo a);

/// A GEMM's shape: (rows x depth) times (depth x cols).
struct GemmShape {
  long long rows = 0, depth = 0, cols = 0;
};

/// The algorithm on an explicit p x p grid (Errors: p larger than the mesh; results invalid
/// when the blocks do not fit in SRAM or the routes exceed the router's entries). Each core
/// holds a (rows/p x depth/p) block of A, (depth/p x cols/p) of B and (rows/p x cols/p) of C.
GemmResult gemm_on_grid(const MeshSpec& m, GemmAlgo a, GemmShape g, int p);
inline GemmResult gemm_on_grid(const MeshSpec& m, GemmAlgo a, long long n, int p) {
  return gemm_on_grid(m, a, GemmShape{n, n, n}, p);
}

/// The algorithm on its best grid (the fastest valid p); invalid, with the reason, when no
/// grid is valid.
GemmResult gemm(const MeshSpec& m, GemmAlgo a, GemmShape g);
inline GemmResult gemm(const MeshSpec& m, GemmAlgo a, long long n) { return gemm(m, a, GemmShape{n, n, n}); }

/// The fastest valid algorithm on its best grid (as a tuner picks); invalid when none runs.
GemmResult best_gemm(const MeshSpec& m, GemmShape g);

}  // namespace wallsim::wafer
