// HDF5 files for --hdf5, readable with h5py or h5dump without wallsim (SPEC.md "HDF5"):
// scalar attributes on groups and tables as one-dimensional compound datasets, a member per
// column. The file is built in memory (HDF5's core driver) and returned as bytes, so the CLI
// writes it whole or not at all like every other output.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace wallsim::report {

/// A table: named columns of equal length, each numbers, integers or text.
class Table {
 public:
  using Values = std::variant<std::vector<double>, std::vector<std::int64_t>, std::vector<std::string>>;
  struct Column {
    std::string name;
    Values values;
  };
  /// Adds a column; every column must have the same number of rows (std::logic_error if not).
  Table& add(std::string name, std::vector<double> v);
  Table& add(std::string name, std::vector<std::int64_t> v);
  Table& add(std::string name, std::vector<std::string> v);
  [[nodiscard]] const std::vector<Column>& columns() const { return columns_; }
  [[nodiscard]] std::size_t rows() const { return rows_; }

 private:
  Table& add_column(Column c, std::size_t rows);
  std::vector<Column> columns_;
  std::size_t rows_ = 0;
};

/// One HDF5 file under construction. Group paths are absolute ("/summary"); groups are
/// created on first use.
class Hdf5File {
 public:
  Hdf5File();
  ~Hdf5File();
  Hdf5File(const Hdf5File&) = delete;
  Hdf5File& operator=(const Hdf5File&) = delete;

  void attribute(const std::string& group, const std::string& name, double v);
  void attribute(const std::string& group, const std::string& name, std::int64_t v);
  void attribute(const std::string& group, const std::string& name, const std::string& v);
  /// Every scalar of `j` (an object) as an attribute of `group`; nested objects' scalars are
  /// named by their path joined with '.' ("breakdown_s.compute"); arrays are skipped.
  void attributes(const std::string& group, const nlohmann::json& j);
  /// `t` as the compound dataset `path` (its parent group created as needed).
  void table(const std::string& path, const Table& t);
  /// Closes the file and returns its bytes; the object is unusable afterwards.
  std::string bytes();

 private:
  long long group(const std::string& path);
  long long file_ = -1;
};

}  // namespace wallsim::report
