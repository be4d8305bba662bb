#include "report/hdf5.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace wallsim::report {
namespace {

/// An HDF5 handle closed by `close` when it goes out of scope.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t), const char* what) : id_(id), close_(close) {
    if (id_ < 0) throw std::runtime_error(std::string("HDF5: cannot ") + what);
  }
  ~Handle() { close_(id_); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id_; }  // NOLINT(google-explicit-constructor): a handle is its id

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void check(herr_t status, const char* what) {
  if (status < 0) throw std::runtime_error(std::string("HDF5: cannot ") + what);
}

/// A fixed-length, null-padded string type of `size` bytes (at least 1).
hid_t string_type(std::size_t size) {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, std::max<std::size_t>(size, 1));
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void write_attribute(hid_t loc, const std::string& name, hid_t type, const void* data) {
  if (H5Aexists(loc, name.c_str()) > 0) check(H5Adelete(loc, name.c_str()), "replace an attribute");
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose, "create a dataspace");
  const Handle a(H5Acreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                 "create an attribute");
  check(H5Awrite(a, type, data), "write an attribute");
}

void flatten(const nlohmann::json& j, const std::string& prefix, Hdf5File& f, const std::string& group) {
  for (const auto& [k, v] : j.items()) {
    const std::string name = prefix.empty() ? k : prefix + "." + k;
    if (v.is_object()) {
      flatten(v, name, f, group);
    } else if (v.is_boolean()) {
      f.attribute(group, name, static_cast<std::int64_t>(v.get<bool>()));
    } else if (v.is_number_integer()) {
      f.attribute(group, name, v.get<std::int64_t>());
    } else if (v.is_number()) {
      f.attribute(group, name, v.get<double>());
    } else if (v.is_string()) {
      f.attribute(group, name, v.get<std::string>());
    }
  }
}

/// Creation properties without modification times, so the same results give the same bytes.
/// (A property list per kind, kept for the process.)
hid_t untimed(hid_t kind) {
  static const hid_t group = [] {
    const hid_t p = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(p, 0);
    return p;
  }();
  static const hid_t dataset = [] {
    const hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(p, 0);
    return p;
  }();
  return kind == H5P_GROUP_CREATE ? group : dataset;
}

}  // namespace

Table& Table::add_column(Column c, std::size_t rows) {
  if (!columns_.empty() && rows != rows_) {
    throw std::logic_error("report::Table: column '" + c.name + "' has " + std::to_string(rows) + " rows, not " +
                           std::to_string(rows_));
  }
  rows_ = rows;
  columns_.push_back(std::move(c));
  return *this;
}
Table& Table::add(std::string name, std::vector<double> v) {
  const std::size_t n = v.size();
  return add_column({std::move(name), std::move(v)}, n);
}
Table& Table::add(std::string name, std::vector<std::int64_t> v) {
  const std::size_t n = v.size();
  return add_column({std::move(name), std::move(v)}, n);
}
Table& Table::add(std::string name, std::vector<std::string> v) {
  const std::size_t n = v.size();
  return add_column({std::move(name), std::move(v)}, n);
}

Hdf5File::Hdf5File() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions, not stderr noise
  const Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "create file properties");
  // In memory, 1 MiB growth steps, never backed by a file: bytes() takes the image.
  check(H5Pset_fapl_core(fapl, 1 << 20, 0), "use the in-memory driver");
  file_ = H5Fcreate("wallsim-in-memory.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (file_ < 0) throw std::runtime_error("HDF5: cannot create an in-memory file");
}

Hdf5File::~Hdf5File() {
  if (file_ >= 0) H5Fclose(file_);
}

long long Hdf5File::group(const std::string& path) {
  if (path.empty() || path == "/") return H5Gopen2(file_, "/", H5P_DEFAULT);
  std::string at;
  hid_t g = -1;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    const std::size_t next = std::min(path.find('/', pos), path.size());
    at = path.substr(0, next);
    if (g >= 0) H5Gclose(g);
    g = H5Lexists(file_, at.c_str(), H5P_DEFAULT) > 0 ? H5Gopen2(file_, at.c_str(), H5P_DEFAULT)
                                                       : H5Gcreate2(file_, at.c_str(), H5P_DEFAULT, untimed(H5P_GROUP_CREATE), H5P_DEFAULT);
    if (g < 0) throw std::runtime_error("HDF5: cannot create group " + at);
    pos = next + 1;
  }
  return g;
}

