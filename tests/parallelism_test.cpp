// Model math, plan rules and pipeline schedules against published counts and closed forms.
#include <map>
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <tuple>

#include "core/error.hpp"
#include "parallelism/layout.hpp"
#include "parallelism/model_math.hpp"
#include "parallelism/pipeline.hpp"
#include "parallelism/plan.hpp"
#include "test_support.hpp"

using namespace wallsim;
using namespace wallsim::parallelism;
using Catch::Matchers::Contains;

namespace {
ModelSpec preset_model(const std::string& name) {
  return parse_model(Config(YAML::Node(name), "model"), test::presets());
}
/// One sequence of `seq` tokens on one GPU, no parallelism.
Shard one_sequence(long long seq) {
  Shard s;
  s.micro_batch = 1;
  s.seq_len = seq;
  return s;
}
Scenario scenario(const std::string& extra, const std::vector<std::string>& sets = {}) {
  const std::string text = "cluster: {gpu: h100-sxm, nodes: 128, gpus_per_node: 8,\n"
                           "  scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 16}}\n"
                           "model: llama3-70b\ntraining: {seq_len: 8192, global_batch: 512}\n" + extra;
  return parse_scenario(text, "t.yaml", sets, test::presets());
}
}  // namespace

TEST_CASE("parallelism::model_math parameter counts equal the published ones", "[parallelism]") {
  SECTION("Llama 3 8B, hand-derived: 2Vh + L(h(a+2g)d + adh + 3hf + 2h) + h") {
    // 2*128256*4096 + 32*(4096*48*128 + 4096*4096 + 3*4096*14336 + 8192) + 4096
    CHECK(count_params(preset_model("llama3-8b")).total == 8'030'261'248.0);
  }
  SECTION("Llama 3 70B and 405B") {
    CHECK(count_params(preset_model("llama3-70b")).total == 70'553'706'496.0);
    CHECK(count_params(preset_model("llama3-405b")).total == 405'853'388'800.0);
  }
  SECTION("every model preset within 2% of the count its source states") {
    for (const auto& name : {"gpt3-175b", "llama2-7b", "llama2-13b", "llama2-70b", "mixtral-8x7b",
                             "mixtral-8x22b", "deepseek-v3"}) {
      const ModelSpec m = preset_model(name);
      INFO(name);
      CHECK(count_params(m).total == Approx(m.published_params).epsilon(0.02));
    }
  }
  SECTION("DeepSeek-V3's multi-token-prediction module: its layer, a 2h x h projection and 3 norms; 11.5B published") {
    // The tt-metal README of DeepSeek-V3's weights: "11.5B unique parameters (excluding the
    // shared 0.9B Embedding and 0.9B output Head)"; it is not in the 671B.
    const auto pc = count_params(preset_model("deepseek-v3"));
    CHECK(pc.mtp - pc.moe_layer == 2.0 * 7168 * 7168 + 3.0 * 7168);  // 102,781,952
    CHECK(pc.mtp_experts == pc.moe_experts);
    CHECK(pc.mtp == Approx(11.5e9).epsilon(0.01));
  }
  SECTION("MoE active parameters: Mixtral 8x7B passes 2 of 8 experts, about 12.9B") {
    CHECK(count_params(preset_model("mixtral-8x7b")).active == Approx(12.9e9).epsilon(0.01));
  }
}

TEST_CASE("parallelism::model_math 6NT within the margin the attention and embedding explain", "[parallelism]") {
  // Forward FLOPs per token = 2 (N - embedding) + causal attention 2 L a (2d) (s+1)/2, so
  // 3x forward = 6N T - 6 V h T + attention. For Llama 3 70B at s = 8192:
  const ModelSpec m = preset_model("llama3-70b");
  const double s = 8192, n = count_params(m).total;
  const double attention = 2.0 * 80 * 64 * 256 * (s + 1) / 2;  // per token, forward
  const double expect = 2.0 * (n - 128256.0 * 8192 - 8192.0 * 161) + attention;  // norms do no GEMM
  const double fwd = model_forward_flops_per_sequence(m, 8192).value() / s;
  CHECK(fwd == Approx(expect).epsilon(1e-6));
  CHECK(3.0 * fwd / (6.0 * n) == Approx(1.0).margin(0.07));  // stated margin: within 7% of 6N
}

namespace {
/// One sequence of 4,096 tokens, EP 4 (Mixtral's experts over 4 GPUs).
Shard ep4_shard() {
  Shard s;
  s.micro_batch = 1;
  s.seq_len = 4096;
  s.ep = 4;
  return s;
}
}  // namespace

TEST_CASE("parallelism::model_math MoE experts: capacity padding is hardware work, not model FLOPs", "[parallelism]") {
  // Mixtral 8x22B (8 experts, top 2, SwiGLU moe_ffn 16384, h 6144), EP 4: each GPU runs a
  // grouped GEMM over its 2 experts on tokens x top_k x capacity_factor rows.
  const ModelSpec m = preset_model("mixtral-8x22b");
  Shard s = ep4_shard();
  auto expert_flops = [&](double cf, bool model) {
    s.capacity_factor = cf;
    double f = 0;
    for (const auto& k : layer_forward(m, 0, s)) {
      if (k.name.rfind("expert", 0) == 0) {
        f += k.flops.value() * (model ? k.useful : 1.0);
        CHECK(k.batch == 2.0);
        CHECK(k.rows == Approx(4096.0 * 2 * cf / 2));
      }
    }
    return f;
  };
  const double model_one = expert_flops(1.0, true);
  // Up/gate (2 x h x f) and down (f x h) on 4096 x 2 routed rows: 2 x 8192 x 3 x 6144 x 16384.
  CHECK(model_one == Approx(2.0 * 8192 * 3 * 6144 * 16384.0));
  CHECK(expert_flops(1.25, true) == Approx(model_one));
  CHECK(expert_flops(1.25, false) == Approx(1.25 * model_one));
}

TEST_CASE("parallelism::model_math MoE token permute and unpermute: HBM passes over the routed rows, each way", "[parallelism]") {
  // Mixtral 8x22B (h 6144, top 2, 8 experts), EP 4 (2 experts a GPU), TP 2 with SP (expert TP
  // 2), 4,096 tokens, capacity 1.25, bf16. A GPU's 2,048 tokens (SP) send 2,048 x 2 x 1.25 =
  // 5,120 rows; its experts get the TP group's 4,096 x 2 x 1.25 = 10,240 rows (each EP rank
  // sends its share, each GPU of the TP group runs its half of every expert on all of them).
  const ModelSpec m = preset_model("mixtral-8x22b");
  Shard s = ep4_shard();
  s.tp = 2;
  s.sp = true;
  s.capacity_factor = 1.25;
  const double row = 2.0 * 6144;  // bytes
  auto layer = [&](std::map<std::string, std::size_t>& at) {
    const auto ks = layer_forward(m, 0, s);
    for (std::size_t x = 0; x < ks.size(); ++x) at[ks[x].name] = x;
    return ks;
  };
  // Reads and writes of a kernel and of its backward, in rows.
  auto rows = [&](const std::vector<Kernel>& ks, std::map<std::string, std::size_t>& at, const std::string& name) {
    REQUIRE(at.count(name) == 1);
    REQUIRE(at.count(name + " (backward)") == 1);
    const Kernel &f = ks[at[name]], &b = ks[at[name + " (backward)"]];
    CHECK((f.pass == KernelPass::kForward && b.pass == KernelPass::kBackward && b.backward && !f.backward));
    return std::array<double, 4>{(f.bytes - f.written).value() / row, f.written.value() / row,
                                 (b.bytes - b.written).value() / row, b.written.value() / row};
  };
  // All-to-all: after the combine, each of the 2,048 tokens gets its rows back, padding
  // included: 5,120 rows read, 2,048 written; the backward broadcasts the 2,048 back to the 5,120.
  const std::array<double, 4> unpermute{5120, 2048, 2048, 5120};

  SECTION("DeepEP (the flex dispatcher): the dispatch, the permute of the 10,240 rows received, the experts, the rows put back, the combine") {
    s.deepep = true;
    std::map<std::string, std::size_t> at;
    const auto ks = layer(at);
    CHECK(rows(ks, at, "token permute") == std::array<double, 4>{10240, 10240, 10240, 10240});
    CHECK(rows(ks, at, "token unpermute") == std::array<double, 4>{10240, 10240, 10240, 10240});
    CHECK(at.count("sort chunks") == 0);
    CHECK(ks[at["token permute"]].expert_in);  // the dispatch is before the permute
    CHECK(at["token permute"] < at["expert up/gate"]);
    CHECK(at["expert down"] < at["token unpermute"]);
    CHECK(ks[at["token unpermute (backward)"]].expert_out);  // put back, then combined
    std::size_t combines = 0;
    for (const auto& k : ks) combines += k.expert_out;
    CHECK(combines == 1);
  }
  SECTION("all-to-all: the permute of the 5,120 rows sent, the dispatch, the received chunks sorted by expert") {
    std::map<std::string, std::size_t> at;
    const auto ks = layer(at);
    CHECK(rows(ks, at, "token permute") == std::array<double, 4>{2048, 5120, 5120, 2048});
    CHECK(rows(ks, at, "sort chunks") == std::array<double, 4>{10240, 10240, 10240, 10240});
    CHECK(rows(ks, at, "sort chunks back") == std::array<double, 4>{10240, 10240, 10240, 10240});
    CHECK(rows(ks, at, "token unpermute") == unpermute);
    CHECK(!ks[at["token permute"]].expert_in);
    CHECK(ks[at["sort chunks"]].expert_in);  // the dispatch is after the permute, before the sort
    CHECK(at["token permute"] < at["sort chunks"]);
    CHECK(at["sort chunks"] < at["expert up/gate"]);
    CHECK(at["expert down"] < at["sort chunks back"]);
    CHECK(ks[at["sort chunks back (backward)"]].expert_out);  // sorted back, then combined
    CHECK(at["sort chunks back (backward)"] + 1 == at["token unpermute"]);
    std::size_t dispatches = 0, combines = 0;
    for (const auto& k : ks) dispatches += k.expert_in, combines += k.expert_out;
    CHECK((dispatches == 1 && combines == 1));
  }
  SECTION("all-to-all with one expert a GPU (EP 8): nothing to sort, the dispatch straight into the experts") {
    s.ep = 8;
    std::map<std::string, std::size_t> at;
    const auto ks = layer(at);
    CHECK(at.count("sort chunks") == 0);
    CHECK(at.count("sort chunks back") == 0);
    // What a GPU sends does not depend on EP.
    CHECK(rows(ks, at, "token permute") == std::array<double, 4>{2048, 5120, 5120, 2048});
    CHECK(ks[at["token permute"] + 2].expert_in);
    CHECK(at["token permute"] + 2 == at["expert up/gate"]);
    CHECK(ks[at["token unpermute"] - 1].expert_out);
  }
}

TEST_CASE("parallelism::model_math eager PyTorch runs transformers' Llama ops one by one, fused runs Megatron's kernels",
          "[parallelism]") {
  // Llama 3 8B (h 4096, 32 heads, 8 KV heads of 128, SwiGLU ffn 14336), one sequence of 1024.
  const ModelSpec m = preset_model("llama3-8b");
  Shard s = one_sequence(1024);
  const double t = 1024, h = 4096, e = t * h, q = t * 32 * 128, kv = t * 8 * 128, f = 14336;
  auto total = [](const std::vector<Kernel>& ks, const std::string& prefix, KernelKind kind) {
    double bytes = 0, flops = 0;
    int n = 0;
    for (const auto& k : ks) {
      if (k.kind != kind || k.name.rfind(prefix, 0) != 0) continue;
      bytes += k.bytes.value();
      flops += k.flops.value();
      ++n;
    }
    return std::tuple{n, bytes, flops};
  };
  const auto fused = layer_forward(m, 0, s);
  s.eager = true;
  const auto eager = layer_forward(m, 0, s);
  using K = KernelKind;
  // RMSNorm fused: read and write the bf16 values (4 bytes each). Eager, by hand: to fp32 (2 + 4),
  // pow (4 + 4), mean (4, and 4 per token), + eps and rsqrt (4 + 4 per token each), scale
  // (4 + 4 per token, 4), to bf16 (4 + 2), weight (2 + 2): 36 bytes a value and 24 a token.
  CHECK(total(fused, "input norm", K::kElementwise) == std::tuple{1, 4 * e, e});
  CHECK(std::get<0>(total(eager, "input norm", K::kElementwise)) == 8);
  CHECK(std::get<1>(total(eager, "input norm", K::kElementwise)) == Approx(36 * e + 24 * t));
  // RoPE on q and k: fused one pass each (4 bytes a value); eager x cos (4), the negated half
  // (2), cat (4), x sin (4), sum (6): 20 bytes a value, five kernels each.
  CHECK(std::get<1>(total(fused, "rotary q", K::kElementwise)) == Approx(4 * q));
  CHECK(std::get<1>(total(fused, "rotary k", K::kElementwise)) == Approx(4 * kv));
  CHECK(std::get<0>(total(eager, "rotary", K::kElementwise)) == 10);
  CHECK(std::get<1>(total(eager, "rotary", K::kElementwise)) == Approx(20 * (q + kv)));
  // SwiGLU: fused reads gate and up, writes one (6 bytes per inner value); eager silu (4) and
  // the product (6).
  CHECK(std::get<1>(total(fused, "swiglu", K::kElementwise)) == Approx(6 * t * f));
  CHECK(std::get<1>(total(eager, "silu", K::kElementwise)) == Approx(10 * t * f));
  // The residual adds: fused into the post-attention norm, apart in eager.
  CHECK(std::get<1>(total(fused, "residual + post-attention norm", K::kElementwise)) == Approx(6 * e));
  CHECK(std::get<1>(total(eager, "residual", K::kElementwise)) == Approx(2 * 6 * e));
  // The same GEMM FLOPs either way: eager splits Q/K/V and gate/up into separate GEMMs.
  CHECK(std::get<2>(total(eager, "", K::kGemm)) == Approx(std::get<2>(total(fused, "", K::kGemm))));
  CHECK(std::get<0>(total(eager, "", K::kGemm)) == std::get<0>(total(fused, "", K::kGemm)) + 3);
  // The blocks' edges stay marked: a gather after each norm, a reduction before each residual.
  int opens = 0, closes = 0;
  for (const auto& k : eager) {
    opens += k.opens_block;
    closes += k.closes_block;
  }
  CHECK(opens == 2);
  CHECK(closes == 2);
  CHECK(eager[7].opens_block);  // the input norm's last op
  // GPT (LayerNorm, learned positions): a LayerNorm is one kernel even in eager PyTorch, no RoPE.
  const ModelSpec gpt = preset_model("gpt3-175b");
  CHECK(std::get<0>(total(layer_forward(gpt, 0, s), "input norm", K::kElementwise)) == 1);
  CHECK(std::get<0>(total(layer_forward(gpt, 0, s), "rotary", K::kElementwise)) == 0);
  // The norm flag (a norm's backward also sums the weight's gradient over the tokens): every
  // fused norm and GPT's one-kernel LayerNorm carry it, none of eager RMSNorm's eight ops.
  auto norms = [](const std::vector<Kernel>& ks) {
    int n = 0;
    for (const auto& k : ks) n += k.norm;
    return n;
  };
  CHECK(norms(fused) == 2);  // input norm; residual + post-attention norm
  CHECK(norms(eager) == 0);
  CHECK(norms(layer_forward(gpt, 0, s)) == 2);
  s.eager = false;
  CHECK(norms(head_forward(m, s)) == 1);  // the final norm
  // The LM head and the router stay in bf16 under FP8; the layers' linears do not.
  s.gemm_input_bytes = 1.0;
  for (const auto& k : head_forward(m, s)) CHECK(k.bf16_only == (k.name == "lm head"));
  const auto moe = layer_forward(preset_model("mixtral-8x22b"), 0, s);
  for (const auto& k : moe) CHECK(k.bf16_only == (k.name == "router"));
  s.gemm_input_bytes = 2.0;
  CHECK(norms(mtp_forward(preset_model("deepseek-v3"), s)) == 2);
  for (const auto& k : fused) CHECK(elementwise_backward(k).backward);
}

TEST_CASE("parallelism::model_math FP8 casts each linear layer's input and output gradient, as Transformer Engine does",
          "[parallelism]") {
  // Llama 3 8B, one sequence of 1024, fp8 GEMM inputs: the output projection's and the MLP down
  // projection's inputs are cast in forward (the QKV and up/gate inputs come from norms, which
  // write FP8 themselves); every linear layer's output gradient is cast in backward. A cast reads
  // 2 bytes a value and writes two 1-byte copies (row- and column-wise).
  const ModelSpec m = preset_model("llama3-8b");
  Shard s = one_sequence(1024);
  s.gemm_input_bytes = 1.0;
  const double t = 1024, h = 4096, ad = 32 * 128, gd = 8 * 128, f = 14336;
  double fwd = 0, bwd = 0;
  int nf = 0, nb = 0;
  for (const auto& k : layer_forward(m, 0, s)) {
    if (k.pass == KernelPass::kForward) {
      fwd += k.bytes.value();
      ++nf;
    } else if (k.pass == KernelPass::kBackward) {
      bwd += k.bytes.value();
      ++nb;
    } else {
      CHECK(k.name.rfind("fp8", 0) != 0);
    }
  }
  CHECK(nf == 2);
  CHECK(fwd == Approx(4 * t * (ad + f)));
  CHECK(nb == 4);
  CHECK(bwd == Approx(4 * t * ((ad + 2 * gd) + h + 2 * f + h)));
  // BF16: no casts.
  s.gemm_input_bytes = 2.0;
  for (const auto& k : layer_forward(m, 0, s)) CHECK(k.pass == KernelPass::kBoth);
}

TEST_CASE("parallelism::model_math activation memory equals Korthikanti et al.'s closed forms", "[parallelism]") {
  // GPT-3 175B: MHA, 4h GELU MLP, dropout; no fused attention (the paper stores the scores).
  ModelSpec m = preset_model("gpt3-175b");
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  Shard sh;
  sh.seq_len = 2048;
  sh.flash_attention = false;
  const double sbh = s * b * h;
  SECTION("no parallelism: sbh(34 + 5as/h)") {
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kNone, true).value() == Approx(sbh * (34 + 5 * a * s / h)));
  }
  sh.tp = 8;
  SECTION("tensor parallel: sbh(10 + 24/t + 5as/(ht))") {
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kNone, true).value() ==
          Approx(sbh * (10 + 24 / t + 5 * a * s / (h * t))));
  }
  SECTION("tensor + sequence parallel: sbh/t (34 + 5as/h)") {
    sh.sp = true;
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kNone, true).value() == Approx(sbh / t * (34 + 5 * a * s / h)));
  }
  SECTION("selective recompute + SP: 34 sbh/t") {
    sh.sp = true;
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kSelective, true).value() == Approx(34 * sbh / t));
  }
  SECTION("full recompute: 2sbh") {
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kFull, true).value() == Approx(2 * sbh));
  }
  SECTION("fp8 GEMM inputs: selective + SP keeps 27 sbh/t") {
    // The QKV and MLP inputs (2 + 2), the output projection's input (2) and the MLP down
    // projection's input (2 x 4h) drop to 1 byte per value: 34 - 1 - 1 - 1 - 4 = 27.
    sh.sp = true;
    sh.gemm_input_bytes = 1.0;
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kSelective, true).value() == Approx(27 * sbh / t));
    CHECK(layer_activation_bytes(m, 0, sh, Recompute::kFull, true).value() == Approx(2 * sbh / t));
  }
}

