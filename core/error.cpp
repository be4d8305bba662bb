#include "core/error.hpp"

namespace wallsim {

Error::Error(std::string where, std::string message)
    : std::runtime_error(where.empty() ? message : where + ": " + message),
      where_(std::move(where)),
      message_(std::move(message)) {}

}  // namespace wallsim