void Hdf5File::attribute(const std::string& group_path, const std::string& name, double v) {
  const Handle g(group(group_path), H5Gclose, "open a group");
  write_attribute(g, name, H5T_NATIVE_DOUBLE, &v);
}

void Hdf5File::attribute(const std::string& group_path, const std::string& name, std::int64_t v) {
  const Handle g(group(group_path), H5Gclose, "open a group");
  write_attribute(g, name, H5T_NATIVE_INT64, &v);
}

void Hdf5File::attribute(const std::string& group_path, const std::string& name, const std::string& v) {
  const Handle g(group(group_path), H5Gclose, "open a group");
  const Handle type(string_type(v.size()), H5Tclose, "create a string type");
  write_attribute(g, name, type, v.data());
}

void Hdf5File::attributes(const std::string& group_path, const nlohmann::json& j) { flatten(j, "", *this, group_path); }

void Hdf5File::table(const std::string& path, const Table& t) {
  const std::size_t slash = path.rfind('/');
  const Handle parent(group(path.substr(0, slash)), H5Gclose, "open a group");
  // Row layout: members packed in column order.
  std::vector<std::size_t> offset, size;
  std::vector<hid_t> types;
  std::size_t row = 0;
  for (const auto& c : t.columns()) {
    std::size_t s = 0;
    hid_t type = -1;
    if (std::holds_alternative<std::vector<double>>(c.values)) {
      s = sizeof(double);
      type = H5Tcopy(H5T_NATIVE_DOUBLE);
    } else if (std::holds_alternative<std::vector<std::int64_t>>(c.values)) {
      s = sizeof(std::int64_t);
      type = H5Tcopy(H5T_NATIVE_INT64);
    } else {
      for (const auto& x : std::get<std::vector<std::string>>(c.values)) s = std::max(s, x.size());
      s = std::max<std::size_t>(s, 1);
      type = string_type(s);
    }
    offset.push_back(row);
    size.push_back(s);
    types.push_back(type);
    row += s;
  }
  const Handle compound(H5Tcreate(H5T_COMPOUND, std::max<std::size_t>(row, 1)), H5Tclose, "create a compound type");
  for (std::size_t i = 0; i < types.size(); ++i) {
    check(H5Tinsert(compound, t.columns()[i].name.c_str(), offset[i], types[i]), "add a table column");
    H5Tclose(types[i]);
  }
  std::vector<char> buf(row * t.rows(), '\0');
  for (std::size_t i = 0; i < types.size(); ++i) {
    const auto& v = t.columns()[i].values;
    for (std::size_t r = 0; r < t.rows(); ++r) {
      char* at = buf.data() + r * row + offset[i];
      if (const auto* d = std::get_if<std::vector<double>>(&v)) {
        std::memcpy(at, &(*d)[r], sizeof(double));
      } else if (const auto* n = std::get_if<std::vector<std::int64_t>>(&v)) {
        std::memcpy(at, &(*n)[r], sizeof(std::int64_t));
      } else {
        const auto& s = std::get<std::vector<std::string>>(v)[r];
        std::memcpy(at, s.data(), s.size());
      }
    }
  }
  const hsize_t dims[1] = {t.rows()};
  const Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose, "create a dataspace");
  const std::string name = path.substr(slash + 1);
  const Handle d(H5Dcreate2(parent, name.c_str(), compound, space, H5P_DEFAULT, untimed(H5P_DATASET_CREATE), H5P_DEFAULT),
                 H5Dclose, "create a dataset");
  if (t.rows() > 0) check(H5Dwrite(d, compound, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "write a table");
}

std::string Hdf5File::bytes() {
  check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush the file");
  const ssize_t n = H5Fget_file_image(file_, nullptr, 0);
  if (n < 0) throw std::runtime_error("HDF5: cannot size the file image");
  std::string out(static_cast<std::size_t>(n), '\0');
  if (H5Fget_file_image(file_, out.data(), out.size()) != n) throw std::runtime_error("HDF5: cannot copy the file image");
  H5Fclose(file_);
  file_ = -1;
  return out;
}

}  // namespace wallsim::report
