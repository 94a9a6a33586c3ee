// Reads a golden vector file: every line that is not empty or a comment, as a stream.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

// Calls row(fields, line) for each row of tests/`name`; returns the number of rows.
template <class Row>
int golden_rows(const std::string& name, Row row) {
  const std::string path = std::string(DGEN_GOLDEN_DIR) + "/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  int rows = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    row(fields, line);
    ++rows;
  }
  return rows;
}