TEST_CASE("parallelism::model_math selective recompute by module keeps what each module does not recompute", "[parallelism]") {
  // DeepSeek-V3's first MoE layer (3) on one GPU: no TP, 4,096 tokens, fused attention, FP8
  // GEMM inputs (1 byte). Per token: h 7168, Q 128 x (128 + 64) = 24,576, K and V 24,576 +
  // 128 x 128 = 40,960, the output projection's input 16,384, MLA's latents 1,536 + 512 + 64 =
  // 2,112 (2 bytes), the routed experts' inner size 8 x 2,048 = 16,384 and their input, the
  // 8 dispatched copies of the token (8 x 7,168 at 1 byte), the shared expert's inner size 2,048.
  const ModelSpec m = preset_model("deepseek-v3");
  Shard sh;
  sh.seq_len = 4096;
  sh.gemm_input_bytes = 1.0;
  const double tokens = 4096, h = 7168, q = 24576, kv = 40960, v = 16384, lat = 2112, f = 16384;
  const double norms_in = 4 * h, norms_out = 2 * h, qkv = 2 * q + 2 * kv, act_out = f, core = 128 * 4;
  const double dispatched = 8 * h, shared = (4 + 1) * 2048.0;
  const double all = norms_in + norms_out + qkv + 2 * lat + v + 4 * f + act_out + dispatched + shared + core;  // 344,704 bytes
  auto bytes = [&](Recompute r, unsigned mods) { return layer_activation_bytes(m, 3, sh, r, false, mods).value() / tokens; };
  CHECK(bytes(Recompute::kNone, kCoreAttn) == Approx(all));
  CHECK(bytes(Recompute::kSelective, kCoreAttn) == Approx(all - core));
  CHECK(bytes(Recompute::kSelective, kLayerNorm) == Approx(all - norms_out));  // the norms' inputs stay
  CHECK(bytes(Recompute::kSelective, kMlaUpProj) == Approx(all - qkv));        // the latents stay
  CHECK(bytes(Recompute::kSelective, kMoeAct) == Approx(all - act_out));       // the SwiGLU's input stays
  // DeepSeek-V3's set (sec. 3.2.3 and 3.3.3): 182,912 bytes a token, 53 % of the whole.
  CHECK(bytes(Recompute::kSelective, kLayerNorm | kMlaUpProj | kMoeAct) == Approx(all - norms_out - qkv - act_out));
  CHECK(parse_recompute_modules({"layernorm", "moe_act"}, "k") == (kLayerNorm | kMoeAct));
  CHECK_THROWS_WITH(parse_recompute_modules({"mlp"}, "k"), Catch::Contains("'mlp' is not one of core_attn"));
  CHECK_THROWS_WITH(parse_recompute_modules({"moe_act", "moe_act"}, "k"), Catch::Contains("named twice"));
}

