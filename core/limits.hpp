// Limits on what a user's numbers may ask for, and checked arithmetic for the counts made from
// them. A scenario's numbers become counts and indices (GPUs, layers, micro-batches, trials,
// nodes, links); past these limits memory or time, not wallsim, would decide the outcome, so
// each is an Error naming the key, raised before anything is allocated. Every limit is far
// above real use and is listed in README.md ("Limits").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wallsim::limits {

/// GPUs (wafers) of a cluster, cluster.nodes x cluster.gpus_per_node; also the largest parallel
/// degree. 2^24: 160 times the largest cluster published (100k GPUs), and rank ids fit 32 bits.
constexpr long long kMaxGpus = 1LL << 24;
/// Transformer layers (model.layers): 128 times Llama 3 405B's 126.
constexpr long long kMaxLayers = 16'384;
/// Widths (model.hidden, ffn, moe_ffn, vocab, head_dim, latent ranks): 2^24, 300 times
/// Llama 3 405B's hidden 16,384 and 64 times its 128K vocabulary.
constexpr long long kMaxWidth = 1LL << 24;
/// Attention heads and key-value heads.
constexpr long long kMaxHeads = 65'536;
/// Routed and shared experts per MoE layer, and top_k: 256 times DeepSeek-V3's 256.
constexpr long long kMaxExperts = 65'536;
/// Sequence length in tokens (training.seq_len, model.seq_len): 2^24, above 10M-token contexts.
constexpr long long kMaxSeqLen = 1LL << 24;
/// Sequences per step (training.global_batch, micro_batch): 2^24, 8,192 times Llama 3's 2,048.
constexpr long long kMaxBatch = 1LL << 24;
/// Tokens per step, global_batch x seq_len: 2^40, 65,000 times Llama 3's 16M.
constexpr long long kMaxTokensPerStep = 1LL << 40;
/// Micro-batches per pipeline per step: the step programs hold a few ops per micro-batch, stage
/// and chunk, so pp x vpp x micro-batches is bounded (2^22 = 4,194,304 pipeline passes; Llama 3
/// 405B: 16 stages x 16 micro-batches x vpp 8 = 2,048).
constexpr long long kMaxPipelinePasses = 1LL << 22;
/// Monte Carlo trials (--trials): each keeps its result until the means are taken.
constexpr long long kMaxTrials = 100'000;
/// Failure events the whole-run Monte Carlo simulates (expected interruptions per trial x
/// trials, search included): its time grows with them, about 5 x 10^6 a second on one core
/// (reliability-64gpu at 10^15 tokens: 8.5 x 10^7 events in 17 s), so at most about 20 s.
/// Llama 3 405B's 15.6T tokens on 16,384 H100s: 930 per trial, 7 x 10^6 events, 2.3 s.
constexpr double kMaxRunEvents = 1e8;

/// a x b for counts; an Error naming `key` when it exceeds `max` (or overflows). `what` names
/// the product in the message ("tp·pp·cp").
long long checked_mul(long long a, long long b, long long max, std::string_view key, std::string_view what);

/// Throws an Error naming `key`: "`value` is out of range (at most `max`: `why`)".
[[noreturn]] void out_of_range(std::string_view key, std::string_view value, long long max, std::string_view why);

/// A count with thousands separators: 16,777,216.
std::string with_commas(long long n);

}  // namespace wallsim::limits
