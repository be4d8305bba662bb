// `wallsim validate [CASES_DIR]`: every published-measurement case, predicted vs measured.
// `--fit KEY=LO:HI` fits scenario keys on the cases marked `fit: true` instead.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "engine/distribute.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "core/units.hpp"
#include "validation/validate.hpp"

namespace wallsim::cli {
namespace {

struct ValidateFlags {
  CommonFlags common;
  std::string dir, network = "flow", markdown;
  std::vector<std::string> only, fits;
};

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%+.1f %%", 100.0 * x);
  return b;
}

double parse_count_or_fraction(const std::string& s) { return parse_count(s, "--fit"); }

std::string number(double x) { return format_number(x, 4); }

/// `results` by precision (cases that have one), in first-seen order.
std::pair<std::vector<std::string>, std::map<std::string, std::vector<validation::Result>>> by_precision_of(
    const std::vector<validation::Result>& results) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<validation::Result>> by;
  for (const auto& r : results) {
    if (r.c->precision.empty()) continue;
    if (!by.count(r.c->precision)) order.push_back(r.c->precision);
    by[r.c->precision].push_back(r);
  }
  return {order, by};
}

std::string summary_line(const std::string& label, const validation::Summary& s, const std::string& worst_id) {
  char b[256];
  std::snprintf(b, sizeof b, "%s: %zu cases, median |error| %.1f %%, worst %.1f %%%s", label.c_str(), s.cases,
                100.0 * s.median_abs, 100.0 * s.max_abs, worst_id.empty() ? "" : (" (" + worst_id + ")").c_str());
  return b;
}

const validation::Result* worst_of(const std::vector<validation::Result>& rs) {
  const validation::Result* w = nullptr;
  for (const auto& r : rs) {
    if (!w || std::abs(r.error) > std::abs(w->error)) w = &r;
  }
  return w;
}

bool selected(const validation::Case& c, const std::vector<std::string>& only) {
  if (only.empty()) return true;
  for (const auto& o : only) {
    if (c.id == o || c.group == o || c.id.rfind(o + "-", 0) == 0) return true;
  }
  return false;
}