TEST_CASE("parallelism::plan DeepEP's share of a dispatch sent to each other domain follows the routing's limits",
          "[parallelism]") {
  // share = P(a token's experts touch a given domain of the EP group) / top_k, experts placed on
  // the EP ranks in order, routing even. Hand-derived: C(a, k) / C(b, k) = all k among a of b.
  auto share = [](int gpus_per_node, int ep, const std::string& routing) {
    const std::string text = "cluster: {gpu: h100-sxm, nodes: " + std::to_string(16 / gpus_per_node) +
                             ", gpus_per_node: " + std::to_string(gpus_per_node) + ", scale_out: {topology: clos, bandwidth: 50 GB/s}}\n"
                             "model: {layers: 2, hidden: 256, ffn: 1024, vocab: 512, heads: 4, moe_ffn: 512, " + routing + "}\n"
                             "training: {seq_len: 128, global_batch: 16}\n"
                             "parallel: {dp: 16, ep: " + std::to_string(ep) + ", moe_token_dispatcher: deepep}\n";
    return make_plan(parse_scenario(text, "t.yaml", {}, test::presets())).dispatch_rail_share;
  };
  // 16 experts, top-2, no groups, 2 domains of 8: 1 - C(8,2)/C(16,2) = 1 - 28/120.
  CHECK(share(8, 16, "experts: 16, top_k: 2") == Approx((1.0 - 28.0 / 120.0) / 2));
  // 4 groups of 4 experts, top-2 in 1 group, 4 domains of 4 GPUs (a group a domain): 1/4 each.
  CHECK(share(4, 16, "experts: 16, top_k: 2, router_groups: 4, router_group_topk: 1") == Approx(0.25 / 2));
  // DeepSeek-V3's: 8 groups on 8 domains, 4 chosen: 1 - C(7,4)/C(8,4) = 1/2.
  CHECK(share(2, 16, "experts: 256, top_k: 8, router_groups: 8, router_group_topk: 4") == Approx(0.5 / 8));
  // 2 groups of 8 experts on 8 domains of 2 GPUs (4 domains a group), top-2 in 1 group: the
  // domain's group is chosen (1/2), then 1 - C(6,2)/C(8,2) that one of its 2 experts is drawn.
  CHECK(share(2, 16, "experts: 16, top_k: 2, router_groups: 2, router_group_topk: 1") ==
        Approx(0.5 * (1.0 - 15.0 / 28.0) / 2));
  // 48 experts, 3 a rank, domains of 4 ranks (12 experts): group 1 (experts 8-15) spans
  // domains 0 and 1, and domain 0 holds parts of groups 0 and 1.
  CHECK_THROWS_WITH(share(4, 16, "experts: 48, top_k: 2, router_groups: 6, router_group_topk: 1"),
                    Contains("model.router_groups: 6 router groups straddle the 4 scale-up domains"));
  CHECK_THROWS_WITH(share(4, 1, "experts: 16, top_k: 2"), Contains("parallel.moe_token_dispatcher: deepep dispatches tokens over expert"));
  // 1-GPU nodes: no domain to forward in. Domains of 12 GPUs (the last partial) split EP 16
  // into 12 and 4: no same-index rank for most.
  CHECK_THROWS_WITH(share(1, 16, "experts: 16, top_k: 2"), Contains("deepep forwards tokens inside scale-up domains"));
  const std::string uneven = "cluster: {gpu: h100-sxm, nodes: 4, gpus_per_node: 4, scale_up: {preset: nvswitch-h100, domain: 12},"
                             " scale_out: {topology: clos, bandwidth: 50 GB/s}}\n"
                             "model: {layers: 2, hidden: 256, ffn: 1024, vocab: 512, heads: 4, moe_ffn: 512, experts: 16, top_k: 2}\n"
                             "training: {seq_len: 128, global_batch: 16}\nparallel: {dp: 16, ep: 16, moe_token_dispatcher: deepep}\n";
  CHECK_THROWS_WITH(make_plan(parse_scenario(uneven, "t.yaml", {}, test::presets())),
                    Contains("parallel.moe_token_dispatcher: deepep needs the EP group (ep 16) spread evenly over scale-up domains of 12"));
  // The model's own limits.
  CHECK_THROWS_WITH(share(4, 16, "experts: 16, top_k: 2, router_groups: 4"), Contains("router_group_topk: missing"));
  CHECK_THROWS_WITH(share(4, 16, "experts: 16, top_k: 2, router_groups: 3, router_group_topk: 1"),
                    Contains("router_groups: 3 does not divide experts 16"));
  CHECK_THROWS_WITH(share(4, 16, "experts: 16, top_k: 8, router_groups: 8, router_group_topk: 2"),
                    Contains("router_group_topk: leaves fewer experts than top_k"));
}

