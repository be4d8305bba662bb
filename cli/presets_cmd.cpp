// `wallsim presets [KIND]`: the presets in data/ with the sources of their numbers.
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/text.hpp"

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
      for (const auto& s : p.sources) {
        text << "  " << std::string(width + 2, ' ') << "  source: " << s << "\n";
      }
      arr.push_back({{"name", p.name}, {"description", p.description}, {"sources", p.sources}});
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