void validate(const ValidateFlags& f) {
  const Presets presets(default_data_dir());
  const std::string dir = f.dir.empty() ? presets.data_dir() + "/validation" : f.dir;
  const auto all = validation::load_cases(dir);
  std::vector<const validation::Case*> cases;
  for (const auto& c : all) {
    if (selected(c, f.only)) cases.push_back(&c);
  }
  if (cases.empty()) throw Error("--only", "selects no case");
  validation::Options opt;
  opt.network = f.network;
  opt.sets = f.common.sets;

  if (!f.fits.empty()) {
    std::vector<validation::FitKey> keys;
    for (const auto& s : f.fits) {
      const auto eq = s.find('='), colon = s.rfind(':');
      if (eq == std::string::npos || colon == std::string::npos || colon < eq) {
        throw Error("--fit", "'" + s + "' is not KEY=LO:HI");
      }
      // KEY=LO:HI, or KEY=LO:HI UNIT for a key with units (cluster.gpu.kernel_overhead=0:20 us).
      std::string hi = s.substr(colon + 1), unit;
      if (const auto sp = hi.find(' '); sp != std::string::npos) {
        unit = hi.substr(sp + 1);
        hi = hi.substr(0, sp);
        if (unit.empty() || unit.find(' ') != std::string::npos) throw Error("--fit", "'" + s + "': UNIT must be one word");
      }
      validation::FitKey k{s.substr(0, eq), parse_count_or_fraction(s.substr(eq + 1, colon - eq - 1)),
                           parse_count_or_fraction(hi), unit};
      if (!(k.lo < k.hi)) throw Error("--fit", "'" + s + "': LO must be below HI");
      keys.push_back(k);
    }
    std::vector<const validation::Case*> fit_cases;
    std::string ids;
    for (const auto* c : cases) {
      if (c->fit) {
        fit_cases.push_back(c);
        ids += (ids.empty() ? "" : ", ") + c->id;
      }
    }
    const auto x = validation::fit(fit_cases, keys, presets, opt);
    std::cout << "wallsim validate --fit: " << fit_cases.size() << " fit cases (" << ids << ")\n";
    for (std::size_t i = 0; i < keys.size(); ++i) {
      std::cout << keys[i].key << " = " << format_number(x[i], 4) << (keys[i].unit.empty() ? "" : " " + keys[i].unit) << "\n";
    }
    return;
  }

  std::vector<validation::Result> results;
  // Cases are spread over MPI ranks (engine/distribute.hpp): predicted value, error and choice.
  const auto packed = engine::distribute(cases.size(), [&](std::size_t i) {
    const auto r = validation::run_case(*cases[i], presets, opt);
    return engine::Packer().put(r.predicted).put(r.error).put(r.chosen).take();
  });
  for (std::size_t i = 0; i < cases.size(); ++i) {
    engine::Unpacker in(packed[i]);
    validation::Result r;
    r.c = cases[i];
    in.get(r.predicted);
    in.get(r.error);
    in.get(r.chosen);
    results.push_back(std::move(r));
  }

  // Groups in first-seen order, each split into fit and check cases.
  std::vector<std::string> groups;
  std::map<std::string, std::vector<validation::Result>> by_group, by_group_check;
  for (const auto& r : results) {
    if (!by_group.count(r.c->group)) groups.push_back(r.c->group);
    by_group[r.c->group].push_back(r);
    if (!r.c->fit) by_group_check[r.c->group].push_back(r);
  }
  const auto total = validation::summarize(results);

  std::ostringstream text, md;
  char line[512];
  text << "wallsim validate: " << results.size() << " cases from " << dir << ", network " << f.network << "\n";
  std::snprintf(line, sizeof line, "%-26s %-9s %-27s %12s %12s %9s %6s  %s\n", "case", "group", "metric", "measured",
                "predicted", "error", "tol", "role");
  text << line;
  md << "| case | metric | measured | predicted | error | role | source |\n|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    const auto& c = *r.c;
    std::snprintf(line, sizeof line, "%-26s %-9s %-27s %12s %12s %9s %5.3g%%  %s%s\n", c.id.c_str(), c.group.c_str(),
                  to_string(c.metric).c_str(), number(c.measured).c_str(), number(r.predicted).c_str(),
                  pct(r.error).c_str(), 100.0 * c.tolerance, c.fit ? "fit" : "check", r.within() ? "" : "  OUTSIDE TOLERANCE");
    text << line;
    md << "| " << c.id << " | " << to_string(c.metric) << " | " << number(c.measured) << " | " << number(r.predicted)
       << " | " << pct(r.error) << " | " << (c.fit ? "fit" : "check") << " | " << c.source << " |\n";
  }
  md << "\n";
  // Error by precision: over every case, and within each group that has more than one.
  auto [precisions, by_precision] = by_precision_of(results);
  for (const auto& g : groups) {
    const auto& rs = by_group[g];
    const auto* w = worst_of(rs);
    text << summary_line(g, validation::summarize(rs), w ? w->c->id : "") << "\n";
    md << "- " << summary_line("**" + g + "**", validation::summarize(rs), w ? w->c->id : "");
    const auto& checks = by_group_check[g];
    if (!checks.empty() && checks.size() != rs.size()) {
      const auto* wc = worst_of(checks);
      text << summary_line("  " + g + " checks only", validation::summarize(checks), wc ? wc->c->id : "") << "\n";
      md << "; checks only (not used in any fit): " << summary_line("", validation::summarize(checks), wc ? wc->c->id : "").substr(2);
    }
    auto [seen, split] = by_precision_of(rs);
    for (std::size_t k = 0; seen.size() > 1 && k < seen.size(); ++k) {
      const auto* wq = worst_of(split[seen[k]]);
      const std::string line = summary_line(seen[k], validation::summarize(split[seen[k]]), wq ? wq->c->id : "");
      text << "  " << g << " " << line << "\n";
      md << "; " << line;
    }
    md << "\n";
  }
  for (const auto& q : precisions) {
    const auto* wq = worst_of(by_precision[q]);
    text << summary_line("all " + q, validation::summarize(by_precision[q]), wq ? wq->c->id : "") << "\n";
    md << "- " << summary_line("**all " + q + "**", validation::summarize(by_precision[q]), wq ? wq->c->id : "") << "\n";
  }
  const auto* w = worst_of(results);
  text << summary_line("all", total, w ? w->c->id : "") << "\n";
  md << "- " << summary_line("**all**", total, w ? w->c->id : "") << "\n";

  PendingFiles files;
  if (!f.common.json.empty()) {
    nlohmann::json cs = nlohmann::json::array();
    for (const auto& r : results) {
      cs.push_back({{"id", r.c->id},
                    {"group", r.c->group},
                    {"metric", to_string(r.c->metric)},
                    {"measured", r.c->measured},
                    {"predicted", r.predicted},
                    {"error", r.error},
                    {"tolerance", r.c->tolerance},
                    {"fit", r.c->fit},
                    {"chosen", r.chosen},
                    {"precision", r.c->precision},
                    {"source", r.c->source}});
    }
    nlohmann::json gs = nlohmann::json::object();
    for (const auto& g : groups) {
      const auto s = validation::summarize(by_group[g]);
      const auto sc = validation::summarize(by_group_check[g]);
      gs[g] = {{"cases", s.cases}, {"median_abs_error", s.median_abs}, {"max_abs_error", s.max_abs},
               {"check_cases", sc.cases}, {"check_median_abs_error", sc.median_abs}, {"check_max_abs_error", sc.max_abs}};
    }
    nlohmann::json ps = nlohmann::json::object();
    for (const auto& q : precisions) {
      const auto s = validation::summarize(by_precision[q]);
      ps[q] = {{"cases", s.cases}, {"median_abs_error", s.median_abs}, {"max_abs_error", s.max_abs}};
    }
    const nlohmann::json j = {{"cases", cs},
                              {"groups", gs},
                              {"precisions", ps},
                              {"median_abs_error", total.median_abs},
                              {"max_abs_error", total.max_abs}};
    files.add(f.common.json, report::json_text(j));
  }
  files.add(f.markdown, md.str());
  if (!f.common.quiet && f.common.json != "-") std::cout << text.str();
  files.write_all();
}

}  // namespace

void register_validate(CLI::App& app, Action& action) {
  auto f = std::make_shared<ValidateFlags>();
  CLI::App* cmd = app.add_subcommand("validate", "Run the published-measurement cases: predicted vs measured");
  cmd->add_option("CASES_DIR", f->dir, "Directory of case files (default: data/validation)");
  cmd->add_option("--network", f->network, "analytic or flow (default flow)");
  cmd->add_option("--only", f->only, "Run only these case ids, id prefixes (N21) or groups (repeatable)");
  cmd->add_option("--fit", f->fits,
                  "Fit a scenario key on the fit cases instead: KEY=LO:HI, e.g. "
                  "cluster.gpu.gemm_efficiency=0.4:0.9 (repeatable)");
  add_output_option(*cmd, "--markdown", f->markdown, "Write the table as Markdown (the README's error table)");
  add_common_flags(*cmd, f->common);
  cmd->callback([f, &action] { action = [f] { validate(*f); }; });
}

}  // namespace wallsim::cli