TEST_CASE("parallelism::plan invalid plans are rejected with the key named", "[parallelism]") {
  auto bad = [](const std::string& extra, const std::string& message) {
    INFO(extra);
    CHECK_THROWS_WITH(make_plan(scenario(extra)), Contains(message));
  };
  bad("parallel: {tp: 6, pp: 1}", "parallel.tp: tp·pp·cp = 6 does not divide cluster.gpus 1024");
  CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 4}", {"cluster.gpu=a100-sxm-80gb", "training.precision=fp8"})),
                    Contains("training.precision: fp8 needs FP8 tensor cores, and a100-sxm-80gb has none"));
  bad("parallel: {tp: 16, pp: 1}", "parallel.tp: 16 does not divide model.kv_heads 8");
  bad("parallel: {tp: 8, pp: 4, ep: 2}", "parallel.ep: 2 needs a mixture-of-experts model");
  bad("parallel: {tp: 8, pp: 4, dp: 16}", "parallel.dp: tp·pp·dp·cp = 512 but the cluster has 1024 GPUs");
  CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 32}", {"training.global_batch=32"})),
                    Contains("training.global_batch: 8 micro-batches per pipeline are fewer than pp 32"));
  bad("parallel: {tp: 8, pp: 4, vpp: 2, schedule: gpipe}", "parallel.vpp: vpp 2 needs schedule interleaved");
  bad("parallel: {tp: 8, pp: 4, stage_layers: [20, 20, 20, 19]}", "parallel.stage_layers: sum to 79");
  // DualPipe: an even pp, an even number of micro-batches, at least 2·pp (DualPipe.step's asserts).
  CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 5, schedule: dualpipe}", {"cluster.nodes=120", "training.global_batch=480"})),
                    Contains("parallel.pp: dualpipe needs an even pp of at least 2, not 5"));
  CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 16, schedule: dualpipe}", {"training.global_batch=192"})),
                    Contains("training.global_batch: 24 micro-batches per pipeline: dualpipe needs an even number, at least 2·pp = 32"));
  CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 4, schedule: dualpipe}", {"training.global_batch=288"})),
                    Contains("training.global_batch: 9 micro-batches per pipeline: dualpipe needs an even number"));
  CHECK_NOTHROW(make_plan(scenario("parallel: {tp: 8, pp: 16, schedule: dualpipe}", {"training.global_batch=256"})));
  // Interleaving 5 micro-batches on pp 4: Megatron-Core's groups of 4 leave a last group of 1.
  const char* il = "parallel: {tp: 8, pp: 4, vpp: 2, schedule: interleaved}";
  CHECK_THROWS_WITH(make_plan(scenario(il, {"training.global_batch=160"})),
                    Contains("training.global_batch: 5 micro-batches in groups of 4 leave a last group of 1, fewer than pp 4") &&
                        Contains("set parallel.microbatch_group to 5"));
  CHECK(make_plan(scenario(il, {"training.global_batch=160", "parallel.microbatch_group=5"})).microbatch_group == 5);
  // 9 in groups of 5: a last group of 4, as many as pp.
  CHECK(make_plan(scenario(il, {"training.global_batch=288", "parallel.microbatch_group=5"})).microbatch_group == 5);
  CHECK(make_plan(scenario(il, {"training.global_batch=256"})).microbatch_group == 4);
  CHECK_THROWS_WITH(make_plan(scenario(il, {"training.global_batch=160", "parallel.microbatch_group=3"})),
                    Contains("parallel.microbatch_group: 3 is not between pp 4 and the 5 micro-batches"));
  CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 4}", {"parallel.microbatch_group=4"})),
                    Contains("parallel.microbatch_group: groups micro-batches per chunk of the interleaved schedule"));
  bad("parallel: {tp: 8, pp: 4, order: tp-dp-pp}", "parallel.order");
}

