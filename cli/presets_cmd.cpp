// `wallsim presets [KIND]`: the presets in data/ with the sources of their numbers.
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/scenario.hpp"
#include "core/text.hpp"
#include "hardware/gpu_model.hpp"

namespace wallsim::cli {
namespace {

struct PresetsFlags {
  CommonFlags common;
  std::string kind;
};

void run(const PresetsFlags& f) {
  const Presets presets(default_data_dir());
  std::vector<PresetKind> kinds;
  if (f.kind.empty()) {
    kinds = all_preset_kinds();
  } else if (auto k = preset_kind_from_name(f.kind)) {
    kinds = {*k};
  } else {
    std::vector<std::string> names;
    for (auto k2 : all_preset_kinds()) names.push_back(preset_kind_name(k2));
    throw Error("presets", "unknown kind '" + f.kind + "'" + did_you_mean(f.kind, names) +
                               "; one of " + join(names, ", "));
  }
  nlohmann::json j = nlohmann::json::object();
  std::ostringstream text;
  for (auto kind : kinds) {
    const auto list = presets.list(kind);
    nlohmann::json arr = nlohmann::json::array();
    text << preset_kind_name(kind) << " (" << presets.data_dir() << "/" << preset_kind_name(kind)
         << ".yaml)\n";
    std::size_t width = 0;
    for (const auto& p : list) width = std::max(width, p.name.size());
    for (const auto& p : list) {
      text << "  " << p.name << std::string(width + 2 - p.name.size(), ' ') << p.description << "\n";
      // A GPU that lacks a field the roofline or power model reads is incomplete: said here,
      // and `run` on it names the same fields.
      std::vector<std::string> missing;
      if (kind == PresetKind::kGpus) {
        YAML::Node node(YAML::NodeType::Map);
        node["preset"] = p.name;
        missing = hardware::missing_fields(parse_gpu(Config(node, "gpus." + p.name), presets));
        if (!missing.empty()) {
          text << "  " << std::string(width + 2, ' ') << "  INCOMPLETE: no " << join(missing, ", ")
               << " (run refuses it)\n";
        }
      }
      // Each value beside its source (a choice, such as a topology, has none).
      std::size_t kw = 0, vw = 0;
      for (const auto& fd : p.fields) {
        kw = std::max(kw, fd.key.size());
        vw = std::max(vw, fd.value.size());
      }
      vw = std::min<std::size_t>(vw, 24);
      nlohmann::json fields = nlohmann::json::array();
      for (const auto& fd : p.fields) {
        text << "  " << std::string(width + 2, ' ') << "  " << fd.key << std::string(kw + 2 - fd.key.size(), ' ')
             << fd.value << std::string(fd.value.size() < vw + 2 ? vw + 2 - fd.value.size() : 2, ' ')
             << (fd.source.empty() ? "" : "source: " + fd.source) << "\n";
        fields.push_back({{"key", fd.key}, {"value", fd.value}, {"source", fd.source}});
      }
      arr.push_back({{"name", p.name}, {"description", p.description}, {"sources", p.sources}, {"fields", fields},
                     {"missing", missing}});
    }
    const auto refs = presets.references(kind);
    if (!refs.empty()) {
      text << "  references:\n";
      for (const auto& [id, cite] : refs) text << "    [" << id << "] " << cite << "\n";
    }
    text << "\n";
    nlohmann::json refj = nlohmann::json::object();
    for (const auto& [id, cite] : refs) refj[id] = cite;
    j[preset_kind_name(kind)] = {{"presets", arr}, {"references", refj}};
  }
  PendingFiles files;
  if (!f.common.json.empty()) files.add(f.common.json, report::json_text(j));
  if (!f.common.quiet && f.common.json != "-") std::cout << text.str();
  files.write_all();
}

}  // namespace

void register_presets(CLI::App& app, Action& action) {
  auto f = std::make_shared<PresetsFlags>();
  CLI::App* cmd = app.add_subcommand("presets", "List the presets in data/ with their sources");
  cmd->add_option("KIND", f->kind, "gpus, links, models, clusters or failures");
  add_common_flags(*cmd, f->common);
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
