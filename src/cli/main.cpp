#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  std::fprintf(stderr, "flatline: not yet\n");
  return 1;
}