TEST_CASE("parallelism::plan counts made from the user's numbers are checked, not wrapped", "[parallelism]") {
  // The 70B scenario of 1,024 GPUs; each product below used to overflow or be cut to an int.
  SECTION("degrees: tp·pp·cp") {
    CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 16777216, pp: 16777216}")),
                      Contains("parallel.pp: tp·pp = 16,777,216 x 16,777,216 is more than 16,777,216"));
    CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 4096, cp: 4096}")),
                      Contains("parallel.cp: tp·pp·cp = 32,768 x 4,096 is more than 16,777,216"));
  }
  SECTION("tokens per step: global_batch x seq_len at most 2^40") {
    // 2^24 sequences of 2^17 tokens: 2^41.
    CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 4}", {"training.global_batch=16777216", "training.seq_len=131072"})),
                      Contains("training.global_batch: tokens per step, global_batch·seq_len = 16,777,216 x 131,072 is more "
                               "than 1,099,511,627,776"));
  }
  SECTION("pipeline passes: micro-batches x pp x vpp at most 2^22") {
    // 2^24 sequences over dp 32: 2^19 micro-batches; x pp 4 x vpp 2 = 2^22 passes, the limit.
    CHECK(make_plan(scenario("parallel: {tp: 8, pp: 4, vpp: 2}", {"training.global_batch=16777216"})).micro_batches == 524'288);
    // vpp 4: 2^23.
    CHECK_THROWS_WITH(make_plan(scenario("parallel: {tp: 8, pp: 4, vpp: 4}", {"training.global_batch=16777216"})),
                      Contains("training.global_batch: pipeline passes per step, micro-batches·pp·vpp = 524,288 x 16 is more "
                               "than 4,194,304"));
  }
}

