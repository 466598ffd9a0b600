# cmake -DINPUT=<file> -DOUTPUT=<file.cpp> -DNAME=<function> -P embed.cmake
# Writes a C++ source defining `std::string_view realtime::detail::NAME()` with the file's bytes.
file(READ "${INPUT}" content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
string(LENGTH "${content}" hex_length)
math(EXPR length "${hex_length} / 2")
file(WRITE "${OUTPUT}"
  "// Generated from ${INPUT} by cmake/embed.cmake; do not edit.\n"
  "#include <string_view>\n"
  "namespace realtime::detail {\n"
  "namespace { constexpr unsigned char k_${NAME}[] = {${bytes} 0x00}; }\n"
  "std::string_view ${NAME}() noexcept {\n"
  "  return {reinterpret_cast<const char*>(k_${NAME}), ${length}};\n"
  "}\n"
  "}  // namespace realtime::detail\n")
