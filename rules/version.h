#pragma once

namespace switchyard::rules {

const char* version();

}  // namespace switchyard::rules