TEST_CASE("parallelism::plan spreads uneven layers with lighter first and last stages", "[parallelism]") {
  // Llama 3 405B: 126 layers on 16 stages, one fewer on the first and the last.
  const auto v = spread_layers(126, 16);
  CHECK(v.front() == 7);
  CHECK(v.back() == 7);
  for (std::size_t i = 1; i + 1 < v.size(); ++i) CHECK(v[i] == 8);
}

TEST_CASE("parallelism::layout Megatron order keeps TP groups on consecutive GPUs", "[parallelism]") {
  const Plan p = make_plan(scenario("parallel: {tp: 8, pp: 4, dp: 32}"));
  CHECK(group_of(p, {0, 0, 0, 0}, GroupKind::kTp) == std::vector<topology::NodeId>{0, 1, 2, 3, 4, 5, 6, 7});
  const auto dp = group_of(p, {3, 0, 0, 1}, GroupKind::kDp);
  CHECK(dp.size() == 32);
  CHECK(dp[0] == 256 + 3);  // pp stride is tp*cp*dp = 256
  CHECK(dp[1] == 256 + 8 + 3);
  for (long long r : {0LL, 77LL, 1023LL}) CHECK(rank_of(p, coords_of(p, r)) == r);
}

TEST_CASE("parallelism::layout expert layers fold tp x cp x dp into etp x ep x expert-dp", "[parallelism]") {
  // Mixtral on 32 GPUs: 8 experts.
  auto plan = [](const std::string& par) {
    const std::string text = "cluster: {gpu: h100-sxm, nodes: 4, gpus_per_node: 8,\n"
                             "  scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2}}\n"
                             "model: mixtral-8x22b\ntraining: {seq_len: 4096, global_batch: 64}\n" + par;
    return make_plan(parse_scenario(text, "t.yaml", {}, test::presets()));
  };
  using G = std::vector<topology::NodeId>;
  SECTION("etp = tp (the default): EP is carved out of dp, members tp apart") {
    const Plan p = plan("parallel: {tp: 4, pp: 1, ep: 2}");
    CHECK(p.etp == 4);
    CHECK(group_of(p, {1, 0, 0, 0}, GroupKind::kEp) == G{1, 5});
    CHECK(group_of(p, {1, 0, 0, 0}, GroupKind::kExpertDp) == G{1, 9, 17, 25});
    CHECK(p.expert_dp() == 4);
  }
  SECTION("etp = 1: EP spans the TP ranks") {
    const Plan p = plan("parallel: {tp: 4, pp: 1, ep: 8, etp: 1}");
    CHECK(group_of(p, {1, 0, 0, 0}, GroupKind::kEp) == G{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(group_of(p, {1, 0, 2, 0}, GroupKind::kEp) == G{8, 9, 10, 11, 12, 13, 14, 15});
    CHECK(group_of(p, {1, 0, 0, 0}, GroupKind::kExpertDp) == G{1, 9, 17, 25});
  }
  SECTION("etp = 2, ep = 2: EP members two apart") {
    const Plan p = plan("parallel: {tp: 4, pp: 1, ep: 2, etp: 2}");
    CHECK(group_of(p, {1, 0, 0, 0}, GroupKind::kEp) == G{1, 3});
    CHECK(group_of(p, {1, 0, 0, 0}, GroupKind::kExpertDp) == G{1, 5, 9, 13, 17, 21, 25, 29});
  }
  SECTION("rules") {
    CHECK_THROWS_WITH(plan("parallel: {tp: 4, pp: 1, ep: 8, etp: 3}"), Contains("parallel.etp: 3 does not divide tp 4"));
    CHECK_THROWS_WITH(plan("parallel: {tp: 8, pp: 4, ep: 8, etp: 8}"),
                      Contains("parallel.ep: ep·etp = 64 does not divide tp·cp·dp = 8"));
  }
  SECTION("the same expert FLOPs per GPU whatever the folding, other GEMM shapes") {
    const ModelSpec m = preset_model("mixtral-8x22b");
    Shard s;
    s.seq_len = 4096;
    s.tp = 4;
    s.sp = true;
    s.ep = 2;
    auto expert = [&](int etp) {
      s.etp = etp;
      for (const auto& k : layer_forward(m, 0, s)) {
        if (k.name == "expert down") return k;
      }
      FAIL("no expert kernel");
      return Kernel{};
    };
    const Kernel a = expert(4), b = expert(1);
    CHECK(a.flops.value() == Approx(b.flops.value()));
    CHECK(b.rows == Approx(a.rows / 4));  // etp/tp of the rows
    CHECK(b.depth == Approx(4 * a.depth));  // whole experts
  }
}

TEST_CASE("parallelism::pipeline schedules run every pass once, 1F1B holds at most p-s micro-batches", "[parallelism]") {
  for (auto sched : {PipeSchedule::kGpipe, PipeSchedule::kOneFOneB, PipeSchedule::kZeroBubble}) {
    for (int s = 0; s < 4; ++s) {
      const auto ops = stage_order(sched, 4, 1, 8, s);
      CHECK(ops.size() == (sched == PipeSchedule::kZeroBubble ? 24u : 16u));
    }
  }
  CHECK(stage_order(PipeSchedule::kInterleaved, 4, 2, 8, 0).size() == 32u);
  {
    // Interleaved, 3 micro-batches on pp 2 (not a multiple, as Megatron-Core and Llama 3 allow):
    // micro-batches 0 and 1 through chunk 0 then chunk 1, then micro-batch 2 alone. Stage 0
    // warms up with (2 - 0 - 1) x 2 + (2 - 1) x 2 = 4 forwards, stage 1 with 2.
    auto text = [](int stage, int group = 0) {
      std::string out;
      for (const auto& op : stage_order(PipeSchedule::kInterleaved, 2, 2, 3, stage, group)) {
        out += (op.pass == Pass::kForward ? "F" : "B") + std::to_string(op.micro_batch) + std::to_string(op.chunk) + " ";
      }
      return out;
    };
    CHECK(text(0) == "F00 F10 F01 F11 F20 B01 F21 B11 B00 B10 B21 B20 ");
    CHECK(text(1) == "F00 F10 F01 B01 F11 B11 F20 B00 F21 B10 B21 B20 ");
    // One group of all 3 (Megatron-Core's microbatch group size 3): warm-up 2 + 3 and 0 + 3.
    CHECK(text(0, 3) == "F00 F10 F20 F01 F11 F21 B01 B11 B21 B00 B10 B20 ");
    CHECK(text(1, 3) == "F00 F10 F20 F01 B01 F11 B11 F21 B21 B00 B10 B20 ");
  }
  for (int s = 0; s < 4; ++s) CHECK(peak_in_flight(PipeSchedule::kOneFOneB, 4, 1, 8, s) == 4 - s);
  CHECK(peak_in_flight(PipeSchedule::kGpipe, 4, 1, 8, 0) == 8);
  // Interleaved (Megatron): (p - s - 1) * 2 + (v - 1) * p warm-up forwards, plus one.
  CHECK(peak_in_flight(PipeSchedule::kInterleaved, 4, 2, 8, 0) == 3 * 2 + 4 + 1);
  // The peak is counted from the order itself, forwards up and the passes that free down, for
  // every schedule: 1F1B, interleaved and GPipe take a closed form; it must agree.
  for (auto sched : {PipeSchedule::kGpipe, PipeSchedule::kOneFOneB, PipeSchedule::kInterleaved, PipeSchedule::kZeroBubble}) {
    for (int pp : {1, 2, 3, 4, 8}) {
      for (int v : {1, 2, 3}) {
        if (v > 1 && sched != PipeSchedule::kInterleaved) continue;
        for (int m : {1, 2, 3, 5, 8, 9, 16, 17}) {
          for (int group : {0, pp + 1}) {
            if (sched == PipeSchedule::kInterleaved && (m < pp || (group > 0 && m % group != 0 && m % group < pp))) continue;
            for (bool pairs : {false, true}) {
              if (pairs && sched != PipeSchedule::kOneFOneB && sched != PipeSchedule::kInterleaved) continue;
              for (int s = 0; s < pp; ++s) {
                int live = 0, peak = 0;
                for (const auto& op : stage_order(sched, pp, v, m, s, group, pairs)) {
                  if (op.pass == Pass::kForward) peak = std::max(peak, ++live);
                  if (op.pass == (sched == PipeSchedule::kZeroBubble ? Pass::kWeight : Pass::kBackward)) --live;
                }
                INFO("schedule " << static_cast<int>(sched) << " pp " << pp << " v " << v << " m " << m << " group " << group
                                 << " pairs " << pairs << " stage " << s);
                CHECK(peak_in_flight(sched, pp, v, m, s, group, pairs) == peak);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("parallelism::stage_order: ZB-V runs two chunks a rank in a V, in PyTorch's ScheduleZBVZeroBubble order",
          "[parallelism]") {
  // The order written out by hand from the published rule (pp 2, m 4; Xc.j: pass X of chunk c
  // for micro-batch j). Rank r: 2(pp-r)-1 F0, r pairs F1 F0, pp-r triples F1 B1 W1; then
  // F0 B0 W0 F1 B1 W1 while forwards remain; then r pairs B0 B1, pp-r pairs B0 W0, the W1
  // left, the W0 left.
  auto text = [](int pp, int m, int stage) {
    std::string out;
    for (const auto& op : stage_order(PipeSchedule::kZeroBubbleV, pp, 2, m, stage)) {
      out += std::string(op.pass == Pass::kForward ? "F" : op.pass == Pass::kBackward ? "B" : "W") + std::to_string(op.chunk) +
             "." + std::to_string(op.micro_batch) + " ";
    }
    return out;
  };
  CHECK(text(2, 4, 0) == "F0.0 F0.1 F0.2 F1.0 B1.0 W1.0 F1.1 B1.1 W1.1 F0.3 B0.0 W0.0 F1.2 B1.2 W1.2 B0.1 W0.1 F1.3 B1.3 W1.3 "
                         "B0.2 W0.2 B0.3 W0.3 ");
  CHECK(text(2, 4, 1) == "F0.0 F1.0 F0.1 F1.1 B1.0 W1.0 F0.2 B0.0 W0.0 F1.2 B1.1 W1.1 F0.3 B0.1 W0.1 F1.3 B1.2 W1.2 "
                         "B0.2 B1.3 B0.3 W0.2 W1.3 W0.3 ");
  // Laid out for 2pp-1 micro-batches when there are fewer; those past m are left out.
  CHECK(text(2, 2, 0) == "F0.0 F0.1 F1.0 B1.0 W1.0 F1.1 B1.1 W1.1 B0.0 W0.0 B0.1 W0.1 ");
  // The V: rank s holds virtual stages s and 2pp-1-s; rank 0 both ends of the path.
  const PipeMap map(PipeSchedule::kZeroBubbleV, 4, 2);
  CHECK(map.chunks() == 2);
  CHECK(map.count() == 8);
  for (int s = 0; s < 4; ++s) {
    INFO("stage " << s);
    CHECK(map.at(0, s).virtual_stage == s);
    CHECK(map.at(1, s).virtual_stage == 7 - s);
    CHECK(map.stage_of(s) == s);
    CHECK(map.stage_of(7 - s) == s);
    // The plan's layers of virtual stage v are chunk v / pp, stage v % pp of its split.
    CHECK(map.at(1, s).layer_chunk == 1);
    CHECK(map.at(1, s).layer_stage == 3 - s);
    CHECK(map.at(0, s).first == (s == 0));
    CHECK(map.at(1, s).last == (s == 0));
    CHECK_FALSE(map.at(0, s).last);
    CHECK_FALSE(map.at(1, s).first);
  }
  // Layers spread by rank first (the extra ones to the middle ranks), then each rank's
  // between its two chunks: 32 layers on pp 3 are 11, 11, 10 a rank, not 12 on the turn's.
  {
    const Plan p = make_plan(scenario("parallel: {pp: 3, schedule: zero-bubble-v}", {"cluster.nodes=3", "model.layers=32", "training.global_batch=24", "parallel.tp=8"}));
    CHECK(p.chunk_layers == std::vector<int>{6, 6, 5, 5, 5, 5});
  }
  // Every pass once per chunk; each rank holds at most 2pp chunk activations, 1F1B's first
  // stage's pp micro-batches of a whole stage (the ZB-V paper's "same memory as 1F1B").
  for (int m : {4, 7, 8, 16}) {
    for (int s = 0; s < 4; ++s) {
      INFO("m " << m << ", stage " << s);
      int count[3][2] = {};
      for (const auto& op : stage_order(PipeSchedule::kZeroBubbleV, 4, 2, m, s)) ++count[static_cast<int>(op.pass)][op.chunk];
      for (auto& pass : count) {
        CHECK(pass[0] == m);
        CHECK(pass[1] == m);
      }
      if (m >= 7) CHECK(peak_in_flight(PipeSchedule::kZeroBubbleV, 4, 2, m, s) == 8);
    }
  }
}

TEST_CASE("parallelism::stage_order: DualPipe's order runs every micro-batch once each way, half from each end", "[parallelism]") {
  // Each rank: m forwards, m backwards and m weight passes; phase c's micro-batches are one
  // direction's (0 .. m/2-1 enter at rank 0, the rest at rank pp-1), each in order.
  const int pp = 8, m = 20;
  for (int stage = 0; stage < pp; ++stage) {
    INFO("stage " << stage);
    const auto ops = stage_order(PipeSchedule::kDualPipe, pp, 1, m, stage);
    std::vector<int> f, b, w;
    for (const auto& op : ops) {
      const int dir = op.micro_batch / (m / 2);
      CHECK(dir == (stage < pp / 2 ? op.chunk : 1 - op.chunk));
      (op.pass == Pass::kForward ? f : op.pass == Pass::kBackward ? b : w).push_back(op.micro_batch);
    }
    CHECK(f.size() == m);
    CHECK(b.size() == m);
    CHECK(w.size() == m);
    std::sort(f.begin(), f.end());
    std::sort(w.begin(), w.end());
    for (int j = 0; j < m; ++j) {
      CHECK(f[static_cast<std::size_t>(j)] == j);
      CHECK(w[static_cast<std::size_t>(j)] == j);
    }
  }
}
